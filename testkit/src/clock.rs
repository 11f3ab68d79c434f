//! A clock for tests that age cached values without pausing tokio's clock (the AWS SDK's
//! own timeouts run on it).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use provider::ports::clock::Clock;

/// A clock that moves only when told; clones share one time.
#[derive(Debug, Clone)]
pub struct ManualClock(Arc<Mutex<Instant>>);

impl Default for ManualClock {
    fn default() -> Self {
        ManualClock(Arc::new(Mutex::new(Instant::now())))
    }
}

impl ManualClock {
    pub fn advance(&self, by: Duration) {
        // A test that panicked while holding the lock left a valid time behind.
        let mut now = self.0.lock().unwrap_or_else(|p| p.into_inner());
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        *self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}
