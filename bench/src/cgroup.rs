//! A child cgroup of this process's own with the chart's kind of limits (memory, CPU
//! quota), removed on drop. cgroup v1 (one directory per controller, as on this machine)
//! or v2 (one directory). A provider joins it before it execs (`wrap`), so every page and
//! every CPU cycle it uses is charged there.

use std::path::{Path, PathBuf};
use std::process::Command;

/// CFS period: the kernel's default, as a container runtime sets it.
const PERIOD_US: u64 = 100_000;

#[derive(Clone, Copy, Debug, Default)]
pub struct Limits {
    pub memory_bytes: Option<u64>,
    /// CPU quota in millicores (the chart's `50m` is 50).
    pub cpu_millis: Option<u64>,
}

pub struct Cgroup {
    /// Every directory made, one per controller under v1.
    dirs: Vec<PathBuf>,
    memory: Option<PathBuf>,
    /// Where CPU use is accounted: v1 `cpuacct`, or the v2 directory.
    accounting: Option<PathBuf>,
    v1: bool,
}

/// This process's cgroup paths: each v1 controller with its path, and the v2 path.
struct OwnPaths {
    v1: Vec<(String, String)>,
    v2: Option<String>,
}

fn own_paths() -> anyhow::Result<OwnPaths> {
    let text = std::fs::read_to_string("/proc/self/cgroup")?;
    let mut v1 = Vec::new();
    let mut v2 = None;
    for line in text.lines() {
        let parts: Vec<&str> = line.splitn(3, ':').collect();
        if parts.len() != 3 {
            continue;
        }
        let path = parts[2].trim_start_matches('/').to_string();
        if parts[1].is_empty() {
            v2 = Some(path);
        } else {
            for controller in parts[1].split(',') {
                v1.push((controller.to_string(), path.clone()));
            }
        }
    }
    Ok(OwnPaths { v1, v2 })
}

fn v1_dir(v1: &[(String, String)], controller: &str) -> Option<PathBuf> {
    v1.iter()
        .find(|(c, _)| c == controller)
        .map(|(_, p)| Path::new("/sys/fs/cgroup").join(controller).join(p))
}

impl Cgroup {
    pub fn create(name: &str, limits: Limits) -> anyhow::Result<Cgroup> {
        let OwnPaths { v1, v2 } = own_paths()?;
        let mut made = Cgroup {
            dirs: Vec::new(),
            memory: None,
            accounting: None,
            v1: false,
        };
        if let Some(memory) = v1_dir(&v1, "memory") {
            made.v1 = true;
            let dir = memory.join(name);
            std::fs::create_dir_all(&dir)?;
            made.dirs.push(dir.clone());
            if let Some(bytes) = limits.memory_bytes {
                std::fs::write(dir.join("memory.limit_in_bytes"), bytes.to_string())?;
            }
            made.memory = Some(dir);
            if let Some(cpuacct) = v1_dir(&v1, "cpuacct") {
                let dir = cpuacct.join(name);
                std::fs::create_dir_all(&dir)?;
                made.dirs.push(dir.clone());
                made.accounting = Some(dir);
            }
            if let Some(millis) = limits.cpu_millis {
                let cpu = v1_dir(&v1, "cpu")
                    .ok_or_else(|| anyhow::anyhow!("no cgroup v1 cpu controller"))?
                    .join(name);
                std::fs::create_dir_all(&cpu)?;
                made.dirs.push(cpu.clone());
                std::fs::write(cpu.join("cpu.cfs_period_us"), PERIOD_US.to_string())?;
                std::fs::write(cpu.join("cpu.cfs_quota_us"), quota_us(millis).to_string())?;
            }
        } else if let Some(path) = v2 {
            let dir = Path::new("/sys/fs/cgroup").join(path).join(name);
            std::fs::create_dir_all(&dir)?;
            made.dirs.push(dir.clone());
            if let Some(bytes) = limits.memory_bytes {
                std::fs::write(dir.join("memory.max"), bytes.to_string())?;
            }
            if let Some(millis) = limits.cpu_millis {
                std::fs::write(
                    dir.join("cpu.max"),
                    format!("{} {PERIOD_US}", quota_us(millis)),
                )?;
            }
            made.memory = Some(dir.clone());
            made.accounting = Some(dir);
        } else {
            anyhow::bail!("no cgroup to nest in");
        }
        Ok(made)
    }

