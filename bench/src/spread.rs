//! `--scenario spread`: rotation as the kubelet does it. N pods on one node remount
//! every interval, each on its own clock (offsets spread uniformly over the interval,
//! not in bursts), for several intervals, with the values rotated twice in between.
//! Run with the value cache off, then on (TTL = one interval), against the same stub:
//! AWS calls per interval, rotation latency (from a change in the stub to the new
//! version in every pod's mount), and what the cache holds.

use std::path::Path;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use testkit::aws_stub;

use super::{
    connect, fake_cluster, proc_status, request, start_provider_with, volume_dir, PARAMETERS,
    SECRETS,
};

pub(crate) struct Spread {
    pub pods: usize,
    pub interval: Duration,
    pub intervals: usize,
}

/// Intervals during which the stub's values change (a third into each).
const ROTATE_IN: [usize; 2] = [1, 4];

struct Outcome {
    /// AWS calls (all operations, STS included) in each interval.
    calls: Vec<u64>,
    /// Per rotation: time until every pod's mount showed the new version, if it did.
    latencies: Vec<Option<Duration>>,
    failures: usize,
    cache_entries: u64,
    cache_bytes: u64,
    rss_kib: u64,
}

pub(crate) async fn spread(bin: &Path, s: &Spread) -> anyhow::Result<()> {
    anyhow::ensure!(
        s.intervals > ROTATE_IN[1] + 2,
        "--intervals must be at least {} so both rotations can reach every pod",
        ROTATE_IN[1] + 3
    );
    let off = run(bin, s, None).await?;
    let on = run(bin, s, Some(s.interval)).await?;
    let per_interval = |o: &Outcome| {
        // The first interval mounts every pod for the first time (cold).
        let steady = &o.calls[1..];
        steady.iter().sum::<u64>() as f64 / steady.len() as f64
    };
    let secs = s.interval.as_secs_f64();
    let latency = |o: &Outcome| -> String {
        o.latencies
            .iter()
            .map(|l| match l {
                Some(d) => format!("{:.2}", d.as_secs_f64() / secs),
                None => "not within the run".into(),
            })
            .collect::<Vec<_>>()
            .join(" / ")
    };
    println!(
        "\n### (e) spread rotation: {} pods of one class ({SECRETS} secrets + {PARAMETERS} parameters) remounting once per interval at uniformly spread offsets, {} intervals, values rotated in intervals {} and {}\n",
        s.pods, s.intervals, ROTATE_IN[0], ROTATE_IN[1]
    );
    println!("| measure | cache off | cache on (TTL = 1 interval) |");
    println!("|---|---|---|");
    println!(
        "| AWS calls per interval (steady state, STS included) | {:.1} | {:.1} |",
        per_interval(&off),
        per_interval(&on)
    );
    println!(
        "| AWS calls in each interval | {:?} | {:?} |",
        off.calls, on.calls
    );
    println!(
        "| rotation latency, in intervals, per rotation (until every pod has the new version) | {} | {} |",
        latency(&off),
        latency(&on)
    );
    println!(
        "| value cache held at the end | {} entries, {} bytes | {} entries, {} bytes |",
        off.cache_entries, off.cache_bytes, on.cache_entries, on.cache_bytes
    );
    println!(
        "| provider RSS at the end | {:.1} MiB | {:.1} MiB |",
        off.rss_kib as f64 / 1024.0,
        on.rss_kib as f64 / 1024.0
    );
    println!("| failed mounts | {} | {} |", off.failures, on.failures);
    anyhow::ensure!(
        off.failures + on.failures == 0,
        "mounts failed in the spread scenario"
    );
    Ok(())
}

/// A free port on 127.0.0.1 for the provider's metrics endpoint.
fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// One sample of the provider's `/metrics`.
async fn scrape(addr: &str) -> anyhow::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: bench\r\nConnection: close\r\n\r\n")
        .await?;
    let mut text = String::new();
    stream.read_to_string(&mut text).await?;
    Ok(text)
}

