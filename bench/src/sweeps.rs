//! `--scenario sweeps`: curves instead of points. Each sweep starts a fresh provider per
//! point and prints a small table: concurrent pods → latency, CPU per mount, peak RSS;
//! objects per class → CPU per mount and response bytes; service accounts in a storm →
//! AWS calls; and a storm under the chart's CPU limit (50m, a CFS quota of a real cpu
//! cgroup) → latency.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use futures::StreamExt;
use prost::Message;
use provider::adapters::csi::proto::MountRequest;
use testkit::aws_stub;

use super::{
    bench_request, connect, cpu_seconds, fake_cluster, percentile, proc_status,
    start_provider_with, volume_dir,
};

fn class(secrets: usize, parameters: usize) -> String {
    named_class("app", secrets, parameters)
}

/// A class whose objects are named under `prefix`: distinct prefixes, distinct objects.
fn named_class(prefix: &str, secrets: usize, parameters: usize) -> String {
    let mut yaml = String::new();
    for i in 0..secrets {
        yaml.push_str(&format!(
            "- {{objectName: {prefix}/secret-{i}, objectType: secretsmanager}}\n"
        ));
    }
    for i in 0..parameters {
        yaml.push_str(&format!(
            "- {{objectName: /{prefix}/param-{i}, objectType: ssmparameter}}\n"
        ));
    }
    yaml
}

fn request(pod: usize, target: &Path, objects: &str, sa: &str) -> MountRequest {
    bench_request(
        &format!("app-{pod}"),
        sa,
        objects,
        &[("region", "us-east-1")],
        target,
    )
}

struct Point {
    latencies: Vec<Duration>,
    failures: usize,
    cpu: f64,
    peak_rss_kib: u64,
    aws_calls: u64,
    response_bytes: usize,
}

/// `pods` mounts, `parallel` at once, over a fresh provider, pod `i` mounting class
/// `i % classes.len()` as service account `i % accounts`; inside the cpu cgroup whose
/// `cgroup.procs` is given.
async fn point(
    bin: &Path,
    pods: usize,
    parallel: usize,
    classes: &[String],
    accounts: usize,
    latency: Duration,
    cgroup: Option<&Path>,
) -> anyhow::Result<Point> {
    let dir = volume_dir()?;
    let stub = aws_stub::start(latency).await?;
    let api = fake_cluster().await;
    for a in 1..accounts {
        api.set_service_account(
            "bench",
            &format!("app-{a}"),
            Some(&format!("arn:aws:iam::123456789012:role/bench-{a}")),
            false,
        );
    }
    let command = match cgroup {
        None => Command::new(bin),
        Some(procs) => {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg("echo $$ > \"$0\" && exec \"$@\"")
                .arg(procs)
                .arg(bin);
            c
        }
    };
    let provider = start_provider_with(command, dir.path(), &api, &stub.url).await?;
    let pid = provider.child.id();
    let client = connect(&provider.socket).await?;
    let cpu_before = cpu_seconds(pid);
    let results: Vec<Result<(Duration, usize), String>> = futures::stream::iter(0..pods)
        .map(|pod| {
            let mut client = client.clone();
            let target: PathBuf = dir.path().join(format!("pod-{pod}"));
            let objects = &classes[pod % classes.len()];
            let sa = if pod % accounts == 0 {
                "app".to_string()
            } else {
                format!("app-{}", pod % accounts)
            };
            async move {
                let _ = std::fs::create_dir_all(&target);
                let t = Instant::now();
                client
                    .mount(request(pod, &target, objects, &sa))
                    .await
                    .map(|r| (t.elapsed(), r.into_inner().encoded_len()))
                    .map_err(|s| s.message().to_string())
            }
        })
        .buffer_unordered(parallel)
        .collect()
        .await;
    let cpu = cpu_seconds(pid) - cpu_before;
    let peak_rss_kib = proc_status(pid, "VmHWM:");
    drop(provider);
    let failures = results.iter().filter(|r| r.is_err()).count();
    let ok: Vec<(Duration, usize)> = results.into_iter().filter_map(Result::ok).collect();
    Ok(Point {
        latencies: ok.iter().map(|(d, _)| *d).collect(),
        response_bytes: ok.first().map_or(0, |(_, b)| *b),
        failures,
        cpu,
        peak_rss_kib,
        aws_calls: stub.counts().values().sum(),
    })
}

fn p(point: &Point, q: f64) -> f64 {
    let mut sorted = point.latencies.clone();
    sorted.sort();
    percentile(&sorted, q)
}

/// A child of this process's cpu cgroup (v1) with a CFS quota; removed on drop.
struct CpuQuota(PathBuf);

