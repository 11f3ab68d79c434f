//! `storm --peer`: the existing provider (3.1.1, built from its source) and ours on the
//! same workloads, doubles and path, in the same run, one provider at a time, the order
//! alternating between rounds. Both reach AWS over TLS by real host names and Kubernetes
//! in-cluster over TLS (`namespace`, `tls_front`); the pods' targets are on tmpfs.
//! Each scenario prints one table: both providers' measures (the spread over the rounds)
//! and how many times better ours is.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use futures::StreamExt;
use testkit::aws_stub;

use crate::cgroup::{Cgroup, Limits};
use crate::namespace::{self, World};
use crate::tls_front::{self, Front};
use crate::{bench_request, connect, fake_cluster, percentile, proc_status, PARAMETERS, SECRETS};

/// The regions the workloads use; their AWS host names go to 127.0.0.1.
const REGIONS: [&str; 2] = ["us-east-1", "us-west-2"];
/// The chart's limits for the provider container.
const CHART_CPU_MILLIS: u64 = 50;
const CHART_MEMORY: u64 = 100 * 1024 * 1024;
/// The existing provider's flags that lift its Kubernetes client limiter.
const RAISED_QPS: &[&str] = &["--qps=1000", "--burst=1000"];

pub struct PeerArgs {
    pub ours: PathBuf,
    pub existing: PathBuf,
    pub scenarios: Vec<String>,
    pub rounds: usize,
    pub mounts: usize,
    pub latency_ms: u64,
    pub rotation_pods: usize,
    pub rotation_intervals: usize,
    pub throughput_mounts: usize,
    pub existing_throughput_mounts: usize,
}

pub const SCENARIOS: [&str; 6] = [
    "storm",
    "storm-qps",
    "rotation",
    "throughput",
    "memory",
    "limits",
];

#[derive(Clone, Copy, PartialEq, Debug)]
enum Who {
    Existing,
    Ours,
}

/// One provider's run of one scenario.
#[derive(Default)]
struct Sample {
    mounts: usize,
    failed: usize,
    /// Sorted.
    latencies: Vec<Duration>,
    wall: f64,
    cpu: f64,
    idle_rss_kib: u64,
    peak_rss_kib: u64,
    aws: BTreeMap<String, u64>,
    k8s: usize,
    first_failure: Option<String>,
}

/// The mounts of a scenario, as (pod, round of remounts).
struct Workload {
    pods: usize,
    /// Remount rounds after the first (rotation); the stub rotates every second one.
    remounts: usize,
    parallel: usize,
    objects: String,
    region: bool,
    latency: Duration,
    value_bytes: u64,
    existing_flags: &'static [&'static str],
    limits: Option<Limits>,
}

fn objects(secrets: usize, parameters: usize) -> String {
    let mut yaml = String::new();
    for i in 0..secrets {
        yaml.push_str(&format!(
            "- {{objectName: app/secret-{i}, objectType: secretsmanager}}\n"
        ));
    }
    for i in 0..parameters {
        yaml.push_str(&format!(
            "- {{objectName: /app/param-{i}, objectType: ssmparameter}}\n"
        ));
    }
    yaml
}

