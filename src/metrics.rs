//! Prometheus metrics.
//!
//! Owns: the registry and every metric's name, unit and help text. Must not: put a lock
//! on the DNS path.

/// Every metric pathdns exports.
#[derive(Debug, Default)]
pub struct Metrics {}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics {}
    }
}
