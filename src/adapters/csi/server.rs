//! The gRPC service the driver calls: `Version` and `Mount`.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::Stream;
use tokio::net::{UnixListener, UnixStream};
use tonic::{Request, Response, Status};

use super::proto::csi_driver_provider_server::{CsiDriverProvider, CsiDriverProviderServer};
use super::proto::{self, MountResponse, VersionResponse};
use super::reporting::ErrorReporting;
use super::status::status_of;
use crate::adapters::accept::unix_incoming;
use crate::adapters::metrics::{CodeLabels, Metrics};
use crate::domain::objects::Rule;
use crate::domain::pod_events::{event_for, EventsMode, Outcome, SeenVersions};
use crate::domain::target::TargetPath;
use crate::domain::text::capped;
use crate::domain::versions::ObjectVersion;
use crate::ports::{EventSink, PodRef};
use std::panic::AssertUnwindSafe;

use futures::FutureExt;
use tokio::sync::Semaphore;

use crate::service::{
    classify, gate_for, within_deadline, InternalError, LimitError, MountError, MountOutcome,
    MountRequest, Mounter, RawMountRequest, MAX_LOGGED_ERROR_BYTES,
};

pub const RUNTIME_NAME: &str = "secrets-store-csi-driver-provider-aws";
const PROTOCOL_VERSION: &str = "v1alpha1";

pub struct CsiProvider {
    mounter: Arc<dyn Mounter>,
    deadline: Duration,
    metrics: Arc<Metrics>,
    error_codes: ErrorReporting,
    /// Mounts served at once; more wait (within their deadline).
    slots: Arc<Semaphore>,
    /// Largest total of file contents handed back in driver-writes mode.
    max_response_bytes: usize,
    /// When set, targets must be pods' CSI volumes under this kubelet directory.
    kubelet_dir: Option<PathBuf>,
    /// Pod events (`--events`): which mounts earn one, and where they go.
    events: Option<(EventsMode, Arc<dyn EventSink>)>,
    /// What each target got last, for `SecretRotated` (`--events=all` only).
    seen: std::sync::Mutex<SeenVersions>,
}

/// Targets whose last versions are remembered for `SecretRotated`.
const MAX_SEEN_TARGETS: usize = 4096;

/// What an event about a mount needs from its request, kept before the request is
/// consumed.
struct EventSubject {
    pod: PodRef,
    class: String,
    target: String,
}

/// The driver's default gRPC receive limit is 4 MiB; leave room for paths and framing.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024 - 64 * 1024;
pub const DEFAULT_MAX_CONCURRENT_MOUNTS: usize = 64;

impl CsiProvider {
    /// `deadline` bounds each mount; past it the mount fails with INTERNAL.
    pub fn new(mounter: Arc<dyn Mounter>, deadline: Duration, metrics: Arc<Metrics>) -> Self {
        CsiProvider {
            mounter,
            deadline,
            metrics,
            error_codes: ErrorReporting::Statuses,
            slots: Arc::new(Semaphore::new(DEFAULT_MAX_CONCURRENT_MOUNTS)),
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            kubelet_dir: None,
            events: None,
            seen: std::sync::Mutex::new(SeenVersions::new(MAX_SEEN_TARGETS)),
        }
    }

    /// Records an event on the pod of each mount that `mode` names (never when Off).
    pub fn with_events(mut self, mode: EventsMode, sink: Arc<dyn EventSink>) -> Self {
        self.events = (mode != EventsMode::Off).then_some((mode, sink));
        self
    }

    fn record_event(&self, subject: Option<&EventSubject>, remount: bool, outcome: Outcome<'_>) {
        let (Some((mode, sink)), Some(subject)) = (&self.events, subject) else {
            return;
        };
        if let Some(event) = event_for(*mode, &subject.class, remount, outcome) {
            sink.record(&subject.pod, event);
        }
    }