fn workload(args: &PeerArgs, scenario: &str, who: Who) -> (String, Workload) {
    let latency = Duration::from_millis(args.latency_ms);
    let storm = Workload {
        pods: args.mounts,
        remounts: 0,
        parallel: args.mounts,
        objects: objects(SECRETS, PARAMETERS),
        region: false,
        latency,
        value_bytes: 0,
        existing_flags: &[],
        limits: None,
    };
    let l = args.latency_ms;
    let m = args.mounts;
    match scenario {
        "storm-qps" => (
            format!("storm, the existing provider with `{}`: {m} pods at once, {SECRETS} secrets + {PARAMETERS} parameters, no region attribute, {l} ms per AWS call", RAISED_QPS.join(" ")),
            Workload { existing_flags: RAISED_QPS, ..storm },
        ),
        "rotation" => {
            let pods = args.rotation_pods;
            let i = args.rotation_intervals;
            (
                format!("rotation: {pods} pods mounted, then remounted {i} times (every remount of the driver's rotation), the values changing every 2nd time, {l} ms per AWS call"),
                Workload { pods, remounts: i, parallel: pods, ..storm },
            )
        }
        "throughput" => {
            let pods = match who {
                Who::Ours => args.throughput_mounts,
                Who::Existing => args.existing_throughput_mounts,
            };
            (
                format!("throughput: many mounts of 1 secret + 1 parameter with a region attribute, 32 at a time, 0 ms per AWS call; {} mounts for ours, {} for the existing provider (its 5 qps Kubernetes limit makes {} take {} min)",
                    args.throughput_mounts, args.existing_throughput_mounts, args.throughput_mounts, args.throughput_mounts / 5 / 60),
                Workload { pods, parallel: 32, objects: objects(1, 1), region: true, latency: Duration::ZERO, ..storm },
            )
        }
        "memory" => {
            let pods = (m / 2).max(1);
            (
                format!("memory: {pods} pods at once, {SECRETS} secrets of 60,000 bytes + {PARAMETERS} parameters, {l} ms per AWS call"),
                Workload { pods, parallel: pods, value_bytes: 60_000, ..storm },
            )
        }
        "limits" => (
            format!("storm under the chart's limits (a cgroup with a {CHART_CPU_MILLIS}m CPU quota and {} MiB of memory): {m} pods at once, {SECRETS} secrets + {PARAMETERS} parameters, {l} ms per AWS call", CHART_MEMORY >> 20),
            Workload { limits: Some(Limits { memory_bytes: Some(CHART_MEMORY), cpu_millis: Some(CHART_CPU_MILLIS) }), ..storm },
        ),
        _ => (
            format!("storm: {m} pods at once, {SECRETS} secrets + {PARAMETERS} parameters, one service account, no region attribute (the region comes from the node), {l} ms per AWS call"),
            storm,
        ),
    }
}

/// The run's doubles behind their TLS fronts.
struct Stage {
    world: World,
    aws: Front,
    api: Front,
}

fn host_names() -> Vec<String> {
    let mut names = vec!["127.0.0.1".to_string(), "sts.amazonaws.com".to_string()];
    for region in REGIONS {
        for service in ["sts", "secretsmanager", "ssm"] {
            names.push(format!("{service}.{region}.amazonaws.com"));
        }
    }
    names
}

async fn stage() -> anyhow::Result<Stage> {
    let names = host_names();
    let pki = tls_front::pki(&names)?;
    let world = namespace::prepare(&names, &pki.ca_pem)?;
    let aws = Front::start(SocketAddr::from(([127, 0, 0, 1], 443)), &pki).await?;
    let api = Front::start(SocketAddr::from(([127, 0, 0, 1], 0)), &pki).await?;
    Ok(Stage { world, aws, api })
}

