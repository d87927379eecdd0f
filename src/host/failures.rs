//! Host reads that failed: the last failure per kind of read, so that none fails silently.
//!
//! Owns: the registry (a process-wide map behind a mutex; only probes, checks and the
//! control endpoint touch it, never the DNS path), logging each distinct cause once
//! (tracing::warn) and its recovery once (info), and the snapshot `/status` shows. Must
//! not: retry reads or decide anything from them.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;
use std::time::SystemTime;

/// A kind of host read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum HostRead {
    Routes,
    Links,
    Addresses,
    Hostname,
}

impl fmt::Display for HostRead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            HostRead::Routes => "routes",
            HostRead::Links => "links",
            HostRead::Addresses => "addresses",
            HostRead::Hostname => "hostname",
        })
    }
}

/// A read that is failing now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub read: HostRead,
    pub cause: String,
    /// When this cause was first seen.
    pub since: SystemTime,
}

/// The last failure per kind of read.
#[derive(Debug, Default)]
pub struct Registry(Mutex<BTreeMap<HostRead, Failure>>);

/// The process's registry, which every host read reports to.
static REGISTRY: Registry = Registry::new();

impl Registry {
    pub const fn new() -> Registry {
        Registry(Mutex::new(BTreeMap::new()))
    }

    fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<HostRead, Failure>) -> T) -> T {
        // A panic while holding the lock cannot leave the map half-updated: recover it.
        let mut map = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        f(&mut map)
    }

    /// Records a failed read; true if the cause is new for this read (and so logged).
    pub fn failed(&self, read: HostRead, cause: &str) -> bool {
        self.with(|map| {
            if map.get(&read).is_some_and(|known| known.cause == cause) {
                return false;
            }
            let since = SystemTime::now();
            let cause = cause.to_owned();
            map.insert(read, Failure { read, cause, since });
            true
        })
    }

    /// Records a successful read; the failure it ends, if one was recorded.
    pub fn succeeded(&self, read: HostRead) -> Option<Failure> {
        self.with(|map| map.remove(&read))
    }

    /// The reads failing now, in a stable order.
    pub fn current(&self) -> Vec<Failure> {
        self.with(|map| map.values().cloned().collect())
    }
}

/// Records a failed read; a cause not seen just before for this read is logged.
pub fn failed(read: HostRead, cause: &str) {
    if REGISTRY.failed(read, cause) {
        tracing::warn!(read = %read, cause, "host read failed");
    }
}

/// Records a successful read: a failure recorded before is over (and logged as such).
pub fn succeeded(read: HostRead) {
    if let Some(old) = REGISTRY.succeeded(read) {
        tracing::info!(read = %read, was = old.cause, "host read works again");
    }
}

/// The reads failing now in this process.
pub fn current() -> Vec<Failure> {
    REGISTRY.current()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_is_new_once_and_lasts_until_the_read_works_again() {
        let registry = Registry::new();
        assert!(registry.failed(HostRead::Routes, "EPERM"));
        assert!(!registry.failed(HostRead::Routes, "EPERM"), "logged once");
        assert!(registry.failed(HostRead::Routes, "EACCES"), "a new cause");
        let now = registry.current();
        assert_eq!(now.len(), 1);
        assert_eq!(
            (now[0].read, now[0].cause.as_str()),
            (HostRead::Routes, "EACCES")
        );
        assert_eq!(
            registry.succeeded(HostRead::Routes).unwrap().cause,
            "EACCES"
        );
        assert!(registry.current().is_empty());
        assert!(registry.succeeded(HostRead::Routes).is_none());
    }
}
