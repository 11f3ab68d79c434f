//! A fast AWS stub for the benchmark and the soak run: Secrets Manager GetSecretValue,
//! DescribeSecret and BatchGetSecretValue, SSM GetParameters and GetParametersByPath,
//! and STS AssumeRoleWithWebIdentity in their wire formats, reached through
//! `AWS_ENDPOINT_URL`. Selections match `SELECTION_SIZE` objects, in pages. Every secret and parameter exists; its
//! value and version change with the stub's epoch. Calls are counted by operation and
//! signing region; each answer waits a configurable latency.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use tokio::net::TcpListener;

#[derive(Default)]
pub struct StubState {
    /// (operation, region) → calls.
    pub calls: HashMap<(String, String), u64>,
}

#[derive(Clone)]
pub struct AwsStub {
    pub url: String,
    pub state: Arc<Mutex<StubState>>,
    epoch: Arc<AtomicU64>,
    latency_ms: Arc<AtomicU64>,
    /// Regions answering 500 to everything.
    failing: Arc<Mutex<Vec<String>>>,
    /// When non-zero, every SecretString is padded to this many bytes.
    value_bytes: Arc<AtomicU64>,
    /// An error code BatchGetSecretValue reports for the first secret it selects.
    selection_error: Arc<Mutex<Option<String>>>,
}

impl AwsStub {
    /// Calls of `operation` in all regions.
    pub fn count(&self, operation: &str) -> u64 {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        state
            .calls
            .iter()
            .filter(|((op, _), _)| op == operation)
            .map(|(_, n)| n)
            .sum()
    }

    pub fn counts(&self) -> HashMap<(String, String), u64> {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .calls
            .clone()
    }

    pub fn reset(&self) {
        self.state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .calls
            .clear();
    }

    /// Every value and version changes.
    pub fn rotate(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
    }

    /// How many times the values were rotated: secrets' versions are `v{epoch}`.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    /// Secrets of `bytes` bytes from now on (0: the small default JSON).
    pub fn set_value_bytes(&self, bytes: u64) {
        self.value_bytes.store(bytes, Ordering::SeqCst);
    }

    pub fn set_latency(&self, latency: Duration) {
        self.latency_ms
            .store(latency.as_millis() as u64, Ordering::SeqCst);
    }

    /// BatchGetSecretValue reports `code` for the first secret it selects, as AWS does
    /// for a secret the caller may not read.
    pub fn fail_selected_secret(&self, code: &str) {
        *self
            .selection_error
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(code.to_string());
    }

    pub fn fail_region(&self, region: &str) {
        self.failing
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(region.to_string());
    }
}

/// The signing region of a request (`Credential=AKID/date/REGION/service/...`); `sts`
/// for unsigned requests (STS AssumeRoleWithWebIdentity).
pub fn region_of(req: &Request<Incoming>) -> String {
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    auth.split("Credential=")
        .nth(1)
        .and_then(|c| c.split('/').nth(2))
        .unwrap_or("sts")
        .to_string()
}

fn json_answer(status: u16, body: Value) -> Response<Full<Bytes>> {
    Response::builder()
        .status(status)
        .header("content-type", "application/x-amz-json-1.1")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap_or_default()
}

/// The stub's state that shapes one answer.
struct Answering {
    epoch: u64,
    value_bytes: usize,
    selection_error: Option<String>,
}