    /// Only targets of the form `<dir>/pods/<uid>/volumes/kubernetes.io~csi/<name>/mount`.
    pub fn with_kubelet_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.kubelet_dir = dir;
        self
    }

    pub fn with_limits(mut self, max_concurrent_mounts: usize, max_response_bytes: usize) -> Self {
        self.slots = Arc::new(Semaphore::new(max_concurrent_mounts.max(1)));
        self.max_response_bytes = max_response_bytes;
        self
    }

    /// One mount: waits for a slot, bounded by the deadline, isolated from panics (a
    /// bug reached by one request fails that request, counted, and the server goes on).
    async fn run(&self, mut request: MountRequest) -> Result<MountOutcome, MountError> {
        let gate = gate_for(self.deadline);
        request.gate = gate.clone();
        let work = async {
            let _slot = self
                .slots
                .acquire()
                .await
                .map_err(|e| MountError::Internal(InternalError::ShuttingDown(e)))?;
            let outcome = self.mounter.mount(request).await?;
            let total: usize = outcome
                .files
                .iter()
                .flatten()
                .map(|f| f.contents.len() + f.path.as_str().len())
                .sum();
            if total > self.max_response_bytes {
                return Err(MountError::Limit(LimitError::Response {
                    total,
                    max: self.max_response_bytes,
                }));
            }
            Ok(outcome)
        };
        match within_deadline(AssertUnwindSafe(work).catch_unwind(), &gate, self.deadline).await {
            Err(deadline) => Err(deadline),
            Ok(Ok(result)) => result,
            Ok(Err(_panic)) => {
                self.metrics.panics.inc();
                tracing::error!(
                    "a mount panicked; the request failed and the provider keeps serving"
                );
                Err(MountError::Internal(InternalError::Panicked))
            }
        }
    }

    /// When to report failures as `MountResponse.error.code` instead of a gRPC status
    /// (`true`: always). The driver then shows only the code in the pod's events.
    pub fn with_error_codes(mut self, mode: impl Into<ErrorReporting>) -> Self {
        self.error_codes = mode.into();
        self
    }
}

/// Keeps the in-flight gauge right even when a mount is cancelled.
struct InFlight<'a>(&'a Metrics);

impl<'a> InFlight<'a> {
    fn enter(metrics: &'a Metrics) -> Self {
        metrics.mounts_in_flight.inc();
        InFlight(metrics)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.mounts_in_flight.dec();
    }
}

#[tonic::async_trait]
impl CsiDriverProvider for CsiProvider {
    async fn version(
        &self,
        _request: Request<proto::VersionRequest>,
    ) -> Result<Response<VersionResponse>, Status> {
        Ok(Response::new(VersionResponse {
            version: PROTOCOL_VERSION.to_string(),
            runtime_name: RUNTIME_NAME.to_string(),
            runtime_version: env!("CARGO_PKG_VERSION").to_string(),
        }))
    }

