//! Identical concurrent fetches share one store call: same identity (by sharing key),
//! region and batch. A storm of pods mounting one class costs one call per object.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};

use async_trait::async_trait;
use futures::future::{BoxFuture, FutureExt, Shared};

use crate::adapters::metrics::Metrics;
use crate::domain::failover::ErrorClass;
use crate::domain::objects::{ObjectKind, ObjectRef};
use crate::domain::region::Region;
use crate::ports::{Fetched, Identity, SecretStore, StoreError};

type Answer = Vec<Result<Fetched, StoreError>>;
type Key = (String, Region, Vec<ObjectRef>);
type InFlight = Mutex<HashMap<Key, Shared<BoxFuture<'static, Answer>>>>;

pub struct Coalescing {
    inner: Arc<dyn SecretStore>,
    in_flight: Arc<InFlight>,
    metrics: Arc<Metrics>,
}

impl Coalescing {
    pub fn new(inner: Arc<dyn SecretStore>, metrics: Arc<Metrics>) -> Self {
        Coalescing {
            inner,
            in_flight: Arc::default(),
            metrics,
        }
    }
}

fn forget(in_flight: &Weak<InFlight>, key: &Key) {
    if let Some(map) = in_flight.upgrade() {
        map.lock().unwrap_or_else(|p| p.into_inner()).remove(key);
    }
}

#[async_trait]
impl SecretStore for Coalescing {
    fn batch_limit(&self, kind: ObjectKind) -> usize {
        self.inner.batch_limit(kind)
    }

    async fn fetch(&self, region: &Region, identity: &Identity, batch: &[ObjectRef]) -> Answer {
        let key: Key = (identity.sharing_key(), region.clone(), batch.to_vec());
        let call = {
            let mut map = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(call) = map.get(&key) {
                self.metrics.coalesced_fetches.inc();
                call.clone()
            } else {
                let (inner, region, identity, batch) = (
                    self.inner.clone(),
                    region.clone(),
                    identity.clone(),
                    batch.to_vec(),
                );
                let (weak, done_key) = (Arc::downgrade(&self.in_flight), key.clone());
                let size = batch.len();
                // Spawned, so the call always runs to its end and retires itself, even
                // when every mount waiting for it is cancelled (deadline, driver gone):
                // nothing it holds (a credential slot) stays taken by an unpolled future.
                let task = tokio::spawn(async move {
                    let answer = inner.fetch(&region, &identity, &batch).await;
                    forget(&weak, &done_key);
                    answer
                });
                let call = async move {
                    task.await.unwrap_or_else(|_| {
                        vec![
                            Err(StoreError::new(
                                ErrorClass::Transport,
                                "the shared fetch task failed"
                            ));
                            size
                        ]
                    })
                }
                .boxed()
                .shared();
                map.insert(key, call.clone());
                call
            }
        };
        call.await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::attributes::AuthMode;
    use crate::domain::secret::SecretValue;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    struct Counting(AtomicUsize);

    #[async_trait]
    impl SecretStore for Counting {
        fn batch_limit(&self, _: ObjectKind) -> usize {
            1
        }
        async fn fetch(&self, _: &Region, _: &Identity, batch: &[ObjectRef]) -> Answer {
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
