//! Host-test support: a [`Platform`] for driving the xenstore engine in unit tests without Xen
//! (no rings to map, every domain exists, the clock stands still). It remembers the connection
//! of the last INTRODUCE so a test can reach the introduced guest.

use xenstore_engine::{ConnId, Error, Platform};

/// The engine's host in unit tests.
#[derive(Default)]
pub struct TestHost {
    /// The connection the engine created for the last INTRODUCE.
    pub introduced: Option<ConnId>,
}

impl Platform for TestHost {
    fn introduce(&mut self, conn: ConnId, _: u32, _: u64, _: u32) -> Result<(), Error> {
        self.introduced = Some(conn);
        Ok(())
    }
    fn reintroduce(&mut self, _: ConnId, _: u32, _: u32) -> Result<(), Error> {
        Ok(())
    }
    fn release(&mut self, _: ConnId, _: u32) {}
    fn domain_exists(&mut self, _: u32) -> bool {
        true
    }
    fn now_ms(&self) -> u64 {
        0
    }
    fn log(&mut self, _: &str) {}
}

/// A page of host memory standing in for a page shared with another domain.
#[derive(Clone)]
pub struct HostPage(pub alloc::vec::Vec<u8>);

impl HostPage {
    /// A zeroed 4 KiB page.
    pub fn new() -> HostPage {
        HostPage(alloc::vec![0; 4096])
    }
}

impl xenstore_engine::ring::RingPage for HostPage {
    fn load_u32(&self, off: usize) -> u32 {
        self.0.as_slice().load_u32(off)
    }
    fn store_u32(&mut self, off: usize, v: u32) {
        self.0.as_mut_slice().store_u32(off, v)
    }
    fn read(&self, off: usize, buf: &mut [u8]) {
        self.0.as_slice().read(off, buf)
    }
    fn write(&mut self, off: usize, data: &[u8]) {
        self.0.as_mut_slice().write(off, data)
    }
    fn barrier(&self) {}
}
