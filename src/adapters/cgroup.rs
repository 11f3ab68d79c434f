//! The provider's own memory cgroup (v2 or v1): usage as the OOM killer sees it and the
//! limit. Files the provider writes into pods' tmpfs volumes are charged here until those
//! pods go away, so this, not the RSS, is what gets the provider killed.

use std::fs;
use std::path::{Path, PathBuf};

use crate::ports::{MemoryGauge, MemoryUse};

/// Limits at or above this mean "no limit" (v1 writes 2^63 rounded to a page).
const NO_LIMIT: u64 = 1 << 62;

#[derive(Debug, Clone)]
pub struct CgroupMemory {
    usage: PathBuf,
    limit: PathBuf,
    stat: PathBuf,
    /// The memory.stat key of reclaimable file cache.
    inactive_file: &'static str,
}

impl CgroupMemory {
    /// The cgroup of this process, from `/proc/self/cgroup` under `/sys/fs/cgroup`.
    pub fn detect() -> Option<Self> {
        let text = fs::read_to_string("/proc/self/cgroup").ok()?;
        Self::from_proc(&text, Path::new("/sys/fs/cgroup"))
    }

    /// `proc_cgroup` is the text of `/proc/<pid>/cgroup`; `root` the cgroup mount.
    pub fn from_proc(proc_cgroup: &str, root: &Path) -> Option<Self> {
        let mut v2 = None;
        let mut v1 = None;
        for line in proc_cgroup.lines() {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            let path = path.trim_start_matches('/');
            if controllers.is_empty() {
                v2 = Some(path.to_string());
            } else if controllers.split(',').any(|c| c == "memory") {
                v1 = Some(path.to_string());
            }
        }
        // Inside a container with its own cgroup namespace the path is `/`, and the
        // container's cgroup is the root of the mount; fall back to it when the full
        // path does not exist there.
        let pick = |base: PathBuf, path: &str, file: &str| {
            let full = base.join(path);
            if full.join(file).exists() {
                Some(full)
            } else if base.join(file).exists() {
                Some(base)
            } else {
                None
            }
        };
        if let Some(path) = v1 {
            if let Some(dir) = pick(root.join("memory"), &path, "memory.usage_in_bytes") {
                return Some(CgroupMemory {
                    usage: dir.join("memory.usage_in_bytes"),
                    limit: dir.join("memory.limit_in_bytes"),
                    stat: dir.join("memory.stat"),
                    inactive_file: "total_inactive_file",
                });
            }
        }
        let dir = pick(root.to_path_buf(), &v2?, "memory.current")?;
        Some(CgroupMemory {
            usage: dir.join("memory.current"),
            limit: dir.join("memory.max"),
            stat: dir.join("memory.stat"),
            inactive_file: "inactive_file",
        })
    }

    fn read_number(path: &Path) -> Option<u64> {
        fs::read_to_string(path).ok()?.trim().parse().ok()
    }

    fn inactive_file(&self) -> u64 {
        fs::read_to_string(&self.stat)
            .ok()
            .and_then(|text| {
                text.lines().find_map(|line| {
                    let (key, value) = line.split_once(' ')?;
                    (key == self.inactive_file).then(|| value.trim().parse().ok())?
                })
            })
            .unwrap_or(0)
    }
}

impl MemoryGauge for CgroupMemory {
    fn memory(&self) -> Option<MemoryUse> {
        // v2 writes "max" for no limit: not a number, so None.
        let limit = Self::read_number(&self.limit).filter(|l| *l < NO_LIMIT)?;
        let usage = Self::read_number(&self.usage)?;
        Some(MemoryUse {
            used: usage.saturating_sub(self.inactive_file()),
            limit,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        fs::create_dir_all(dir).unwrap();
        fs::write(dir.join(name), text).unwrap();
    }

    #[test]
    fn v2_working_set_is_usage_minus_inactive_file() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("kubepods/pod1/c1");
        write(&dir, "memory.current", "104857600\n");
        write(&dir, "memory.max", "125829120\n");
        write(
            &dir,
            "memory.stat",
            "anon 1000\ninactive_file 4857600\nshmem 50\n",
        );
        let cg = CgroupMemory::from_proc("0::/kubepods/pod1/c1\n", root.path()).unwrap();
        assert_eq!(
            cg.memory(),
            Some(MemoryUse {
                used: 100_000_000,
                limit: 125_829_120
            })
        );
        write(&dir, "memory.max", "max\n");
        assert_eq!(cg.memory(), None, "no limit: nothing to guard");
    }

    #[test]
    fn v1_memory_controller_and_a_namespaced_root() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("memory");
        write(&dir, "memory.usage_in_bytes", "2000\n");
        write(&dir, "memory.limit_in_bytes", "9000\n");
        write(&dir, "memory.stat", "cache 10\ntotal_inactive_file 500\n");
        // The path names a cgroup that is the root of this (namespaced) mount.
        let cg = CgroupMemory::from_proc("4:memory:/kubepods/x\n1:cpu:/\n", root.path()).unwrap();
        assert_eq!(
            cg.memory(),
            Some(MemoryUse {
                used: 1500,
                limit: 9000
            })
        );
        write(&dir, "memory.limit_in_bytes", "9223372036854771712\n");
        assert_eq!(cg.memory(), None);
    }

    #[test]
    fn no_memory_cgroup_is_none() {
        let root = tempfile::tempdir().unwrap();
        assert!(CgroupMemory::from_proc("1:cpu:/\n", root.path()).is_none());
    }
}
