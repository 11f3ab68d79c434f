//! A real cgroup v1 memory group with the chart's 100 MiB limit and no swap, and the
//! provider binary confined to it for the attack tests.
//!
//! The provider joins the group before it execs (a shell writes its own pid into
//! `cgroup.procs`, then execs the binary), so every page it touches, tmpfs files it
//! writes included, is charged there from the first instruction: cgroup v1 does not
//! move charges made before a move. The group is a child of this process's own memory
//! cgroup, and is removed on drop, after the provider is killed and reaped (panics
//! included). Where no group can be made (not root, no writable v1 memory controller)
//! the tests skip with a message, unless `REQUIRE_CGROUP=1` (set by the test command,
//! which runs as root) makes that a failure.

use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The chart's `resources.limits.memory` (100Mi).
pub const LIMIT: u64 = 100 * 1024 * 1024;

const V1_ROOT: &str = "/sys/fs/cgroup/memory";

pub struct Cgroup {
    pub dir: PathBuf,
}

impl Cgroup {
    /// A fresh group named after `label`, or None (after saying why) when none can be
    /// made and `REQUIRE_CGROUP=1` is not set.
    pub fn create(label: &str) -> Option<Cgroup> {
        match Self::try_create(label) {
            Ok(group) => Some(group),
            Err(why) if std::env::var("REQUIRE_CGROUP").is_ok_and(|v| v == "1") => {
                panic!("REQUIRE_CGROUP=1 but no memory cgroup can be made: {why}")
            }
            Err(why) => {
                eprintln!("SKIPPED: {label} needs a writable cgroup v1 memory controller: {why}");
                None
            }
        }
    }

    fn try_create(label: &str) -> Result<Cgroup, String> {
        static SEQUENCE: AtomicUsize = AtomicUsize::new(0);
        let parent = own_v1_memory_cgroup()?;
        let name = format!(
            "attacks-{label}-{}-{}",
            std::process::id(),
            SEQUENCE.fetch_add(1, Ordering::Relaxed)
        );
        let dir = parent.join(name);
        fs::create_dir(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        let group = Cgroup { dir };
        group.write("memory.limit_in_bytes", LIMIT)?;
        // No swap to hide in, even on a machine that has some (memsw must not be below
        // the memory limit, so it is set second; it is absent without swap accounting).
        if group.dir.join("memory.memsw.limit_in_bytes").exists() {
            group.write("memory.memsw.limit_in_bytes", LIMIT)?;
        }
        Ok(group)
    }

    fn write(&self, file: &str, value: u64) -> Result<(), String> {
        fs::write(self.dir.join(file), value.to_string())
            .map_err(|e| format!("writing {file} of {}: {e}", self.dir.display()))
    }

    fn read(&self, file: &str) -> u64 {
        fs::read_to_string(self.dir.join(file))
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(0)
    }

    pub fn procs(&self) -> PathBuf {
        self.dir.join("cgroup.procs")
    }

    pub fn holds(&self, pid: u32) -> bool {
        fs::read_to_string(self.procs())
            .map(|t| t.lines().any(|l| l.trim() == pid.to_string()))
            .unwrap_or(false)
    }

    pub fn limit(&self) -> u64 {
        self.read("memory.limit_in_bytes")
    }

    pub fn usage(&self) -> u64 {
        self.read("memory.usage_in_bytes")
    }

    /// The highest usage since the group was made.
    pub fn peak(&self) -> u64 {
        self.read("memory.max_usage_in_bytes")
    }

    /// How often usage hit the limit (and the kernel had to reclaim).
    pub fn failcnt(&self) -> u64 {
        self.read("memory.failcnt")
    }

    /// Processes of this group the OOM killer killed.
    pub fn oom_kills(&self) -> u64 {
        fs::read_to_string(self.dir.join("memory.oom_control"))
            .ok()
            .and_then(|t| {
                t.lines()
                    .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok())
            })
            .unwrap_or(0)
    }

