//! How much memory the provider's own cgroup holds, and may hold: files written into
//! pods' tmpfs volumes are charged to it until those pods go away.

/// Bytes in use and the limit, as the kernel's OOM killer counts them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryUse {
    /// The working set: usage minus inactive file cache (what can be reclaimed
    /// without killing anyone). Tmpfs pages count: they cannot be reclaimed.
    pub used: u64,
    pub limit: u64,
}

/// Reads the provider's memory cgroup.
///
/// Contract: `None` when there is no limit or it cannot be read (then nothing is
/// refused for memory); never blocks for long (a few small file reads).
#[cfg_attr(test, mockall::automock)]
pub trait MemoryGauge: Send + Sync {
    fn memory(&self) -> Option<MemoryUse>;
}

/// No cgroup limit known: the `mount` command, tests.
#[derive(Debug, Default, Clone, Copy)]
pub struct Unlimited;

impl MemoryGauge for Unlimited {
    fn memory(&self) -> Option<MemoryUse> {
        None
    }
}
