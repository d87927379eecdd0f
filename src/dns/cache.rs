//! The cache of forwarded answers.
//!
//! Owns: keys (lower-case wire name, type, class), entries (a [`Prepared`] response and
//! when it expires) and the bounded concurrent store. Must not: talk to upstreams or decide
//! what is cacheable (the forwarder does); a lookup never allocates.

use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Instant;

use quick_cache::Equivalent;

use crate::wire::Prepared;

/// Longest time an answer is kept, whatever its TTL says (one day, as Unbound's default).
pub const MAX_LIFETIME: u32 = 86_400;
/// Longest time a negative answer is kept (RFC 2308 suggests 1-3 hours; we stay short).
pub const MAX_NEGATIVE_LIFETIME: u32 = 3_600;

/// An owned key, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheKey {
    name: Box<[u8]>,
    qtype: u16,
    qclass: u16,
}

/// A borrowed key, for lookups without allocation.
#[derive(Debug, Clone, Copy)]
pub struct KeyRef<'a> {
    pub name: &'a [u8],
    pub qtype: u16,
    pub qclass: u16,
}

impl KeyRef<'_> {
    pub fn to_owned_key(&self) -> CacheKey {
        CacheKey {
            name: self.name.into(),
            qtype: self.qtype,
            qclass: self.qclass,
        }
    }
}

// Both key forms hash the same fields the same way, so a `KeyRef` finds a `CacheKey`.
impl Hash for CacheKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        KeyRef {
            name: &self.name,
            qtype: self.qtype,
            qclass: self.qclass,
        }
        .hash(state)
    }
}

impl Hash for KeyRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        state.write(self.name);
        state.write_u16(self.qtype);
        state.write_u16(self.qclass);
    }
}

impl Equivalent<CacheKey> for KeyRef<'_> {
    fn equivalent(&self, key: &CacheKey) -> bool {
        self.name == &*key.name && self.qtype == key.qtype && self.qclass == key.qclass
    }
}

/// A cached response and its lifetime.
#[derive(Debug)]
pub struct Cached {
    pub prepared: Prepared,
    stored: Instant,
    lifetime: u32,
}

impl Cached {
    pub fn new(prepared: Prepared, lifetime: u32) -> Cached {
        Cached {
            prepared,
            stored: Instant::now(),
            lifetime,
        }
    }

    /// Seconds since it was stored, if it has not expired yet.
    pub fn age_if_fresh(&self, now: Instant) -> Option<u32> {
        let age = now.saturating_duration_since(self.stored).as_secs();
        (age < u64::from(self.lifetime)).then_some(age as u32)
    }
}

/// Bounded by entry count; eviction is CLOCK-Pro (quick_cache), so one-off names do not
/// push out the names a host looks up all day.
pub struct AnswerCache {
    entries: quick_cache::sync::Cache<CacheKey, Arc<Cached>>,
}

impl AnswerCache {
    pub fn new(capacity: usize) -> AnswerCache {
        AnswerCache {
            entries: quick_cache::sync::Cache::new(capacity.max(1)),
        }
    }

    /// A fresh entry and its age in seconds.
    pub fn get(&self, key: &KeyRef<'_>) -> Option<(Arc<Cached>, u32)> {
        let entry = self.entries.get(key)?;
        let age = entry.age_if_fresh(Instant::now())?;
        Some((entry, age))
    }

    pub fn insert(&self, key: &KeyRef<'_>, entry: Arc<Cached>) {
        self.entries.insert(key.to_owned_key(), entry);
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn clear(&self) {
        self.entries.clear();
    }
}
