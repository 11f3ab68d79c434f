//! The hand-off to planning: the plan is made on a blocking thread, holding the mount's
//! share of the memory budget and growing it as the plan asks.

use crate::domain::fetched::{Fetched, Selected};
use crate::domain::jmes::{BudgetError, Cancel, Meter};
use crate::domain::objects::{ObjectSpec, SelectionSpec};
use crate::domain::plan::{plan_mount_metered, MountPlan, PlanError, PlanLimits, PlanMemory};
use crate::domain::versions::ObjectVersion;

use super::budget::{MemoryBudget, Reservation};

/// The mount's share of the budget while it plans, grown as the plan asks.
pub(super) struct PlanHolding {
    budget: MemoryBudget,
    held: Reservation,
    /// Held besides the plan's own: the fetched values and one evaluation.
    base: usize,
}

impl PlanHolding {
    pub fn new(budget: MemoryBudget, held: Reservation, base: usize) -> Self {
        PlanHolding { budget, held, base }
    }
}

impl PlanMemory for PlanHolding {
    fn hold(&mut self, bytes: usize) -> bool {
        self.budget
            .grow_to(&mut self.held, self.base.saturating_add(bytes))
            .is_ok()
    }
}

/// What planning works on: the class's objects and selections with what was fetched
/// for them, in the same order.
pub(super) struct PlanInput {
    pub objects: Vec<ObjectSpec>,
    pub fetched: Vec<Fetched>,
    pub selections: Vec<SelectionSpec>,
    pub selected: Vec<Vec<Selected>>,
    pub current: Vec<ObjectVersion>,
}

/// Plans the mount on a blocking thread, so that a slow class never holds a runtime
/// worker (other mounts, timers and the shutdown signal run there). The evaluation
/// stops at its allowance, and sooner when this future is dropped (the mount's
/// deadline, the provider's shutdown): dropping it sets the cancel flag the evaluation
/// checks. The thread owns the mount's reservation until its work ends, so the budget
/// comes back only once the data the plan holds is gone.
pub(super) async fn plan_off_the_runtime(
    input: PlanInput,
    limits: PlanLimits,
    mut holding: PlanHolding,
) -> (Result<MountPlan, PlanError>, Reservation) {
    let cancel = Cancel::default();
    let _stop_when_dropped = cancel.on_drop();
    let work = tokio::task::spawn_blocking(move || {
        let mut meter = Meter::new(limits.jmes, cancel);
        let selected: Vec<_> = input.selections.iter().zip(input.selected).collect();
        let plan = plan_mount_metered(
            &input.objects,
            &input.fetched,
            &selected,
            limits,
            &input.current,
            &mut meter,
            &mut holding,
        );
        (plan, holding.held)
    });
    match work.await {
        Ok(done) => done,
        // A panic in planning fails this mount alone, as a panic anywhere in a mount.
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // The runtime is shutting down (the reservation went with the thread's work).
        Err(_) => (
            Err(PlanError::Cancelled {
                object: "the mount".to_string(),
                source: BudgetError::Cancelled,
            }),
            Reservation::none(),
        ),
    }
}