    async fn mount(
        &self,
        request: Request<proto::MountRequest>,
    ) -> Result<Response<MountResponse>, Status> {
        let raw = request.into_inner();
        let request = RawMountRequest {
            attributes: raw.attributes,
            permission: raw.permission,
            target_path: raw.target_path,
            secrets: raw.secrets,
            current_versions: raw
                .current_object_version
                .into_iter()
                .map(|v| ObjectVersion {
                    id: v.id,
                    version: v.version,
                })
                .collect(),
        };
        let started = Instant::now();
        // The target on its own: a remount whose attributes fail to parse is still a
        // remount, and must be reported as one.
        let target = TargetPath::parse(&request.target_path, self.kubelet_dir.as_deref()).ok();
        let mut subject = None;
        let result = {
            let _in_flight = InFlight::enter(&self.metrics);
            match request.parse(self.kubelet_dir.as_deref()) {
                Ok(request) => {
                    if self.events.is_some() {
                        let pod = &request.attributes.pod;
                        subject = Some(EventSubject {
                            pod: PodRef {
                                namespace: pod.namespace.clone(),
                                name: pod.name.clone(),
                                uid: pod.uid.clone(),
                            },
                            class: request.attributes.class.clone(),
                            target: request.target.to_string(),
                        });
                    }
                    self.run(request).await
                }
                Err(e) => {
                    // The service logs every mount it runs; this one never reached it.
                    let error = capped(e.to_string(), MAX_LOGGED_ERROR_BYTES);
                    tracing::warn!(outcome = "error", %error, "mount");
                    Err(e)
                }
            }
        };
        let outcome = match result {
            Ok(outcome) => {
                self.metrics
                    .mount_finished(None, started.elapsed(), Some(outcome.objects));
                if !outcome.unknown_keys.is_empty() {
                    self.metrics.mounts_with_unknown_keys.inc();
                }
                if let (Some(subject), Some((EventsMode::All, _))) = (&subject, &self.events) {
                    let changed = self.seen.lock().unwrap_or_else(|p| p.into_inner()).changed(
                        &subject.target,
                        &outcome.versions,
                        Instant::now(),
                    );
                    self.record_event(Some(subject), true, Outcome::Succeeded(&changed));
                }
                outcome
            }
            Err(e) => {
                if matches!(&e, MountError::Class(errors) if errors.has(Rule::UnknownKey)) {
                    self.metrics.mounts_with_unknown_keys.inc();
                }
                let code = classify(&e).code.as_str();
                self.metrics
                    .mount_finished(Some(code), started.elapsed(), None);
                let remount = target.is_some_and(|t| self.mounter.holds_mount(&t));
                if remount {
                    self.metrics
                        .remount_failures
                        .get_or_create(&CodeLabels {
                            code: code.to_string(),
                        })
                        .inc();
                }
                if subject.is_some() {
                    let message = e.to_string();
                    self.record_event(subject.as_ref(), remount, Outcome::Failed(&message));
                }
                if self.error_codes.as_code(remount) {
                    return Ok(Response::new(MountResponse {
                        object_version: Vec::new(),
                        error: Some(proto::Error {
                            code: code.to_string(),
                        }),
                        files: Vec::new(),
                    }));
                }
                return Err(status_of(&e));
            }
        };
        let MountOutcome {
            versions,
            files,
            held,
            ..
        } = outcome;
        let mut response = Response::new(MountResponse {
            object_version: versions
                .into_iter()
                .map(|v| proto::ObjectVersion {
                    id: v.id,
                    version: v.version,
                })
                .collect(),
            error: None,
            files: files
                .unwrap_or_default()
                .into_iter()
                .map(|f| proto::File {
                    path: f.path.to_string(),
                    mode: f.mode.bits() as i32,
                    contents: f.contents.expose().to_vec(),
                })
                .collect(),
        });
        // The values stay counted until the encoded response has left (see `held`).
        response
            .extensions_mut()
            .insert(super::held::HeldUntilSent::new(held));
        Ok(response)
    }
}

/// Serves the provider on `listener` until `shutdown` resolves, then stops accepting
/// and lets in-flight mounts finish. Accept errors (no descriptor left) back off
/// instead of spinning.
pub async fn serve(
    listener: UnixListener,
    provider: CsiProvider,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    serve_incoming(unix_incoming(listener), provider, shutdown).await
}

/// [`serve`] on the connections of `incoming`: the process serves the watched socket
/// ([`super::socket::watched_incoming`]), which may be bound again while it runs.
pub async fn serve_incoming(
    incoming: impl Stream<Item = io::Result<UnixStream>>,
    provider: CsiProvider,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error> {
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<CsiDriverProviderServer<CsiProvider>>()
        .await;
    tonic::transport::Server::builder()
        .layer(tower::util::MapResponseLayer::new(
            super::held::hold_until_sent,
        ))
        .add_service(health_service)
        .add_service(CsiDriverProviderServer::new(provider))
        .serve_with_incoming_shutdown(incoming, shutdown)
        .await
}
