//! The provider socket `<provider-volume>/aws.sock`.
//!
//! A DaemonSet rolling update with maxSurge starts the new pod before the old one stops.
//! The new one binds a temporary name and renames it over `aws.sock` (the driver never
//! sees a missing socket); on shutdown each removes the socket only if it is still its
//! own (same inode), so neither deletes the other's.
//!
//! The existing provider 3.1.1 does not check: stopping, it deletes `aws.sock` whoever
//! owns it, which is what `helm upgrade` from its chart to ours does to our socket. So
//! a watch checks the path every few seconds and binds again when it is missing; when it
//! is another file (a newer provider took over), it leaves it alone.

use std::fs::{self, Permissions};
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::Stream;
use rand::distr::{Alphanumeric, SampleString};
use tokio::net::{UnixListener, UnixStream};
use tokio::time::MissedTickBehavior;

use crate::adapters::accept::Acceptor;

pub const SOCKET_NAME: &str = "aws.sock";

/// How often the watch looks at `aws.sock`. One stat per check is cheap; the interval
/// is how long a node can go without a reachable provider after another process
/// deleted the socket, and the driver retries a failed mount after seconds anyway.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(2);

/// Remembers which socket file is ours.
#[derive(Debug)]
pub struct SocketGuard {
    path: PathBuf,
    dev: u64,
    ino: u64,
}

/// What is at the socket's path, compared with the file this process bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SocketState {
    Ours,
    /// Nothing: deleted (by the existing provider stopping, or by hand).
    Missing,
    /// Another file: a newer provider's socket, or anything else; never ours to take.
    Replaced,
    /// The path cannot be read (permissions, a directory turned into a file): nothing
    /// is known, so nothing is done.
    Unreadable,
}

