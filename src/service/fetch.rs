//! Fetching every object of a mount from every region: fresh cached values first, then
//! one store call per region for the rest, both regions at once (the store batches and
//! bounds its own calls), then one decision per object over the regions' outcomes. A
//! cached value past its TTL stands in only when no region answered and none refused.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::domain::failover::{decide, Decision, ErrorClass, Outcome};
use crate::domain::freshness::{Freshness, OnFailure};
use crate::domain::objects::{ObjectRef, ObjectSpec, ParsedObjects, SelectionSpec};
use crate::domain::region::{Region, Regions};
use crate::ports::{Fetched, Identity, MatchAccount, SecretStore, Selected, StoreError};

use super::budget::{Allowance, MemoryBudget, Reservation};

use super::deadline::stand_in_cutoff;
use super::error::{InternalError, LimitError, MountError};
use super::value_cache::{Answer as Cached, CacheKey, Lookup, Subject, ValueCache};

type Answer = Result<Fetched, StoreError>;

/// What one mount fetches with.
pub(super) struct Fetch<'a> {
    pub store: &'a dyn SecretStore,
    pub cache: &'a ValueCache,
    pub identity: &'a Identity,
    /// What a selection's matches beyond its share of the reservation draw on.
    pub budget: &'a MemoryBudget,
    pub freshness: Freshness,
    /// The mount's deadline: with a stand-in at hand, the store must answer earlier.
    pub deadline: Option<Instant>,
}

/// One region's cache lookups, before the store is asked.
struct Looked {
    refs: Vec<ObjectRef>,
    keys: Vec<CacheKey>,
    answers: Vec<Option<Answer>>,
    stand_ins: Vec<Option<(Fetched, Duration)>>,
}

/// One region's answers, in object order, and the cached values that may stand in.
struct RegionAnswers {
    answers: Vec<Answer>,
    stand_ins: Vec<Option<(Fetched, Duration)>>,
}

/// A store call given up to serve a cached value before the mount's deadline.
fn late() -> StoreError {
    StoreError::new(
        ErrorClass::Transport,
        "the store did not answer within the part of the mount's deadline before a cached value is served",
    )
}

/// Every value of a class: the listed objects' in object order, each selection's
/// matches in selection order.
pub(super) type ClassValues = (Vec<Fetched>, Vec<Vec<Selected>>);

