//! A TCP relay in front of the API server (TLS passes through untouched): counts the bytes
//! the server sends, and can cut every connection and refuse new ones, as a network
//! partition between a node and the control plane would.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::AbortHandle;

#[derive(Default)]
struct Shared {
    cut: AtomicBool,
    /// Bytes from the server to the clients.
    down: AtomicU64,
    connections: Mutex<Vec<AbortHandle>>,
}

pub struct Relay {
    pub url: String,
    shared: Arc<Shared>,
    accept: AbortHandle,
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.accept.abort();
        self.sever();
    }
}

impl Relay {
    /// Relays 127.0.0.1:<new port> to 127.0.0.1:`upstream` (on the current runtime).
    pub async fn start(upstream: u16) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("relay binds");
        let url = format!(
            "https://127.0.0.1:{}",
            listener.local_addr().unwrap().port()
        );
        let shared = Arc::new(Shared::default());
        let s = shared.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if s.cut.load(Ordering::SeqCst) {
                    continue; // dropped: the client sees a reset
                }
                let s2 = s.clone();
                let task = tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)).await {
                        relay(client, server, &s2).await;
                    }
                });
                let mut conns = s.connections.lock().unwrap();
                conns.retain(|c| !c.is_finished());
                conns.push(task.abort_handle());
            }
        })
        .abort_handle();
        Relay {
            url,
            shared,
            accept,
        }
    }

    /// Cuts every open connection and refuses new ones until `restore`.
    pub fn cut(&self) {
        self.shared.cut.store(true, Ordering::SeqCst);
        self.sever();
    }

    pub fn restore(&self) {
        self.shared.cut.store(false, Ordering::SeqCst);
    }

    fn sever(&self) {
        for c in self.shared.connections.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    /// Bytes the API server sent through this relay so far.
    pub fn bytes_down(&self) -> u64 {
        self.shared.down.load(Ordering::SeqCst)
    }
}

async fn relay(client: TcpStream, server: TcpStream, shared: &Shared) {
    let (cr, cw) = client.into_split();
    let (sr, sw) = server.into_split();
    tokio::join!(pipe(cr, sw, None), pipe(sr, cw, Some(&shared.down)));
}

/// Copies until either side closes, counting the bytes if asked; then closes the
/// writing side.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    count: Option<&AtomicU64>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    while let Ok(n) = from.read(&mut buf).await {
        if n == 0 || to.write_all(&buf[..n]).await.is_err() {
            break;
        }
        if let Some(count) = count {
            count.fetch_add(n as u64, Ordering::SeqCst);
        }
    }
    let _ = to.shutdown().await;
}
