//! `storm --scenario memory`: the worst case of memory under a real memory cgroup with
//! the chart's 100Mi limit. One class of 256 secrets of (nearly) 64 KiB, mounted once
//! and then 8 times at once, into tmpfs targets (provider writes: the files are charged
//! to the provider's cgroup) and handed back (driver writes). Reports the cgroup's peak,
//! what it holds after the mounts, the peak RSS and how every mount ended.

use std::path::Path;
use std::time::Duration;

use provider::adapters::csi::proto::MountRequest;
use testkit::aws_stub;

use crate::cgroup::{Cgroup, Limits};

use super::{bench_request, connect, fake_cluster, proc_status, start_provider_with, volume_dir};

const OBJECTS: usize = 256;
const DRIVER_OBJECTS: usize = 60;
const VALUE_BYTES: usize = 65_000;
const LIMIT: u64 = 100 * 1024 * 1024;

fn class(objects: usize) -> String {
    (0..objects)
        .map(|i| format!("- {{objectName: big-{i}, objectType: secretsmanager}}\n"))
        .collect()
}

fn request(pod: usize, target: &Path, objects: usize) -> MountRequest {
    let class = class(objects);
    bench_request(
        &format!("big-{pod}"),
        "app",
        &class,
        &[("region", "us-east-1")],
        target,
    )
}

/// One mode: the first mount alone, then 8 at once; each line of the report.
async fn run_mode(bin: &Path, driver_writes: bool) -> anyhow::Result<Vec<String>> {
    let dir = volume_dir()?;
    let cgroup = Cgroup::create(
        &format!("storm-{}-{driver_writes}", std::process::id()),
        Limits {
            memory_bytes: Some(LIMIT),
            cpu_millis: None,
        },
    )?;
    let stub = aws_stub::start(Duration::from_millis(5)).await?;
    stub.set_value_bytes(VALUE_BYTES as u64);
    let api = fake_cluster().await;
    // Joins the cgroup before exec, so every page the provider touches is charged there.
    let mut command = cgroup.wrap(bin);
    command.arg(format!("--driver-writes-secrets={driver_writes}"));
    let provider = start_provider_with(command, dir.path(), &api, &stub.url).await?;
    let client = connect(&provider.socket).await?;
    let pid = provider.child.id();
    // Driver writes hand the files back in one response, at most 4 MiB: 60 such values.
    let objects = if driver_writes {
        DRIVER_OBJECTS
    } else {
        OBJECTS
    };
    let mode = if driver_writes {
        format!("driver writes, {objects} objects")
    } else {
        format!("provider writes (tmpfs), {objects} objects")
    };
    let mut lines = Vec::new();
    for (label, pods) in [("1 mount", 0..1), ("8 mounts at once", 1..9)] {
        cgroup.reset_peak();
        let mut tasks = Vec::new();
        for pod in pods.clone() {
            let mut client = client.clone();
            let target = dir.path().join(format!("pod-{pod}"));
            std::fs::create_dir_all(&target)?;
            tasks.push(tokio::spawn(async move {
                client
                    .mount(request(pod, &target, objects))
                    .await
                    .map(|_| ())
                    .map_err(|s| format!("{:?}: {}", s.code(), s.message()))
            }));
        }
        let mut ok = 0;
        let mut refused: Vec<String> = Vec::new();
        for t in tasks {
            match t.await? {
                Ok(()) => ok += 1,
                Err(e) => refused.push(e),
            }
        }
        let alive = provider_alive(pid);
        let first_error = refused
            .first()
            .map(|e| e.chars().take(140).collect::<String>())
            .unwrap_or_default();
        lines.push(format!(
            "| {mode} | {label} | {ok} ok, {} refused | {:.1} MiB | {:.1} MiB | {:.1} MiB | {} | {} |",
            refused.len(),
            cgroup.peak() as f64 / 1048576.0,
            cgroup.usage() as f64 / 1048576.0,
            proc_status(pid, "VmHWM:") as f64 / 1024.0,
            if alive && cgroup.oom_kills() == 0 { "no" } else { "yes" },
            first_error.replace('|', "/"),
        ));
    }
    drop(provider);
    Ok(lines)
}

fn provider_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map(|s| !s.contains("State:\tZ"))
        .unwrap_or(false)
}

pub async fn memory(bin: &Path) -> anyhow::Result<()> {
    println!(
        "\n### memory: one class of secrets of {VALUE_BYTES} bytes each, memory cgroup limit {} MiB\n",
        LIMIT / 1048576
    );
    println!("| mode | mounts | outcome | cgroup peak | cgroup after | peak RSS (VmHWM) | OOM-killed | first refusal |");
    println!("|---|---|---|---|---|---|---|---|");
    for driver_writes in [false, true] {
        for line in run_mode(bin, driver_writes).await? {
            println!("{line}");
        }
    }
    Ok(())
}