fn gauge(metrics: &str, name: &str) -> u64 {
    let full = format!("secrets_store_provider_aws_{name} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&full)?.trim().parse().ok())
        .unwrap_or(0)
}

/// (pod, when, epoch of the secret's version) of every successful remount.
type Seen = Arc<Mutex<Vec<(usize, Instant, u64)>>>;

/// When every pod had mounted epoch `epoch` or later, from `rotated`; None if some never did.
fn reached_all(
    seen: &[(usize, Instant, u64)],
    pods: usize,
    epoch: u64,
    rotated: Instant,
) -> Option<Duration> {
    (0..pods)
        .map(|pod| {
            seen.iter()
                .filter(|(p, at, e)| *p == pod && *e >= epoch && *at >= rotated)
                .map(|(_, at, _)| *at)
                .min()
        })
        .collect::<Option<Vec<Instant>>>()?
        .into_iter()
        .max()
        .map(|last| last.saturating_duration_since(rotated))
}

async fn run(bin: &Path, s: &Spread, ttl: Option<Duration>) -> anyhow::Result<Outcome> {
    let dir = volume_dir()?;
    let stub = aws_stub::start(Duration::from_millis(20)).await?;
    let api = fake_cluster().await;
    let metrics_addr = format!("127.0.0.1:{}", free_port()?);
    let mut command = Command::new(bin);
    command.arg(format!("--metrics-addr={metrics_addr}"));
    if let Some(ttl) = ttl {
        command.arg(format!("--value-cache-ttl={}ms", ttl.as_millis()));
    }
    let provider = start_provider_with(command, dir.path(), &api, &stub.url).await?;
    let client = connect(&provider.socket).await?;
    let seen: Seen = Arc::default();
    let failures = Arc::new(Mutex::new(0usize));
    let start = tokio::time::Instant::now() + Duration::from_millis(100);
    let mut pods = Vec::new();
    for pod in 0..s.pods {
        let (client, seen, failures) = (client.clone(), seen.clone(), failures.clone());
        let target = dir.path().join(format!("pod-{pod}"));
        std::fs::create_dir_all(&target)?;
        // Half a slot in, so no remount sits on an interval's boundary.
        let offset = s.interval.mul_f64((pod as f64 + 0.5) / s.pods as f64);
        let (interval, intervals) = (s.interval, s.intervals);
        pods.push(tokio::spawn(async move {
            let mut client = client;
            for k in 0..intervals {
                tokio::time::sleep_until(start + interval * k as u32 + offset).await;
                match client.mount(request(pod, &target, false)).await {
                    Ok(r) => {
                        let epoch = r
                            .into_inner()
                            .object_version
                            .into_iter()
                            .find(|v| v.id == "app_secret-0")
                            .and_then(|v| v.version.strip_prefix('v')?.parse().ok())
                            .unwrap_or(0);
                        seen.lock().unwrap_or_else(|p| p.into_inner()).push((
                            pod,
                            Instant::now(),
                            epoch,
                        ));
                    }
                    Err(_) => *failures.lock().unwrap_or_else(|p| p.into_inner()) += 1,
                }
            }
        }));
    }
    let mut calls = Vec::with_capacity(s.intervals);
    let mut counted = 0u64;
    let mut rotations = Vec::new();
    for k in 0..s.intervals {
        let begins = start + s.interval * k as u32;
        if ROTATE_IN.contains(&k) {
            tokio::time::sleep_until(begins + s.interval / 3).await;
            stub.rotate();
            rotations.push((Instant::now(), stub.epoch()));
        }
        tokio::time::sleep_until(begins + s.interval).await;
        let total: u64 = stub.counts().values().sum();
        calls.push(total - counted);
        counted = total;
    }
    for pod in pods {
        pod.await?;
    }
    let metrics = scrape(&metrics_addr).await.unwrap_or_default();
    let seen = seen.lock().unwrap_or_else(|p| p.into_inner()).clone();
    let latencies = rotations
        .iter()
        .map(|(at, epoch)| reached_all(&seen, s.pods, *epoch, *at))
        .collect();
    let failures = *failures.lock().unwrap_or_else(|p| p.into_inner());
    let rss_kib = proc_status(provider.child.id(), "VmRSS:");
    drop(provider);
    Ok(Outcome {
        calls,
        latencies,
        failures,
        cache_entries: gauge(&metrics, "value_cache_entries"),
        cache_bytes: gauge(&metrics, "value_cache_bytes"),
        rss_kib,
    })
}
