//! Fetching every object of a mount from every region: batched by kind, all batches
//! concurrently up to a bound, then one decision per object over the regions' outcomes.

use futures::future::{BoxFuture, FutureExt};
use futures::stream::{self, StreamExt};

use crate::domain::failover::{decide, Decision, ErrorClass, Outcome};
use crate::domain::objects::{ObjectKind, ObjectRef, ObjectSpec};
use crate::domain::region::{Region, Regions};
use crate::ports::{Fetched, Identity, SecretStore, StoreError};

use super::error::MountError;

type Answer = Result<Fetched, StoreError>;

struct Batch {
    region: usize,
    objects: Vec<usize>,
    refs: Vec<ObjectRef>,
    region_name: Region,
}

/// Fetches every object, applying the failover decision; the result is in object order.
#[tracing::instrument(skip_all, fields(objects = objects.len(), regions = regions.iter().count()))]
pub(super) async fn fetch_all(
    store: &dyn SecretStore,
    identity: &Identity,
    regions: &Regions,
    objects: &[ObjectSpec],
    concurrency: usize,
) -> Result<Vec<Fetched>, MountError> {
    let region_list: Vec<&Region> = regions.iter().collect();
    let batches = plan_batches(store, &region_list, objects);
    let mut answers: Vec<Vec<Answer>> = vec![vec![missing(); objects.len()]; region_list.len()];
    // Boxed so the future of the whole mount stays Send through the stream combinators.
    let calls: Vec<BoxFuture<'_, (Batch, Vec<Answer>)>> = batches
        .into_iter()
        .map(|batch| {
            async move {
                let results = store.fetch(&batch.region_name, identity, &batch.refs).await;
                (batch, results)
            }
            .boxed()
        })
        .collect();
    let mut finished = stream::iter(calls).buffer_unordered(concurrency.max(1));
    while let Some((batch, results)) = finished.next().await {
        if results.len() != batch.objects.len() {
            return Err(MountError::Internal(format!(
                "store answered {} results for a batch of {}",
                results.len(),
                batch.objects.len()
            )));
        }
        for (object, result) in batch.objects.into_iter().zip(results) {
            answers[batch.region][object] = result;
        }
    }
    let chosen = choose(objects, &region_list, answers);
    tracing::debug!(ok = chosen.is_ok(), "fetched");
    chosen
}

fn plan_batches(
    store: &dyn SecretStore,
    regions: &[&Region],
    objects: &[ObjectSpec],
) -> Vec<Batch> {
    let mut batches = Vec::new();
    for (r, region) in regions.iter().enumerate() {
        for kind in [ObjectKind::SecretsManager, ObjectKind::SsmParameter] {
            let members: Vec<usize> = (0..objects.len())
                .filter(|&i| objects[i].primary.kind == kind)
                .collect();
            for chunk in members.chunks(store.batch_limit(kind).max(1)) {
                let refs = chunk
                    .iter()
                    .map(|&i| {
                        if r == 0 {
                            objects[i].primary.clone()
                        } else {
                            objects[i].failover.clone()
                        }
                    })
                    .collect();
                batches.push(Batch {
                    region: r,
                    objects: chunk.to_vec(),
                    refs,
                    region_name: (*region).clone(),
                });
            }
        }
    }
    batches
}

fn missing() -> Answer {
    Err(StoreError::new(
        ErrorClass::Transport,
        "the store gave no answer",
    ))
}

fn choose(
    objects: &[ObjectSpec],
    regions: &[&Region],
    mut answers: Vec<Vec<Answer>>,
) -> Result<Vec<Fetched>, MountError> {
    let outcome = |a: &Answer| match a {
        Ok(_) => Outcome::Answered,
        Err(e) => Outcome::Failed(e.class),
    };
    let mut chosen = Vec::with_capacity(objects.len());
    let mut failed: Vec<(usize, usize, StoreError)> = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        let failover = answers.get(1).map(|a| outcome(&a[i]));
        let region = match decide(outcome(&answers[0][i]), failover) {
            Decision::UsePrimary | Decision::FailPrimary => 0,
            Decision::UseFailover | Decision::FailFailover => 1,
        };
        match std::mem::replace(&mut answers[region][i], missing()) {
            Ok(fetched) => chosen.push(fetched),
            Err(error) => failed.push((object.position, region, error)),
        }
    }
    let also_failed = failed.len().saturating_sub(1);
    match failed.into_iter().next() {
        None => Ok(chosen),
        Some((position, region, error)) => {
            let object = objects
                .iter()
                .find(|o| o.position == position)
                .map(ObjectSpec::describe)
                .unwrap_or_default();
            Err(MountError::Fetch {
                object,
                region: regions[region].clone(),
                error,
                also_failed,
            })
        }
    }
}
