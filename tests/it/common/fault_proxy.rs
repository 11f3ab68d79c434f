//! A small HTTP proxy in front of moto: counts calls by operation and region, and
//! answers an injected error for chosen signing regions (moto has no fault injection).

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

/// An injected answer: HTTP status and JSON error body.
#[derive(Clone)]
pub struct Fault {
    pub status: u16,
    pub code: &'static str,
}

#[derive(Default)]
pub struct State {
    /// (operation, signing region) → calls.
    pub calls: HashMap<(String, String), usize>,
    /// signing region → fault.
    pub faults: HashMap<String, Fault>,
    /// operation → fault for its next n calls (unsigned calls carry no region).
    pub next_calls: HashMap<String, (Fault, usize)>,
    /// The access key id of every signed call, in order.
    pub access_keys: Vec<String>,
    /// The body of the last call of each operation.
    pub last_body: HashMap<String, String>,
}

#[derive(Clone)]
pub struct Proxy {
    pub url: String,
    pub state: Arc<Mutex<State>>,
}

impl Proxy {
    pub fn fail_region(&self, region: &str, fault: Fault) {
        self.state
            .lock()
            .unwrap()
            .faults
            .insert(region.to_string(), fault);
    }

    pub fn fail_next(&self, operation: &str, n: usize, fault: Fault) {
        self.state
            .lock()
            .unwrap()
            .next_calls
            .insert(operation.to_string(), (fault, n));
    }

    /// Calls of `operation` (e.g. `GetSecretValue`) in every region.
    pub fn count(&self, operation: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .calls
            .iter()
            .filter(|((op, _), _)| op == operation)
            .map(|(_, n)| n)
            .sum()
    }

    pub fn count_in(&self, operation: &str, region: &str) -> usize {
        let key = (operation.to_string(), region.to_string());
        self.state
            .lock()
            .unwrap()
            .calls
            .get(&key)
            .copied()
            .unwrap_or(0)
    }

    /// The body of the last call of `operation`, as sent.
    pub fn last_body(&self, operation: &str) -> String {
        let state = self.state.lock().unwrap();
        state.last_body.get(operation).cloned().unwrap_or_default()
    }

    pub fn reset_counts(&self) {
        let mut state = self.state.lock().unwrap();
        state.calls.clear();
        state.access_keys.clear();
    }
}

fn operation(target: Option<&str>, body: &[u8]) -> String {
    if let Some(t) = target {
        return t.rsplit('.').next().unwrap_or(t).to_string();
    }
    // Query protocol (STS): Action=... in the form body.
    String::from_utf8_lossy(body)
        .split('&')
        .find_map(|kv| kv.strip_prefix("Action="))
        .unwrap_or("unknown")
        .to_string()
}

pub async fn start(upstream: &str) -> Proxy {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let state = Arc::new(Mutex::new(State::default()));
    let proxy = Proxy {
        url,
        state: state.clone(),
    };
    let upstream = upstream.to_string();
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let (state, upstream, client) = (state.clone(), upstream.clone(), client.clone());
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let (state, upstream, client) =
                        (state.clone(), upstream.clone(), client.clone());
                    async move {
                        let region = testkit::aws_stub::region_of(&req);
                        let access_key = req
                            .headers()
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .and_then(|a| a.split("Credential=").nth(1))
                            .and_then(|c| c.split('/').next())
                            .map(str::to_string);
                        let target = req
                            .headers()
                            .get("x-amz-target")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_string);
                        let (parts, body) = req.into_parts();
                        let body = body
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let op = operation(target.as_deref(), &body);
                        let fault = {
                            let mut s = state.lock().unwrap();
                            *s.calls.entry((op.clone(), region.clone())).or_default() += 1;
                            s.access_keys.extend(access_key.clone());
                            s.last_body
                                .insert(op.clone(), String::from_utf8_lossy(&body).into_owned());
                            let once = match s.next_calls.get_mut(&op) {
                                Some((fault, n)) if *n > 0 => {
                                    *n -= 1;
                                    Some(fault.clone())
                                }
                                _ => None,
                            };
                            once.or_else(|| s.faults.get(&region).cloned())
                        };
                        if let Some(fault) = fault {
                            // JSON protocols (X-Amz-Target) get a JSON error, the query
                            // protocol (STS) an XML one, as AWS answers.
                            let (content_type, body) = if target.is_some() {
                                (
                                    "application/x-amz-json-1.1",
                                    format!(
                                        r#"{{"__type":"{}","message":"injected by the test proxy"}}"#,
                                        fault.code
                                    ),
                                )
                            } else {
                                ("text/xml", format!("<ErrorResponse><Error><Type>Sender</Type><Code>{}</Code><Message>injected by the test proxy</Message></Error><RequestId>r</RequestId></ErrorResponse>", fault.code))
                            };
                            return Ok::<_, Infallible>(
                                Response::builder()
                                    .status(fault.status)
                                    .header("content-type", content_type)
                                    .header("x-amzn-errortype", fault.code)
                                    .body(Full::new(Bytes::from(body)))
                                    .unwrap(),
                            );
                        }
                        let path = parts
                            .uri
                            .path_and_query()
                            .map(|p| p.as_str())
                            .unwrap_or("/");
                        let mut forward = Request::builder()
                            .method(parts.method)
                            .uri(format!("{upstream}{path}"));
                        for (k, v) in parts.headers.iter() {
                            forward = forward.header(k, v);
                        }
                        let answer = client.request(forward.body(Full::new(body)).unwrap()).await;
                        Ok(match answer {
                            Ok(resp) => {
                                let (parts, body) = resp.into_parts();
                                let body = body
                                    .collect()
                                    .await
                                    .map(|b| b.to_bytes())
                                    .unwrap_or_default();
                                Response::from_parts(parts, Full::new(body))
                            }
                            Err(_) => Response::builder()
                                .status(502)
                                .body(Full::new(Bytes::new()))
                                .unwrap(),
                        })
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    proxy
}
