//! A fake EKS Pod Identity agent: checks the Authorization header, answers credentials,
//! or the statuses queued for it; counts calls.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

#[derive(Default)]
pub struct AgentState {
    pub calls: usize,
    /// Statuses to answer before answering credentials.
    pub queued: VecDeque<u16>,
    pub tokens_seen: Vec<String>,
}

#[derive(Clone)]
pub struct FakeAgent {
    pub url: String,
    pub state: Arc<Mutex<AgentState>>,
}

impl FakeAgent {
    pub fn calls(&self) -> usize {
        self.state.lock().unwrap().calls
    }

    pub fn queue(&self, statuses: &[u16]) {
        self.state.lock().unwrap().queued.extend(statuses);
    }
}

/// Starts an agent on `bind` ("127.0.0.1:0" or "[::1]:0"), answering for `token`.
pub async fn start(bind: &str, token: &'static str) -> FakeAgent {
    let listener = TcpListener::bind(bind).await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let url = format!("http://{addr}/v1/credentials");
    let state = Arc::new(Mutex::new(AgentState::default()));
    let agent = FakeAgent {
        url,
        state: state.clone(),
    };
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let state = state.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let state = state.clone();
                    async move {
                        let auth = req
                            .headers()
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or("")
                            .to_string();
                        let queued = {
                            let mut s = state.lock().unwrap();
                            s.calls += 1;
                            s.tokens_seen.push(auth.clone());
                            s.queued.pop_front()
                        };
                        let (status, body) = match queued {
                            Some(status) => (status, format!("injected {status}")),
                            None if auth != token => {
                                (403, "token not valid for any association".to_string())
                            }
                            None => {
                                let expiry = std::time::SystemTime::now()
                                    + std::time::Duration::from_secs(3600);
                                let expiry = aws_smithy_types::DateTime::from(expiry)
                                    .fmt(aws_smithy_types::date_time::Format::DateTime)
                                    .unwrap();
                                let body = format!(
                                    r#"{{"AccessKeyId":"ASIAPODIDENTITY","SecretAccessKey":"pod-secret-key","Token":"pod-session-token","AccountId":"123456789012","Expiration":"{expiry}"}}"#
                                );
                                (200, body)
                            }
                        };
                        Ok::<_, Infallible>(
                            Response::builder()
                                .status(status)
                                .body(Full::new(Bytes::from(body)))
                                .unwrap(),
                        )
                    }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    agent
}
