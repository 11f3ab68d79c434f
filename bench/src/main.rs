//! `storm`: mount storms against the release provider, measured.
//!
//! Starts a fast AWS stub and a fake Kubernetes API server (both in this process), the
//! provider binary as its own process, and fires concurrent Mount calls over its unix
//! socket with a real tonic client. Prints, per scenario, latency percentiles,
//! throughput, AWS and Kubernetes calls, CPU and memory of the provider.
//!
//! `--peer` runs the existing provider beside ours instead (`side_by_side`).
//!
//!     cargo build --release && cargo run --release -p bench
//!     cargo build --release && sudo target/release/storm --peer

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;

mod cgroup;
mod memory;
mod namespace;
mod side_by_side;
mod spread;
mod sweeps;
mod syscalls;
mod tls_front;
use hyper_util::rt::TokioIo;
use provider::adapters::csi::proto::csi_driver_provider_client::CsiDriverProviderClient;
use provider::adapters::csi::proto::MountRequest;
use testkit::{aws_stub, fake_apiserver};
use tonic::transport::{Channel, Endpoint, Uri};

#[derive(Parser, Debug)]
#[command(about = "Mount storms against the provider, measured")]
struct Args {
    /// The provider binary (build it with `cargo build --release`).
    #[arg(
        long,
        default_value = "target/release/secrets-store-csi-driver-provider-aws"
    )]
    provider_bin: PathBuf,
    /// a (storm), b (storm with failover), c (rotation), d (throughput at 0 ms), e (spread
    /// rotation, cache off and on), or all; `soak`, `memory` (under a memory cgroup),
    /// `syscalls` (strace) and `sweeps` (curves) run alone.
    #[arg(long, default_value = "all")]
    scenario: String,
    /// Pods in a storm.
    #[arg(long, default_value_t = 100)]
    mounts: usize,
    /// AWS latency per call, milliseconds (scenarios a–c).
    #[arg(long, default_value_t = 20)]
    latency_ms: u64,
    /// Rotation intervals (scenario c).
    #[arg(long, default_value_t = 10)]
    intervals: usize,
    /// Mounts of the throughput scenario (d).
    #[arg(long, default_value_t = 2000)]
    throughput_mounts: usize,
    /// Pods of the spread rotation scenario (e).
    #[arg(long, default_value_t = 30)]
    spread_pods: usize,
    /// Remount interval of the spread scenario, milliseconds.
    #[arg(long, default_value_t = 3000)]
    spread_interval_ms: u64,
    /// Intervals of the spread scenario.
    #[arg(long, default_value_t = 7)]
    spread_intervals: usize,
    /// Mounts of the soak run (`--scenario soak`, not part of `all`).
    #[arg(long, default_value_t = 20_000)]
    soak_mounts: usize,
    /// Side by side with the existing provider (root): both on the same workloads over
    /// TLS in private namespaces. `--scenario` then names storm, storm-qps, rotation,
    /// throughput, memory, limits (or all).
    #[arg(long)]
    peer: bool,
    /// The existing provider's binary; by default built from its source by
    /// `scripts/peers.py existing-provider build`.
    #[arg(long)]
    peer_bin: Option<PathBuf>,
    /// The existing provider's source: its 3.1.1 tarball or a clone of the v3.1.1 tag
    /// (default: ../shared/peer/secrets-store-csi-driver-provider-aws-3.1.1.tar.gz).
    #[arg(long)]
    peer_source: Option<PathBuf>,
    /// Rounds of each side-by-side scenario.
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// Pods of the side-by-side rotation.
    #[arg(long, default_value_t = 10)]
    rotation_pods: usize,
    /// Remounts of the side-by-side rotation.
    #[arg(long, default_value_t = 5)]
    rotation_intervals: usize,
    /// The existing provider's mounts in the side-by-side throughput scenario (its 5 qps
    /// limit makes `--throughput-mounts` take minutes).
    #[arg(long, default_value_t = 200)]
    peer_throughput_mounts: usize,
}

