//! The operations endpoint (`--metrics-addr`): `/metrics` (Prometheus), `/healthz`
//! (process alive), `/readyz` (socket served and configuration loaded).
//!
//! Any pod that reaches the port is a client, so no client may hold it: a request head
//! must arrive within a few seconds, a connection idles or lives only so long, and at
//! most `max_connections` are open; at the cap the oldest is closed for the newcomer, so
//! a flood of idle connections cannot keep the kubelet's probe out, and the endpoint
//! never holds more than its share of the process's file descriptors.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, Semaphore};

use super::accept::Acceptor;
use super::metrics::Metrics;

/// Connections open at once. The real callers (kubelet probes, one Prometheus) need a
/// handful; each connection costs a descriptor and up to `READ_BUFFER` of memory.
pub const MAX_CONNECTIONS: usize = 256;
/// The endpoint takes at most a quarter of RLIMIT_NOFILE: the rest stays for the
/// driver's socket, the mounts' files and the AWS and Kubernetes connections.
const FD_SHARE: u64 = 4;
/// A request head must arrive within this. hyper times the wait for every head, so it
/// also bounds how long a kept-alive connection idles between requests. The kubelet
/// and Prometheus send their request at once.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// The longest one connection lives, whatever it does: a client that never reads its
/// response, or trickles a request body, is cut here.
pub const MAX_CONNECTION_LIFE: Duration = Duration::from_secs(30);
/// At the end of its life, a response being written gets this long to finish.
const LIFE_GRACE: Duration = Duration::from_secs(1);
/// hyper's buffer per connection (its floor is 8 KiB, its default 400 KiB): a request
/// here is one line and a few headers.
const READ_BUFFER: usize = 16 * 1024;

/// Set once the socket is served.
#[derive(Default)]
pub struct Readiness(AtomicBool);

impl Readiness {
    pub fn set_ready(&self, ready: bool) {
        self.0.store(ready, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// What clients can hold of the endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections open at once; at the cap the oldest is closed for a new one.
    pub max_connections: usize,
    /// For a request head to arrive, and for an idle kept-alive connection.
    pub header_timeout: Duration,
    /// For one connection, start to end.
    pub max_connection_life: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: MAX_CONNECTIONS,
            header_timeout: HEADER_TIMEOUT,
            max_connection_life: MAX_CONNECTION_LIFE,
        }
    }
}

impl Limits {
    /// The defaults, with the cap lowered to a share of this process's descriptor limit
    /// (read now), so the endpoint can never take the last descriptors.
    pub fn for_this_process() -> Self {
        let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile).current;
        Limits {
            max_connections: capped_by_fd_limit(MAX_CONNECTIONS, soft),
            ..Limits::default()
        }
    }
}

/// `cap`, at most `1/FD_SHARE` of the soft limit (`None`: unlimited), at least 1.
fn capped_by_fd_limit(cap: usize, soft_limit: Option<u64>) -> usize {
    let share = soft_limit.map_or(usize::MAX, |limit| {
        usize::try_from(limit / FD_SHARE).unwrap_or(usize::MAX)
    });
    cap.min(share).max(1)
}

fn answer(status: u16, content_type: &str, body: String) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", content_type)
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default()
}

fn route(path: &str, metrics: &Metrics, readiness: &Readiness) -> Response<Full<Bytes>> {
    match path {
        "/metrics" => answer(
            200,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.encode(),
        ),
        "/healthz" => answer(200, "text/plain", "ok\n".into()),
        "/readyz" if readiness.is_ready() => answer(200, "text/plain", "ready\n".into()),
        "/readyz" => answer(503, "text/plain", "not ready\n".into()),
        _ => answer(404, "text/plain", "not found\n".into()),
    }
}

/// The open connections, oldest first, each with the switch that closes it.
#[derive(Default)]
struct Open(Mutex<BTreeMap<u64, oneshot::Sender<()>>>);

impl Open {
    fn insert(&self, id: u64, close: oneshot::Sender<()>) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, close);
    }

    fn remove(&self, id: u64) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
    }

    fn close_oldest(&self) {
        let oldest = self.0.lock().unwrap_or_else(|p| p.into_inner()).pop_first();
        if let Some((_, close)) = oldest {
            let _ = close.send(());
        }
    }
}

/// Takes a connection off the list when its task ends, however it ends.
struct Registration {
    id: u64,
    open: Arc<Open>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.open.remove(self.id);
    }
}

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    limits: Limits,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    shutdown: impl Future<Output = ()>,
) {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .max_buf_size(READ_BUFFER);
    // One permit per open connection: the descriptors held never pass the cap.
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let open = Arc::new(Open::default());
    let mut acceptor = Acceptor::new("metrics");
    let mut next_id = 0u64;
    tokio::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            () = &mut shutdown => return,
            (stream, _) = acceptor.accept(|| listener.accept()) => stream,
        };
        let permit = match permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                tracing::debug!("operations endpoint at its connection cap; closing the oldest");
                open.close_oldest();
                // Wait for its descriptor to be given back before this one is served.
                tokio::select! {
                    () = &mut shutdown => return,
                    permit = permits.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => return,
                    },
                }
            }
        };
        let (close, closed) = oneshot::channel();
        open.insert(next_id, close);
        let registration = Registration {
            id: next_id,
            open: open.clone(),
        };
        next_id = next_id.wrapping_add(1);
        let (builder, metrics, readiness) = (builder.clone(), metrics.clone(), readiness.clone());
        let life = limits.max_connection_life;
        tokio::spawn(async move {
            // Dropped after the connection: the slot is free only once the socket is.
            let _held = (permit, registration);
            serve_connection(stream, &builder, life, closed, metrics, readiness).await;
        });
    }
}

