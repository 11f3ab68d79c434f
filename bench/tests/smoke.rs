//! A smoke run of the benchmark on the debug build, so it cannot rot: every scenario,
//! a few mounts, all succeed, the table is printed.

use std::path::{Path, PathBuf};
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

/// The side-by-side run (`storm --peer`) on a few mounts of every scenario: both
/// providers start in the run's namespaces, mount over TLS and are measured. Needs root
/// and the existing provider's binary, which the test command builds
/// (`EXISTING_PROVIDER_BIN`); without root it skips, and without the binary too unless
/// `REQUIRE_PEER=1` says it must be there.
#[test]
fn the_side_by_side_runs_both_providers() {
    let required = std::env::var("REQUIRE_PEER").is_ok_and(|v| v == "1");
    let Some(existing) = std::env::var_os("EXISTING_PROVIDER_BIN").map(PathBuf::from) else {
        assert!(
            !required,
            "REQUIRE_PEER=1 but EXISTING_PROVIDER_BIN is not set"
        );
        eprintln!("skipped: EXISTING_PROVIDER_BIN is not set");
        return;
    };
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: the side-by-side run needs root");
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_storm"))
        .arg("--provider-bin")
        .arg(provider_bin())
        .arg("--peer-bin")
        .arg(&existing)
        .args([
            "--peer",
            "--rounds",
            "2",
            "--mounts",
            "3",
            "--latency-ms",
            "1",
            "--rotation-pods",
            "2",
            "--rotation-intervals",
            "2",
            "--throughput-mounts",
            "6",
            "--peer-throughput-mounts",
            "3",
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
        "### storm: ",
        "### storm, the existing provider with `--qps=1000 --burst=1000`",
        "### rotation",
        "### throughput",
        "### memory",
        "### storm under the chart's limits",
    ] {
        assert!(stdout.contains(heading), "{heading} missing:\n{stdout}");
    }
    // Every mount of both providers succeeded, in every scenario.
    assert_eq!(
        stdout.matches("| failed mounts | 0 | 0 | |").count(),
        6,
        "{stdout}"
    );
    // The existing provider really ran: it asks Kubernetes on every mount and assumes the
    // role once per mount; ours asks nothing after start-up.
    assert!(
        stdout.contains("| Kubernetes requests (after start-up) | 9 | 0 | none needed |"),
        "3 mounts, 3 GETs each without a region attribute:\n{stdout}"
    );
    assert!(
        stdout.contains("| – AssumeRoleWithWebIdentity | 3 | 1 | 3.0× |"),
        "{stdout}"
    );
    // No cgroup of the run is left behind.
    let left = cgroups_named("storm-peer-", Path::new("/sys/fs/cgroup"), 5);
    assert!(left.is_empty(), "cgroups left: {left:?}");
}

/// Directories named `prefix…` under `dir`, at most `depth` levels down.
fn cgroups_named(prefix: &str, dir: &Path, depth: usize) -> Vec<PathBuf> {
    let mut found = Vec::new();
    if depth == 0 {
        return found;
    }
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if !path.is_dir() || path.is_symlink() {
            continue;
        }
        if entry.file_name().to_string_lossy().starts_with(prefix) {
            found.push(path);
        } else {
            found.extend(cgroups_named(prefix, &path, depth - 1));
        }
    }
    found
}
