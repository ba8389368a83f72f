//! The metrics endpoint in an image built without network code (feature `net` off, the
//! plain stub): `--metrics` is refused with a pointer to the image that has it.

use crate::cmdline::Options;
use crate::events;
use xenstore_engine::{Engine, Platform};

/// Never made: see [`Endpoint::new`].
pub enum Endpoint {}

impl Endpoint {
    /// None; warns when `--metrics` asked for an endpoint.
    pub fn new<P: Platform>(
        _engine: &mut Engine<P>,
        _domid: u16,
        opts: &Options,
        _on_event: events::Handler,
    ) -> Option<Endpoint> {
        if opts.metrics.is_some() {
            crate::log_warn!(
                "xenstored: metrics: this image has no network code; --metrics needs target/xen/ferrostore-metrics.gz"
            );
        }
        None
    }

    pub fn conn(&self) -> xenstore_engine::ConnId {
        match *self {}
    }

    pub fn next_wake(&mut self) -> u64 {
        match *self {}
    }

    pub fn begin_close(&mut self) {
        match *self {}
    }

    pub fn closed(&self) -> Option<bool> {
        match *self {}
    }

    pub fn resume(&mut self) {
        match *self {}
    }

    pub fn step<P: Platform>(
        &mut self,
        _engine: &mut Engine<P>,
        _host: &dyn Fn(&Engine<P>) -> super::metrics::Host,
    ) {
        match *self {}
    }
}
