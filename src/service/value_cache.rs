//! The node-wide cache of fetched values, shared by every mount of the node. An entry
//! is served only to a request with an equal key: the same principal (the identity's
//! sharing key: IRSA role and service account, or the pod under Pod Identity), region
//! and object reference (store, name, version or label) or selection. Bounded by entries and bytes,
//! least recently used first out; values are wiped when dropped and never written out.

use std::num::NonZeroUsize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lru::LruCache;

use crate::domain::freshness::{CacheBounds, Freshness, Use};
use crate::domain::objects::{ObjectRef, Selection};
use crate::domain::region::Region;
use crate::ports::{Clock, Fetched, Selected};

/// The operator's settings of the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ValueCacheSettings {
    pub bounds: CacheBounds,
    pub max_entries: usize,
    /// Bytes of values, versions and keys held at once; taken out of the memory budget.
    pub max_bytes: usize,
}

impl Default for ValueCacheSettings {
    fn default() -> Self {
        ValueCacheSettings {
            bounds: CacheBounds::default(),
            max_entries: 4096,
            max_bytes: 4 * 1024 * 1024,
        }
    }
}

impl ValueCacheSettings {
    pub fn is_on(&self) -> bool {
        self.bounds.is_on() && self.max_entries > 0 && self.max_bytes > 0
    }
}

/// What was asked of the store: one object, or a selection.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    Object(ObjectRef),
    Selection(Selection),
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CacheKey {
    pub principal: String,
    pub region: Region,
    pub subject: Subject,
}

impl CacheKey {
    /// Bytes an entry of this key holds besides its value.
    fn weight(&self) -> usize {
        const OVERHEAD: usize = 64;
        let text = |t: &Option<String>| t.as_ref().map_or(0, String::len);
        let subject = match &self.subject {
            Subject::Object(o) => o.name.len() + text(&o.version) + text(&o.label),
            Subject::Selection(Selection::ParameterPath { path, .. }) => path.len(),
            Subject::Selection(Selection::Secrets {
                name_prefix,
                tag_key,
                tag_value,
            }) => text(name_prefix) + text(tag_key) + text(tag_value),
        };
        self.principal.len() + subject + OVERHEAD
    }

    /// Pinned versions never change in AWS.
    fn pinned(&self) -> bool {
        matches!(&self.subject, Subject::Object(o) if o.version.is_some())
    }
}

/// What the store answered: one object's value, or a selection's matches.
#[derive(Debug, Clone)]
pub enum Answer {
    One(Fetched),
    Many(Arc<Vec<Selected>>),
}

impl Answer {
    fn bytes(&self) -> usize {
        match self {
            Answer::One(f) => f.value.len() + f.version.len(),
            Answer::Many(found) => found
                .iter()
                .map(|m| m.name.len() + m.fetched.value.len() + m.fetched.version.len())
                .sum(),
        }
    }
}

/// What the cache holds for a key, for one class's rules.
#[derive(Debug, Clone)]
pub enum Lookup<T> {
    /// Serve it.
    Fresh(T),
    /// Ask the store, and serve this only if it fails with a server or transport error.
    StandIn {
        value: T,
        age: Duration,
    },
    Miss,
}

impl Lookup<Answer> {
    /// The lookup of a key whose answers are of one shape.
    fn map<T>(self, shape: impl Fn(Answer) -> Option<T>) -> Lookup<T> {
        match self {
            Lookup::Fresh(a) => shape(a).map_or(Lookup::Miss, Lookup::Fresh),
            Lookup::StandIn { value, age } => {
                shape(value).map_or(Lookup::Miss, |value| Lookup::StandIn { value, age })
            }
            Lookup::Miss => Lookup::Miss,
        }
    }
}

/// Counters for the metrics endpoint.
#[derive(Debug, Default)]
pub struct CacheCounters {
    pub hits: AtomicU64,
    pub misses: AtomicU64,
    pub stale_served: AtomicU64,
    pub evicted_capacity: AtomicU64,
    pub evicted_expired: AtomicU64,
    pub evicted_client_error: AtomicU64,
}

/// A reading of the cache for the metrics endpoint.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    pub entries: u64,
    pub bytes: u64,
    pub max_bytes: u64,
    pub hits: u64,
    pub misses: u64,
    pub stale_served: u64,
    pub evicted_capacity: u64,
    pub evicted_expired: u64,
    pub evicted_client_error: u64,
}

struct Entry {
    value: Answer,
    fetched_at: Instant,
    bytes: usize,
}

struct Held {
    lru: LruCache<CacheKey, Entry>,
    bytes: usize,
    last_sweep: Instant,
}

pub struct ValueCache {
    settings: ValueCacheSettings,
    clock: Arc<dyn Clock>,
    held: Mutex<Held>,
    counters: CacheCounters,
}

impl std::fmt::Debug for ValueCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ValueCache")
            .field("settings", &self.settings)
            .field("stats", &self.stats())
            .finish()
    }
}

impl ValueCache {
    pub fn new(settings: ValueCacheSettings, clock: Arc<dyn Clock>) -> Self {
        let cap = NonZeroUsize::new(settings.max_entries).unwrap_or(NonZeroUsize::MIN);
        let now = clock.now();
        ValueCache {
            settings,
            clock,
            held: Mutex::new(Held {
                lru: LruCache::new(cap),
                bytes: 0,
                last_sweep: now,
            }),
            counters: CacheCounters::default(),
        }
    }

