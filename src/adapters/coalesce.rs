//! Identical concurrent fetches share one store call per object: same identity (by
//! sharing key), region and object. A storm of pods mounting one class costs one read
//! per object; the objects nobody is fetching yet go to the inner store in one call, so
//! its batching (10 parameters per GetParameters) is kept.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use async_trait::async_trait;
use futures::future::{BoxFuture, FutureExt, Shared};

use crate::adapters::metrics::Metrics;
use crate::domain::objects::{ObjectRef, Selection};
use crate::domain::region::Region;
use crate::ports::{Fetched, Identity, MatchAccount, SecretStore, Selected, StoreError};

type Answer = Result<Fetched, StoreError>;
type Key = (String, Region, ObjectRef);
/// One inner call: its id (to retire only its own entries) and its shared answers.
type Call = (u64, Shared<BoxFuture<'static, Arc<Vec<Answer>>>>);
/// Per object in flight: the call fetching it and its position in that call.
type InFlight = Mutex<HashMap<Key, (Call, usize)>>;

pub struct Coalescing {
    inner: Arc<dyn SecretStore>,
    in_flight: Arc<InFlight>,
    next_call: AtomicU64,
    metrics: Arc<Metrics>,
}

impl Coalescing {
    pub fn new(inner: Arc<dyn SecretStore>, metrics: Arc<Metrics>) -> Self {
        Coalescing {
            inner,
            in_flight: Arc::default(),
            next_call: AtomicU64::new(0),
            metrics,
        }
    }

    /// Starts one inner call for `objects`; spawned, so it always runs to its end and
    /// retires its entries, even when every mount waiting for it was cancelled.
    fn start(
        &self,
        region: &Region,
        identity: &Identity,
        objects: Vec<ObjectRef>,
        keys: Vec<Key>,
    ) -> Call {
        let id = self.next_call.fetch_add(1, Ordering::Relaxed);
        let (inner, region, identity) = (self.inner.clone(), region.clone(), identity.clone());
        let weak: Weak<InFlight> = Arc::downgrade(&self.in_flight);
        let size = objects.len();
        let task = tokio::spawn(async move {
            let answers = inner.fetch(&region, &identity, &objects).await;
            if let Some(map) = weak.upgrade() {
                let mut map = map.lock().unwrap_or_else(|p| p.into_inner());
                for key in &keys {
                    if map.get(key).is_some_and(|((call, _), _)| *call == id) {
                        map.remove(key);
                    }
                }
            }
            answers
        });
        let shared = async move {
            Arc::new(task.await.unwrap_or_else(|e| {
                // Only a panic ends the task early (nothing aborts it): name it as the
                // bug it is, and where its message went, rather than as a network fault.
                let what = if e.is_panic() {
                    "the fetch panicked: a bug of the provider; its log has the panic message"
                } else {
                    "the fetch was cancelled while the provider shut down"
                };
                vec![
                    Err(StoreError::new(
                        crate::domain::failover::ErrorClass::Transport,
                        what
                    ));
                    size
                ]
            }))
        }
        .boxed()
        .shared();
        (id, shared)
    }
}

#[async_trait]
impl SecretStore for Coalescing {
    async fn fetch(
        &self,
        region: &Region,
        identity: &Identity,
        objects: &[ObjectRef],
    ) -> Vec<Answer> {
        let share = identity.sharing_key();
        let keys: Vec<Key> = objects
            .iter()
            .map(|o| (share.clone(), region.clone(), o.clone()))
            .collect();
        // Where each object's answer comes from: a call and a position in it.
        let sources: Vec<(Call, usize)> = {
            let mut map = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
            // Objects nobody is fetching (each once) are asked in one new call; the
            // others join the call already fetching them.
            let mut fresh: Vec<ObjectRef> = Vec::new();
            let mut fresh_keys: Vec<Key> = Vec::new();
            for (object, key) in objects.iter().zip(&keys) {
                if map.contains_key(key) {
                    self.metrics.coalesced_fetches.inc();
                } else if !fresh_keys.contains(key) {
                    fresh.push(object.clone());
                    fresh_keys.push(key.clone());
                }
            }
            if !fresh.is_empty() {
                let call = self.start(region, identity, fresh, fresh_keys.clone());
                for (j, key) in fresh_keys.into_iter().enumerate() {
                    map.insert(key, (call.clone(), j));
                }
            }
            // Every key is in the map now.
            keys.iter()
                .filter_map(|key| map.get(key).cloned())
                .collect()
        };
        let mut answers = Vec::with_capacity(objects.len());
        for ((_, call), j) in sources {
            let all = call.await;
            answers.push(
                all.get(j)
                    .cloned()
                    .unwrap_or_else(|| Err(StoreError::no_answer())),
            );
        }
        answers
    }

    /// Selections are not shared in flight (the value cache carries repeated ones).
    async fn select(
        &self,
        region: &Region,
        identity: &Identity,
        selection: &Selection,
        limit: usize,
        account: Arc<dyn MatchAccount>,
    ) -> Result<Vec<Selected>, StoreError> {
        self.inner
            .select(region, identity, selection, limit, account)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::attributes::AuthMode;
    use crate::domain::objects::ObjectKind;
    use crate::domain::secret::SecretValue;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    struct Counting(AtomicUsize);

    #[async_trait]
    impl SecretStore for Counting {
        async fn fetch(&self, _: &Region, _: &Identity, batch: &[ObjectRef]) -> Vec<Answer> {
            let n = self.0.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            batch
                .iter()
                .map(|_| {
                    Ok(Fetched {
                        value: SecretValue::new(b"v".to_vec()),
                        version: n.to_string(),
                    })
                })
                .collect()
        }
    }

    fn identity(sa: &str) -> Identity {
        Identity {
            auth: AuthMode::Irsa,
            namespace: "ns".into(),
            service_account: sa.into(),
            pod_name: format!("pod-{sa}"),
            pod_uid: "uid".into(),
            role_arn: Some("arn:aws:iam::1:role/r".into()),
            token: None,
            keys: None,
            assume: None,
        }
    }

    fn object(name: &str) -> ObjectRef {
        ObjectRef {
            kind: ObjectKind::SecretsManager,
            name: name.into(),
            version: None,
            label: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn identical_concurrent_fetches_share_one_call_and_later_ones_ask_again() {
        let inner = Arc::new(Counting(AtomicUsize::new(0)));
        let store = Arc::new(Coalescing::new(inner.clone(), Arc::default()));
        let region = Region::parse("us-east-1").unwrap();
        let mut tasks = Vec::new();
        for _ in 0..10 {
            let (store, region) = (store.clone(), region.clone());
            tasks.push(tokio::spawn(async move {
                store.fetch(&region, &identity("a"), &[object("s")]).await
            }));
        }
        for t in tasks {
            assert!(t.await.unwrap()[0].is_ok());
        }
        assert_eq!(inner.0.load(Ordering::SeqCst), 1);
        assert_eq!(store.metrics.coalesced_fetches.get(), 9);
        store.fetch(&region, &identity("a"), &[object("s")]).await;
        assert_eq!(
            inner.0.load(Ordering::SeqCst),
            2,
            "a finished call is not reused"
        );
        assert!(store.in_flight.lock().unwrap().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn a_call_whose_waiters_all_gave_up_still_finishes_and_retires() {
        let inner = Arc::new(Counting(AtomicUsize::new(0)));
        let store = Arc::new(Coalescing::new(inner.clone(), Arc::default()));
        let region = Region::parse("us-east-1").unwrap();
        let waiting = {
            let (store, region) = (store.clone(), region.clone());
            tokio::spawn(async move { store.fetch(&region, &identity("a"), &[object("s")]).await })
        };
        tokio::time::sleep(Duration::from_millis(10)).await;
        waiting.abort();
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            store.in_flight.lock().unwrap().is_empty(),
            "retired although nobody waited"
        );
        store.fetch(&region, &identity("a"), &[object("s")]).await;
        assert_eq!(inner.0.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn different_identities_regions_or_objects_do_not_share() {
        let inner = Arc::new(Counting(AtomicUsize::new(0)));
        let store = Arc::new(Coalescing::new(inner.clone(), Arc::default()));
        let (east, west) = (
            Region::parse("us-east-1").unwrap(),
            Region::parse("us-west-2").unwrap(),
        );
        let calls = vec![
            (east.clone(), identity("a"), object("s")),
            (east.clone(), identity("b"), object("s")),
            (west.clone(), identity("a"), object("s")),
            (east.clone(), identity("a"), object("t")),
        ];
        let tasks: Vec<_> = calls
            .into_iter()
            .map(|(r, i, o)| {
                let store = store.clone();
                tokio::spawn(async move { store.fetch(&r, &i, &[o]).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(inner.0.load(Ordering::SeqCst), 4);
    }
}
