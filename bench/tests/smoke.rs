//! A smoke run of the benchmark on the debug build, so it cannot rot: every scenario,
//! a few mounts, all succeed, the table is printed.

use std::path::PathBuf;
use std::process::Command;

/// The provider binary of the same build as `storm`. Cargo names only a package's own
/// binaries to its tests, so it is found beside `storm` in the target directory: the
/// workspace's test command (`cargo test --workspace`) builds it with the provider's
/// tests; `cargo test -p bench` alone needs a `cargo build` first.
fn provider_bin() -> PathBuf {
    let storm = PathBuf::from(env!("CARGO_BIN_EXE_storm"));
    let provider = storm.with_file_name(format!(
        "secrets-store-csi-driver-provider-aws{}",
        std::env::consts::EXE_SUFFIX
    ));
    assert!(
        provider.is_file(),
        "{} is missing: run `cargo build` (or `cargo test --workspace`) first",
        provider.display()
    );
    provider
}

#[test]
fn the_benchmark_runs_every_scenario() {
    let out = Command::new(env!("CARGO_BIN_EXE_storm"))
        .arg("--provider-bin")
        .arg(provider_bin())
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
