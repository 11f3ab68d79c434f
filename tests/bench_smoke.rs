//! A smoke run of the benchmark on the debug build, so it cannot rot: every scenario,
//! a few mounts, all succeed, the table is printed.

use std::process::Command;

#[test]
fn the_benchmark_runs_every_scenario() {
    let out = Command::new(env!("CARGO_BIN_EXE_storm"))
        .args([
            "--provider-bin",
            env!("CARGO_BIN_EXE_secrets-store-csi-driver-provider-aws"),
        ])
        .args([
            "--mounts",
            "4",
            "--intervals",
            "3",
            "--throughput-mounts",
            "8",
            "--latency-ms",
            "1",
            "--spread-pods",
            "3",
            "--spread-interval-ms",
            "400",
            "--spread-intervals",
            "7",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for heading in [
        "(a) storm",
        "(b) storm with failover",
        "(c) rotation",
        "(d) throughput",
        "(e) spread rotation",
    ] {
        assert!(stdout.contains(heading), "{heading} missing:\n{stdout}");
    }
    assert!(
        stdout.contains("| STS calls | 1 |"),
        "one STS call per scenario:\n{stdout}"
    );
    assert!(
        stdout.contains("| Kubernetes requests after start-up | 0 |"),
        "{stdout}"
    );
}
