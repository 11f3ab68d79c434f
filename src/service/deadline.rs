//! The one place a mount's deadline is applied. Past it the mount is abandoned, unless
//! its writer already began publishing: then the result is whatever the writer did, so a
//! mount reported as failed never changes the disk afterwards.

use std::future::Future;
use std::time::{Duration, Instant};

use crate::ports::PublishGate;

use super::error::MountError;

/// A gate for a mount that must end within `limit` from now.
pub fn gate_for(limit: Duration) -> PublishGate {
    PublishGate::until(Instant::now() + limit)
}

/// Part of the time left that a store call gives up when a cached value could stand in
/// for its answer: a hanging store must not let the deadline pass before the stand-in
/// is served.
const STAND_IN_SHARE: u32 = 5;
const STAND_IN_MIN: Duration = Duration::from_millis(250);
const STAND_IN_MAX: Duration = Duration::from_secs(3);

/// When a store call must have answered for a stand-in to still be served before
/// `deadline`: a fifth of the time left is kept, at least 250 ms and at most 3 s.
pub(super) fn stand_in_cutoff(deadline: Instant, now: Instant) -> Instant {
    let left = deadline.saturating_duration_since(now);
    let kept = (left / STAND_IN_SHARE).clamp(STAND_IN_MIN, STAND_IN_MAX);
    now + left.saturating_sub(kept)
}

/// Closes the gate when the mount's future is dropped unfinished (the driver cancelled
/// the call, the client went away): nobody hears the result, so nothing may publish.
struct AbandonOnDrop<'a> {
    gate: &'a PublishGate,
    armed: bool,
}

impl Drop for AbandonOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.gate.abandon();
        }
    }
}

/// Runs `work` until `gate`'s deadline (`limit` from when the gate was made).
pub async fn within_deadline<O>(
    work: impl Future<Output = O>,
    gate: &PublishGate,
    limit: Duration,
) -> Result<O, MountError> {
    let mut guard = AbandonOnDrop { gate, armed: true };
    let out = run_until_deadline(work, gate, limit).await;
    guard.armed = false;
    out
}

async fn run_until_deadline<O>(
    work: impl Future<Output = O>,
    gate: &PublishGate,
    limit: Duration,
) -> Result<O, MountError> {
    let wait = async {
        match gate.deadline() {
            Some(deadline) => {
                tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)).await
            }
            None => std::future::pending().await,
        }
    };
    tokio::pin!(work);
    tokio::select! {
        out = &mut work => return Ok(out),
        () = wait => {}
    }
    if gate.abandon() {
        return Err(MountError::Deadline(limit));
    }
    // The writer is swapping the files in: its answer is the mount's answer.
    tracing::info!(
        "the deadline passed while the files were being published; reporting what the writer did"
    );
    Ok(work.await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stand_in_keeps_a_fifth_of_the_time_left_within_bounds() {
        let now = Instant::now();
        let secs = Duration::from_secs;
        assert_eq!(stand_in_cutoff(now + secs(10), now), now + secs(8));
        assert_eq!(stand_in_cutoff(now + secs(30), now), now + secs(27));
        assert_eq!(
            stand_in_cutoff(now + secs(1), now),
            now + Duration::from_millis(750)
        );
        assert_eq!(stand_in_cutoff(now, now + secs(1)), now + secs(1));
    }

    #[tokio::test]
    async fn past_the_deadline_an_open_mount_is_abandoned() {
        let gate = gate_for(Duration::from_millis(20));
        let out = within_deadline(
            std::future::pending::<()>(),
            &gate,
            Duration::from_millis(20),
        )
        .await;
        assert!(matches!(out, Err(MountError::Deadline(_))));
        assert!(!gate.begin_commit(), "a late writer publishes nothing");
    }

    #[tokio::test]
    async fn a_cancelled_mount_is_abandoned() {
        let gate = gate_for(Duration::from_secs(60));
        let run = within_deadline(std::future::pending::<()>(), &gate, Duration::from_secs(60));
        // The driver gives up: the future is dropped long before the deadline.
        assert!(tokio::time::timeout(Duration::from_millis(20), run)
            .await
            .is_err());
        assert!(
            !gate.begin_commit(),
            "the writer must not publish for nobody"
        );
    }

    #[tokio::test]
    async fn a_mount_already_publishing_is_waited_for() {
        let gate = gate_for(Duration::from_millis(20));
        let writer = gate.clone();
        let work = async move {
            assert!(writer.begin_commit());
            tokio::time::sleep(Duration::from_millis(100)).await;
            "published"
        };
        let out = within_deadline(work, &gate, Duration::from_millis(20)).await;
        assert_eq!(out.unwrap(), "published");
    }
}
