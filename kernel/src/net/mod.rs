//! The network above netfront: smoltcp's interface and sockets polled from the scheduler
//! (`stack`, kernel target) and the small HTTP exchange the demo page and the stub's
//! metrics endpoint serve (`http`, pure).

pub mod http;
#[cfg(all(target_os = "none", feature = "net"))]
pub mod stack;
