//! ferrostored: the xenstore engine served on a unix socket.
fn main() {}