fn answer(
    target: Option<&str>,
    body: &[u8],
    region: &str,
    state: Answering,
) -> Response<Full<Bytes>> {
    let Answering {
        epoch,
        value_bytes,
        selection_error,
    } = state;
    let input: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    match target {
        Some("secretsmanager.GetSecretValue") | Some("secretsmanager.DescribeSecret") => {
            let name = input["SecretId"].as_str().unwrap_or("unnamed");
            let version = format!("v{epoch}");
            json_answer(
                200,
                json!({
                    "ARN": format!("arn:aws:secretsmanager:{region}:123456789012:secret:{name}-AbCdEf"),
                    "Name": name,
                    "VersionId": version,
                    "SecretString": if value_bytes > 0 {
                        format!("{epoch}-{}", "v".repeat(value_bytes.saturating_sub(epoch.to_string().len() + 1)))
                    } else {
                        format!(r#"{{"username":"user-{epoch}","password":"pw-{name}-{epoch}"}}"#)
                    },
                    "VersionStages": ["AWSCURRENT"],
                    "VersionIdsToStages": {version.clone(): ["AWSCURRENT"]},
                    "CreatedDate": 1.7e9,
                }),
            )
        }
        Some("AmazonSSM.GetParametersByPath") => {
            let path = input["Path"].as_str().unwrap_or("/").trim_end_matches('/');
            let (range, next) = page(&input, 10);
            let parameters: Vec<Value> = range
                .map(|i| {
                    let name = format!("{path}/param-{i}");
                    json!({"Name": name, "Type": "String", "Value": format!("{name}={epoch}"), "Version": epoch + 1,
                           "ARN": format!("arn:aws:ssm:{region}:123456789012:parameter{name}"), "DataType": "text", "LastModifiedDate": 1.7e9})
                })
                .collect();
            json_answer(200, json!({"Parameters": parameters, "NextToken": next}))
        }
        Some("secretsmanager.BatchGetSecretValue") => {
            let prefix = input["Filters"]
                .as_array()
                .and_then(|filters| {
                    filters
                        .iter()
                        .find(|f| f["Key"] == "name")
                        .and_then(|f| f["Values"][0].as_str())
                })
                .unwrap_or("selected/")
                .to_string();
            let (range, next) = page(&input, 20);
            let version = format!("v{epoch}");
            let errors: Vec<Value> = match &selection_error {
                Some(code) if range.contains(&0) => vec![
                    json!({"SecretId": format!("{prefix}secret-0"), "ErrorCode": code, "Message": "stub refusal"}),
                ],
                _ => vec![],
            };
            let secrets: Vec<Value> = range
                .filter(|i| *i != 0 || errors.is_empty())
                .map(|i| {
                    let name = format!("{prefix}secret-{i}");
                    json!({"ARN": format!("arn:aws:secretsmanager:{region}:123456789012:secret:{name}-AbCdEf"),
                           "Name": name, "VersionId": version, "SecretString": format!("{name}={epoch}"),
                           "VersionStages": ["AWSCURRENT"], "CreatedDate": 1.7e9})
                })
                .collect();
            json_answer(
                200,
                json!({"SecretValues": secrets, "Errors": errors, "NextToken": next}),
            )
        }
        Some("AmazonSSM.GetParameters") => {
            let names: Vec<String> = input["Names"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|n| n.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            let parameters: Vec<Value> = names
                .iter()
                .map(|n| {
                    let base = n.split(':').next().unwrap_or(n);
                    json!({"Name": base, "Type": "String", "Value": format!("{base}={epoch}"), "Version": epoch + 1,
                           "ARN": format!("arn:aws:ssm:{region}:123456789012:parameter{base}"), "DataType": "text", "LastModifiedDate": 1.7e9})
                })
                .collect();
            json_answer(
                200,
                json!({"Parameters": parameters, "InvalidParameters": []}),
            )
        }
        _ => {
            let form = String::from_utf8_lossy(body);
            if form.contains("Action=AssumeRoleWithWebIdentity") {
                let xml = format!(
                    "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>ASIASTUB</AccessKeyId><SecretAccessKey>stub-secret</SecretAccessKey><SessionToken>stub-session-{epoch}</SessionToken><Expiration>2099-01-01T00:00:00Z</Expiration></Credentials><SubjectFromWebIdentityToken>system:serviceaccount</SubjectFromWebIdentityToken><AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/stub/s</Arn><AssumedRoleId>AROASTUB:s</AssumedRoleId></AssumedRoleUser></AssumeRoleWithWebIdentityResult><ResponseMetadata><RequestId>stub</RequestId></ResponseMetadata></AssumeRoleWithWebIdentityResponse>"
                );
                return Response::builder()
                    .status(200)
                    .header("content-type", "text/xml")
                    .body(Full::new(Bytes::from(xml)))
                    .unwrap_or_default();
            }
            json_answer(
                400,
                json!({"__type": "UnknownOperationException", "message": "not stubbed"}),
            )
        }
    }
}

/// Every selection matches this many objects, served in pages as AWS does.
pub const SELECTION_SIZE: usize = 12;

/// The indices of one page of a selection and the token of the next, from the
/// request's `NextToken` and `MaxResults` (at most `max_page`).
fn page(input: &Value, max_page: u64) -> (std::ops::Range<usize>, Option<String>) {
    let start: usize = input["NextToken"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let size = input["MaxResults"]
        .as_u64()
        .unwrap_or(max_page)
        .min(max_page) as usize;
    let end = (start + size).min(SELECTION_SIZE);
    let next = (end < SELECTION_SIZE).then(|| end.to_string());
    (start.min(end)..end, next)
}

fn operation(target: Option<&str>, body: &[u8]) -> String {
    match target {
        Some(t) => t.rsplit('.').next().unwrap_or(t).to_string(),
        None => String::from_utf8_lossy(body)
            .split('&')
            .find_map(|kv| kv.strip_prefix("Action="))
            .unwrap_or("unknown")
            .to_string(),
    }
}

/// Starts the stub on 127.0.0.1.
pub async fn start(latency: Duration) -> std::io::Result<AwsStub> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let stub = AwsStub {
        url: format!("http://{}", listener.local_addr()?),
        state: Arc::default(),
        epoch: Arc::new(AtomicU64::new(1)),
        latency_ms: Arc::new(AtomicU64::new(latency.as_millis() as u64)),
        failing: Arc::default(),
        value_bytes: Arc::default(),
        selection_error: Arc::default(),
    };
    let server = stub.clone();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let stub = server.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let stub = stub.clone();
                    async move {
                        let region = region_of(&req);
                        let target = req
                            .headers()
                            .get("x-amz-target")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_string);
                        let body = req
                            .into_body()
                            .collect()
                            .await
                            .map(|b| b.to_bytes())
                            .unwrap_or_default();
                        let op = operation(target.as_deref(), &body);
                        *stub
                            .state
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .calls
                            .entry((op, region.clone()))
                            .or_default() += 1;
                        let latency = stub.latency_ms.load(Ordering::SeqCst);
                        if latency > 0 {
                            tokio::time::sleep(Duration::from_millis(latency)).await;
                        }
                        if stub
                            .failing
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .contains(&region)
                        {
                            return Ok::<_, Infallible>(json_answer(
                                500,
                                json!({"__type": "InternalServiceError", "message": "stub outage"}),
                            ));
                        }
                        let selection_error = stub
                            .selection_error
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .clone();
                        Ok::<_, Infallible>(answer(
                            target.as_deref(),
                            &body,
                            &region,
                            Answering {
                                epoch: stub.epoch.load(Ordering::SeqCst),
                                value_bytes: usize::try_from(
                                    stub.value_bytes.load(Ordering::SeqCst),
                                )
                                .unwrap_or(0),
                                selection_error,
                            },
                        ))
                    }
                });
                let _ = http1::Builder::new()
                    .keep_alive(true)
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(stub)
}