/// The existing provider's binary: `--peer-bin`, or built from `--peer-source` (or the
/// default tarball) by the script the chart comparison uses too.
fn existing_binary(args: &Args) -> anyhow::Result<PathBuf> {
    if let Some(bin) = &args.peer_bin {
        return Ok(bin.clone());
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/peers.py");
    let mut command = Command::new("python3");
    command
        .arg(script)
        .args(["existing-provider", "build"])
        .stderr(Stdio::inherit());
    if let Some(source) = &args.peer_source {
        command.env("EXISTING_PROVIDER_SOURCE", source);
    }
    let out = command.output()?;
    anyhow::ensure!(
        out.status.success(),
        "building the existing provider failed ({})",
        out.status
    );
    let path = String::from_utf8(out.stdout)?;
    Ok(PathBuf::from(path.trim()))
}

async fn peer(args: &Args) -> anyhow::Result<()> {
    if !namespace::inside() {
        // Built outside: the Go build needs the module proxy, the namespace has no network.
        let bin = existing_binary(args)?;
        let mut extra = Vec::new();
        if args.peer_bin.is_none() {
            extra = vec!["--peer-bin".to_string(), bin.display().to_string()];
        }
        let status = namespace::run_inside(&extra).await?;
        anyhow::ensure!(status.success(), "the side-by-side run failed ({status})");
        return Ok(());
    }
    let scenarios = if args.scenario == "all" {
        side_by_side::SCENARIOS
            .iter()
            .map(|s| s.to_string())
            .collect()
    } else {
        let named: Vec<String> = args.scenario.split(',').map(str::to_string).collect();
        if let Some(unknown) = named
            .iter()
            .find(|n| !side_by_side::SCENARIOS.contains(&n.as_str()))
        {
            anyhow::bail!(
                "no side-by-side scenario {unknown}: {}",
                side_by_side::SCENARIOS.join(", ")
            );
        }
        named
    };
    let existing = args
        .peer_bin
        .clone()
        .ok_or_else(|| anyhow::anyhow!("--peer-bin is missing inside the namespace"))?;
    side_by_side::side_by_side(&side_by_side::PeerArgs {
        ours: std::fs::canonicalize(&args.provider_bin)?,
        existing: std::fs::canonicalize(existing)?,
        scenarios,
        rounds: args.rounds.max(1),
        mounts: args.mounts,
        latency_ms: args.latency_ms,
        rotation_pods: args.rotation_pods,
        rotation_intervals: args.rotation_intervals,
        throughput_mounts: args.throughput_mounts,
        existing_throughput_mounts: args.peer_throughput_mounts,
    })
    .await
}

/// The storm's class: this many secrets and parameters.
const SECRETS: usize = 5;
const PARAMETERS: usize = 12;

fn objects(failover: bool) -> String {
    let mut yaml = String::new();
    for i in 0..SECRETS {
        if failover {
            yaml.push_str(&format!("- {{objectName: app/secret-{i}, objectType: secretsmanager, objectAlias: secret-{i}, failoverObject: {{objectName: app/secret-{i}}}}}\n"));
        } else {
            yaml.push_str(&format!(
                "- {{objectName: app/secret-{i}, objectType: secretsmanager}}\n"
            ));
        }
    }
    for i in 0..PARAMETERS {
        yaml.push_str(&format!(
            "- {{objectName: /app/param-{i}, objectType: ssmparameter}}\n"
        ));
    }
    yaml
}

fn request(pod: usize, target: &Path, failover: bool) -> MountRequest {
    let regions: &[(&str, &str)] = if failover {
        &[("region", "us-east-1"), ("failoverRegion", "us-west-2")]
    } else {
        &[]
    };
    bench_request(
        &format!("app-{pod}"),
        "app",
        &objects(failover),
        regions,
        target,
    )
}

/// The driver's request for pod `pod` (namespace `bench`, an IRSA token) mounting
/// `objects`, with `extra` attributes of the class.
fn bench_request(
    pod: &str,
    service_account: &str,
    objects: &str,
    extra: &[(&str, &str)],
    target: &Path,
) -> MountRequest {
    let tokens = r#"{"sts.amazonaws.com":{"token":"bench-token","expirationTimestamp":"2099-01-01T00:00:00Z"}}"#;
    let mut attributes: HashMap<&str, String> = HashMap::from([
        ("objects", objects.to_string()),
        ("csi.storage.k8s.io/pod.name", pod.to_string()),
        ("csi.storage.k8s.io/pod.namespace", "bench".into()),
        ("csi.storage.k8s.io/pod.uid", format!("uid-{pod}")),
        (
            "csi.storage.k8s.io/serviceAccount.name",
            service_account.into(),
        ),
        ("csi.storage.k8s.io/serviceAccount.tokens", tokens.into()),
    ]);
    attributes.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    MountRequest {
        attributes: serde_json::to_string(&attributes).unwrap_or_default(),
        secrets: "{}".into(),
        target_path: target.display().to_string(),
        permission: "420".into(),
        current_object_version: vec![],
    }
}

struct Provider {
    child: Child,
    socket: PathBuf,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn proc_status(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// user + system CPU seconds of `pid`.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at ") ".
    let rest = stat.rsplit_once(") ").map(|(_, r)| r).unwrap_or("");
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name; 100 Hz.
    (ticks(11) + ticks(12)) / 100.0
}

async fn connect(socket: &Path) -> anyhow::Result<CsiDriverProviderClient<Channel>> {
    let socket = socket.to_path_buf();
    let channel = Endpoint::try_from("http://localhost")?
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let socket = socket.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(
                    tokio::net::UnixStream::connect(socket).await?,
                ))
            }
        }))
        .await?;
    Ok(CsiDriverProviderClient::new(channel))
}