    /// `bin` started inside this cgroup: a shell joins every directory, then execs it.
    pub fn wrap(&self, bin: &Path) -> Command {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(r#"while [ "$1" != -- ]; do echo $$ > "$1/cgroup.procs" || exit 111; shift; done; shift; exec "$@""#)
            .arg("sh")
            .args(&self.dirs)
            .arg("--")
            .arg(bin);
        command
    }

    fn read(&self, v1: &str, v2: &str) -> u64 {
        let Some(dir) = &self.memory else { return 0 };
        let file = if self.v1 { v1 } else { v2 };
        std::fs::read_to_string(dir.join(file))
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0)
    }

    /// CPU time of every process and thread that ran in the cgroup, exited ones included,
    /// in nanoseconds (the kernel's own accounting, not 10 ms ticks).
    pub fn cpu_ns(&self) -> u64 {
        let Some(dir) = &self.accounting else {
            return 0;
        };
        if self.v1 {
            return std::fs::read_to_string(dir.join("cpuacct.usage"))
                .ok()
                .and_then(|t| t.trim().parse().ok())
                .unwrap_or(0);
        }
        std::fs::read_to_string(dir.join("cpu.stat"))
            .ok()
            .and_then(|t| {
                t.lines().find_map(|l| {
                    l.strip_prefix("usage_usec ")
                        .and_then(|v| v.trim().parse::<u64>().ok())
                })
            })
            .map_or(0, |us| us * 1000)
    }

    pub fn usage(&self) -> u64 {
        self.read("memory.usage_in_bytes", "memory.current")
    }

    pub fn peak(&self) -> u64 {
        self.read("memory.max_usage_in_bytes", "memory.peak")
    }

    pub fn reset_peak(&self) {
        let Some(dir) = &self.memory else { return };
        let file = if self.v1 {
            "memory.max_usage_in_bytes"
        } else {
            "memory.peak"
        };
        let _ = std::fs::write(dir.join(file), "0");
    }

    pub fn oom_kills(&self) -> u64 {
        let Some(dir) = &self.memory else { return 0 };
        let file = if self.v1 {
            "memory.oom_control"
        } else {
            "memory.events"
        };
        std::fs::read_to_string(dir.join(file))
            .ok()
            .and_then(|t| {
                t.lines().find_map(|l| {
                    l.strip_prefix("oom_kill ")
                        .and_then(|v| v.trim().parse().ok())
                })
            })
            .unwrap_or(0)
    }
}

fn quota_us(millis: u64) -> u64 {
    // The kernel refuses a quota under 1 ms.
    (PERIOD_US * millis / 1000).max(1000)
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        for dir in &self.dirs {
            // A cgroup is removed once its processes are gone; the provider was killed
            // and reaped first, but the kernel may take a moment to let go of it.
            for _ in 0..50 {
                if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
    }
}

/// Removes every cgroup named `prefix…` under this process's own (left by a run that was
/// killed before its drops ran). Returns how many were removed.
pub fn remove_left_over(prefix: &str) -> usize {
    let Ok(OwnPaths { v1, v2 }) = own_paths() else {
        return 0;
    };
    let mut parents: Vec<PathBuf> = v1
        .iter()
        .map(|(c, p)| Path::new("/sys/fs/cgroup").join(c).join(p))
        .collect();
    if let Some(p) = v2 {
        parents.push(Path::new("/sys/fs/cgroup").join(p));
    }
    let mut removed = 0;
    for parent in parents {
        let Ok(entries) = std::fs::read_dir(&parent) else {
            continue;
        };
        for entry in entries.flatten() {
            if entry.file_name().to_string_lossy().starts_with(prefix)
                && entry.path().is_dir()
                && std::fs::remove_dir(entry.path()).is_ok()
            {
                removed += 1;
            }
        }
    }
    removed
}
