//! No client of the operations endpoint, and no lack of file descriptors, takes the
//! provider down: under a flood of half-open HTTP connections mounts and probes are
//! served and the endpoint holds at most its cap; at the descriptor limit the accept
//! loops back off instead of spinning, and serve again once descriptors are free.

use crate::common;

use common::binary::{start_local, LocalBinary, BIN};
use common::request::Mount;

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use provider::adapters::ops_http::{HEADER_TIMEOUT, MAX_CONNECTIONS};
use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixStream};
use tokio::task::JoinHandle;

const FLOOD: usize = 2000;
/// A request head without its final CRLF: the server waits for the rest.
const HALF_HEAD: &[u8] = b"GET /metrics HTTP/1.1\r\nHost: x\r\n";
const MOUNT: &str = "- {objectName: MySecret, objectType: secretsmanager}";

/// The provider binary over the local store; `fd_limit` sets its RLIMIT_NOFILE.
struct Provider(LocalBinary);

async fn start(fd_limit: Option<u32>) -> Provider {
    let command = match fd_limit {
        Some(limit) => {
            let mut sh = Command::new("sh");
            sh.args([
                "-c",
                &format!("ulimit -n {limit} && exec \"$0\" \"$@\""),
                BIN,
            ]);
            sh
        }
        None => Command::new(BIN),
    };
    Provider(start_local(common::STORE, command, &[]).await)
}

impl Provider {
    async fn mount(&self) {
        let target = self.0.dir.path().join("pod");
        std::fs::create_dir_all(&target).unwrap();
        let mut client = common::connect(&self.0.socket).await;
        let response = tokio::time::timeout(
            Duration::from_secs(10),
            client.mount(Mount::of(MOUNT).target(&target).grpc()),
        )
        .await
        .expect("the mount hung");
        assert_eq!(response.unwrap().into_inner().object_version.len(), 1);
    }

    /// A fresh GET, as the kubelet's probe sends it, answered within `within`.
    async fn get(&self, path: &str, within: Duration) -> String {
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let exchange = async {
            let mut stream = TcpStream::connect(&self.0.ops).await?;
            stream.write_all(request.as_bytes()).await?;
            let mut text = String::new();
            stream.read_to_string(&mut text).await?;
            Ok::<_, std::io::Error>(text)
        };
        match tokio::time::timeout(within, exchange).await {
            Ok(Ok(text)) => text,
            Ok(Err(e)) => panic!("GET {path}: {e}"),
            Err(_) => panic!("GET {path}: no answer within {within:?}"),
        }
    }

    fn open_descriptors(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.0.child.id()))
            .unwrap()
            .count()
    }

    /// User plus system CPU time, in clock ticks (1/100 s on Linux).
    fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.0.child.id())).unwrap();
        // Fields after the command name (which is in parentheses): utime is the 12th.
        let fields: Vec<&str> = stat
            .rsplit_once(')')
            .unwrap()
            .1
            .split_whitespace()
            .collect();
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    }

    /// Stops the provider and hands back what it logged.
    fn stop(mut self) -> String {
        let _ = self.0.child.kill();
        let mut text = String::new();
        if let Some(mut stderr) = self.0.child.stderr.take() {
            std::io::Read::read_to_string(&mut stderr, &mut text).unwrap();
        }
        text
    }
}

/// This process needs a descriptor per connection it opens; the provider it starts
/// inherits the limit.
fn raise_fd_limit(needed: u64) {
    let limit = getrlimit(Resource::Nofile);
    if limit.current.is_some_and(|current| current < needed) {
        let raised = Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        };
        setrlimit(Resource::Nofile, raised).unwrap();
    }
    let current = getrlimit(Resource::Nofile).current;
    assert!(
        current.is_none_or(|c| c >= needed),
        "the descriptor limit {current:?} is below the {needed} this test needs"
    );
}

/// A half-open connection, and a task that counts it in `closed` once the server
/// closes it (EOF or reset).
async fn half_open(addr: &str, closed: &Arc<AtomicUsize>) -> JoinHandle<()> {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    stream.write_all(HALF_HEAD).await.unwrap();
    let closed = closed.clone();
    tokio::spawn(async move {
        let mut buf = [0u8; 512];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => continue,
            }
        }
        closed.fetch_add(1, Ordering::SeqCst);
    })
}