async fn start_provider(
    bin: &Path,
    dir: &Path,
    api: &fake_apiserver::FakeApi,
    aws_url: &str,
) -> anyhow::Result<Provider> {
    start_provider_with(Command::new(bin), dir, api, aws_url).await
}

/// `command` is the provider binary, or a wrapper that execs it (cgroup, namespace).
async fn start_provider_with(
    mut command: Command,
    dir: &Path,
    api: &fake_apiserver::FakeApi,
    aws_url: &str,
) -> anyhow::Result<Provider> {
    let kubeconfig = dir.join("kubeconfig");
    api.write_kubeconfig(&kubeconfig)?;
    let volume = dir.join("providers");
    if !command
        .get_args()
        .any(|a| a.to_string_lossy().starts_with("--metrics-addr"))
    {
        command.arg("--metrics-addr=");
    }
    let child = command
        .arg(format!("--provider-volume={}", volume.display()))
        .arg("--log-level=warn")
        .env("KUBECONFIG", &kubeconfig)
        .env_remove("KUBERNETES_SERVICE_HOST")
        .env("NODE_NAME", "node-1")
        .env("AWS_ENDPOINT_URL", aws_url)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_REGION")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ACCESS_KEY_ID")
        .stderr(Stdio::null())
        .spawn()?;
    let socket = volume.join("aws.sock");
    let started = Instant::now();
    while !socket.exists() {
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(30),
            "the provider did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Let the watches list (start-up requests are not counted).
    tokio::time::sleep(Duration::from_millis(500)).await;
    Ok(Provider { child, socket })
}

struct Run {
    latencies: Vec<Duration>,
    wall: Duration,
    failures: usize,
}

