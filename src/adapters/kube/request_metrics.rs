//! Counts every request of the Kubernetes client by resource, verb and outcome.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures::future::BoxFuture;
use tower::{Layer, Service};

use crate::adapters::metrics::{KubeLabels, Metrics};

#[derive(Clone)]
pub struct RequestMetricsLayer(pub Arc<Metrics>);

impl<S> Layer<S> for RequestMetricsLayer {
    type Service = RequestMetrics<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequestMetrics {
            inner,
            metrics: self.0.clone(),
        }
    }
}

pub struct RequestMetrics<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

/// (resource, verb) of a core/v1 path; resources outside the provider's three are `other`.
pub fn classify(path: &str, query: Option<&str>) -> (&'static str, &'static str) {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let rest: &[&str] = match parts.as_slice() {
        ["api", "v1", "namespaces", _ns, rest @ ..] if !rest.is_empty() => rest,
        ["api", "v1", rest @ ..] => rest,
        _ => &[],
    };
    let resource = match rest.first() {
        Some(&"serviceaccounts") => "serviceaccounts",
        Some(&"pods") => "pods",
        Some(&"nodes") => "nodes",
        _ => "other",
    };
    let watch = query.is_some_and(|q| q.split('&').any(|kv| kv == "watch=true" || kv == "watch=1"));
    let verb = match (rest.len(), watch) {
        (_, true) => "watch",
        (1, false) => "list",
        _ => "get",
    };
    (resource, verb)
}

fn outcome(status: u16) -> &'static str {
    match status {
        200..=299 => "ok",
        403 => "forbidden",
        404 => "not_found",
        429 => "throttled",
        500..=599 => "server_error",
        _ => "client_error",
    }
}

impl<S, B, R> Service<http::Request<B>> for RequestMetrics<S>
where
    S: Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<S::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let (resource, verb) = classify(request.uri().path(), request.uri().query());
        let metrics = self.metrics.clone();
        let call = self.inner.call(request);
        Box::pin(async move {
            let result = call.await;
            let outcome = match &result {
                Ok(response) => outcome(response.status().as_u16()),
                Err(_) => "transport_error",
            };
            let labels = KubeLabels {
                resource: resource.into(),
                verb: verb.into(),
                outcome: outcome.into(),
            };
            metrics.kube_requests.get_or_create(&labels).inc();
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_map_to_bounded_resources_and_verbs() {
        assert_eq!(
            classify("/api/v1/namespaces/shop/serviceaccounts/web", None),
            ("serviceaccounts", "get")
        );
        assert_eq!(
            classify("/api/v1/serviceaccounts", Some("limit=500")),
            ("serviceaccounts", "list")
        );
        assert_eq!(
            classify(
                "/api/v1/serviceaccounts",
                Some("watch=true&resourceVersion=1")
            ),
            ("serviceaccounts", "watch")
        );
        assert_eq!(classify("/api/v1/nodes/node-1", None), ("nodes", "get"));
        assert_eq!(
            classify("/api/v1/namespaces/shop/pods/web-0", None),
            ("pods", "get")
        );
        assert_eq!(
            classify("/apis/apps/v1/deployments", None),
            ("other", "get")
        );
    }
}