/// One connection, until the client is done, its life is over, or it is closed to make
/// room (`closed`).
async fn serve_connection(
    stream: TcpStream,
    builder: &http1::Builder,
    life: Duration,
    mut closed: oneshot::Receiver<()>,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
) {
    let service = service_fn(move |req: Request<Incoming>| {
        let response = route(req.uri().path(), &metrics, &readiness);
        async move { Ok::<_, Infallible>(response) }
    });
    let connection = builder.serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        _ = connection.as_mut() => return,
        _ = &mut closed => return,
        () = tokio::time::sleep(life) => {}
    }
    connection.as_mut().graceful_shutdown();
    tokio::select! {
        _ = connection => {}
        _ = closed => {}
        () = tokio::time::sleep(LIFE_GRACE) => {}
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;

    const HALF_HEAD: &[u8] = b"GET /metrics HTTP/1.1\r\nHost: x\r\n";
    /// Generous: the tests check that a connection gets closed, not how fast.
    const BOUND: Duration = Duration::from_secs(10);

    async fn start(limits: Limits) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (metrics, readiness) = (Arc::new(Metrics::new()), Arc::default());
        tokio::spawn(serve(
            listener,
            limits,
            metrics,
            readiness,
            std::future::pending(),
        ));
        addr
    }

    async fn half_open(addr: SocketAddr) -> TcpStream {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream.write_all(HALF_HEAD).await.unwrap();
        stream
    }

    /// Whether the server closes `stream` within `within` (EOF or reset); whatever it
    /// sends first (a 408) is skipped.
    async fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
        let mut buf = [0u8; 1024];
        tokio::time::timeout(within, async {
            loop {
                match stream.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => continue,
                }
            }
        })
        .await
        .is_ok()
    }

    async fn healthz(addr: SocketAddr) -> String {
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut text = String::new();
        tokio::time::timeout(BOUND, stream.read_to_string(&mut text))
            .await
            .unwrap()
            .unwrap();
        text
    }

    #[test]
    fn routes() {
        let (m, r) = (Metrics::new(), Readiness::default());
        assert_eq!(route("/healthz", &m, &r).status(), 200);
        assert_eq!(route("/readyz", &m, &r).status(), 503);
        r.set_ready(true);
        assert_eq!(route("/readyz", &m, &r).status(), 200);
        assert_eq!(route("/metrics", &m, &r).status(), 200);
        assert_eq!(route("/nope", &m, &r).status(), 404);
    }

    #[test]
    fn the_cap_is_a_share_of_the_descriptor_limit() {
        assert_eq!(capped_by_fd_limit(256, None), 256);
        assert_eq!(capped_by_fd_limit(256, Some(1 << 20)), 256);
        assert_eq!(capped_by_fd_limit(256, Some(1024)), 256);
        assert_eq!(capped_by_fd_limit(256, Some(400)), 100);
        assert_eq!(capped_by_fd_limit(256, Some(2)), 1);
        assert!(Limits::for_this_process().max_connections >= 1);
    }

    #[tokio::test]
    async fn half_a_request_head_is_closed_after_the_header_timeout() {
        let addr = start(Limits {
            header_timeout: Duration::from_millis(200),
            ..Limits::default()
        })
        .await;
        let mut stream = half_open(addr).await;
        assert!(closed_within(&mut stream, BOUND).await);
    }

    #[tokio::test]
    async fn an_idle_kept_alive_connection_is_closed() {
        let addr = start(Limits {
            header_timeout: Duration::from_millis(200),
            ..Limits::default()
        })
        .await;
        let mut stream = TcpStream::connect(addr).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut seen = Vec::new();
        let mut buf = [0u8; 1024];
        while !seen.ends_with(b"ok\n") {
            let n = stream.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed before the answer");
            seen.extend_from_slice(&buf[..n]);
        }
        assert!(closed_within(&mut stream, BOUND).await);
    }

    #[tokio::test]
    async fn a_connection_is_closed_at_the_end_of_its_life() {
        let addr = start(Limits {
            header_timeout: Duration::from_secs(600),
            max_connection_life: Duration::from_millis(200),
            ..Limits::default()
        })
        .await;
        let mut stream = half_open(addr).await;
        assert!(closed_within(&mut stream, BOUND).await);
    }

    #[tokio::test]
    async fn beyond_the_cap_the_oldest_is_closed_and_a_new_request_is_served() {
        let addr = start(Limits {
            max_connections: 2,
            header_timeout: Duration::from_secs(600),
            max_connection_life: Duration::from_secs(600),
        })
        .await;
        let mut first = half_open(addr).await;
        let mut second = half_open(addr).await;
        let mut third = half_open(addr).await;
        assert!(
            closed_within(&mut first, BOUND).await,
            "the oldest stays open"
        );
        let answer = healthz(addr).await;
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        assert!(answer.ends_with("ok\n"), "{answer}");
        // The answer took the slot of the second; the third is still open.
        assert!(closed_within(&mut second, BOUND).await);
        assert!(!closed_within(&mut third, Duration::from_millis(300)).await);
    }
}
