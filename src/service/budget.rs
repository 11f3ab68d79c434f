//! Secret bytes held in memory at once, across mounts. Each mount reserves its worst case
//! before it fetches (every object at `max_secret_bytes`, once per file it feeds and per
//! region it is asked of) and gives back what it did not need once the values are in.
//! Reserving everything up front means mounts never hold part of the budget while
//! waiting for the rest, so they cannot deadlock; a mount that does not fit waits
//! within its deadline and then fails alone. A mount whose worst case is larger than
//! the whole budget is not refused (the existing provider mounts such a class): it
//! waits for the whole budget and runs alone.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// Permits are KiB: a u32 count of bytes would cap the budget at 4 GiB.
const UNIT: usize = 1024;

/// How long before its deadline a waiting mount gives up, so that it reports the
/// budget (OUT_OF_RANGE) rather than a bare deadline.
const GIVE_UP_BEFORE_DEADLINE: Duration = Duration::from_millis(500);

#[derive(Debug, Clone)]
pub struct MemoryBudget {
    permits: Arc<Semaphore>,
    total_units: usize,
    /// Woken whenever part of the budget is given back.
    freed: Arc<Notify>,
}

/// Part of the budget, held until dropped.
#[derive(Debug)]
pub struct Reservation {
    permit: Option<OwnedSemaphorePermit>,
    freed: Option<Arc<Notify>>,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if let Some(permit) = self.permit.take() {
            drop(permit);
            self.wake_waiters();
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    #[error("the provider's memory budget for secret values ({total} bytes) stayed taken by other mounts until this mount's deadline; it needs up to {needed} bytes")]
    Busy { needed: usize, total: usize },
    /// Growth that finds the budget taken: never waited for (see [`MemoryBudget::resize`]).
    #[error("the provider's memory budget for secret values ({total} bytes, memory_budget_bytes) has no room now for the {needed} bytes this mount holds: retry, or raise memory_budget_bytes with the memory limit, or narrow the class")]
    Full { needed: usize, total: usize },
}

fn units(bytes: usize) -> usize {
    bytes.div_ceil(UNIT)
}

impl MemoryBudget {
    pub fn new(bytes: usize) -> Self {
        let total_units = units(bytes).clamp(1, Semaphore::MAX_PERMITS);
        MemoryBudget {
            permits: Arc::new(Semaphore::new(total_units)),
            total_units,
            freed: Arc::new(Notify::new()),
        }
    }

    pub fn total_bytes(&self) -> usize {
        self.total_units * UNIT
    }

    /// Bytes free right now (for tests and metrics).
    pub fn available_bytes(&self) -> usize {
        self.permits.available_permits() * UNIT
    }

    /// Waits for `bytes`, until shortly before `deadline` when there is one. Not first
    /// come, first served: whoever fits when some of the budget comes back goes ahead,
    /// so a small mount is not queued behind large ones that wait for most of the budget
    /// (a benign mount answers meanwhile; a large one that never fits fails at its
    /// deadline, alone).
    pub async fn reserve(
        &self,
        bytes: usize,
        deadline: Option<Instant>,
    ) -> Result<Reservation, BudgetError> {
        let busy = BudgetError::Busy {
            needed: bytes,
            total: self.total_bytes(),
        };
        let waiting = async {
            loop {
                // Registered before trying, so a release in between is not missed.
                let freed = self.freed.notified();
                tokio::pin!(freed);
                freed.as_mut().enable();
                if let Some(held) = self.try_reserve(bytes) {
                    return held;
                }
                freed.await;
            }
        };
        match deadline {
            None => Ok(waiting.await),
            Some(deadline) => {
                let give_up = deadline
                    .checked_sub(GIVE_UP_BEFORE_DEADLINE)
                    .unwrap_or(deadline);
                tokio::time::timeout_at(tokio::time::Instant::from_std(give_up), waiting)
                    .await
                    .map_err(|_| busy)
            }
        }
    }
}

impl MemoryBudget {
    /// `bytes` of the budget if they are free right now, without waiting.
    pub fn try_reserve(&self, bytes: usize) -> Option<Reservation> {
        let needed = units(bytes).min(self.total_units);
        if needed == 0 {
            return Some(Reservation {
                permit: None,
                freed: None,
            });
        }
        // `needed` is at most `total_units`, itself at most MAX_PERMITS (< u32::MAX).
        let count = u32::try_from(needed).ok()?;
        let permit = self.permits.clone().try_acquire_many_owned(count).ok()?;
        Some(Reservation {
            permit: Some(permit),
            freed: Some(self.freed.clone()),
        })
    }