struct Running {
    child: std::process::Child,
    socket: PathBuf,
    log: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(
    stage: &Stage,
    who: Who,
    bin: &Path,
    dir: &Path,
    work: &Workload,
    cgroup: &Cgroup,
) -> anyhow::Result<Running> {
    let volume = dir.join("providers");
    std::fs::create_dir_all(&volume)?;
    let mut command = cgroup.wrap(bin);
    command.arg(format!("--provider-volume={}", volume.display()));
    if who == Who::Existing {
        command.args(work.existing_flags);
    }
    let log = dir.join("provider.log");
    // In a cluster each provider has only what the pod spec gives it: the in-cluster
    // service-account files, the node name, the CA bundle. Nothing of the bench's own.
    command
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        .env("KUBERNETES_SERVICE_PORT", stage.api.addr.port().to_string())
        .env("SSL_CERT_FILE", &stage.world.ca_file)
        .env("NODE_NAME", "node-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("HOME", dir)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log)?);
    let child = command.spawn()?;
    Ok(Running {
        child,
        socket: volume.join("aws.sock"),
        log,
    })
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(5)..].join("\n")
}

async fn wait_ready(running: &mut Running) -> anyhow::Result<()> {
    let started = Instant::now();
    while !running.socket.exists() {
        if let Some(status) = running.child.try_wait()? {
            anyhow::bail!(
                "the provider exited ({status}):\n{}",
                log_tail(&running.log)
            );
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(60),
            "the provider did not open its socket:\n{}",
            log_tail(&running.log)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Start-up settles (watches listed, connections made): not part of any mount.
    tokio::time::sleep(Duration::from_secs(1)).await;
    Ok(())
}

async fn run_one(
    stage: &Stage,
    args: &PeerArgs,
    scenario: &str,
    who: Who,
    round: usize,
) -> anyhow::Result<Sample> {
    let (_, work) = workload(args, scenario, who);
    let stub = aws_stub::start(work.latency).await?;
    if work.value_bytes > 0 {
        stub.set_value_bytes(work.value_bytes);
    }
    let api = fake_cluster().await;
    for pod in 0..work.pods {
        api.set_pod("bench", &format!("app-{pod}"), "node-1");
    }
    stage.aws.point_at(&stub.url)?;
    stage.api.point_at(&api.url)?;
    let dir = stage
        .world
        .volumes
        .join(format!("{scenario}-{who:?}-{round}").to_lowercase());
    // Every provider runs in a cgroup of its own, for exact CPU accounting; only the
    // limits scenario gives it limits.
    let cgroup = Cgroup::create(
        &format!("{}{scenario}-{who:?}-{round}", namespace::cgroup_prefix()),
        work.limits.unwrap_or_default(),
    )?;
    let bin = match who {
        Who::Ours => &args.ours,
        Who::Existing => &args.existing,
    };
    let mut running = start(stage, who, bin, &dir, &work, &cgroup)?;
    wait_ready(&mut running).await?;
    let pid = running.child.id();
    let client = connect(&running.socket).await?;
    let idle_rss_kib = proc_status(pid, "VmRSS:");
    stub.reset();
    let k8s_before = k8s_requests(&api);
    let cpu_before = cgroup.cpu_ns();
    let region: &[(&str, &str)] = if work.region {
        &[("region", "us-east-1")]
    } else {
        &[]
    };
    let started = Instant::now();
    let mut results: Vec<Result<Duration, String>> = Vec::new();
    for remount in 0..=work.remounts {
        if remount > 0 && remount % 2 == 0 {
            stub.rotate();
        }
        let batch: Vec<Result<Duration, String>> = futures::stream::iter(0..work.pods)
            .map(|pod| {
                let mut client = client.clone();
                let target = dir.join(format!("pod-{pod}"));
                let request =
                    bench_request(&format!("app-{pod}"), "app", &work.objects, region, &target);
                async move {
                    let _ = std::fs::create_dir_all(&target);
                    let t = Instant::now();
                    client
                        .mount(request)
                        .await
                        .map(|_| t.elapsed())
                        .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
                }
            })
            .buffer_unordered(work.parallel)
            .collect()
            .await;
        results.extend(batch);
    }
    let wall = started.elapsed().as_secs_f64();
    let cpu = cgroup.cpu_ns().saturating_sub(cpu_before) as f64 / 1e9;
    let peak_rss_kib = proc_status(pid, "VmHWM:");
    let k8s = k8s_requests(&api) - k8s_before;
    let mut aws = BTreeMap::new();
    for ((op, _), n) in stub.counts() {
        *aws.entry(op).or_default() += n;
    }
    let first_failure = results.iter().find_map(|r| r.clone().err());
    let mut latencies: Vec<Duration> = results.iter().filter_map(|r| r.clone().ok()).collect();
    latencies.sort();
    let failed = results.len() - latencies.len();
    if let Some(failure) = &first_failure {
        eprintln!(
            "  {who:?}: {failed} of {} mounts failed; first: {failure}\n  its log ends:\n{}",
            results.len(),
            log_tail(&running.log)
        );
    }
    drop(client);
    drop(running);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(Sample {
        mounts: results.len(),
        failed,
        latencies,
        wall,
        cpu,
        idle_rss_kib,
        peak_rss_kib,
        aws,
        k8s,
        first_failure,
    })
}

/// Every request the API server saw: single reads, lists and watches.
fn k8s_requests(api: &testkit::fake_apiserver::FakeApi) -> usize {
    let state = api.state.lock().unwrap_or_else(|p| p.into_inner());
    state.gets.values().sum::<usize>() + state.lists + state.watches
}

/// How a measure reads: its unit, and whether less is better.
#[derive(Clone, Copy)]
enum Unit {
    Millis,
    PerSecond,
    MiB,
    Count,
    Megabytes,
}

fn show(unit: Unit, v: f64) -> String {
    match unit {
        Unit::Millis if v >= 1000.0 => format!("{:.2} s", v / 1000.0),
        Unit::Millis if v >= 100.0 => format!("{v:.0} ms"),
        Unit::Millis => format!("{v:.1} ms"),
        Unit::PerSecond => format!("{v:.1}/s"),
        Unit::MiB => format!("{v:.1} MiB"),
        Unit::Megabytes => format!("{v:.1} MB"),
        Unit::Count => format!("{v:.0}"),
    }
}

fn bounds(values: &[f64]) -> (f64, f64) {
    let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (lo, hi)
}

/// The spread of the rounds: "a" when they agree, else "a – b".
fn spread(unit: Unit, values: &[f64]) -> String {
    let (lo, hi) = bounds(values);
    let (a, b) = (show(unit, lo), show(unit, hi));
    if a == b {
        a
    } else {
        format!("{a} – {b}")
    }
}

/// How many times better ours is, as the range the rounds allow: the least favourable
/// pairing of rounds to the most favourable.
fn ratio(unit: Unit, existing: &[f64], ours: &[f64]) -> String {
    let (e_lo, e_hi) = bounds(existing);
    let (o_lo, o_hi) = bounds(ours);
    let (lo, hi) = match unit {
        Unit::PerSecond => (o_lo / e_hi, o_hi / e_lo),
        _ => (e_lo / o_hi, e_hi / o_lo),
    };
    if !lo.is_finite() || !hi.is_finite() {
        return if e_hi > 0.0 && o_hi == 0.0 {
            "none needed".into()
        } else {
            "–".into()
        };
    }
    let f = |x: f64| {
        if x >= 10.0 {
            format!("{x:.0}")
        } else {
            format!("{x:.1}")
        }
    };
    if f(lo) == f(hi) {
        format!("{}×", f(lo))
    } else {
        format!("{}–{}×", f(lo), f(hi))
    }
}

fn row(name: &str, unit: Unit, existing: &[Sample], ours: &[Sample], of: impl Fn(&Sample) -> f64) {
    let e: Vec<f64> = existing.iter().map(&of).collect();
    let o: Vec<f64> = ours.iter().map(&of).collect();
    println!(
        "| {name} | {} | {} | {} |",
        spread(unit, &e),
        spread(unit, &o),
        ratio(unit, &e, &o)
    );
}

/// A row that is a fact of the run, not a measure to compare.
fn fact(name: &str, existing: &[Sample], ours: &[Sample], of: impl Fn(&Sample) -> f64) {
    let e: Vec<f64> = existing.iter().map(&of).collect();
    let o: Vec<f64> = ours.iter().map(&of).collect();
    println!(
        "| {name} | {} | {} | |",
        spread(Unit::Count, &e),
        spread(Unit::Count, &o)
    );
}

fn table(title: &str, existing: &[Sample], ours: &[Sample], sizes: (u64, u64)) {
    println!("\n### {title}\n");
    println!(
        "| measure ({} rounds) | existing 3.1.1 | ours | ours better by |",
        ours.len()
    );
    println!("|---|---|---|---|");
    fact("mounts", existing, ours, |s| s.mounts as f64);
    fact("failed mounts", existing, ours, |s| s.failed as f64);
    for (name, p) in [("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("max", 1.0)] {
        row(
            &format!("{name} mount latency"),
            Unit::Millis,
            existing,
            ours,
            |s| percentile(&s.latencies, p),
        );
    }
    row("throughput", Unit::PerSecond, existing, ours, |s| {
        (s.mounts - s.failed) as f64 / s.wall.max(1e-9)
    });
    row("CPU per mount", Unit::Millis, existing, ours, |s| {
        s.cpu * 1000.0 / s.mounts.max(1) as f64
    });
    row("idle RSS", Unit::MiB, existing, ours, |s| {
        s.idle_rss_kib as f64 / 1024.0
    });
    row("peak RSS", Unit::MiB, existing, ours, |s| {
        s.peak_rss_kib as f64 / 1024.0
    });
    println!(
        "| binary size | {} | {} | {} |",
        show(Unit::Megabytes, sizes.0 as f64 / 1e6),
        show(Unit::Megabytes, sizes.1 as f64 / 1e6),
        ratio(Unit::Megabytes, &[sizes.0 as f64], &[sizes.1 as f64])
    );
    let mut operations: Vec<String> = existing
        .iter()
        .chain(ours)
        .flat_map(|s| s.aws.keys().cloned())
        .collect();
    operations.sort();
    operations.dedup();
    row("AWS calls", Unit::Count, existing, ours, |s| {
        s.aws.values().sum::<u64>() as f64
    });
    for op in operations {
        row(&format!("– {op}"), Unit::Count, existing, ours, |s| {
            s.aws.get(&op).copied().unwrap_or(0) as f64
        });
    }
    row(
        "Kubernetes requests (after start-up)",
        Unit::Count,
        existing,
        ours,
        |s| s.k8s as f64,
    );
    for (who, samples) in [("existing", existing), ("ours", ours)] {
        if let Some(f) = samples.iter().find_map(|s| s.first_failure.as_ref()) {
            println!("\n{who}: first failure: {}", f.replace('|', "/"));
        }
    }
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cores} × {cpu}, Linux {}", kernel.trim())
}

/// Inside the namespaces: every scenario, `rounds` times each, the providers alternating.
pub async fn side_by_side(args: &PeerArgs) -> anyhow::Result<()> {
    let stage = stage().await?;
    let sizes = (
        std::fs::metadata(&args.existing)?.len(),
        std::fs::metadata(&args.ours)?.len(),
    );
    println!("## Side by side: the existing provider 3.1.1 and ours\n");
    println!("- machine: {}", machine());
    println!(
        "- existing: {} ({} bytes); ours: {} ({} bytes)",
        args.existing.display(),
        sizes.0,
        args.ours.display(),
        sizes.1
    );
    println!("- both over TLS to AWS by real host names and to Kubernetes in-cluster, in a private network namespace; targets on tmpfs; {} rounds, the order alternating", args.rounds);
    let mut failed = 0;
    for scenario in &args.scenarios {
        let (title, _) = workload(args, scenario, Who::Ours);
        let mut existing = Vec::new();
        let mut ours = Vec::new();
        for round in 0..args.rounds {
            let order = if round % 2 == 0 {
                [Who::Existing, Who::Ours]
            } else {
                [Who::Ours, Who::Existing]
            };
            for who in order {
                eprintln!(
                    "{scenario}: round {} of {}, {who:?}",
                    round + 1,
                    args.rounds
                );
                let sample = run_one(&stage, args, scenario, who, round).await?;
                match who {
                    Who::Existing => existing.push(sample),
                    Who::Ours => {
                        failed += sample.failed;
                        ours.push(sample)
                    }
                }
            }
        }
        table(&title, &existing, &ours, sizes);
    }
    anyhow::ensure!(failed == 0, "{failed} of our mounts failed");
    Ok(())
}
