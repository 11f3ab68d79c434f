//! A node with the real Secrets Store CSI Driver (v1.6.0) in the loop: the driver
//! (`.tools/secrets-store-csi-driver`, built by `./scripts/test` from `tests/csidriver`)
//! and our provider binary as deployed, side by side in one temporary directory, and
//! `.tools/csikubelet` playing the kubelet's CSI calls. The cluster side (CRDs, RBAC,
//! classes, pods) is `common::csi_cluster`.
//!
//! Dropping a [`Node`] kills both processes and unmounts everything under its directory,
//! on success and on failure alike.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use super::csi_cluster::{PodVolume, Tools};
use super::kube_server::free_port;

/// The driver and our provider on one node; both killed and every mount under `dir`
/// undone when dropped.
pub struct Node {
    pub name: String,
    dir: tempfile::TempDir,
    kubelet: PathBuf,
    driver: Child,
    provider: Child,
    endpoint: String,
    metrics: u16,
    provider_metrics: u16,
}

/// How the node runs: our provider's extra flags.
pub struct NodeConfig<'a> {
    pub name: &'a str,
    pub provider_kubeconfig: &'a Path,
    pub driver_kubeconfig: &'a Path,
    pub aws_endpoint: &'a str,
    pub provider_flags: &'a [&'a str],
}

impl Node {
    /// Starts our provider as deployed, then the driver with rotation on (a poll interval
    /// of an hour: tests age a target to make its rotation due, instead of sleeping), and
    /// waits until the driver answers.
    pub async fn start(tools: &Tools, config: NodeConfig<'_>) -> Node {
        let dir = tempfile::Builder::new()
            .prefix("csi-node-")
            .tempdir()
            .expect("node directory");
        let providers = dir.path().join("providers");
        let provider_metrics = free_port();
        let provider = super::deployed_provider_on(
            &providers,
            config.provider_kubeconfig,
            config.name,
            config.aws_endpoint,
            &format!("127.0.0.1:{provider_metrics}"),
        )
        .args(config.provider_flags)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("provider.log")).unwrap())
        .spawn()
        .expect("provider starts");
        let metrics = free_port();
        let endpoint = format!("unix://{}", dir.path().join("csi.sock").display());
        let log = std::fs::File::create(dir.path().join("driver.log")).unwrap();
        let driver = Command::new(&tools.driver)
            .arg(format!("--endpoint={endpoint}"))
            .arg(format!("--nodeid={}", config.name))
            .arg(format!("--provider-volume={}", providers.display()))
            .arg(format!("--metrics-addr=127.0.0.1:{metrics}"))
            .args([
                "--enable-secret-rotation",
                "--rotation-poll-interval=1h",
                "-v=5",
            ])
            .env("KUBECONFIG", config.driver_kubeconfig)
            .env_remove("KUBERNETES_SERVICE_HOST")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("driver starts");
        let mut node = Node {
            name: config.name.into(),
            dir,
            kubelet: tools.kubelet.clone(),
            driver,
            provider,
            endpoint,
            metrics,
            provider_metrics,
        };
        super::wait_for_socket(&providers.join("aws.sock")).await;
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = node.driver.try_wait() {
                panic!("the driver exited with {status}:\n{}", node.logs());
            }
            if node.call(&["probe"]).await.is_ok() {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the driver never answered:\n{}",
                node.logs()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        node
    }

    pub fn kubelet_root(&self) -> PathBuf {
        self.dir.path().join("kubelet")
    }

    /// NodePublishVolume of `volume`: Ok, or the driver's error message.
    pub async fn publish(&self, volume: &PodVolume) -> Result<(), String> {
        let context = serde_json::to_string(&volume.context).unwrap();
        let target = volume.target.display().to_string();
        self.call(&[
            "publish",
            "-volume-id",
            &volume.volume_id,
            "-target",
            &target,
            "-context",
            &context,
        ])
        .await
    }

    /// NodeUnpublishVolume of `volume`.
    pub async fn unpublish(&self, volume: &PodVolume) -> Result<(), String> {
        let target = volume.target.display().to_string();
        self.call(&[
            "unpublish",
            "-volume-id",
            &volume.volume_id,
            "-target",
            &target,
        ])
        .await
    }

    /// One csikubelet call (on a blocking thread: the test's runtime serves the proxy).
    async fn call(&self, args: &[&str]) -> Result<(), String> {
        let mut command = Command::new(&self.kubelet);
        command
            .arg(args[0])
            .arg("-endpoint")
            .arg(&self.endpoint)
            .args(&args[1..]);
        let out = tokio::task::spawn_blocking(move || command.output())
            .await
            .unwrap()
            .expect("csikubelet runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "csikubelet {args:?}: {}\n{stdout}",
            String::from_utf8_lossy(&out.stderr)
        );
        let outcome: serde_json::Value = serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("csikubelet printed {stdout:?}: {e}"));
        if outcome["ok"] == true {
            Ok(())
        } else {
            Err(format!(
                "{}: {}",
                outcome["code"].as_str().unwrap_or(""),
                outcome["message"].as_str().unwrap_or("")
            ))
        }
    }

    /// The driver's counter `name` (its metrics endpoint), summed over its labels.
    pub async fn driver_metric(&self, name: &str) -> u64 {
        counter(self.metrics, name).await
    }

    /// Our provider's counter `name` (its operations endpoint), summed over its labels.
    pub async fn provider_metric(&self, name: &str) -> u64 {
        counter(self.provider_metrics, name).await
    }

    /// Both processes' logs, for failure messages.
    pub fn logs(&self) -> String {
        let read = |f: &str| std::fs::read_to_string(self.dir.path().join(f)).unwrap_or_default();
        format!(
            "--- driver log:\n{}\n--- provider log:\n{}",
            tail(&read("driver.log")),
            tail(&read("provider.log"))
        )
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        for child in [&mut self.driver, &mut self.provider] {
            let _ = child.kill();
            let _ = child.wait();
        }
        // Deepest first; lazily, so a busy mount cannot keep the directory.
        let mut mounts = mounts_under(self.dir.path());
        mounts.sort_by_key(|m| std::cmp::Reverse(m.as_os_str().len()));
        for mount in mounts {
            let _ = Command::new("umount").arg("-l").arg(&mount).status();
        }
    }
}

/// Mount points at or under `dir` (from /proc/self/mountinfo).
pub fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|point| PathBuf::from(point.replace("\\040", " ")))
        .filter(|point| point.starts_with(dir))
        .collect()
}

/// The file system type mounted at `path`, if it is a mount point.
pub fn mounted_type(path: &Path) -> Option<String> {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            (Path::new(left.split(' ').nth(4)?) == path)
                .then(|| right.split(' ').next().unwrap_or("").to_string())
        })
}

/// Makes `target` look last written an hour ago: the driver's rotation of it is due.
pub fn age(target: &Path) {
    std::fs::File::open(target)
        .and_then(|dir| dir.set_modified(SystemTime::now() - Duration::from_secs(3600)))
        .unwrap_or_else(|e| panic!("aging {}: {e}", target.display()));
}

/// The Prometheus counter `name` served on 127.0.0.1:`port`, summed over its labels.
pub async fn counter(port: u16, name: &str) -> u64 {
    let name = name.to_string();
    let text = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
        stream.write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
        let mut text = String::new();
        stream.read_to_string(&mut text)?;
        Ok::<_, std::io::Error>(text)
    })
    .await
    .unwrap()
    .unwrap_or_else(|e| panic!("metrics on port {port}: {e}"));
    text.lines()
        .filter(|line| {
            line.strip_prefix(name.as_str())
                .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
        })
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

pub fn tail(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}