/// `pods` mounts, at most `parallel` at once.
async fn storm(
    client: &CsiDriverProviderClient<Channel>,
    dir: &Path,
    pods: std::ops::Range<usize>,
    parallel: usize,
    failover: bool,
) -> Run {
    use futures::StreamExt;
    let started = Instant::now();
    let results: Vec<Result<Duration, String>> = futures::stream::iter(pods)
        .map(|pod| {
            let mut client = client.clone();
            let target = dir.join(format!("pod-{pod}"));
            async move {
                let _ = std::fs::create_dir_all(&target);
                let t = Instant::now();
                client
                    .mount(request(pod, &target, failover))
                    .await
                    .map(|_| t.elapsed())
                    .map_err(|s| s.message().to_string())
            }
        })
        .buffer_unordered(parallel)
        .collect()
        .await;
    let wall = started.elapsed();
    let failures = results.iter().filter(|r| r.is_err()).count();
    if let Some(Err(first)) = results.iter().find(|r| r.is_err()) {
        eprintln!("first failure: {first}");
    }
    Run {
        latencies: results.into_iter().filter_map(Result::ok).collect(),
        wall,
        failures,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1000.0
}

struct Report {
    name: String,
    mounts: usize,
    run: Run,
    aws: HashMap<String, u64>,
    k8s: usize,
    cpu: f64,
    peak_rss_kib: u64,
    idle_rss_kib: u64,
}

fn print(report: &Report) {
    let mut sorted = report.run.latencies.clone();
    sorted.sort();
    let aws_total: u64 = report.aws.values().sum();
    let sts = report
        .aws
        .get("AssumeRoleWithWebIdentity")
        .copied()
        .unwrap_or(0);
    println!("\n### {}\n", report.name);
    println!("| measure | this provider |");
    println!("|---|---|");
    println!(
        "| mounts (failed) | {} ({}) |",
        report.mounts, report.run.failures
    );
    println!(
        "| p50 / p95 / p99 / max mount latency | {:.1} / {:.1} / {:.1} / {:.1} ms |",
        percentile(&sorted, 0.5),
        percentile(&sorted, 0.95),
        percentile(&sorted, 0.99),
        percentile(&sorted, 1.0)
    );
    println!(
        "| throughput | {:.0} mounts/s |",
        report.mounts as f64 / report.run.wall.as_secs_f64()
    );
    let mut ops: Vec<_> = report.aws.iter().collect();
    ops.sort();
    let ops: Vec<String> = ops.iter().map(|(k, v)| format!("{k} {v}")).collect();
    println!("| AWS calls | {aws_total} ({}) |", ops.join(", "));
    println!("| STS calls | {sts} |");
    println!("| Kubernetes requests after start-up | {} |", report.k8s);
    println!(
        "| provider CPU (user+sys) | {:.2} s ({:.3} ms per mount) |",
        report.cpu,
        report.cpu * 1000.0 / report.mounts.max(1) as f64
    );
    println!(
        "| peak RSS (VmHWM) / idle RSS after start | {:.1} MiB / {:.1} MiB |",
        report.peak_rss_kib as f64 / 1024.0,
        report.idle_rss_kib as f64 / 1024.0
    );
}

fn by_operation(counts: &HashMap<(String, String), u64>) -> HashMap<String, u64> {
    let mut out = HashMap::new();
    for ((op, _), n) in counts {
        *out.entry(op.clone()).or_default() += n;
    }
    out
}

/// Pods' volumes are tmpfs: so are the bench's targets when the machine has one.
fn volume_dir() -> anyhow::Result<tempfile::TempDir> {
    let shm = Path::new("/dev/shm");
    Ok(if shm.is_dir() {
        tempfile::tempdir_in(shm)?
    } else {
        tempfile::tempdir()?
    })
}

/// The fake API server every scenario uses: the bench service account with its role,
/// and the node with its region.
pub(crate) async fn fake_cluster() -> fake_apiserver::FakeApi {
    let api = fake_apiserver::start().await;
    api.set_service_account(
        "bench",
        "app",
        Some("arn:aws:iam::123456789012:role/bench"),
        false,
    );
    api.set_node("node-1", Some("us-east-1"));
    api
}

async fn scenario(args: &Args, name: &str) -> anyhow::Result<Report> {
    let dir = volume_dir()?;
    let latency = if name == "d" { 0 } else { args.latency_ms };
    let stub = aws_stub::start(Duration::from_millis(latency)).await?;
    let api = fake_cluster().await;
    let provider = start_provider(&args.provider_bin, dir.path(), &api, &stub.url).await?;
    let pid = provider.child.id();
    let idle_rss_kib = proc_status(pid, "VmRSS:");
    let client = connect(&provider.socket).await?;
    let gets_before = api.total_gets();
    let cpu_before = cpu_seconds(pid);
    let failover = name == "b";
    let (title, run, mounts) = match name {
        "a" | "b" => {
            let run = storm(&client, dir.path(), 0..args.mounts, args.mounts, failover).await;
            let title = if failover {
                format!("(b) storm with failover: {} pods, {SECRETS} secrets + {PARAMETERS} parameters, 2 regions, {latency} ms AWS latency", args.mounts)
            } else {
                format!("(a) storm: {} pods, {SECRETS} secrets + {PARAMETERS} parameters, one service account, no region attribute, {latency} ms AWS latency", args.mounts)
            };
            (title, run, args.mounts)
        }
        "c" => {
            let mut all = Run {
                latencies: Vec::new(),
                wall: Duration::ZERO,
                failures: 0,
            };
            for interval in 0..=args.intervals {
                if interval > 0 && interval.is_multiple_of(3) {
                    stub.rotate();
                }
                let run = storm(&client, dir.path(), 0..args.mounts, args.mounts, false).await;
                all.latencies.extend(run.latencies);
                all.wall += run.wall;
                all.failures += run.failures;
            }
            let total = args.mounts * (args.intervals + 1);
            let title = format!("(c) rotation: {} pods remounting for {} intervals (secrets change every 3rd), {latency} ms AWS latency", args.mounts, args.intervals);
            (title, all, total)
        }
        _ => {
            let run = storm(&client, dir.path(), 0..args.throughput_mounts, 32, false).await;
            let title = format!(
                "(d) throughput: {} mounts, 32 at a time, 0 ms AWS latency",
                args.throughput_mounts
            );
            (title, run, args.throughput_mounts)
        }
    };
    let report = Report {
        name: title,
        mounts,
        run,
        aws: by_operation(&stub.counts()),
        k8s: api.total_gets() - gets_before,
        cpu: cpu_seconds(pid) - cpu_before,
        peak_rss_kib: proc_status(pid, "VmHWM:"),
        idle_rss_kib,
    };
    drop(provider);
    Ok(report)
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0)
}