impl CpuQuota {
    fn create(millicores: u64) -> anyhow::Result<CpuQuota> {
        let text = std::fs::read_to_string("/proc/self/cgroup")?;
        let own = text
            .lines()
            .find_map(|l| {
                let parts: Vec<&str> = l.splitn(3, ':').collect();
                (parts.len() == 3 && parts[1].split(',').any(|c| c == "cpu"))
                    .then(|| parts[2].trim_start_matches('/').to_string())
            })
            .ok_or_else(|| anyhow::anyhow!("no cpu cgroup (v1)"))?;
        let dir = Path::new("/sys/fs/cgroup/cpu")
            .join(own)
            .join(format!("storm-quota-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("cpu.cfs_period_us"), "100000")?;
        std::fs::write(dir.join("cpu.cfs_quota_us"), (millicores * 100).to_string())?;
        Ok(CpuQuota(dir))
    }
}

impl Drop for CpuQuota {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.0);
    }
}

pub(crate) async fn sweeps(bin: &Path) -> anyhow::Result<()> {
    let class17 = class(5, 12);
    let ms20 = Duration::from_millis(20);
    println!("\n### sweep: concurrent pods (one class of 5 secrets + 12 parameters, one service account, all at once, 20 ms AWS latency)\n");
    println!("| pods | p50 / p99 | CPU per mount | peak RSS | AWS calls | failed |");
    println!("|---|---|---|---|---|---|");
    for pods in [10, 100, 1000] {
        let pt = point(
            bin,
            pods,
            pods,
            std::slice::from_ref(&class17),
            1,
            ms20,
            None,
        )
        .await?;
        println!(
            "| {pods} | {:.0} / {:.0} ms | {:.2} ms | {:.1} MiB | {} | {} |",
            p(&pt, 0.5),
            p(&pt, 0.99),
            pt.cpu * 1000.0 / pods as f64,
            pt.peak_rss_kib as f64 / 1024.0,
            pt.aws_calls,
            pt.failures
        );
    }
    println!("\n### sweep: objects per class (half secrets, half parameters; 50 mounts, 16 at a time, 0 ms AWS latency)\n");
    println!("| objects | CPU per mount | p50 | response bytes | AWS calls | failed |");
    println!("|---|---|---|---|---|---|");
    for objects in [1usize, 17, 64, 256] {
        let secrets = objects.div_ceil(2);
        let pt = point(
            bin,
            50,
            16,
            &[class(secrets, objects - secrets)],
            1,
            Duration::ZERO,
            None,
        )
        .await?;
        println!(
            "| {objects} | {:.2} ms | {:.1} ms | {} | {} | {} |",
            pt.cpu * 1000.0 / 50.0,
            p(&pt, 0.5),
            pt.response_bytes,
            pt.aws_calls,
            pt.failures
        );
    }
    println!("\n### sweep: service accounts in a storm (100 pods of one class, spread over N service accounts with their own roles, 20 ms AWS latency)\n");
    println!("| service accounts | AWS calls (STS included) | p99 | failed |");
    println!("|---|---|---|---|");
    for accounts in [1usize, 10, 100] {
        let pt = point(
            bin,
            100,
            100,
            std::slice::from_ref(&class17),
            accounts,
            ms20,
            None,
        )
        .await?;
        println!(
            "| {accounts} | {} | {:.0} ms | {} |",
            pt.aws_calls,
            p(&pt, 0.99),
            pt.failures
        );
    }
    println!("\n### sweep: distinct classes in a storm (100 pods of one service account, spread over N classes of 5 secrets + 12 parameters with objects of their own, 20 ms AWS latency)\n");
    println!("| classes | AWS calls (STS included) | p99 | failed |");
    println!("|---|---|---|---|");
    for count in [1usize, 10, 100] {
        let classes: Vec<String> = (0..count)
            .map(|c| named_class(&format!("c{c}"), 5, 12))
            .collect();
        let pt = point(bin, 100, 100, &classes, 1, ms20, None).await?;
        println!(
            "| {count} | {} | {:.0} ms | {} |",
            pt.aws_calls,
            p(&pt, 0.99),
            pt.failures
        );
    }
    println!("\n### sweep: the chart's CPU limit (100 pods of one class at once, 20 ms AWS latency, cgroup CFS quota)\n");
    println!("| CPU | p50 / p99 | CPU per mount | failed |");
    println!("|---|---|---|---|");
    for millicores in [50u64, 200, 0] {
        let quota = match millicores {
            0 => None,
            m => Some(CpuQuota::create(m)?),
        };
        let procs = quota.as_ref().map(|q| q.0.join("cgroup.procs"));
        let pt = point(
            bin,
            100,
            100,
            std::slice::from_ref(&class17),
            1,
            ms20,
            procs.as_deref(),
        )
        .await?;
        let label = if millicores == 0 {
            "unlimited".to_string()
        } else {
            format!("{millicores}m")
        };
        println!(
            "| {label} | {:.0} / {:.0} ms | {:.2} ms | {} |",
            p(&pt, 0.5),
            p(&pt, 0.99),
            pt.cpu * 1000.0 / 100.0,
            pt.failures
        );
    }
    Ok(())
}
