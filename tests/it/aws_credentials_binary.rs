//! The provider binary with the volume's own credentials
//! (`nodePublishSecretRef`): a stream of fresh credential sets keeps open files and
//! threads flat, and no part of a credential reaches a log line at any level.

use crate::common;

use common::request::Mount;

use std::path::Path;
use std::process::{Child, Stdio};

use common::fake_apiserver::FakeApi;

struct Provider {
    child: Child,
    client: common::Client,
    _dir: tempfile::TempDir,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The deployed binary, logging at `log` (RUST_LOG) in `format`, stderr and stdout piped
/// when `capture`.
async fn provider(api: &FakeApi, moto: &str, log: &str, format: &str, capture: bool) -> Provider {
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig).unwrap();
    let volume = dir.path().join("providers");
    let output = || {
        if capture {
            Stdio::piped()
        } else {
            Stdio::null()
        }
    };
    let child = common::deployed_provider(&volume, &kubeconfig, "node-1", moto)
        .args(["--log-format", format])
        .env("RUST_LOG", log)
        .stdout(output())
        .stderr(output())
        .spawn()
        .unwrap();
    let socket = volume.join("aws.sock");
    common::wait_for_socket(&socket).await;
    let client = common::connect(&socket).await;
    Provider {
        child,
        client,
        _dir: dir,
    }
}

/// A mount of `MySecret` in `region`, signed with the volume's key `key_id` and secret
/// `secret`.
async fn mount_in(
    client: &mut common::Client,
    target: &Path,
    region: &str,
    key_id: &str,
    secret: &str,
) {
    let mut request = Mount::of("- {objectName: MySecret, objectType: secretsmanager}")
        .with(&[
            ("authentication", "nodePublishSecretRef"),
            ("region", region),
        ])
        .target(target)
        .grpc();
    request.secrets = serde_json::json!({
        "aws_access_key_id": key_id,
        "aws_secret_access_key": secret,
    })
    .to_string();
    client.mount(request).await.unwrap();
}

async fn mount(client: &mut common::Client, target: &Path, key_id: &str, secret: &str) {
    mount_in(client, target, "us-east-1", key_id, secret).await;
}

/// Open files, threads and resident memory (KiB) of `pid`.
fn usage(pid: u32) -> (usize, u64, u64) {
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |key: &str| -> u64 {
        status
            .lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0)
    };
    (fds, field("Threads:"), field("VmRSS:"))
}

