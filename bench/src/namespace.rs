//! The side-by-side run's private world. The existing provider cannot be pointed at local
//! doubles by flags: it calls `https://sts.<region>.amazonaws.com` whatever
//! `AWS_ENDPOINT_URL` says, and reaches Kubernetes only in-cluster (the service-account
//! files under `/var/run/secrets`). So the run re-executes itself under `unshare` in new
//! mount, network and PID namespaces, and there:
//! - only loopback exists, so nothing can leave the machine;
//! - `/etc/hosts` (a bind mount) sends the AWS host names to 127.0.0.1;
//! - a tmpfs on `/run` holds the in-cluster files (the original `/run` stays untouched);
//! - the pods' targets are on their own tmpfs, as the driver mounts them.
//!
//! Every mount is private to the namespace and vanishes with it. The run is PID 1 there,
//! so when it ends, or `unshare` dies (`--kill-child`), the kernel kills every provider it
//! started. The only host state is the cgroups of the limits scenario, which the outer
//! process removes after the inner one ends, on success, failure or interrupt.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use rustix::mount::{mount, mount_bind, MountFlags};

/// Set in the re-executed run: it is inside the namespaces.
pub const INSIDE: &str = "STORM_IN_NAMESPACE";
/// The outer process's id, which names the run's cgroups (inside, the run is PID 1).
pub const RUN_ID: &str = "STORM_RUN_ID";

pub fn inside() -> bool {
    std::env::var_os(INSIDE).is_some()
}

/// The prefix of the run's cgroups.
pub fn cgroup_prefix() -> String {
    format!(
        "storm-peer-{}-",
        std::env::var(RUN_ID).unwrap_or_else(|_| std::process::id().to_string())
    )
}

/// Runs this same command, plus `extra` arguments, inside new namespaces and waits for
/// it; then removes the cgroups it may have left.
pub async fn run_inside(extra: &[String]) -> anyhow::Result<ExitStatus> {
    anyhow::ensure!(
        rustix::process::geteuid().is_root(),
        "the side-by-side run needs root (network and mount namespaces, cgroups)"
    );
    let id = std::process::id().to_string();
    let mut child = tokio::process::Command::new("unshare")
        .args([
            "--mount",
            "--net",
            "--pid",
            "--fork",
            "--mount-proc",
            "--propagation",
            "private",
            "--kill-child",
            "--",
        ])
        .arg(std::env::current_exe()?)
        .args(std::env::args_os().skip(1))
        .args(extra)
        .env(INSIDE, "1")
        .env(RUN_ID, &id)
        .spawn()?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let status = tokio::select! {
        status = child.wait() => status?,
        // Interrupted: the inner run (same terminal) gets the signal too; make sure, then
        // wait for it to go before cleaning up.
        _ = tokio::signal::ctrl_c() => { let _ = child.start_kill(); child.wait().await? }
        _ = term.recv() => { let _ = child.start_kill(); child.wait().await? }
    };
    let removed = crate::cgroup::remove_left_over(&format!("storm-peer-{id}-"));
    if removed > 0 {
        eprintln!("removed {removed} cgroup(s) the run left");
    }
    Ok(status)
}

/// What `prepare` set up: the CA file for `SSL_CERT_FILE` and the tmpfs for targets.
pub struct World {
    pub ca_file: PathBuf,
    pub volumes: PathBuf,
}

/// Inside the namespaces: loopback up, `names` → 127.0.0.1, the in-cluster files, a tmpfs
/// for the pods' volumes.
pub fn prepare(names: &[String], ca_pem: &str) -> anyhow::Result<World> {
    anyhow::ensure!(inside(), "prepare runs only inside the run's namespaces");
    let up = Command::new("ip")
        .args(["link", "set", "lo", "up"])
        .status()?;
    anyhow::ensure!(up.success(), "`ip link set lo up` failed");
    let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
    // /run's symlinks (e.g. shm → /dev/shm) are kept on the new tmpfs.
    let links: Vec<(std::ffi::OsString, PathBuf)> = std::fs::read_dir("/run")?
        .flatten()
        .filter_map(|e| Some((e.file_name(), std::fs::read_link(e.path()).ok()?)))
        .collect();
    // mount(2) directly: mount(8) would record it in the host's /run/mount.
    mount(
        "tmpfs",
        "/run",
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV,
        c"size=16m,mode=755",
    )?;
    for (name, target) in links {
        std::os::unix::fs::symlink(target, Path::new("/run").join(name))?;
    }
    let sa = Path::new("/run/secrets/kubernetes.io/serviceaccount");
    std::fs::create_dir_all(sa)?;
    // The providers send the token as a bearer; the fake API server does not check it.
    std::fs::write(sa.join("token"), "storm-provider-token")?;
    std::fs::write(sa.join("ca.crt"), ca_pem)?;
    std::fs::write(sa.join("namespace"), "kube-system")?;
    let run = Path::new("/run/storm");
    std::fs::create_dir_all(run)?;
    let ca_file = run.join("ca.pem");
    std::fs::write(&ca_file, ca_pem)?;
    let mut ours = hosts;
    for name in names {
        ours.push_str(&format!("127.0.0.1 {name}\n"));
    }
    std::fs::write(run.join("hosts"), ours)?;
    mount_bind(run.join("hosts"), "/etc/hosts")?;
    let volumes = run.join("volumes");
    std::fs::create_dir_all(&volumes)?;
    mount(
        "tmpfs",
        &volumes,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV,
        c"size=2g,mode=755",
    )?;
    Ok(World { ca_file, volumes })
}
