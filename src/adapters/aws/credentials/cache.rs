//! A credential cache: one entry per key, reused until shortly before expiry, and one
//! fetch for many concurrent callers of the same key (the others wait for its answer).

use std::collections::HashMap;
use std::future::Future;
use std::hash::Hash;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

struct Entry<V> {
    value: V,
    refresh_at: Instant,
}

type Slot<V> = Arc<tokio::sync::Mutex<Option<Entry<V>>>>;

pub struct CredentialCache<K, V> {
    slots: Mutex<HashMap<K, Slot<V>>>,
    /// Refresh this long before the credentials expire.
    margin: Duration,
    /// Above this many keys, idle expired entries are dropped.
    soft_limit: usize,
}

/// Whether a value came from the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Cached,
    Fetched,
}

impl<K: Eq + Hash + Clone, V: Clone> CredentialCache<K, V> {
    pub fn new(margin: Duration, soft_limit: usize) -> Self {
        CredentialCache {
            slots: Mutex::new(HashMap::new()),
            margin,
            soft_limit,
        }
    }

    fn slot(&self, key: &K) -> Slot<V> {
        let mut slots = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        if !slots.contains_key(key) && slots.len() >= self.soft_limit {
            let now = Instant::now();
            slots.retain(|_, slot| {
                Arc::strong_count(slot) > 1
                    || slot
                        .try_lock()
                        .map(|e| e.as_ref().is_some_and(|e| e.refresh_at > now))
                        .unwrap_or(true)
            });
        }
        slots.entry(key.clone()).or_default().clone()
    }

    /// The cached value for `key`, or the one `fetch` returns with how long it is valid.
    pub async fn get_or_fetch<E, F, Fut>(&self, key: &K, fetch: F) -> Result<(V, Source), E>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<(V, Duration), E>>,
    {
        let slot = self.slot(key);
        let mut entry = slot.lock().await;
        if let Some(e) = entry.as_ref().filter(|e| e.refresh_at > Instant::now()) {
            return Ok((e.value.clone(), Source::Cached));
        }
        let (value, valid_for) = fetch().await?;
        let refresh_at = Instant::now() + valid_for.saturating_sub(self.margin);
        *entry = Some(Entry {
            value: value.clone(),
            refresh_at,
        });
        Ok((value, Source::Fetched))
    }

    /// Forgets `key`, for credentials AWS refused as expired or invalid.
    pub async fn invalidate(&self, key: &K) {
        let slot = self
            .slots
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned();
        if let Some(slot) = slot {
            *slot.lock().await = None;
        }
    }

    pub fn len(&self) -> usize {
        self.slots.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const HOUR: Duration = Duration::from_secs(3600);

    async fn fetch_counted(calls: &AtomicUsize, value: &str) -> Result<(String, Duration), String> {
        calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(10)).await;
        Ok((value.to_string(), HOUR))
    }

    #[tokio::test(start_paused = true)]
    async fn reuses_until_shortly_before_expiry() {
        let cache = CredentialCache::new(Duration::from_secs(300), 100);
        let calls = AtomicUsize::new(0);
        let key = "role".to_string();
        assert_eq!(
            cache
                .get_or_fetch(&key, || fetch_counted(&calls, "a"))
                .await
                .unwrap()
                .1,
            Source::Fetched
        );
        tokio::time::advance(Duration::from_secs(3000)).await;
        assert_eq!(
            cache
                .get_or_fetch(&key, || fetch_counted(&calls, "b"))
                .await
                .unwrap(),
            ("a".into(), Source::Cached)
        );
        // 55 minutes in: inside the 5-minute margin, so fetched again.
        tokio::time::advance(Duration::from_secs(301)).await;
        assert_eq!(
            cache
                .get_or_fetch(&key, || fetch_counted(&calls, "c"))
                .await
                .unwrap()
                .0,
            "c"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_one_fetch() {
        let cache = Arc::new(CredentialCache::new(Duration::from_secs(300), 100));
        let calls = Arc::new(AtomicUsize::new(0));
        let mut tasks = Vec::new();
        for _ in 0..20 {
            let (cache, calls) = (cache.clone(), calls.clone());
            tasks.push(tokio::spawn(async move {
                cache
                    .get_or_fetch(&"k".to_string(), || fetch_counted(&calls, "v"))
                    .await
                    .unwrap()
                    .0
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), "v");
        }
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn keys_are_separate_and_invalidation_forces_a_fetch() {
        let cache = CredentialCache::new(Duration::from_secs(300), 100);
        let calls = AtomicUsize::new(0);
        let (a, b) = ("a".to_string(), "b".to_string());
        cache
            .get_or_fetch(&a, || fetch_counted(&calls, "1"))
            .await
            .unwrap();
        cache
            .get_or_fetch(&b, || fetch_counted(&calls, "2"))
            .await
            .unwrap();
        cache.invalidate(&a).await;
        assert_eq!(
            cache
                .get_or_fetch(&a, || fetch_counted(&calls, "3"))
                .await
                .unwrap()
                .0,
            "3"
        );
        assert_eq!(
            cache
                .get_or_fetch(&b, || fetch_counted(&calls, "4"))
                .await
                .unwrap()
                .0,
            "2"
        );
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn errors_are_not_cached() {
        let cache: CredentialCache<String, String> =
            CredentialCache::new(Duration::from_secs(1), 100);
        let k = "k".to_string();
        assert!(cache
            .get_or_fetch(&k, || async { Err::<(String, Duration), _>("boom") })
            .await
            .is_err());
        assert_eq!(
            cache
                .get_or_fetch(&k, || async { Ok::<_, &str>(("ok".to_string(), HOUR)) })
                .await
                .unwrap()
                .0,
            "ok"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn expired_idle_entries_are_dropped_past_the_soft_limit() {
        let cache = CredentialCache::new(Duration::ZERO, 2);
        for k in ["a", "b"] {
            cache
                .get_or_fetch(&k.to_string(), || async {
                    Ok::<_, ()>(("v".to_string(), Duration::from_secs(1)))
                })
                .await
                .unwrap();
        }
        tokio::time::advance(Duration::from_secs(2)).await;
        cache
            .get_or_fetch(&"c".to_string(), || async {
                Ok::<_, ()>(("v".to_string(), HOUR))
            })
            .await
            .unwrap();
        assert_eq!(cache.len(), 1);
    }
}
