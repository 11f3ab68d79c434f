//! What one mount may spend evaluating its class's jmesPath expressions: steps (every
//! node visited, element copied or compared) across the whole mount, and bytes built
//! (lists, objects and strings an expression makes) within one evaluation. Each cost is
//! charged before the work that makes it, so an expression that would build 16⁸
//! elements or compare 16⁹ stops at the first charge past its allowance, not after.
//! A shared flag lets the mount's deadline and the provider's shutdown stop an
//! evaluation that is still within its allowance.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// The allowance of one mount (settings `max_jmes_path_steps`,
/// `max_jmes_path_eval_bytes`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JmesLimits {
    /// Steps for every evaluation of one mount together.
    pub max_steps: u64,
    /// Bytes one evaluation may build (its intermediate values included).
    pub max_bytes: usize,
}

impl Default for JmesLimits {
    /// Far above any real class: a lookup is a handful of steps and bytes; walking a
    /// whole 62 KB secret of 4,000 keys (`keys(@) | sort(@) | join(',', @)`) takes
    /// 100-200 K steps and under 600 KB. One million steps is ~3.5 ms of one core in a
    /// release build (docs/security-and-reliability.md, "jmesPath evaluation").
    fn default() -> Self {
        JmesLimits {
            max_steps: 1_000_000,
            max_bytes: 2 * 1024 * 1024,
        }
    }
}

/// Why an evaluation stopped before its end.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BudgetError {
    #[error("it needs more than {max} evaluation steps for this mount (max_jmes_path_steps)")]
    Steps { max: u64 },
    #[error("it builds more than {max} bytes in one evaluation (max_jmes_path_eval_bytes)")]
    Bytes { max: usize },
    #[error("the mount was cancelled (its deadline passed, or the provider is stopping)")]
    Cancelled,
}

/// Set once to stop the mount's work; cheap to clone and to check.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// Cancels when dropped: held by the future that waits for the work, so that
    /// dropping that future (deadline, shutdown) stops the work too.
    pub fn on_drop(&self) -> CancelOnDrop {
        CancelOnDrop(self.clone())
    }
}

#[derive(Debug)]
pub struct CancelOnDrop(Cancel);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

/// Steps between two looks at the cancel flag (an atomic load is cheap, not free).
const CHECK_EVERY: u64 = 1024;

/// The running account of one mount.
#[derive(Debug)]
pub struct Meter {
    limits: JmesLimits,
    steps: u64,
    bytes: usize,
    next_check: u64,
    cancel: Cancel,
}

impl Meter {
    pub fn new(limits: JmesLimits, cancel: Cancel) -> Self {
        Meter {
            limits,
            steps: 0,
            bytes: 0,
            next_check: CHECK_EVERY,
            cancel,
        }
    }

    /// A meter with the default limits that nothing cancels (tests, tools, fuzzing).
    pub fn uncancelled() -> Self {
        Meter::new(JmesLimits::default(), Cancel::default())
    }

    /// Charges `n` steps before they are taken.
    pub fn steps(&mut self, n: u64) -> Result<(), BudgetError> {
        self.steps = self.steps.saturating_add(n);
        if self.steps > self.limits.max_steps {
            return Err(BudgetError::Steps {
                max: self.limits.max_steps,
            });
        }
        if self.steps >= self.next_check {
            self.next_check = self.steps.saturating_add(CHECK_EVERY);
            if self.cancel.is_cancelled() {
                return Err(BudgetError::Cancelled);
            }
        }
        Ok(())
    }

    /// Charges `n` bytes about to be built by the current evaluation.
    pub fn bytes(&mut self, n: usize) -> Result<(), BudgetError> {
        self.bytes = self.bytes.saturating_add(n);
        if self.bytes > self.limits.max_bytes {
            return Err(BudgetError::Bytes {
                max: self.limits.max_bytes,
            });
        }
        Ok(())
    }

    /// A new evaluation starts: what the last one built is gone (its result is counted
    /// by the plan as a file). Steps keep adding up across the mount.
    pub fn next_evaluation(&mut self) {
        self.bytes = 0;
    }

    /// Whether the mount was cancelled (for loops outside evaluation).
    pub fn check_cancelled(&self) -> Result<(), BudgetError> {
        if self.cancel.is_cancelled() {
            Err(BudgetError::Cancelled)
        } else {
            Ok(())
        }
    }

    pub fn steps_taken(&self) -> u64 {
        self.steps
    }

    pub fn bytes_built(&self) -> usize {
        self.bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_add_up_across_evaluations_and_bytes_do_not() {
        let mut m = Meter::new(
            JmesLimits {
                max_steps: 10,
                max_bytes: 100,
            },
            Cancel::default(),
        );
        m.steps(6).unwrap();
        m.bytes(100).unwrap();
        m.next_evaluation();
        m.bytes(100).unwrap();
        assert_eq!(m.steps(5), Err(BudgetError::Steps { max: 10 }));
        assert_eq!(m.bytes(1), Err(BudgetError::Bytes { max: 100 }));
    }

    #[test]
    fn a_cancelled_mount_stops_at_the_next_check() {
        let cancel = Cancel::default();
        let mut m = Meter::new(JmesLimits::default(), cancel.clone());
        m.steps(1).unwrap();
        drop(cancel.on_drop());
        assert_eq!(m.steps(CHECK_EVERY), Err(BudgetError::Cancelled));
        assert_eq!(m.check_cancelled(), Err(BudgetError::Cancelled));
    }
}