    /// `held` grown to hold `bytes` from what is free at once; never trimmed (a plan in
    /// progress keeps what it has, so that what it gave back cannot be taken by a
    /// waiting mount just before it needs it again).
    pub fn grow_to(&self, held: &mut Reservation, bytes: usize) -> Result<(), BudgetError> {
        let have = held.permit.as_ref().map_or(0, |p| p.num_permits());
        if units(bytes).min(self.total_units) <= have {
            return Ok(());
        }
        self.resize(held, bytes)
    }

    /// `held` made to hold `bytes`: trimmed when it holds more; when it holds less, the
    /// rest is taken from what is free right now, or the mount fails. Never by giving
    /// back and waiting: the mount still has its values in memory, so what it held
    /// must stay counted (24 mounts that gave back and queued again held 100 MiB that
    /// the budget no longer saw). Mounts wait only before they fetch, holding nothing.
    pub fn resize(&self, held: &mut Reservation, bytes: usize) -> Result<(), BudgetError> {
        let have = held.permit.as_ref().map_or(0, |p| p.num_permits());
        let want = units(bytes).min(self.total_units);
        if want <= have {
            held.trim_to(bytes);
            return Ok(());
        }
        let more = self
            .try_reserve((want - have) * UNIT)
            .ok_or(BudgetError::Full {
                needed: bytes,
                total: self.total_bytes(),
            })?;
        held.absorb(more);
        Ok(())
    }
}

/// What one selection's matches may hold while they arrive: the share the mount
/// reserved for it up front, then more of the budget as each page comes in, taken only
/// when it is free at once. Never waiting here is what keeps two mounts that each hold
/// part of the budget from waiting for each other; a selection that finds the budget
/// taken fails (its mount reports the budget), and its pages so far are dropped.
#[derive(Debug)]
pub struct Allowance {
    budget: MemoryBudget,
    state: std::sync::Mutex<AllowanceState>,
}

#[derive(Debug)]
struct AllowanceState {
    /// Bytes still free in what is held (the up-front share and what was added).
    free: usize,
    added: Vec<Reservation>,
    refused: bool,
    /// Bytes counted so far (for the message).
    taken: usize,
    /// The up-front share, for a new attempt.
    prepaid: usize,
}

impl Allowance {
    pub fn new(budget: MemoryBudget, prepaid: usize) -> Self {
        Allowance {
            budget,
            state: std::sync::Mutex::new(AllowanceState {
                free: prepaid,
                added: Vec::new(),
                refused: false,
                taken: 0,
                prepaid,
            }),
        }
    }

    /// Counts `bytes` about to be kept; `Err` when they fit neither what is held nor
    /// what the budget has free right now.
    pub fn take(&self, bytes: usize) -> Result<(), BudgetError> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.taken = state.taken.saturating_add(bytes);
        if let Some(left) = state.free.checked_sub(bytes) {
            state.free = left;
            return Ok(());
        }
        let missing = bytes - state.free;
        // Whole units: what the rounding adds is free for the next match.
        let adding = units(missing) * UNIT;
        match self.budget.try_reserve(adding) {
            Some(more) => {
                state.added.push(more);
                state.free = adding - missing;
                Ok(())
            }
            None => {
                state.refused = true;
                Err(BudgetError::Full {
                    needed: state.taken,
                    total: self.budget.total_bytes(),
                })
            }
        }
    }

    /// A new attempt: what was added is given back, the share is whole again.
    pub fn restart(&self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state.added.clear();
        state.free = state.prepaid;
        state.taken = 0;
        state.refused = false;
    }

    /// Whether a `take` was refused (the selection then failed for the budget).
    pub fn was_refused(&self) -> bool {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).refused
    }

    /// What was added beyond the up-front share, moved into the mount's reservation
    /// (so the matches stay counted until the mount resizes for what it keeps).
    pub fn add_to(&self, held: &mut Reservation) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        for added in state.added.drain(..) {
            held.absorb(added);
        }
    }
}

impl Reservation {
    /// Nothing held.
    pub fn none() -> Self {
        Reservation {
            permit: None,
            freed: None,
        }
    }

    /// Holds `other` too (both come from the same budget).
    pub(crate) fn absorb(&mut self, mut other: Reservation) {
        if self.freed.is_none() {
            self.freed = other.freed.clone();
        }
        match (self.permit.as_mut(), other.permit.take()) {
            (Some(mine), Some(theirs)) => mine.merge(theirs),
            (None, theirs) => self.permit = theirs,
            (Some(_), None) => {}
        }
    }

    fn wake_waiters(&self) {
        if let Some(freed) = &self.freed {
            freed.notify_waiters();
        }
    }

