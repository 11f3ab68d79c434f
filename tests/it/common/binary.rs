//! The provider binary over a local store, with its own socket directory and operations
//! port, as the operations and HTTP-hardening tests start it.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_secrets-store-csi-driver-provider-aws");

/// A running provider; killed when dropped.
pub struct LocalBinary {
    pub child: Child,
    pub socket: PathBuf,
    /// The operations endpoint, `127.0.0.1:<port>`.
    pub ops: String,
    pub dir: tempfile::TempDir,
}

impl Drop for LocalBinary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `command` (the binary, or a wrapper that execs it with the arguments given
/// here) over a local store holding `store`, logging JSON to a pipe, with `extra` flags;
/// returns once the socket is there.
pub async fn start_local(store: &str, mut command: Command, extra: &[&str]) -> LocalBinary {
    let dir = tempfile::tempdir().unwrap();
    let store_path = dir.path().join("store.yaml");
    std::fs::write(&store_path, store).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let volume = dir.path().join("providers");
    let child = command
        .arg(format!("--provider-volume={}", volume.display()))
        .arg(format!("--metrics-addr=127.0.0.1:{port}"))
        .args(["--store", "local", "--local-store"])
        .arg(&store_path)
        .args(["--log-format", "json"])
        .args(extra)
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let socket = volume.join("aws.sock");
    super::wait_for_socket(&socket).await;
    LocalBinary {
        child,
        socket,
        ops: format!("127.0.0.1:{port}"),
        dir,
    }
}
