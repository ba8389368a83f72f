//! The 9P client the stub writes its log file with, over the 9pfs device that
//! init-xenstore-domain (Xen 4.19+) gives it: [`wire`] (the 9P2000.u messages), [`channel`]
//! (the Xen 9pfs ring transport) and [`logfile`] (the session writing a capped, rotated
//! file) are pure and host-tested; `xenstored::logdev` connects them to the device.

pub mod channel;
pub mod logfile;
pub mod wire;
