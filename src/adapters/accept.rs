//! Accepting connections without spinning. When `accept` fails for lack of a resource
//! (EMFILE/ENFILE: no file descriptor left; ENOBUFS/ENOMEM), retrying at once fails
//! again at once and burns a core that the mounts in flight need. Both listeners, the
//! driver's unix socket and the operations endpoint, wait instead: 5 ms, doubling up to
//! 1 s, back to 5 ms after the next success; one warning per burst, not one per error.

use std::future::Future;
use std::io;
use std::time::Duration;

use futures::Stream;
use tokio::net::{UnixListener, UnixStream};

/// First wait: a descriptor is often freed within milliseconds (a mount finishing).
const FIRST_DELAY: Duration = Duration::from_millis(5);
/// Longest wait: once descriptors are free again, accepting resumes within a second.
const MAX_DELAY: Duration = Duration::from_secs(1);

/// The waits after consecutive failed attempts (accepts, by default).
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
    first: Duration,
    max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::between(FIRST_DELAY, MAX_DELAY)
    }
}

impl Backoff {
    /// Waits of `first`, doubling up to `max`.
    pub fn between(first: Duration, max: Duration) -> Self {
        Backoff {
            next: first,
            first,
            max,
        }
    }

    /// The wait before the next attempt: 5 ms, 10 ms, … at most 1 s by default.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (delay * 2).min(self.max);
        delay
    }

    pub fn reset(&mut self) {
        self.next = self.first;
    }
}

/// Errors that belong to one connection (the client gave up while it waited in the
/// queue), not to the listener: the next connection can be accepted at once.
fn is_per_connection(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    )
}

/// Accepts on one listener, backing off while accepting fails.
#[derive(Debug)]
pub struct Acceptor {
    /// Names the listener in the log lines.
    listener: &'static str,
    backoff: Backoff,
    /// Failures of the current burst; 0 while accepting works.
    failures: u64,
}

impl Acceptor {
    pub fn new(listener: &'static str) -> Self {
        Acceptor {
            listener,
            backoff: Backoff::default(),
            failures: 0,
        }
    }

    /// Calls `accept` until it succeeds, sleeping between failures. Cancel-safe: drop
    /// the future (on shutdown) at any point.
    pub async fn accept<T, F, Fut>(&mut self, mut accept: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = io::Result<T>>,
    {
        loop {
            match accept().await {
                Ok(accepted) => {
                    if self.failures > 0 {
                        tracing::info!(
                            listener = self.listener,
                            failures = self.failures,
                            "accepting connections again"
                        );
                        self.failures = 0;
                        self.backoff.reset();
                    }
                    return accepted;
                }
                Err(e) if is_per_connection(&e) => continue,
                Err(e) => {
                    if self.failures == 0 {
                        tracing::warn!(
                            listener = self.listener,
                            error = %e,
                            "cannot accept connections (file descriptors exhausted?); retrying with backoff, logged again once it recovers"
                        );
                    }
                    self.failures += 1;
                    tokio::time::sleep(self.backoff.next_delay()).await;
                }
            }
        }
    }
}

/// The driver's socket as tonic's incoming stream: accepted connections only. An accept
/// error waits with backoff here instead of reaching tonic, whose loop retries at once.
pub fn unix_incoming(listener: UnixListener) -> impl Stream<Item = io::Result<UnixStream>> {
    futures::stream::unfold(
        (listener, Acceptor::new("csi")),
        |(listener, mut acceptor)| async move {
            let (stream, _) = acceptor.accept(|| listener.accept()).await;
            Some((Ok(stream), (listener, acceptor)))
        },
    )
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use futures::StreamExt;
    use tokio::time::Instant;

    use super::*;

    fn emfile() -> io::Error {
        io::Error::from_raw_os_error(libc::EMFILE)
    }

    #[test]
    fn backoff_doubles_from_5ms_to_at_most_1s_and_resets() {
        let mut backoff = Backoff::default();
        let delays: Vec<u64> = (0..10)
            .map(|_| backoff.next_delay().as_millis() as u64)
            .collect();
        assert_eq!(delays, [5, 10, 20, 40, 80, 160, 320, 640, 1000, 1000]);
        backoff.reset();
        assert_eq!(backoff.next_delay(), Duration::from_millis(5));
    }

    #[tokio::test(start_paused = true)]
    async fn failed_accepts_wait_and_success_resets_the_backoff() {
        let calls = AtomicU32::new(0);
        let mut acceptor = Acceptor::new("test");
        let started = Instant::now();
        let accepted = acceptor
            .accept(|| async {
                match calls.fetch_add(1, Ordering::SeqCst) {
                    0..=2 => Err(emfile()),
                    n => Ok(n),
                }
            })
            .await;
        assert_eq!(accepted, 3);
        assert_eq!(started.elapsed(), Duration::from_millis(5 + 10 + 20));
        assert_eq!(acceptor.failures, 0);
        assert_eq!(acceptor.backoff.next_delay(), FIRST_DELAY);
    }

    #[tokio::test(start_paused = true)]
    async fn a_listener_that_keeps_failing_is_retried_about_once_a_second() {
        let calls = AtomicU32::new(0);
        let mut acceptor = Acceptor::new("test");
        let never = tokio::time::timeout(
            Duration::from_secs(10),
            acceptor.accept(|| async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err::<(), _>(emfile())
            }),
        )
        .await;
        assert!(never.is_err());
        // 8 tries in the first 1.3 s, then one a second: no busy loop.
        let calls = calls.load(Ordering::SeqCst);
        assert!((15..=18).contains(&calls), "{calls} accept calls in 10 s");
    }

    #[tokio::test(start_paused = true)]
    async fn a_connection_aborted_in_the_queue_does_not_delay_the_next() {
        let calls = AtomicU32::new(0);
        let started = Instant::now();
        let accepted = Acceptor::new("test")
            .accept(|| async {
                match calls.fetch_add(1, Ordering::SeqCst) {
                    0 => Err(io::Error::from(io::ErrorKind::ConnectionAborted)),
                    n => Ok(n),
                }
            })
            .await;
        assert_eq!(accepted, 1);
        assert_eq!(started.elapsed(), Duration::ZERO);
    }

    #[tokio::test]
    async fn unix_incoming_yields_accepted_connections() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sock");
        let incoming = unix_incoming(UnixListener::bind(&path).unwrap());
        tokio::pin!(incoming);
        let _client = UnixStream::connect(&path).await.unwrap();
        let accepted = incoming.next().await;
        assert!(matches!(accepted, Some(Ok(_))));
    }
}
