//! The cache of forwarded answers.
//!
//! Owns: keys (lower-case wire name, type, class), entries (a [`Prepared`] response, when
//! it expires, and when a refresh of it last failed) and the bounded concurrent store.
//! Must not: talk to upstreams or decide what is cacheable (the forwarder does) or when a
//! stale entry is served (`stale` does); a lookup never allocates.
//!
//! Expired entries stay in the store until they are replaced or evicted (the store is
//! bounded by entry count either way), so that `stale` can serve them (RFC 8767);
//! [`AnswerCache::get`], the hot path's lookup, returns fresh entries only.

use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

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

impl CacheKey {
    pub fn as_key_ref(&self) -> KeyRef<'_> {
        KeyRef {
            name: &self.name,
            qtype: self.qtype,
            qclass: self.qclass,
        }
    }
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
        self.as_key_ref().hash(state)
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
    /// Milliseconds after `stored` until which no refresh is tried (a refresh failed
    /// recently); 0: none.
    hold_refresh_until: AtomicU64,
}

impl Cached {
    pub fn new(prepared: Prepared, lifetime: u32) -> Cached {
        Cached::stored_at(prepared, lifetime, Instant::now())
    }

    fn stored_at(prepared: Prepared, lifetime: u32, stored: Instant) -> Cached {
        Cached {
            prepared,
            stored,
            lifetime,
            hold_refresh_until: AtomicU64::new(0),
        }
    }

    /// Seconds since it was stored, if it has not expired yet.
    pub fn age_if_fresh(&self, now: Instant) -> Option<u32> {
        let age = now.saturating_duration_since(self.stored).as_secs();
        (age < u64::from(self.lifetime)).then_some(age as u32)
    }

    /// Expired, but for less than `max_stale`.
    pub fn is_stale_within(&self, now: Instant, max_stale: Duration) -> bool {
        let age = now.saturating_duration_since(self.stored);
        let lifetime = Duration::from_secs(u64::from(self.lifetime));
        age >= lifetime && age < lifetime.saturating_add(max_stale)
    }

    /// No refresh is to be tried until `now + hold`: one just failed (RFC 8767's failure
    /// recheck timer).
    pub fn hold_refresh(&self, now: Instant, hold: Duration) {
        let until = now
            .saturating_duration_since(self.stored)
            .saturating_add(hold);
        let millis = u64::try_from(until.as_millis()).unwrap_or(u64::MAX).max(1);
        self.hold_refresh_until.store(millis, Ordering::Relaxed);
    }

    /// A refresh succeeded: refreshes may be tried again.
    pub fn release_refresh(&self) {
        self.hold_refresh_until.store(0, Ordering::Relaxed);
    }

    /// Whether a refresh is on hold at `now`.
    pub fn refresh_held(&self, now: Instant) -> bool {
        let until = self.hold_refresh_until.load(Ordering::Relaxed);
        let age = now.saturating_duration_since(self.stored).as_millis();
        until != 0 && age < u128::from(until)
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

    /// An expired entry, if it expired less than `max_stale` ago.
    pub fn get_stale(&self, key: &KeyRef<'_>, max_stale: Duration) -> Option<Arc<Cached>> {
        let entry = self.entries.get(key)?;
        entry
            .is_stale_within(Instant::now(), max_stale)
            .then_some(entry)
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Rcode;

    fn entry(lifetime: u32, stored: Instant) -> Cached {
        Cached::stored_at(Prepared::empty(Rcode::NoError, false), lifetime, stored)
    }

    #[test]
    fn an_entry_is_fresh_then_stale_then_gone() {
        let stored = Instant::now();
        let entry = entry(2, stored);
        let max_stale = Duration::from_secs(4);
        let at = |millis| stored + Duration::from_millis(millis);
        assert_eq!(entry.age_if_fresh(at(1_999)), Some(1));
        assert!(!entry.is_stale_within(at(1_999), max_stale));
        assert_eq!(entry.age_if_fresh(at(2_000)), None);
        assert!(entry.is_stale_within(at(2_000), max_stale));
        assert!(entry.is_stale_within(at(5_999), max_stale));
        assert!(!entry.is_stale_within(at(6_000), max_stale));
    }

    #[test]
    fn a_held_refresh_is_released_after_its_hold() {
        let stored = Instant::now();
        let entry = entry(2, stored);
        let at = |millis| stored + Duration::from_millis(millis);
        assert!(!entry.refresh_held(at(0)));
        entry.hold_refresh(at(2_500), Duration::from_secs(30));
        assert!(entry.refresh_held(at(2_500)));
        assert!(entry.refresh_held(at(32_499)));
        assert!(!entry.refresh_held(at(32_500)));
    }

    #[test]
    fn only_fresh_entries_are_found_by_get() {
        let cache = AnswerCache::new(8);
        let key = KeyRef {
            name: b"\x01a\x00",
            qtype: 1,
            qclass: 1,
        };
        let long_ago = Instant::now()
            .checked_sub(Duration::from_secs(10))
            .expect("the monotonic clock is past 10 s");
        cache.insert(&key, Arc::new(entry(5, long_ago)));
        assert!(cache.get(&key).is_none());
        assert!(cache.get_stale(&key, Duration::from_secs(60)).is_some());
        assert!(cache.get_stale(&key, Duration::from_secs(5)).is_none());
        assert!(cache
            .get_stale(&key.to_owned_key().as_key_ref(), Duration::from_secs(60))
            .is_some());
    }
}
