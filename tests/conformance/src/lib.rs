//! Wire-level xenstore client used by the conformance, differential and benchmark tools.
