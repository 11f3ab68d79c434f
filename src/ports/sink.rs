//! Where the files of a mount go: the pod's volume, or back to the driver.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;

use crate::domain::target::TargetPath;

pub use crate::domain::files::OutputFile;

/// What the sink did with the files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    /// Written into the target directory.
    Written,
    /// Not written: the driver writes them (driver-writes mode).
    ForDriver(Vec<OutputFile>),
}

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    /// The target path is unusable (missing, not a directory, not absolute).
    #[error("target path {path}: {reason}")]
    Target { path: String, reason: String },
    /// Writing failed; the target was left as it was.
    #[error("writing {path}: {source}")]
    Write {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// The mount was abandoned (its deadline passed, or it was cancelled) before its
    /// files were published; nothing changed.
    #[error("{path}: {reason}; nothing was published")]
    Abandoned { path: String, reason: String },
}

/// When a mount's files may still be published. The one who reports the mount's result
/// and the writer agree here, so that a mount reported as failed never changes the disk
/// later: the writer must win `begin_commit` before it makes anything visible, and a
/// caller that wins `abandon` may report failure knowing nothing will be published.
#[derive(Debug, Clone, Default)]
pub struct PublishGate(Arc<Gate>);

#[derive(Debug, Default)]
struct Gate {
    deadline: Option<Instant>,
    state: AtomicU8,
}

const OPEN: u8 = 0;
const COMMITTING: u8 = 1;
const ABANDONED: u8 = 2;

impl PublishGate {
    /// A gate that closes by itself at `deadline`.
    pub fn until(deadline: Instant) -> Self {
        PublishGate(Arc::new(Gate {
            deadline: Some(deadline),
            state: AtomicU8::new(OPEN),
        }))
    }

    pub fn deadline(&self) -> Option<Instant> {
        self.0.deadline
    }

    /// True when the files will not be published (now or later).
    pub fn abandon(&self) -> bool {
        match self
            .0
            .state
            .compare_exchange(OPEN, ABANDONED, Ordering::SeqCst, Ordering::SeqCst)
        {
            Ok(_) => true,
            Err(state) => state == ABANDONED,
        }
    }

    /// The writer's last check before it publishes: true when it may go ahead (and
    /// then nobody can abandon the mount any more).
    pub fn begin_commit(&self) -> bool {
        if self.is_past_deadline() {
            self.abandon();
        }
        self.0
            .state
            .compare_exchange(OPEN, COMMITTING, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }

    /// True once abandoned or past the deadline: a writer waiting for something stops.
    pub fn is_closed(&self) -> bool {
        self.0.state.load(Ordering::SeqCst) == ABANDONED || self.is_past_deadline()
    }

    fn is_past_deadline(&self) -> bool {
        self.0.deadline.is_some_and(|d| Instant::now() >= d)
    }
}

/// Publishes every file of one mount.
///
/// Contract: all files become visible together or none does; on `Err` the target
/// directory is exactly as it was before the call. Files that an earlier publish of
/// this sink wrote and that `files` no longer names are removed. Nothing is published
/// unless `gate.begin_commit()` succeeds right before the files become visible; a wait
/// (for a lock held by someone else) ends when the gate closes, with `Abandoned`.
#[cfg_attr(test, mockall::automock)]
#[async_trait]
pub trait MountSink: Send + Sync {
    async fn publish(
        &self,
        target: &TargetPath,
        files: Vec<OutputFile>,
        gate: &PublishGate,
    ) -> Result<Published, SinkError>;

    /// True when the files land in the pod's volume from this process (and so count
    /// against its memory cgroup when the volume is a tmpfs).
    fn writes_files(&self) -> bool;

    /// True when `target` already holds a published mount (its `..data`, which both
    /// this writer and the driver's own leave): a failure there is a failed remount.
    fn holds_mount(&self, target: &TargetPath) -> bool;
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn abandon_and_commit_exclude_each_other() {
        let gate = PublishGate::until(Instant::now() + Duration::from_secs(60));
        assert!(gate.abandon());
        assert!(!gate.begin_commit(), "abandoned: never published");
        let gate = PublishGate::until(Instant::now() + Duration::from_secs(60));
        assert!(gate.begin_commit());
        assert!(
            !gate.abandon(),
            "committing: the caller must wait for the writer"
        );
    }

    #[test]
    fn past_its_deadline_a_gate_lets_nothing_through() {
        let gate = PublishGate::until(Instant::now());
        assert!(gate.is_closed());
        assert!(!gate.begin_commit());
        assert!(gate.abandon());
        assert!(!PublishGate::default().is_closed(), "no deadline: open");
    }
}
