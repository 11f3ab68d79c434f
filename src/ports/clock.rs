//! What time it is, for decisions that age: how old a cached value is. Injected so tests
//! can move time without pausing tokio's clock (the AWS SDK's own timeouts run on it).

use std::time::Instant;

pub trait Clock: Send + Sync {
    fn now(&self) -> Instant;
}

/// The machine's monotonic clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }
}

/// A clock that moves only when told: for the unit tests (the integration tests have
/// their own in the `testkit` crate, which cannot reach this test-only one).
#[cfg(test)]
#[derive(Debug, Clone)]
pub struct ManualClock(std::sync::Arc<std::sync::Mutex<Instant>>);

#[cfg(test)]
impl Default for ManualClock {
    fn default() -> Self {
        ManualClock(std::sync::Arc::new(std::sync::Mutex::new(Instant::now())))
    }
}

#[cfg(test)]
impl ManualClock {
    pub fn advance(&self, by: std::time::Duration) {
        let mut now = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *now += by;
    }
}

#[cfg(test)]
impl Clock for ManualClock {
    fn now(&self) -> Instant {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}
