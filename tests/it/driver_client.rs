//! The Secrets Store CSI Driver's own provider client against our binary.
//!
//! `.tools/driverclient` (Go, `tests/driverclient/`, built by `./scripts/test`) calls
//! the driver's `pkg/secrets-store` at v1.6.0 (`NewPluginClientBuilder`, `Get`,
//! `Version`, `HealthCheck`, `MountContent`) over the provider's real unix socket: files,
//! modes and versions in both write modes, rotation, failure messages, `--error-codes`,
//! a 3.5 MiB response and one over 4 MiB. `DRIVERCLIENT` names another build of it.
//! Without the tool the test skips with a message, unless `REQUIRE_GO_TOOLS=1` (set by
//! the test command) makes that a failure.

use crate::common;

use std::path::PathBuf;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_secrets-store-csi-driver-provider-aws");

fn tool() -> Option<PathBuf> {
    common::go_tool("driverclient", "DRIVERCLIENT", "the driver-client test")
}

#[test]
fn the_drivers_own_client_mounts_through_our_socket() {
    let Some(tool) = tool() else {
        return;
    };
    let out = Command::new(&tool)
        .arg("-provider")
        .arg(BIN)
        .env_remove("AWS_REGION")
        .env_remove("RUST_LOG")
        .output()
        .unwrap_or_else(|e| panic!("running {}: {e}", tool.display()));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("{stdout}");
    assert!(
        out.status.success(),
        "{} failed ({}):\n{stdout}\n{stderr}",
        tool.display(),
        out.status
    );
    assert!(stdout.contains("driverclient: all "), "{stdout}");
}
