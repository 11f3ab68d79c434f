//! The operations endpoint (`--metrics-addr`): `/metrics` (Prometheus), `/healthz`
//! (process alive), `/readyz` (socket served and configuration loaded).

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use super::metrics::Metrics;

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

/// Serves until `shutdown` resolves.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else { continue };
        let (metrics, readiness) = (metrics.clone(), readiness.clone());
        tokio::spawn(async move {
            let service = service_fn(move |req: Request<Incoming>| {
                let response = route(req.uri().path(), &metrics, &readiness);
                async move { Ok::<_, Infallible>(response) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