/// Many mounts over rotating secrets: RSS and open descriptors sampled as it goes.
async fn soak(args: &Args) -> anyhow::Result<()> {
    let dir = volume_dir()?;
    let stub = aws_stub::start(Duration::ZERO).await?;
    let api = fake_cluster().await;
    let provider = start_provider(&args.provider_bin, dir.path(), &api, &stub.url).await?;
    let pid = provider.child.id();
    let client = connect(&provider.socket).await?;
    let round = 200usize;
    let rounds = args.soak_mounts.div_ceil(round);
    println!(
        "\n### soak: {} mounts in rounds of {round} pods, secrets rotating every round\n",
        rounds * round
    );
    println!("| mounts done | RSS | open fds | failures | CPU s |");
    println!("|---|---|---|---|---|");
    let mut failures = 0;
    let started = Instant::now();
    for r in 0..rounds {
        stub.rotate();
        let run = storm(&client, dir.path(), 0..round, 50, false).await;
        failures += run.failures;
        let done = (r + 1) * round;
        if r == 0 || done.is_multiple_of(2000) || r + 1 == rounds {
            println!(
                "| {done} | {:.1} MiB | {} | {failures} | {:.1} |",
                proc_status(pid, "VmRSS:") as f64 / 1024.0,
                open_fds(pid),
                cpu_seconds(pid)
            );
        }
    }
    println!(
        "\n{} mounts in {:.0} s; peak RSS {:.1} MiB",
        rounds * round,
        started.elapsed().as_secs_f64(),
        proc_status(pid, "VmHWM:") as f64 / 1024.0
    );
    anyhow::ensure!(failures == 0, "{failures} mounts failed");
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.provider_bin.exists(),
        "{} not found: build it with `cargo build --release`",
        args.provider_bin.display()
    );
    let _ = rustls::crypto::ring::default_provider().install_default();
    if args.peer {
        return peer(&args).await;
    }
    if args.scenario == "soak" {
        return soak(&args).await;
    }
    if args.scenario == "memory" {
        return memory::memory(&args.provider_bin).await;
    }
    if args.scenario == "syscalls" {
        return syscalls::syscalls(&args.provider_bin).await;
    }
    if args.scenario == "sweeps" {
        return sweeps::sweeps(&args.provider_bin).await;
    }
    let scenarios: Vec<&str> = if args.scenario == "all" {
        vec!["a", "b", "c", "d", "e"]
    } else {
        args.scenario.split(',').collect()
    };
    println!(
        "provider: {} ({} bytes)",
        args.provider_bin.display(),
        std::fs::metadata(&args.provider_bin)?.len()
    );
    let mut failed = 0;
    for name in scenarios {
        if name == "e" {
            let s = spread::Spread {
                pods: args.spread_pods,
                interval: Duration::from_millis(args.spread_interval_ms),
                intervals: args.spread_intervals,
            };
            spread::spread(&args.provider_bin, &s).await?;
            continue;
        }
        let report = scenario(&args, name).await?;
        failed += report.run.failures;
        print(&report);
    }
    anyhow::ensure!(failed == 0, "{failed} mounts failed");
    Ok(())
}
