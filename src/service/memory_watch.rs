//! The provider's memory cgroup, asked before a mount writes files: tmpfs pages and
//! inodes are charged to their writer, so near the cgroup's limit a mount that writes
//! is refused rather than have the provider OOM-killed with every mount of the node.

use std::sync::{Arc, Mutex};

use crate::ports::memory::Unlimited;
use crate::ports::MemoryGauge;

use super::error::MountError;

/// Share of the cgroup's limit above which mounts that write files are refused: the
/// rest is head room for the provider itself.
pub const MEMORY_REFUSE_PERCENT: u64 = 90;

/// The memory gauge the service asks (a newtype so settings stay `Debug`).
#[derive(Clone)]
pub struct MemoryWatch(pub Arc<dyn MemoryGauge>);

impl Default for MemoryWatch {
    fn default() -> Self {
        MemoryWatch(Arc::new(Unlimited))
    }
}

impl std::fmt::Debug for MemoryWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemoryWatch")
    }
}

/// Bytes of files being written right now: the cgroup's usage does not show them yet,
/// so concurrent mounts must not all pass the check on the same reading.
#[derive(Default)]
pub(super) struct Writes(Arc<Mutex<u64>>);

/// Bytes a mount is writing, given back when the write is over (by then the cgroup's
/// own usage counts them).
pub(super) struct Writing {
    bytes: u64,
    total: Arc<Mutex<u64>>,
}

impl Drop for Writing {
    fn drop(&mut self) {
        let mut total = self.total.lock().unwrap_or_else(|p| p.into_inner());
        *total = total.saturating_sub(self.bytes);
    }
}

impl Writes {
    /// Refuses when the cgroup's usage, the files being written and `more` pass the
    /// refusal line; else counts `more` as being written until the answer is dropped.
    pub(super) fn start(
        &self,
        watch: &MemoryWatch,
        more: u64,
    ) -> Result<Option<Writing>, MountError> {
        // Read under the lock: a write that ends between the reading and the lock would
        // be in neither number.
        let mut writing = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let Some(memory) = watch.0.memory() else {
            return Ok(None);
        };
        let after = memory.used.saturating_add(*writing).saturating_add(more);
        if after > memory.limit / 100 * MEMORY_REFUSE_PERCENT {
            return Err(MountError::MemoryPressure {
                used: memory.used.saturating_add(*writing),
                limit: memory.limit,
            });
        }
        *writing = writing.saturating_add(more);
        Ok(Some(Writing {
            bytes: more,
            total: self.0.clone(),
        }))
    }
}