    pub fn is_on(&self) -> bool {
        self.settings.is_on()
    }

    pub fn max_bytes(&self) -> usize {
        self.settings.max_bytes
    }

    pub fn bounds(&self) -> CacheBounds {
        self.settings.bounds
    }

    fn held(&self) -> std::sync::MutexGuard<'_, Held> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An object's value under `freshness`.
    pub fn lookup(&self, key: &CacheKey, freshness: &Freshness) -> Lookup<Fetched> {
        self.find(key, freshness).map(|a| match a {
            Answer::One(f) => Some(f),
            Answer::Many(_) => None,
        })
    }

    /// A selection's matches under `freshness`.
    pub fn lookup_selection(
        &self,
        key: &CacheKey,
        freshness: &Freshness,
    ) -> Lookup<Arc<Vec<Selected>>> {
        self.find(key, freshness).map(|a| match a {
            Answer::Many(found) => Some(found),
            Answer::One(_) => None,
        })
    }

    /// What the cache has for `key` under `freshness`. A fresh entry becomes the most
    /// recently used; one past every use to anyone is dropped.
    fn find(&self, key: &CacheKey, freshness: &Freshness) -> Lookup<Answer> {
        if !self.is_on() || !freshness.reads_cache() {
            return Lookup::Miss;
        }
        let now = self.clock.now();
        let mut held = self.held();
        self.sweep(&mut held, now);
        let found = held.lru.peek(key).map(|e| {
            let age = now.saturating_duration_since(e.fetched_at);
            (age, e.value.clone())
        });
        let lookup = match found {
            None => Lookup::Miss,
            Some((age, value)) => match freshness.judge(age, key.pinned()) {
                Use::Fresh => {
                    held.lru.promote(key);
                    Lookup::Fresh(value)
                }
                Use::StandIn => Lookup::StandIn { value, age },
                Use::Expired => {
                    if age >= self.settings.bounds.retention() {
                        self.remove(&mut held, key, &self.counters.evicted_expired);
                    }
                    Lookup::Miss
                }
            },
        };
        drop(held);
        let counter = match lookup {
            Lookup::Fresh(_) => &self.counters.hits,
            _ => &self.counters.misses,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        lookup
    }

    /// Keeps a value the store just answered, replacing what the key held.
    pub fn store(&self, key: CacheKey, value: Answer) {
        if !self.is_on() {
            return;
        }
        let bytes = key.weight() + value.bytes();
        let now = self.clock.now();
        let mut held = self.held();
        self.sweep(&mut held, now);
        if let Some(old) = held.lru.pop(&key) {
            held.bytes -= old.bytes;
        }
        if bytes > self.settings.max_bytes {
            return;
        }
        while held.bytes + bytes > self.settings.max_bytes {
            let Some((_, old)) = held.lru.pop_lru() else {
                break;
            };
            held.bytes -= old.bytes;
            self.counters
                .evicted_capacity
                .fetch_add(1, Ordering::Relaxed);
        }
        let entry = Entry {
            value,
            fetched_at: now,
            bytes,
        };
        held.bytes += bytes;
        // At the entry limit, push hands back the least recently used entry.
        if let Some((_, old)) = held.lru.push(key, entry) {
            held.bytes -= old.bytes;
            self.counters
                .evicted_capacity
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A stale value stood in for a failing store.
    pub fn note_stale_served(&self) {
        self.counters.stale_served.fetch_add(1, Ordering::Relaxed);
    }

    pub fn stats(&self) -> CacheStats {
        let (entries, bytes) = {
            let held = self.held();
            (held.lru.len() as u64, held.bytes as u64)
        };
        let c = &self.counters;
        let get = |a: &AtomicU64| a.load(Ordering::Relaxed);
        CacheStats {
            entries,
            bytes,
            max_bytes: self.settings.max_bytes as u64,
            hits: get(&c.hits),
            misses: get(&c.misses),
            stale_served: get(&c.stale_served),
            evicted_capacity: get(&c.evicted_capacity),
            evicted_expired: get(&c.evicted_expired),
            evicted_client_error: get(&c.evicted_client_error),
        }
    }

    fn remove(&self, held: &mut Held, key: &CacheKey, counter: &AtomicU64) {
        if let Some(old) = held.lru.pop(key) {
            held.bytes -= old.bytes;
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Drops entries past every use, at most every quarter of the retention: a value
    /// nobody asks for again must not stay in memory until the LRU pushes it out.
    fn sweep(&self, held: &mut Held, now: Instant) {
        let retention = self.settings.bounds.retention();
        if now.saturating_duration_since(held.last_sweep) < retention / 4 {
            return;
        }
        held.last_sweep = now;
        let old: Vec<CacheKey> = held
            .lru
            .iter()
            .filter(|(_, e)| now.saturating_duration_since(e.fetched_at) >= retention)
            .map(|(k, _)| k.clone())
            .collect();
        for key in old {
            self.remove(held, &key, &self.counters.evicted_expired);
        }
    }
}

#[path = "value_cache_forget.rs"]
mod forget;

#[cfg(test)]
#[path = "value_cache_tests.rs"]
mod tests;