impl Fetch<'_> {
    /// Every object and every selection of the class at once. Each selection draws on an
    /// allowance of the budget from its share (in `shares`); what its matches took beyond
    /// the share is added to `held`, where it stays until the mount resizes it.
    pub(super) async fn class(
        &self,
        regions: &Regions,
        class: &ParsedObjects,
        max_matches: usize,
        shares: &[usize],
        held: &mut Reservation,
    ) -> Result<ClassValues, MountError> {
        let allowances: Vec<Arc<Allowance>> = shares
            .iter()
            .map(|&share| Arc::new(Allowance::new(self.budget.clone(), share)))
            .collect();
        let (fetched, selected) = futures::future::join(
            self.all(regions, &class.objects),
            self.selections(regions, &class.selections, max_matches, &allowances),
        )
        .await;
        for allowance in allowances {
            allowance.add_to(held);
        }
        Ok((fetched?, selected?))
    }

    /// Fetches every object, applying the failover decision; the result is in object order.
    #[tracing::instrument(skip_all, fields(objects = objects.len(), regions = regions.iter().count()))]
    async fn all(
        &self,
        regions: &Regions,
        objects: &[ObjectSpec],
    ) -> Result<Vec<Fetched>, MountError> {
        let region_list: Vec<&Region> = regions.iter().collect();
        let principal = self.identity.sharing_key();
        // The cache first, in every region: a store call is cut short only when every
        // object it asks for has a stand-in in some region.
        let looked: Vec<Looked> = region_list
            .iter()
            .enumerate()
            .map(|(r, region)| {
                let refs: Vec<ObjectRef> = objects
                    .iter()
                    .map(|o| if r == 0 { &o.primary } else { &o.failover })
                    .cloned()
                    .collect();
                self.look(&principal, region, refs)
            })
            .collect();
        let covered: Vec<bool> = (0..objects.len())
            .map(|i| looked.iter().any(|l| l.stand_ins[i].is_some()))
            .collect();
        let calls = region_list.iter().zip(looked).map(|(region, looked)| {
            let principal = &principal;
            let covered = &covered;
            async move { self.ask_rest(principal, region, looked, covered).await }
        });
        let answers = futures::future::join_all(calls)
            .await
            .into_iter()
            .collect::<Result<Vec<_>, _>>()?;
        let chosen = self.choose(objects, &region_list, answers);
        tracing::debug!(ok = chosen.is_ok(), "fetched");
        chosen
    }

    /// Every selection's matches, in selection order: from the primary region, or from
    /// the failover region when the primary fails with a server or transport error.
    /// More than `limit` matches fail the mount.
    /// Every selection, each drawing on its own allowance (in `specs` order) as its
    /// matches arrive.
    async fn selections(
        &self,
        regions: &Regions,
        specs: &[SelectionSpec],
        limit: usize,
        allowances: &[Arc<Allowance>],
    ) -> Result<Vec<Vec<Selected>>, MountError> {
        let principal = self.identity.sharing_key();
        let principal = principal.as_str();
        let runs = specs.iter().zip(allowances).map(|(spec, allowance)| {
            let account: Arc<dyn MatchAccount> = Arc::new(Counted {
                allowance: allowance.clone(),
                copies: spec.copies(),
            });
            async move {
                let found = self
                    .selection(principal, regions, spec, limit, account)
                    .await;
                match found {
                    Err(MountError::Fetch { error, .. }) if allowance.was_refused() => {
                        Err(MountError::Limit(LimitError::SelectionBudget {
                            selection: spec.describe(),
                            source: error,
                        }))
                    }
                    other => other,
                }
            }
        });
        futures::future::join_all(runs).await.into_iter().collect()
    }

    /// One selection: a fresh cached answer, else the store (the failover region when
    /// the primary fails with a server or transport error), else the primary's cached
    /// answer standing in.
    async fn selection(
        &self,
        principal: &str,
        regions: &Regions,
        spec: &SelectionSpec,
        limit: usize,
        account: Arc<dyn MatchAccount>,
    ) -> Result<Vec<Selected>, MountError> {
        let key = |region: &Region| CacheKey {
            principal: principal.to_string(),
            region: region.clone(),
            subject: Subject::Selection(spec.selection.clone()),
        };
        // Both regions' cache first: a stand-in from either cuts both calls short.
        let mut stand_in = None;
        let mut failover_fresh = None;
        for (r, region) in regions.iter().enumerate() {
            match self.cache.lookup_selection(&key(region), &self.freshness) {
                Lookup::Fresh(found) if r == 0 => return Ok(found.to_vec()),
                Lookup::Fresh(found) => failover_fresh = Some(found),
                Lookup::StandIn { value, age } if stand_in.is_none() => {
                    stand_in = Some((value, age, region.clone()))
                }
                _ => {}
            }
        }
        let cut = stand_in.is_some();
        let mut region = &regions.primary;
        let mut answer = self
            .select_in(region, &key(region), spec, limit, cut, account.clone())
            .await;
        if let (Err(e), Some(failover)) = (&answer, &regions.failover) {
            if !e.class.is_client() {
                // The primary's pages are gone: the failover starts a new count.
                account.restart();
                region = failover;
                answer = match failover_fresh {
                    Some(found) => Ok(found.to_vec()),
                    None => {
                        self.select_in(region, &key(region), spec, limit, cut, account.clone())
                            .await
                    }
                };
            }
        }
        match (answer, stand_in) {
            (Ok(found), _) if found.len() > limit => {
                Err(MountError::Limit(LimitError::TooManyMatches {
                    selection: spec.describe(),
                    limit,
                }))
            }
            (Ok(found), _) => Ok(found),
            (Err(error), Some((found, age, from))) if !error.class.is_client() => {
                self.cache.note_stale_served();
                tracing::warn!(
                    object = %spec.describe(),
                    region = %from,
                    age_s = age.as_secs(),
                    %error,
                    "the store failed; serving the cached selection"
                );
                Ok(found.to_vec())
            }
            (Err(error), _) => Err(MountError::Fetch {
                object: spec.describe(),
                region: region.clone(),
                error,
                also_failed: 0,
            }),
        }
    }

    /// The store's answer to one selection in one region, remembered: kept when it fits
    /// the limit, and the selection forgotten when the store refuses it.
    async fn select_in(
        &self,
        region: &Region,
        key: &CacheKey,
        spec: &SelectionSpec,
        limit: usize,
        stand_in: bool,
        account: Arc<dyn MatchAccount>,
    ) -> Result<Vec<Selected>, StoreError> {
        let call = self
            .store
            .select(region, self.identity, &spec.selection, limit, account);
        let answer = match self.deadline.filter(|_| stand_in) {
            None => call.await,
            Some(deadline) => {
                let cutoff = stand_in_cutoff(deadline, Instant::now());
                tokio::time::timeout_at(tokio::time::Instant::from_std(cutoff), call)
                    .await
                    .unwrap_or_else(|_| Err(late()))
            }
        };
        match &answer {
            // No copy for a cache that is off.
            Ok(found) if found.len() <= limit && self.cache.is_on() => self.cache.store(
                key.clone(),
                Cached::Many(std::sync::Arc::new(found.clone())),
            ),
            Err(e) if Freshness::on_failure(e.class) == OnFailure::Forget => {
                self.cache.forget_selection(&key.principal, &spec.selection)
            }
            _ => {}
        }
        answer
    }

    /// One region's cached values: fresh ones answer, stale ones may stand in.
    fn look(&self, principal: &str, region: &Region, refs: Vec<ObjectRef>) -> Looked {
        let keys: Vec<CacheKey> = refs
            .iter()
            .map(|object| CacheKey {
                principal: principal.to_string(),
                region: region.clone(),
                subject: Subject::Object(object.clone()),
            })
            .collect();
        let mut answers: Vec<Option<Answer>> = vec![None; refs.len()];
        let mut stand_ins: Vec<Option<(Fetched, Duration)>> = vec![None; refs.len()];
        for (i, key) in keys.iter().enumerate() {
            match self.cache.lookup(key, &self.freshness) {
                Lookup::Fresh(value) => answers[i] = Some(Ok(value)),
                Lookup::StandIn { value, age } => stand_ins[i] = Some((value, age)),
                Lookup::Miss => {}
            }
        }
        Looked {
            refs,
            keys,
            answers,
            stand_ins,
        }
    }

    /// The store for what the cache did not answer in one region, cut short only when
    /// every object asked is `covered` by a stand-in somewhere.
    async fn ask_rest(
        &self,
        principal: &str,
        region: &Region,
        looked: Looked,
        covered: &[bool],
    ) -> Result<RegionAnswers, MountError> {
        let Looked {
            refs,
            keys,
            mut answers,
            mut stand_ins,
        } = looked;
        let asked: Vec<usize> = (0..refs.len()).filter(|&i| answers[i].is_none()).collect();
        if !asked.is_empty() {
            let objects: Vec<ObjectRef> = asked.iter().map(|&i| refs[i].clone()).collect();
            let cut = asked.iter().all(|&i| covered[i]);
            let results = self.ask(region, &objects, cut).await;
            if results.len() != objects.len() {
                return Err(MountError::Internal(InternalError::StoreMiscount {
                    answered: results.len(),
                    asked: objects.len(),
                }));
            }
            for (&i, answer) in asked.iter().zip(results) {
                match &answer {
                    Ok(value) => self
                        .cache
                        .store(keys[i].clone(), Cached::One(value.clone())),
                    Err(e) if Freshness::on_failure(e.class) == OnFailure::Forget => {
                        stand_ins[i] = None;
                        self.cache
                            .forget_object(principal, refs[i].kind, &refs[i].name);
                    }
                    Err(_) => {}
                }
                answers[i] = Some(answer);
            }
        }
        Ok(RegionAnswers {
            answers: answers
                .into_iter()
                .map(|a| a.unwrap_or_else(|| Err(StoreError::no_answer())))
                .collect(),
            stand_ins,
        })
    }

    /// The store's answers for `objects`; with a stand-in at hand, only until the part
    /// of the deadline kept for serving it.
    async fn ask(&self, region: &Region, objects: &[ObjectRef], stand_in: bool) -> Vec<Answer> {
        let call = self.store.fetch(region, self.identity, objects);
        let Some(deadline) = self.deadline.filter(|_| stand_in) else {
            return call.await;
        };
        let cutoff = stand_in_cutoff(deadline, Instant::now());
        match tokio::time::timeout_at(tokio::time::Instant::from_std(cutoff), call).await {
            Ok(answers) => answers,
            Err(_) => vec![Err(late()); objects.len()],
        }
    }

    fn choose(
        &self,
        objects: &[ObjectSpec],
        regions: &[&Region],
        mut answers: Vec<RegionAnswers>,
    ) -> Result<Vec<Fetched>, MountError> {
        let outcome = |a: &Answer| match a {
            Ok(_) => Outcome::Answered,
            Err(e) => Outcome::Failed(e.class),
        };
        let mut chosen = Vec::with_capacity(objects.len());
        let mut failed: Vec<(usize, usize, StoreError)> = Vec::new();
        for (i, object) in objects.iter().enumerate() {
            let failover = answers.get(1).map(|a| outcome(&a.answers[i]));
            let region = match decide(outcome(&answers[0].answers[i]), failover) {
                Decision::UsePrimary | Decision::FailPrimary => 0,
                Decision::UseFailover | Decision::FailFailover => 1,
            };
            let answer = std::mem::replace(
                &mut answers[region].answers[i],
                Err(StoreError::no_answer()),
            );
            match answer {
                Ok(fetched) => chosen.push(fetched),
                // No region answered and none refused: the primary's stand-in, then the
                // failover's.
                Err(error) if !error.class.is_client() => {
                    let stand_in = answers
                        .iter_mut()
                        .enumerate()
                        .find_map(|(r, a)| a.stand_ins[i].take().map(|s| (r, s)));
                    match stand_in {
                        Some((r, (value, age))) => {
                            self.cache.note_stale_served();
                            tracing::warn!(
                                object = %object.describe(),
                                region = %regions[r],
                                age_s = age.as_secs(),
                                %error,
                                "the store failed; serving the cached value"
                            );
                            chosen.push(value);
                        }
                        None => failed.push((object.position, region, error)),
                    }
                }
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
}

/// A selection's allowance as the store sees it: each match's bytes, times its copies.
struct Counted {
    allowance: Arc<Allowance>,
    copies: usize,
}

impl MatchAccount for Counted {
    fn restart(&self) {
        self.allowance.restart();
    }

    fn take(&self, bytes: usize) -> Result<(), StoreError> {
        self.allowance
            .take(bytes.saturating_mul(self.copies))
            // Server-class: nothing is wrong with the request; a cached answer may stand in.
            .map_err(|e| {
                StoreError::new(crate::domain::failover::ErrorClass::Server, e.to_string())
            })
    }
}
