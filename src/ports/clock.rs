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

/// A clock that moves only when told: for tests.
#[cfg(any(test, feature = "testkit"))]
#[derive(Debug, Clone)]
pub struct ManualClock(std::sync::Arc<std::sync::Mutex<Instant>>);

#[cfg(any(test, feature = "testkit"))]
impl Default for ManualClock {
    fn default() -> Self {
        ManualClock(std::sync::Arc::new(std::sync::Mutex::new(Instant::now())))
    }
}

#[cfg(any(test, feature = "testkit"))]
impl ManualClock {
    pub fn advance(&self, by: std::time::Duration) {
        let mut now = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *now += by;
    }
}

#[cfg(any(test, feature = "testkit"))]
impl Clock for ManualClock {
    fn now(&self) -> Instant {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}