async fn wait_until(what: &str, within: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < within, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_half_open_connections_takes_down_neither_mounts_nor_probes() {
    raise_fd_limit(FLOOD as u64 + 1000);
    let p = start(None).await;
    let baseline = p.open_descriptors();
    let closed = Arc::new(AtomicUsize::new(0));
    let mut flood = Vec::with_capacity(FLOOD);
    for _ in 0..FLOOD {
        flood.push(half_open(&p.0.ops, &closed).await);
    }

    // While they are open: beyond the cap they are closed at once (the newest stay), and
    // the provider holds no more descriptors than the cap.
    wait_until(
        "connections beyond the cap closed",
        Duration::from_secs(30),
        || closed.load(Ordering::SeqCst) >= FLOOD - MAX_CONNECTIONS,
    )
    .await;
    let held = p.open_descriptors();
    assert!(
        held <= baseline + MAX_CONNECTIONS + 8,
        "{held} descriptors open (before the flood: {baseline}); cap {MAX_CONNECTIONS}"
    );
    // A fresh request takes the place of the oldest idle connection: the probe is
    // answered now, not after the header timeout.
    for _ in 0..3 {
        let answer = p.get("/healthz", Duration::from_secs(5)).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        p.mount().await;
    }

    // A continuous flood (1,000 new idle connections a second, far more than the cap
    // per header timeout) does not keep the probe out either.
    let flooding = {
        let (ops, closed) = (p.0.ops.clone(), closed.clone());
        tokio::spawn(async move {
            let mut readers = Vec::new();
            loop {
                readers.push(half_open(&ops, &closed).await);
                readers.retain(|r| !r.is_finished());
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        })
    };
    for _ in 0..5 {
        let answer = p.get("/healthz", Duration::from_secs(2)).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        p.mount().await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    flooding.abort();

    wait_until(
        "every flood connection closed",
        Duration::from_secs(20),
        || flood.iter().all(|reader| reader.is_finished()),
    )
    .await;

    // Below the cap, idle connections are closed by the header timeout, not before.
    let idle = Arc::new(AtomicUsize::new(0));
    let opened = Instant::now();
    for _ in 0..100 {
        flood.push(half_open(&p.0.ops, &idle).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    if opened.elapsed() < HEADER_TIMEOUT {
        assert_eq!(idle.load(Ordering::SeqCst), 0, "closed before the timeout");
    }
    wait_until(
        "idle connections closed by the header timeout",
        HEADER_TIMEOUT + Duration::from_secs(20),
        || idle.load(Ordering::SeqCst) == 100,
    )
    .await;
    assert!(opened.elapsed() >= HEADER_TIMEOUT);
    let answer = p.get("/metrics", Duration::from_secs(5)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    p.mount().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_descriptors_the_accept_loops_back_off_and_recover() {
    let p = start(Some(64)).await;
    p.mount().await;
    // Connections to the driver's socket that tonic accepts and keeps, until the
    // provider has no descriptor left and the rest wait in the listen queue.
    let mut hogs = Vec::new();
    for _ in 0..120 {
        hogs.push(UnixStream::connect(&p.0.socket).await.unwrap());
    }
    // The operations endpoint meets the limit too.
    let _waiting = TcpStream::connect(&p.0.ops).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(p.open_descriptors() >= 60, "the provider never ran out");

    let before = p.cpu_ticks();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let spent = p.cpu_ticks() - before;
    // Retrying at once would burn a core: about 200 ticks in 2 s.
    assert!(
        spent < 60,
        "{spent} ticks of CPU in 2 s at the descriptor limit"
    );

    drop(hogs);
    let started = Instant::now();
    loop {
        let target = p.0.dir.path().join("pod");
        let attempt = tokio::time::timeout(Duration::from_secs(5), async {
            let mut client = common::connect(&p.0.socket).await;
            client.mount(Mount::of(MOUNT).target(&target).grpc()).await
        })
        .await;
        if matches!(attempt, Ok(Ok(_))) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no mount served after the descriptors were freed"
        );
    }
    let logs = p.stop();
    // One warning for the burst, however many accepts failed, then one line on recovery.
    let csi: Vec<serde_json::Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["fields"]["listener"] == "csi")
        .collect();
    let recovered = csi
        .iter()
        .position(|v| v["fields"]["message"] == "accepting connections again")
        .unwrap_or_else(|| panic!("no recovery logged:\n{logs}"));
    assert_eq!(
        recovered, 1,
        "one warning per burst, not one per error:\n{logs}"
    );
    assert_eq!(csi[0]["level"], "WARN", "{logs}");
    // How many accepts failed depends on how fast the descriptors came back (a loaded
    // machine may retry only once): at least one, reported on recovery.
    let failures = csi[recovered]["fields"]["failures"].as_u64().unwrap_or(0);
    assert!(failures >= 1, "{logs}");
}
