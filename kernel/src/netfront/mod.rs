//! netfront: the Xen network frontend. `ring` and `queues` (pure, host-tested) move packets
//! through the shared rings and check what the backend writes; `handshake` speaks the xenbus
//! protocol with the backend; on the kernel target `device` grants the pages, binds the event
//! channel and hands frames to smoltcp.

#[cfg(all(target_os = "none", feature = "net"))]
pub mod device;
pub mod handshake;
pub mod queues;
pub mod ring;
