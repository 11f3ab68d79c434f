//! What a failed Kubernetes API call means for a user.

use std::time::Duration;

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
/// RBAC caches have synced (seen in `tests/kube_apiserver.rs`: one such refusal used to
/// park the watch for ten minutes). The random stretch keeps a fleet of nodes from
/// re-listing in step after such a restart. A refusal that lasts is a ClusterRole an
/// operator may fix without restarting the provider. A watch that lists again starts over.
pub struct Refusals {
    next: Duration,
    in_a_row: u32,
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

impl Default for Refusals {
    fn default() -> Self {
        Refusals {
            next: FIRST_WAIT,
            in_a_row: 0,
        }
    }
}

impl Refusals {
    pub fn refused(&mut self) -> Refused {
        self.refused_with(rand::random::<f64>())
    }

    /// `stretch` in [0, 1): how much of the extra half of the wait to add.
    fn refused_with(&mut self, stretch: f64) -> Refused {
        let wait = self.next.mul_f64(1.0 + stretch.clamp(0.0, 1.0) / 2.0);
        self.next = (self.next * 2).min(LAST_WAIT);
        self.in_a_row += 1;
        Refused {
            wait,
            warn: self.in_a_row == 2,
        }
    }

    /// The watch listed everything: the next refusal starts a new run.
    pub fn worked(&mut self) {
        *self = Refusals::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_retry_soon_then_every_ten_minutes_and_warn_once() {
        let mut r = Refusals::default();
        let answers: Vec<(u64, bool)> = (0..11)
            .map(|_| {
                let a = r.refused_with(0.0);
                (a.wait.as_secs(), a.warn)
            })
            .collect();
        let waits: Vec<u64> = answers.iter().map(|a| a.0).collect();
        assert_eq!(waits, [2, 4, 8, 16, 32, 64, 128, 256, 512, 600, 600]);
        let warned: Vec<usize> = (0..11).filter(|&i| answers[i].1).collect();
        assert_eq!(warned, [1], "the second refusal in a row warns, once");
    }

    #[test]
    fn a_wait_is_stretched_by_at_most_half_and_a_working_watch_starts_over() {
        let mut r = Refusals::default();
        assert_eq!(r.refused_with(0.999).wait.as_millis(), 2999);
        assert_eq!(r.refused_with(0.5).wait.as_secs(), 5);
        r.worked();
        assert_eq!(
            r.refused_with(0.0),
            Refused {
                wait: Duration::from_secs(2),
                warn: false
            }
        );
        assert!(r.refused_with(0.0).warn);
    }
}
