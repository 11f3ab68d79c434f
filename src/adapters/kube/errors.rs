//! What a failed Kubernetes API call means for a user.

use std::time::{Duration, Instant};

/// The kinds of failure a lookup reports differently.
pub enum ApiFailure {
    NotFound,
    Forbidden(String),
    Other(String),
}

pub fn describe(error: &kube::Error) -> ApiFailure {
    match error {
        kube::Error::Api(status) if status.code == 404 => ApiFailure::NotFound,
        kube::Error::Api(status) if status.code == 403 => {
            ApiFailure::Forbidden(status.message.clone())
        }
        kube::Error::Api(status) => ApiFailure::Other(format!(
            "API server answered {}: {}",
            status.code, status.message
        )),
        other => ApiFailure::Other(other.to_string()),
    }
}

/// The API server's message when a watch was refused for lack of RBAC (list or watch):
/// retrying does not help until the ClusterRole changes.
pub fn watch_forbidden(error: &kube::runtime::watcher::Error) -> Option<&str> {
    use kube::runtime::watcher::Error as W;
    match error {
        W::InitialListFailed(kube::Error::Api(s))
        | W::WatchStartFailed(kube::Error::Api(s))
        | W::WatchFailed(kube::Error::Api(s))
        | W::WatchError(s)
            if s.code == 403 =>
        {
            Some(&s.message)
        }
        _ => None,
    }
}

/// What a watch does after RBAC refused it. It tries again after 2 s, then doubling up to
/// ten minutes, each wait stretched by up to half at random, and warns on the second
/// refusal in a row. A real kube-apiserver that has just restarted answers 403 until its
/// RBAC caches have synced (seen in `tests/it/kube_apiserver.rs`: one such refusal used to
/// park the watch for ten minutes). The random stretch keeps a fleet of nodes from
/// re-listing in step after such a restart. A refusal that lasts is a ClusterRole an
/// operator may fix without restarting the provider. A watch that has run for a minute
/// since its list starts over; one refused right after its list (a ClusterRole with list
/// but not watch) keeps backing off, or it would re-list every few seconds.
pub struct Refusals {
    next: Duration,
    in_a_row: u32,
    listed: Option<Instant>,
}

/// The answer to one refusal.
#[derive(Debug, PartialEq)]
pub struct Refused {
    pub wait: Duration,
    /// True once per run of refusals: the second in a row.
    pub warn: bool,
}

const FIRST_WAIT: Duration = Duration::from_secs(2);
const LAST_WAIT: Duration = Duration::from_secs(600);
/// How long a watch must have run since its list for a refusal to start a new run.
const PROVEN: Duration = Duration::from_secs(60);

impl Default for Refusals {
    fn default() -> Self {
        Refusals {
            next: FIRST_WAIT,
            in_a_row: 0,
            listed: None,
        }
    }
}

impl Refusals {
    pub fn refused(&mut self) -> Refused {
        self.refused_at(Instant::now(), rand::random::<f64>())
    }

    /// `stretch` in [0, 1): how much of the extra half of the wait to add.
    fn refused_at(&mut self, now: Instant, stretch: f64) -> Refused {
        if self
            .listed
            .is_some_and(|at| now.saturating_duration_since(at) >= PROVEN)
        {
            *self = Refusals::default();
        }
        self.listed = None;
        let wait = self.next.mul_f64(1.0 + stretch.clamp(0.0, 1.0) / 2.0);
        self.next = (self.next * 2).min(LAST_WAIT);
        self.in_a_row += 1;
        Refused {
            wait,
            warn: self.in_a_row == 2,
        }
    }

    /// The watch listed everything.
    pub fn listed(&mut self) {
        self.listed = Some(Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_retry_soon_then_every_ten_minutes_and_warn_once() {
        let mut r = Refusals::default();
        let now = Instant::now();
        let answers: Vec<(u64, bool)> = (0..11)
            .map(|_| {
                let a = r.refused_at(now, 0.0);
                (a.wait.as_secs(), a.warn)
            })
            .collect();
        let waits: Vec<u64> = answers.iter().map(|a| a.0).collect();
        assert_eq!(waits, [2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600]);
        let warned: Vec<usize> = (0..11).filter(|&i| answers[i].1).collect();
        assert_eq!(warned, [1], "the second refusal in a row warns, once");
    }

    #[test]
    fn a_wait_is_stretched_by_at_most_half() {
        let mut r = Refusals::default();
        let now = Instant::now();
        assert_eq!(r.refused_at(now, 0.999).wait.as_millis(), 2999);
        assert_eq!(r.refused_at(now, 0.5).wait.as_secs(), 5);
    }

    #[test]
    fn only_a_watch_that_ran_a_minute_after_its_list_starts_over() {
        let start = Instant::now();
        let mut r = Refusals::default();
        r.refused_at(start, 0.0);
        // Listed, then refused at once (list but no watch): the backoff goes on.
        r.listed = Some(start);
        let again = r.refused_at(start + Duration::from_secs(3), 0.0);
        assert_eq!((again.wait.as_secs(), again.warn), (4, true));
        // Listed, then watched for a minute before a refusal: a new run.
        r.listed = Some(start);
        let fresh = r.refused_at(start + PROVEN, 0.0);
        assert_eq!((fresh.wait.as_secs(), fresh.warn), (2, false));
    }
}
