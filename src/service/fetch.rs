//! Fetching every object of a mount from every region: one store call per region, both
//! regions at once (the store batches and bounds its own calls), then one decision per
//! object over the regions' outcomes.

use crate::domain::failover::{decide, Decision, Outcome};
use crate::domain::objects::{ObjectRef, ObjectSpec};
use crate::domain::region::{Region, Regions};
use crate::ports::{Fetched, Identity, SecretStore, StoreError};

use super::error::MountError;

type Answer = Result<Fetched, StoreError>;

/// Fetches every object, applying the failover decision; the result is in object order.
#[tracing::instrument(skip_all, fields(objects = objects.len(), regions = regions.iter().count()))]
pub(super) async fn fetch_all(
    store: &dyn SecretStore,
    identity: &Identity,
    regions: &Regions,
    objects: &[ObjectSpec],
) -> Result<Vec<Fetched>, MountError> {
    let region_list: Vec<&Region> = regions.iter().collect();
    let asked = |r: usize| -> Vec<ObjectRef> {
        objects
            .iter()
            .map(|o| {
                if r == 0 {
                    o.primary.clone()
                } else {
                    o.failover.clone()
                }
            })
            .collect()
    };
    let calls = region_list.iter().enumerate().map(|(r, region)| {
        let refs = asked(r);
        async move { store.fetch(region, identity, &refs).await }
    });
    let mut answers = Vec::with_capacity(region_list.len());
    for mut results in futures::future::join_all(calls).await {
        if results.len() != objects.len() {
            return Err(MountError::Internal(format!(
                "store answered {} results for {} objects",
                results.len(),
                objects.len()
            )));
        }
        results.truncate(objects.len());
        answers.push(results);
    }
    let chosen = choose(objects, &region_list, answers);
    tracing::debug!(ok = chosen.is_ok(), "fetched");
    chosen
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
        match std::mem::replace(&mut answers[region][i], Err(StoreError::no_answer())) {
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