/// The count `variable` asks for, else `default`.
fn count(variable: &str, default: usize) -> usize {
    std::env::var(variable)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `total` mounts through the provider binary, mount `i` in the region and with the
/// credential set `each(i)` gives, against the benchmark's AWS stub (moto closes every
/// connection after its answer, which would hide a connection pool per client; the stub
/// keeps them open, as AWS does). Asserts that open files and threads stay within a few
/// of where they were after the first 50 mounts; prints the figures.
async fn churn(what: &str, total: usize, each: impl Fn(usize) -> (String, String)) {
    let stub = testkit::aws_stub::start(std::time::Duration::ZERO)
        .await
        .unwrap();
    let api = common::fake_apiserver::start().await;
    let mut p = provider(&api, &stub.url, "warn", "text", false).await;
    let pid = p.child.id();
    let target = p._dir.path().join("pod");
    std::fs::create_dir(&target).unwrap();
    let start = usage(pid);
    let mut after_50 = start;
    let mut peak = start;
    for i in 0..total {
        let (region, key_id) = each(i);
        mount_in(
            &mut p.client,
            &target,
            &region,
            &key_id,
            &format!("secret-{i}"),
        )
        .await;
        let now = usage(pid);
        peak = (peak.0.max(now.0), peak.1.max(now.1), peak.2.max(now.2));
        if i + 1 == 50 {
            after_50 = now;
        }
        if (i + 1) % 500 == 0 {
            eprintln!(
                "after {} mounts: fds {} threads {} rss {} KiB",
                i + 1,
                now.0,
                now.1,
                now.2
            );
        }
    }
    let end = usage(pid);
    assert_eq!(
        stub.count("GetSecretValue"),
        total as u64,
        "one call per mount"
    );
    eprintln!(
        "{total} {what}: fds {} -> {} (after 50: {}, peak {}), threads {} -> {} (after 50: {}, peak {}), RSS {} -> {} KiB (after 50: {}, peak {})",
        start.0, end.0, after_50.0, peak.0, start.1, end.1, after_50.1, peak.1, start.2, end.2, after_50.2, peak.2
    );
    assert!(
        peak.0 <= after_50.0 + 8,
        "open files grew with {what}: {} after 50 mounts, peak {}",
        after_50.0,
        peak.0
    );
    assert!(
        peak.1 <= after_50.1 + 4,
        "threads grew with {what}: {} after 50 mounts, peak {}",
        after_50.1,
        peak.1
    );
}

/// A few hundred mounts, each with a credential set never seen before (as when every
/// pod brings its own keys, or keys rotate): every client shares one connection pool.
/// `FRESH_CREDENTIAL_MOUNTS` raises the count for a measurement (the figures in docs/security-and-reliability.md).
#[tokio::test]
async fn fresh_credential_sets_keep_open_files_and_threads_flat() {
    let total = count("FRESH_CREDENTIAL_MOUNTS", 300);
    churn("fresh credential sets", total, |i| {
        ("us-east-1".into(), format!("AKIAFRESH{i:011}"))
    })
    .await;
}

/// One identity naming a new well-formed region on every mount (regions AWS does not
/// list): their clients take a few slots of their own. `MADE_UP_REGION_MOUNTS` raises
/// the count.
#[tokio::test]
async fn made_up_regions_keep_open_files_and_threads_flat() {
    let total = count("MADE_UP_REGION_MOUNTS", 200);
    churn("made-up regions", total, |i| {
        (format!("us-made{i}-1"), "AKIAONEIDENTITY".into())
    })
    .await;
}

const KEY_ID: &str = "AKIAZZLOGCANARY7Q4X";
const SECRET: &str = "sk-canary-5f0c2b9e-never-logged";
/// The secret's value: the SDK's trace of a response would print it too.
const VALUE: &str = "sv-canary-91d3-never-logged";

/// The binary at RUST_LOG=trace, every target, in `format`: two mounts signed with
/// distinctive credentials (a fresh client, then a cached one), then all it wrote.
async fn trace_logs(format: &str) -> Option<String> {
    let moto = common::moto::start()?;
    let api = common::fake_apiserver::start().await;
    common::create_secret(&moto.url, "us-east-1", "MySecret", VALUE).await;
    let mut p = provider(&api, &moto.url, "trace", format, true).await;
    // Drained as they are written: at trace the provider would block on a full pipe.
    let readers: Vec<_> = [
        p.child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        p.child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
    ]
    .into_iter()
    .flatten()
    .map(|mut stream| {
        std::thread::spawn(move || {
            let mut text = Vec::new();
            let _ = std::io::Read::read_to_end(&mut stream, &mut text);
            String::from_utf8_lossy(&text).into_owned()
        })
    })
    .collect();
    let target = p._dir.path().join("pod");
    std::fs::create_dir(&target).unwrap();
    mount(&mut p.client, &target, KEY_ID, SECRET).await;
    mount(&mut p.client, &target, KEY_ID, SECRET).await;
    let _ = p.child.kill();
    let _ = p.child.wait();
    Some(
        readers
            .into_iter()
            .map(|r| r.join().unwrap_or_default())
            .collect(),
    )
}

fn assert_no_credential(logs: &str) {
    assert!(
        logs.contains("aws_fetch") && logs.contains("outcome"),
        "the trace shows no AWS fetch and no mount outcome:\n{}",
        &logs[..logs.len().min(4000)]
    );
    for (what, part) in [
        ("access key id", KEY_ID),
        ("secret access key", SECRET),
        ("part of the key id", &KEY_ID[4..]),
        ("secret's value", VALUE),
    ] {
        if let Some(at) = logs.find(part) {
            let line_start = logs[..at].rfind('\n').map_or(0, |n| n + 1);
            let line_end = logs[at..].find('\n').map_or(logs.len(), |n| at + n);
            panic!(
                "the {what} reached the logs:\n{}",
                &logs[line_start..line_end]
            );
        }
    }
}

#[tokio::test]
async fn no_credential_part_in_text_logs_at_trace() {
    if let Some(logs) = trace_logs("text").await {
        assert_no_credential(&logs);
    }
}

#[tokio::test]
async fn no_credential_part_in_json_logs_at_trace() {
    if let Some(logs) = trace_logs("json").await {
        assert_no_credential(&logs);
    }
}