    /// Gives back everything above `bytes`.
    pub fn trim_to(&mut self, bytes: usize) {
        let keep = units(bytes);
        if let Some(permit) = self.permit.as_mut() {
            let held = permit.num_permits();
            if keep < held {
                drop(permit.split(held - keep));
                self.wake_waiters();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_reservation_is_trimmed_and_returned_when_dropped() {
        let budget = MemoryBudget::new(1024 * 1024);
        let mut held = budget.reserve(600 * 1024, None).await.unwrap();
        assert_eq!(budget.available_bytes(), 424 * 1024);
        held.trim_to(100 * 1024 + 1);
        assert_eq!(budget.available_bytes(), (1024 - 101) * 1024);
        drop(held);
        assert_eq!(budget.available_bytes(), 1024 * 1024);
    }

    #[tokio::test]
    async fn a_reservation_grows_from_what_is_free_and_shrinks_by_trimming() {
        let budget = MemoryBudget::new(1024 * 1024);
        let mut held = budget.reserve(100 * 1024, None).await.unwrap();
        budget.resize(&mut held, 300 * 1024).unwrap();
        assert_eq!(budget.available_bytes(), 724 * 1024);
        budget.resize(&mut held, 50 * 1024).unwrap();
        assert_eq!(budget.available_bytes(), 974 * 1024);
        // Growing past what is free fails at once, and what was held stays held.
        let other = budget.reserve(900 * 1024, None).await.unwrap();
        assert!(budget.resize(&mut held, 200 * 1024).is_err());
        assert_eq!(budget.available_bytes(), 74 * 1024);
        drop((held, other));
        assert_eq!(budget.available_bytes(), 1024 * 1024);
    }

    #[tokio::test]
    async fn a_mount_larger_than_the_budget_runs_alone() {
        let budget = MemoryBudget::new(1024 * 1024);
        let alone = budget.reserve(2 * 1024 * 1024, None).await.unwrap();
        assert_eq!(budget.available_bytes(), 0, "it holds the whole budget");
        let deadline = Instant::now() + Duration::from_millis(600);
        assert!(budget.reserve(1024, Some(deadline)).await.is_err());
        drop(alone);
        assert!(budget.reserve(1024, None).await.is_ok());
    }

    #[tokio::test]
    async fn a_mount_that_does_not_fit_waits_then_fails_alone_before_its_deadline() {
        let budget = MemoryBudget::new(1024 * 1024);
        let _first = budget.reserve(900 * 1024, None).await.unwrap();
        let deadline = Instant::now() + Duration::from_millis(700);
        let err = budget
            .reserve(200 * 1024, Some(deadline))
            .await
            .unwrap_err();
        assert!(matches!(err, BudgetError::Busy { .. }), "{err}");
        assert!(Instant::now() < deadline, "gave up before the deadline");
        // What fits still gets through while the big one is held.
        assert!(budget.reserve(100 * 1024, Some(deadline)).await.is_ok());
    }

    #[tokio::test]
    async fn a_selection_takes_its_share_then_what_is_free_and_never_waits() {
        let budget = MemoryBudget::new(1024 * 1024);
        let allowance = Allowance::new(budget.clone(), 100 * 1024);
        allowance.take(60 * 1024).unwrap();
        allowance.take(40 * 1024).unwrap();
        assert_eq!(budget.available_bytes(), 1024 * 1024, "within its share");
        allowance.take(500 * 1024).unwrap();
        assert_eq!(budget.available_bytes(), 524 * 1024);
        let other = budget.try_reserve(500 * 1024).unwrap();
        assert!(allowance.take(100 * 1024).is_err(), "refused at once");
        assert!(allowance.was_refused());
        allowance.restart();
        assert_eq!(
            budget.available_bytes(),
            524 * 1024,
            "the added part given back"
        );
        allowance.take(100 * 1024).unwrap();
        drop((other, allowance));
        assert_eq!(budget.available_bytes(), 1024 * 1024, "all given back");
    }

    #[tokio::test]
    async fn a_small_mount_is_not_queued_behind_a_large_one() {
        let budget = MemoryBudget::new(1024 * 1024);
        let first = budget.reserve(600 * 1024, None).await.unwrap();
        let b = budget.clone();
        let large = tokio::spawn(async move { b.reserve(900 * 1024, None).await.map(|_| ()) });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let deadline = Instant::now() + Duration::from_secs(2);
        let small = budget.reserve(100 * 1024, Some(deadline)).await;
        assert!(small.is_ok(), "what fits goes ahead");
        assert!(!large.is_finished());
        drop((first, small));
        large.await.unwrap().unwrap();
    }

    #[tokio::test]
    async fn a_waiting_mount_goes_ahead_when_another_finishes() {
        let budget = MemoryBudget::new(1024 * 1024);
        let first = budget.reserve(900 * 1024, None).await.unwrap();
        let b = budget.clone();
        let waiter = tokio::spawn(async move { b.reserve(500 * 1024, None).await.map(|_| ()) });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished());
        drop(first);
        waiter.await.unwrap().unwrap();
    }
}