    pub fn report(&self) -> String {
        let mib = |b: u64| b as f64 / 1048576.0;
        format!(
            "cgroup peak {:.1} MiB, now {:.1} MiB, limit {:.0} MiB, failcnt {}, oom_kill {}",
            mib(self.peak()),
            mib(self.usage()),
            mib(self.limit()),
            self.failcnt(),
            self.oom_kills()
        )
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        // An exited process leaves the group a moment after it is reaped.
        let started = Instant::now();
        while fs::remove_dir(&self.dir).is_err() && started.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        if self.dir.exists() {
            eprintln!("warning: could not remove {}", self.dir.display());
        }
    }
}

/// This process's v1 memory cgroup directory, from `/proc/self/cgroup`; the mount's
/// root when the path is not there (a container with its own cgroup namespace).
fn own_v1_memory_cgroup() -> Result<PathBuf, String> {
    let text = fs::read_to_string("/proc/self/cgroup").map_err(|e| e.to_string())?;
    let path = text
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            controllers
                .split(',')
                .any(|c| c == "memory")
                .then(|| path.trim_start_matches('/').to_string())
        })
        .next()
        .ok_or("no cgroup v1 memory controller in /proc/self/cgroup")?;
    let root = Path::new(V1_ROOT);
    let own = root.join(path);
    Ok(if own.join("cgroup.procs").exists() {
        own
    } else {
        root.to_path_buf()
    })
}

/// A provider process, in `cgroup` when given; killed and reaped on drop, before the
/// group is removed.
pub struct Confined {
    pub child: Child,
    exited: Option<ExitStatus>,
    // Declared last: dropped after the child is reaped in `drop`.
    pub cgroup: Option<Cgroup>,
}

impl Confined {
    /// Spawns `program`, inside `cgroup` when given; `configure` adds its arguments,
    /// environment and stdio (they reach the program through the shell's `exec`).
    pub fn spawn(
        program: &Path,
        cgroup: Option<Cgroup>,
        configure: impl FnOnce(&mut Command),
    ) -> Confined {
        let mut command = match &cgroup {
            Some(group) => {
                let mut sh = Command::new("/bin/sh");
                sh.arg("-c")
                    .arg(r#"echo $$ > "$0" && exec "$@""#)
                    .arg(group.procs())
                    .arg(program);
                sh
            }
            None => Command::new(program),
        };
        configure(&mut command);
        let child = command.spawn().expect("the provider starts");
        Confined {
            child,
            exited: None,
            cgroup,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// None while it runs; its exit status once it ended.
    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        if self.exited.is_none() {
            self.exited = self.child.try_wait().ok().flatten();
        }
        self.exited
    }

    /// Running, and not a zombie whose other threads are still being torn down (as
    /// after the OOM killer's SIGKILL).
    pub fn alive(&mut self) -> bool {
        if self.exit_status().is_some() {
            return false;
        }
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid()));
        !status.is_ok_and(|s| s.lines().any(|l| l.starts_with("State:\tZ")))
    }

    /// A sentence for assertion messages: running, or how it ended, with the cgroup's
    /// counters (a SIGKILL with `oom_kill` > 0 is the OOM killer).
    pub fn describe(&mut self) -> String {
        let state = match self.exit_status() {
            None => {
                let status = fs::read_to_string(format!("/proc/{}/status", self.pid()));
                let line = status.ok().and_then(|s| {
                    s.lines()
                        .find(|l| l.starts_with("State:"))
                        .map(|l| l.replace('\t', " "))
                });
                format!("running ({})", line.unwrap_or_default())
            }
            Some(s) => match s.signal() {
                Some(9) => "killed by SIGKILL".to_string(),
                Some(sig) => format!("killed by signal {sig}"),
                None => format!("exited with {s}"),
            },
        };
        match &self.cgroup {
            Some(group) => format!("provider {state}; {}", group.report()),
            None => format!("provider {state}"),
        }
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "SIGTERM sent");
    }

    /// Waits up to `bound` for the process to end; its status if it did.
    pub async fn wait_for_exit(&mut self, bound: Duration) -> Option<ExitStatus> {
        let started = Instant::now();
        while started.elapsed() < bound {
            if let Some(status) = self.exit_status() {
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.exit_status()
    }
}

impl Drop for Confined {
    fn drop(&mut self) {
        if self.exit_status().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