/// Binds `<dir>/aws.sock`, replacing any earlier socket atomically. Only the owner
/// (root, like the driver) may connect.
pub fn bind_socket(dir: &Path) -> io::Result<(UnixListener, SocketGuard)> {
    fs::create_dir_all(dir)?;
    let path = dir.join(SOCKET_NAME);
    let tmp = dir.join(format!(
        ".{SOCKET_NAME}.{}",
        Alphanumeric.sample_string(&mut rand::rng(), 8)
    ));
    let listener = UnixListener::bind(&tmp)?;
    let placed = fs::set_permissions(&tmp, Permissions::from_mode(0o600))
        .and_then(|()| fs::rename(&tmp, &path));
    if let Err(e) = placed {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    let meta = fs::symlink_metadata(&path)?;
    Ok((
        listener,
        SocketGuard {
            path,
            dev: meta.dev(),
            ino: meta.ino(),
        },
    ))
}

impl SocketGuard {
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// True while `aws.sock` is still the file this process bound.
    pub fn is_ours(&self) -> bool {
        self.state() == SocketState::Ours
    }

    /// What is at the path now.
    pub fn state(&self) -> SocketState {
        match fs::symlink_metadata(&self.path) {
            Ok(m) if m.dev() == self.dev && m.ino() == self.ino => SocketState::Ours,
            Ok(_) => SocketState::Replaced,
            Err(e) if e.kind() == io::ErrorKind::NotFound => SocketState::Missing,
            Err(_) => SocketState::Unreadable,
        }
    }

    /// Removes the socket if it is still ours; a successor's socket is left alone.
    pub fn remove_if_ours(&self) -> bool {
        self.is_ours() && fs::remove_file(&self.path).is_ok()
    }
}

/// The socket this process bound last: the watch replaces it when it binds again, and
/// shutdown removes only that one (if still ours).
#[derive(Debug, Clone)]
pub struct BoundSocket(Arc<Mutex<SocketGuard>>);

impl BoundSocket {
    pub fn new(guard: SocketGuard) -> Self {
        BoundSocket(Arc::new(Mutex::new(guard)))
    }

    fn with<T>(&self, f: impl FnOnce(&mut SocketGuard) -> T) -> T {
        // A panic while holding the lock leaves a valid guard: every write is one move.
        f(&mut self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }

    pub fn path(&self) -> PathBuf {
        self.with(|g| g.path.clone())
    }

    pub fn is_ours(&self) -> bool {
        self.with(|g| g.is_ours())
    }

    /// Removes the socket bound last if it is still ours.
    pub fn remove_if_ours(&self) -> bool {
        self.with(|g| g.remove_if_ours())
    }
}

/// What the watch reports to the rest of the process. Readiness and metrics belong to
/// the operations endpoint, not to this adapter, so it only reports.
pub trait SocketEvents: Send + Sync {
    /// The socket is gone: the driver cannot reach this provider until it is bound again.
    fn missing(&self) {}
    /// Bound again after it went missing.
    fn rebound(&self) {}
}

/// Reports nothing.
impl SocketEvents for () {}

/// Checks that `aws.sock` is still ours, and binds it again when it is missing.
pub struct SocketWatch {
    dir: PathBuf,
    bound: BoundSocket,
    events: Arc<dyn SocketEvents>,
    /// A replaced socket is logged once, not at every check of a pod that lives on.
    replaced_logged: bool,
    /// A failing bind is logged once per outage, not every few seconds.
    bind_failed_logged: bool,
}

impl SocketWatch {
    /// Watches the socket `bound`, which was bound in `dir`.
    pub fn new(dir: &Path, bound: BoundSocket, events: Arc<dyn SocketEvents>) -> Self {
        SocketWatch {
            dir: dir.to_path_buf(),
            bound,
            events,
            replaced_logged: false,
            bind_failed_logged: false,
        }
    }

    /// Looks once. Returns the new listener when it bound the socket again; the caller
    /// serves from it (the old one reaches nobody).
    ///
    /// A process that removes the path and then binds it (the existing provider
    /// starting) leaves a gap of microseconds; should a check fall into it, that bind
    /// fails, the process restarts, replaces our socket, and this watch leaves it alone.
    pub fn check(&mut self) -> Option<UnixListener> {
        match self.bound.with(|g| g.state()) {
            SocketState::Ours => {
                self.replaced_logged = false;
                None
            }
            SocketState::Replaced => {
                if !self.replaced_logged {
                    self.replaced_logged = true;
                    tracing::info!(socket = %self.bound.path().display(), "socket replaced by another file (a newer provider?); left alone, open connections still served");
                }
                None
            }
            SocketState::Unreadable => None,
            SocketState::Missing => self.bind_again(),
        }
    }

    fn bind_again(&mut self) -> Option<UnixListener> {
        self.events.missing();
        match bind_socket(&self.dir) {
            Ok((listener, guard)) => {
                tracing::warn!(socket = %guard.path().display(), "socket was deleted; bound again");
                self.bound.with(|g| *g = guard);
                self.replaced_logged = false;
                self.bind_failed_logged = false;
                self.events.rebound();
                Some(listener)
            }
            Err(e) => {
                if !self.bind_failed_logged {
                    self.bind_failed_logged = true;
                    tracing::error!(socket = %self.bound.path().display(), error = %e, "socket was deleted and cannot be bound again; retrying");
                }
                None
            }
        }
    }
}

/// The driver's socket as tonic's incoming stream, watched: every `every`, `watch`
/// checks the socket, and connections are accepted from the listener it bound last.
/// Accept errors wait with backoff, as in [`crate::adapters::accept::unix_incoming`].
/// The watch runs only while the stream is polled: tonic drops it once the shutdown
/// signal comes, so a stopping provider never binds the socket again.
pub fn watched_incoming(
    listener: UnixListener,
    watch: SocketWatch,
    every: Duration,
) -> impl Stream<Item = io::Result<UnixStream>> {
    let mut ticks = tokio::time::interval(every);
    // A process paused for a while checks once on waking, not once per missed tick.
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let state = (listener, watch, ticks, Acceptor::new("csi"));
    futures::stream::unfold(
        state,
        |(mut listener, mut watch, mut ticks, mut acceptor)| async move {
            loop {
                // Both branches are cancel-safe: an accept interrupted by a tick loses
                // no connection, and its backoff state stays in `acceptor`.
                let accepted = tokio::select! {
                    (stream, _) = acceptor.accept(|| listener.accept()) => Some(stream),
                    _ = ticks.tick() => None,
                };
                match accepted {
                    Some(stream) => return Some((Ok(stream), (listener, watch, ticks, acceptor))),
                    None => {
                        if let Some(rebound) = watch.check() {
                            listener = rebound;
                        }
                    }
                }
            }
        },
    )
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::FileTypeExt;
    use std::sync::atomic::{AtomicU32, Ordering};

    use futures::StreamExt;

    use super::*;

    #[derive(Default)]
    struct Recorded {
        missing: AtomicU32,
        rebound: AtomicU32,
    }

    impl SocketEvents for Recorded {
        fn missing(&self) {
            self.missing.fetch_add(1, Ordering::SeqCst);
        }
        fn rebound(&self) {
            self.rebound.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn watched(dir: &Path) -> (UnixListener, BoundSocket, SocketWatch, Arc<Recorded>) {
        let (listener, guard) = bind_socket(dir).unwrap();
        let bound = BoundSocket::new(guard);
        let events = Arc::new(Recorded::default());
        let watch = SocketWatch::new(dir, bound.clone(), events.clone());
        (listener, bound, watch, events)
    }

    fn assert_private_socket(path: &Path) {
        let meta = fs::symlink_metadata(path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    }

    #[tokio::test]
    async fn binds_a_private_socket_and_replaces_a_stale_one() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(SOCKET_NAME), "stale").unwrap();
        let (_listener, guard) = bind_socket(dir.path()).unwrap();
        assert_private_socket(guard.path());
        // No temporary names left behind.
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[tokio::test]
    async fn a_successor_takes_over_and_the_old_one_leaves_its_socket_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (_old_listener, old) = bind_socket(dir.path()).unwrap();
        let (_new_listener, new) = bind_socket(dir.path()).unwrap();
        assert!(!old.is_ours());
        assert!(
            !old.remove_if_ours(),
            "the old pod must not delete the new pod's socket"
        );
        assert!(new.path().exists());
        assert!(new.remove_if_ours());
        assert!(!new.path().exists());
    }

    #[tokio::test]
    async fn a_deleted_socket_is_bound_again_private_and_reachable() {
        let dir = tempfile::tempdir().unwrap();
        let (_old, bound, mut watch, events) = watched(dir.path());
        assert!(watch.check().is_none(), "ours: nothing to do");
        fs::remove_file(bound.path()).unwrap();

        let listener = watch.check().expect("bound again");
        assert_private_socket(&bound.path());
        assert!(bound.is_ours());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        assert_eq!(events.missing.load(Ordering::SeqCst), 1);
        assert_eq!(events.rebound.load(Ordering::SeqCst), 1);
        let _client = UnixStream::connect(bound.path()).await.unwrap();
        assert!(listener.accept().await.is_ok());
        assert!(watch.check().is_none(), "the new socket is ours");
    }

    #[tokio::test]
    async fn a_replaced_socket_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let (_old, bound, mut watch, events) = watched(dir.path());
        let (_newer, newer) = bind_socket(dir.path()).unwrap();
        for _ in 0..3 {
            assert!(watch.check().is_none());
        }
        assert!(newer.is_ours(), "the newer provider's socket is untouched");
        assert_eq!(events.missing.load(Ordering::SeqCst), 0);
        assert!(!bound.remove_if_ours());
        assert!(newer.path().exists());

        // Any other file too: not ours to take.
        fs::remove_file(newer.path()).unwrap();
        fs::write(newer.path(), "someone else's").unwrap();
        assert!(watch.check().is_none());
        assert_eq!(fs::read_to_string(newer.path()).unwrap(), "someone else's");
    }

    #[tokio::test]
    async fn shutdown_removes_only_the_socket_bound_last_and_only_while_ours() {
        let dir = tempfile::tempdir().unwrap();
        let (_first, bound, mut watch, _) = watched(dir.path());
        let first_path = bound.path();
        fs::remove_file(&first_path).unwrap();
        let _second = watch.check().expect("bound again");

        // A newer provider replaces the re-bound socket: shutdown leaves it.
        let (_newer_listener, newer) = bind_socket(dir.path()).unwrap();
        assert!(!bound.remove_if_ours());
        assert!(newer.is_ours());

        // Gone again, bound again: shutdown removes that one.
        fs::remove_file(newer.path()).unwrap();
        let _third = watch.check().expect("bound again");
        assert!(bound.remove_if_ours());
        assert!(!first_path.exists());
    }

    #[tokio::test]
    async fn the_watched_stream_accepts_on_the_socket_bound_again() {
        let dir = tempfile::tempdir().unwrap();
        let (listener, bound, watch, events) = watched(dir.path());
        let incoming = watched_incoming(listener, watch, Duration::from_millis(10));
        let accepting = tokio::spawn(async move {
            tokio::pin!(incoming);
            incoming.next().await.map(|accepted| accepted.is_ok())
        });
        fs::remove_file(bound.path()).unwrap();
        // Bounded wait for the watch to bind again; no assumption on how soon.
        let started = std::time::Instant::now();
        let _client = loop {
            if events.rebound.load(Ordering::SeqCst) > 0 {
                if let Ok(client) = UnixStream::connect(bound.path()).await {
                    break client;
                }
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "never bound again"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        assert_eq!(accepting.await.unwrap(), Some(true));
    }
}
