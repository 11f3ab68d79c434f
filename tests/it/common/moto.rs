//! moto, the AWS emulator, started on 127.0.0.1 on a free port for one test.
//!
//! `MOTO_SERVER` names the `moto_server` executable (the README's test command creates a
//! virtualenv and sets it). Without it the moto tests skip with a message, unless
//! `REQUIRE_MOTO=1` (set by the test command, so CI) makes that a failure.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Moto {
    child: Child,
    pub url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A running moto, or `None` (after saying why) when moto is not installed.
pub fn start() -> Option<Moto> {
    let program = match std::env::var("MOTO_SERVER") {
        Ok(p) if !p.is_empty() => p,
        _ => {
            if std::env::var("REQUIRE_MOTO").is_ok_and(|v| v == "1") {
                panic!("REQUIRE_MOTO=1 but MOTO_SERVER is not set: run ./scripts/test");
            }
            eprintln!(
                "SKIPPED: moto tests need MOTO_SERVER (run ./scripts/test, which installs moto)"
            );
            return None;
        }
    };
    let port = free_port();
    let child = Command::new(&program)
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {program}: {e}"));
    let moto = Moto {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "moto did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(moto)
}
