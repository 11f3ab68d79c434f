//! `--qps` / `--burst`: a token bucket in front of every request of the Kubernetes
//! client, with the same meaning as client-go's limiter in the existing provider.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;
use tower::{Layer, Service};

pub struct TokenBucket {
    qps: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl TokenBucket {
    pub fn new(qps: f32, burst: u32) -> Arc<Self> {
        let burst = f64::from(burst.max(1));
        Arc::new(TokenBucket {
            qps: f64::from(qps).max(0.001),
            burst,
            state: Mutex::new((burst, Instant::now())),
        })
    }

    /// Waits for one token.
    pub async fn acquire(self: Arc<Self>) {
        loop {
            let wait = {
                let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
                let now = Instant::now();
                let (tokens, last) = *state;
                let tokens =
                    (tokens + now.duration_since(last).as_secs_f64() * self.qps).min(self.burst);
                if tokens >= 1.0 {
                    *state = (tokens - 1.0, now);
                    return;
                }
                *state = (tokens, now);
                Duration::from_secs_f64((1.0 - tokens) / self.qps)
            };
            tokio::time::sleep(wait).await;
        }
    }
}

#[derive(Clone)]
pub struct RateLimitLayer(pub Arc<TokenBucket>);

impl<S> Layer<S> for RateLimitLayer {
    type Service = RateLimited<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RateLimited {
            inner,
            bucket: self.0.clone(),
            acquiring: None,
            permitted: false,
        }
    }
}

pub struct RateLimited<S> {
    inner: S,
    bucket: Arc<TokenBucket>,
    acquiring: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
    permitted: bool,
}

impl<S: Service<R>, R> Service<R> for RateLimited<S> {
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if !self.permitted {
            let bucket = self.bucket.clone();
            let acquiring = self
                .acquiring
                .get_or_insert_with(|| Box::pin(bucket.acquire()));
            if acquiring.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            self.acquiring = None;
            self.permitted = true;
        }
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        self.permitted = false;
        self.inner.call(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_burst_passes_at_once_then_qps_paces() {
        let bucket = TokenBucket::new(5.0, 10);
        let start = Instant::now();
        for _ in 0..10 {
            bucket.clone().acquire().await;
        }
        assert!(start.elapsed() < Duration::from_millis(1));
        for _ in 0..5 {
            bucket.clone().acquire().await;
        }
        let elapsed = start.elapsed();
        assert!(
            elapsed >= Duration::from_millis(990) && elapsed <= Duration::from_millis(1010),
            "{elapsed:?}"
        );
    }
}
