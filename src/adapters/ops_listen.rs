//! Binding the operations endpoint without ever holding up the driver's socket. The
//! socket is what pods need (the existing provider binds no port at all), so a port
//! that another process holds, or that is not there yet, is logged and bound again in
//! the background: 1 s, doubling up to 30 s. Mounts are served all the while.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::net::TcpListener;

use super::accept::Backoff;

/// First retry: a port freed by a process that just exited is free again at once.
pub const FIRST_RETRY: Duration = Duration::from_secs(1);
/// Longest wait between attempts: the port is taken within 30 s of being freed.
pub const MAX_RETRY: Duration = Duration::from_secs(30);

/// Binds `addrs` (the first that binds wins, as `TcpListener::bind` does), retrying
/// with `backoff` until it binds, or `None` once `shutdown` resolves. Every failure is
/// logged with its cause; the first as a warning, later ones at debug level, so a port
/// held for a day leaves one warning, not thousands.
pub async fn bind_retrying(
    addrs: &[SocketAddr],
    mut backoff: Backoff,
    shutdown: impl Future<Output = ()>,
) -> Option<TcpListener> {
    tokio::pin!(shutdown);
    let mut failures = 0u64;
    loop {
        let attempt = tokio::select! {
            () = &mut shutdown => return None,
            attempt = TcpListener::bind(addrs) => attempt,
        };
        match attempt {
            Ok(listener) => {
                if failures > 0 {
                    tracing::info!(failures, "operations endpoint bound after retrying");
                }
                return Some(listener);
            }
            Err(error) => {
                failures += 1;
                let retry_in = backoff.next_delay();
                log_failure(addrs, &error, failures, retry_in);
                tokio::select! {
                    () = &mut shutdown => return None,
                    () = tokio::time::sleep(retry_in) => {}
                }
            }
        }
    }
}

fn log_failure(addrs: &[SocketAddr], error: &io::Error, failures: u64, retry_in: Duration) {
    let addr = addrs.first().map_or_else(String::new, ToString::to_string);
    if failures == 1 {
        tracing::warn!(
            %addr,
            cause = %error,
            ?retry_in,
            "cannot bind the operations endpoint (/metrics, /healthz, /readyz); mounts are served on the socket meanwhile, and binding is retried in the background"
        );
    } else {
        tracing::debug!(%addr, cause = %error, failures, ?retry_in, "operations endpoint still not bound");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quick() -> Backoff {
        Backoff::between(Duration::from_millis(10), Duration::from_millis(50))
    }

    #[tokio::test]
    async fn a_held_port_is_bound_once_it_is_released() {
        let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = holder.local_addr().unwrap();
        let binding =
            tokio::spawn(
                async move { bind_retrying(&[addr], quick(), std::future::pending()).await },
            );
        // Let at least one attempt fail before the port is freed.
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(!binding.is_finished(), "bound a port another socket holds");
        drop(holder);
        let listener = binding.await.unwrap().expect("bound after the release");
        assert_eq!(listener.local_addr().unwrap(), addr);
    }

    #[tokio::test]
    async fn shutdown_ends_the_retries() {
        let holder = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = holder.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let binding = tokio::spawn(async move {
            bind_retrying(&[addr], quick(), async {
                let _ = stopped.await;
            })
            .await
        });
        let _ = stop.send(());
        assert!(binding.await.unwrap().is_none());
    }

    #[test]
    fn the_waits_double_from_one_second_to_thirty() {
        let mut backoff = Backoff::between(FIRST_RETRY, MAX_RETRY);
        let waits: Vec<u64> = (0..7).map(|_| backoff.next_delay().as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30]);
    }
}
