//! The composition root: the one place that knows every adapter. It builds them from
//! the settings and hands them to the mount use case and the transports.

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};

use crate::adapters::accept::Backoff;
use crate::adapters::aws::credentials::pod_identity::AgentSettings;
use crate::adapters::aws::sdk::{self, SdkSettings};
use crate::adapters::aws::AwsStore;
use crate::adapters::cgroup::CgroupMemory;
use crate::adapters::coalesce::Coalescing;
use crate::adapters::csi::{self, BoundSocket, CsiProvider, SocketEvents, SocketWatch};
use crate::adapters::driver_sink::DriverSink;
use crate::adapters::fs_sink::FsSink;
use crate::adapters::kube::events::KubeEvents;
use crate::adapters::kube::{self as kube_adapter, KubeIdentity, KubeSettings};
use crate::adapters::local::{LocalStore, NoClusterIdentity};
use crate::adapters::metrics::Metrics;
use crate::adapters::ops_http::{self, Readiness};
use crate::adapters::ops_listen;
use crate::cli::class_file::parse_classes;
use crate::cli::MountArgs;
use crate::config::{Settings, StoreKind};
use crate::domain::attributes::MountAttributes;
use crate::domain::jmes::JmesLimits;
use crate::domain::mode::FileMode;
use crate::domain::objects::YamlLimits;
use crate::domain::pod_events::EventsMode;
use crate::domain::region::Region;
use crate::domain::target::TargetPath;
use crate::ports::{IdentityResolver, MountSink, SecretStore};
use crate::ports::{MemoryGauge, SystemClock};
use crate::service::{
    gate_for, within_deadline, MemoryWatch, MountOutcome, MountRequest, MountService,
    MountSettings, Mounter, ValueCache,
};

/// Who signs AWS calls of mounts that bring no token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signer {
    /// Serving pods: every mount uses its pod's identity; no token is an error.
    PodsOnly,
    /// `mount` on a laptop: the machine's default credential chain.
    MachineDefault,
}

/// The store the settings ask for. Identical concurrent fetches share one call.
pub async fn build_store(
    settings: &Settings,
    signer: Signer,
    metrics: Arc<Metrics>,
) -> anyhow::Result<Arc<dyn SecretStore>> {
    let store: Arc<dyn SecretStore> = match settings.store {
        StoreKind::Local => {
            let path = settings
                .local_store
                .as_deref()
                .context("--store local needs --local-store PATH")?;
            let store = LocalStore::new(path);
            // Fail at start, not at the first mount, when the file is unusable.
            store.load().map_err(|e| anyhow::anyhow!("{e}"))?;
            Arc::new(store)
        }
        StoreKind::Aws => {
            let default_credentials = signer == Signer::MachineDefault;
            let sdk_settings = SdkSettings {
                eks_addon_version: settings.eks_addon_version.clone(),
                default_credentials,
                endpoint_url: None,
            };
            let agent = AgentSettings {
                ipv4_endpoint: settings.pod_identity_ipv4_endpoint.clone(),
                ipv6_endpoint: settings.pod_identity_ipv6_endpoint.clone(),
                timeout: settings.pod_identity_http_timeout().unwrap_or(None),
            };
            let sdk = sdk::load(&sdk_settings).await?;
            Arc::new(AwsStore::new(
                sdk,
                agent,
                default_credentials,
                settings.fetch_concurrency,
                metrics.clone(),
            ))
        }
    };
    Ok(Arc::new(Coalescing::new(store, metrics)))
}

/// The provider's own region: AWS_REGION, when set and valid.
pub fn region_from_env() -> Option<Region> {
    let value = std::env::var("AWS_REGION").ok().filter(|v| !v.is_empty())?;
    match Region::parse(&value) {
        Ok(r) => Some(r),
        Err(e) => {
            tracing::warn!(error = %e, "ignoring AWS_REGION");
            None
        }
    }
}

fn mount_settings(settings: &Settings) -> MountSettings {
    MountSettings {
        default_region: region_from_env(),
        yaml_limits: YamlLimits {
            max_bytes: settings.max_objects_yaml_bytes,
            max_aliases: settings.max_yaml_aliases,
            max_objects: settings.max_objects,
            max_jmes_path_bytes: settings.max_jmes_path_bytes,
            max_jmes_entries_per_object: settings.max_jmes_entries_per_object,
            max_jmes_entries_per_mount: settings.max_jmes_entries_per_mount,
            ..YamlLimits::default()
        },
        max_secret_bytes: settings.max_secret_bytes,
        strict_objects: settings.strict_objects,
        acm_certificates: settings.acm_certificates,
        memory_budget_bytes: settings.memory_budget_bytes,
        memory: MemoryWatch::default(),
        value_cache: settings.value_cache(),
        jmes: JmesLimits {
            max_steps: settings.max_jmes_path_steps,
            max_bytes: settings.max_jmes_path_eval_bytes,
        },
        max_files: settings.max_files_per_mount,
    }
}

/// Who the pods are: the Kubernetes API for the AWS store; no cluster for the local one.
/// The second value owns the watches, to be stopped on shutdown.
pub async fn build_identity(
    settings: &Settings,
    metrics: Arc<Metrics>,
) -> anyhow::Result<(
    Arc<dyn IdentityResolver>,
    Option<Arc<KubeIdentity>>,
    Option<kube::Client>,
)> {
    if settings.store == StoreKind::Local {
        return Ok((Arc::new(NoClusterIdentity::default()), None, None));
    }
    let kube_settings = KubeSettings {
        qps: settings.qps,
        burst: settings.burst,
        node_name: std::env::var("NODE_NAME").ok().filter(|n| !n.is_empty()),
        watch_service_accounts: settings.watch_service_accounts,
        ..KubeSettings::default()
    };
    let config = kube::Config::infer()
        .await
        .context("no Kubernetes configuration (in-cluster or KUBECONFIG); the AWS store needs the cluster to find each pod's role")?;
    let client = kube_adapter::client(config, &kube_settings, metrics)?;
    let kube = Arc::new(KubeIdentity::start(client.clone(), &kube_settings));
    Ok((kube.clone(), Some(kube), Some(client)))
}

/// What the socket watch changes elsewhere: `/readyz` says not ready while the socket
/// is missing (the driver cannot reach us), and each re-bind is counted.
struct SocketHealth {
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
}

impl SocketEvents for SocketHealth {
    fn missing(&self) {
        self.readiness.set_ready(false);
    }

    fn rebound(&self) {
        self.metrics.socket_rebinds.inc();
        self.readiness.set_ready(true);
    }
}

/// Serves the driver on `<provider-volume>/aws.sock` (and the operations endpoint) until
/// `shutdown` resolves, binding the socket again whenever another process deletes it;
/// then finishes in-flight mounts and removes the socket bound last if it is still ours.
pub async fn serve(
    settings: Settings,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<()> {
    if let Err(value) = settings.pod_identity_http_timeout() {
        tracing::warn!(%value, "ignoring invalid --pod-identity-http-timeout");
    }
    let memory = CgroupMemory::detect().map(|c| Arc::new(c) as Arc<dyn MemoryGauge>);
    let mut metrics = Metrics::new();
    match &memory {
        Some(gauge) => metrics.watch_memory(gauge.clone()),
        None => tracing::info!("no memory cgroup found: mounts are not refused for memory"),
    }
    let service_settings = mount_settings(&settings);
    let cache = Arc::new(ValueCache::new(
        service_settings.value_cache,
        Arc::new(SystemClock),
    ));
    if cache.is_on() {
        metrics.watch_value_cache(cache.clone());
        let bounds = cache.bounds();
        tracing::info!(ttl = ?bounds.ttl, stale_if_error = ?bounds.stale_if_error, max_bytes = cache.max_bytes(), "value cache on");
    }
    let metrics = Arc::new(metrics);
    let readiness = Arc::new(Readiness::default());
    let (stop_ops, ops_stopped) = tokio::sync::oneshot::channel::<()>();
    let ops = if !settings.metrics_addr.is_empty() {
        // An address that does not resolve is a mistake in the configuration: refused
        // now. A port that does not bind (held by another process) never keeps the
        // socket from serving: it is bound in the background.
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host(&settings.metrics_addr)
            .await
            .with_context(|| format!("--metrics-addr {}", settings.metrics_addr))?
            .collect();
        if addrs.is_empty() {
            bail!("--metrics-addr {} names no address", settings.metrics_addr);
        }
        let limits = ops_http::Limits::for_this_process();
        let (metrics, readiness) = (metrics.clone(), readiness.clone());
        let mut stopped = ops_stopped;
        Some(tokio::spawn(async move {
            let backoff = Backoff::between(ops_listen::FIRST_RETRY, ops_listen::MAX_RETRY);
            let bound = ops_listen::bind_retrying(&addrs, backoff, async {
                let _ = (&mut stopped).await;
            })
            .await;
            let Some(listener) = bound else { return };
            let addr = listener
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_default();
            tracing::info!(%addr, max_connections = limits.max_connections, "operations endpoint: /metrics /healthz /readyz");
            ops_http::serve(listener, limits, metrics, readiness, async {
                let _ = stopped.await;
            })
            .await;
        }))
    } else {
        None
    };

    let (identity, watches, client) = build_identity(&settings, metrics.clone()).await?;
    let sink: Arc<dyn MountSink> = if settings.driver_writes_secrets {
        Arc::new(DriverSink)
    } else {
        Arc::new(FsSink::new())
    };
    let store = build_store(&settings, Signer::PodsOnly, metrics.clone()).await?;
    let mut service_settings = service_settings;
    if let Some(cgroup) = memory.clone() {
        service_settings.memory = MemoryWatch(cgroup);
    }
    let service = MountService::with_cache(identity, store, sink, service_settings, cache);
    let mut provider =
        CsiProvider::new(Arc::new(service), settings.mount_timeout(), metrics.clone())
            .with_kubelet_dir(settings.kubelet_dir.clone())
            .with_error_codes(settings.error_codes)
            .with_limits(settings.max_concurrent_mounts, settings.max_response_bytes);
    if settings.events != EventsMode::Off {
        // Events are about pods in a cluster: the local store has none.
        let client =
            client.context("--events needs the cluster (the AWS store), not --store local")?;
        let node = std::env::var("NODE_NAME").ok().filter(|n| !n.is_empty());
        let events = KubeEvents::start(client, node, metrics.clone());
        provider = provider.with_events(settings.events, events);
        tracing::info!(events = settings.events.name(), "pod events on");
    }
    let (listener, guard) = csi::bind_socket(&settings.provider_volume).with_context(|| {
        format!(
            "binding {}",
            settings.provider_volume.join(csi::SOCKET_NAME).display()
        )
    })?;
    tracing::info!(socket = %guard.path().display(), store = ?settings.store, driver_writes_secrets = settings.driver_writes_secrets, "serving");
    readiness.set_ready(true);
    let bound = BoundSocket::new(guard);
    let watch = SocketWatch::new(
        &settings.provider_volume,
        bound.clone(),
        Arc::new(SocketHealth {
            metrics: metrics.clone(),
            readiness: readiness.clone(),
        }),
    );
    let incoming = csi::watched_incoming(listener, watch, csi::WATCH_INTERVAL);

    // In-flight mounts get their deadline plus a margin after the signal; a client that
    // keeps an idle connection open must not hold the process past that.
    let grace = settings.mount_timeout() + Duration::from_secs(5);
    let (signalled_tx, signalled_rx) = tokio::sync::oneshot::channel::<()>();
    let readiness_on_stop = readiness.clone();
    let signal = async move {
        shutdown.await;
        readiness_on_stop.set_ready(false);
        let _ = signalled_tx.send(());
    };
    let served = tokio::select! {
        served = csi::serve_incoming(incoming, provider, signal) => served,
        () = async {
            if signalled_rx.await.is_ok() {
                tokio::time::sleep(grace).await;
            } else {
                std::future::pending::<()>().await;
            }
        } => {
            tracing::warn!(?grace, "connections still open after the shutdown grace period; exiting");
            Ok(())
        }
    };
    // Every background task ends here: the operations endpoint and the watches.
    let _ = stop_ops.send(());
    if let Some(ops) = ops {
        let _ = tokio::time::timeout(Duration::from_secs(2), ops).await;
    }
    if let Some(watches) = watches {
        watches.stop();
    }
    if bound.remove_if_ours() {
        tracing::info!("socket removed");
    } else {
        tracing::info!("socket left in place: a newer provider owns it");
    }
    served.context("gRPC server failed")
}

/// Runs one mount in process: the same use case the socket serves, into `args.target`.
pub async fn mount_once(settings: &Settings, args: &MountArgs) -> anyhow::Result<MountOutcome> {
    let text = std::fs::read_to_string(&args.class)
        .with_context(|| format!("reading {}", args.class.display()))?;
    let classes =
        parse_classes(&text).map_err(|e| anyhow::anyhow!("{}: {e}", args.class.display()))?;
    let class = match &args.name {
        Some(name) => classes.into_iter().find(|c| &c.name == name),
        None => classes.into_iter().next(),
    }
    .with_context(|| {
        format!(
            "no matching SecretProviderClass in {}",
            args.class.display()
        )
    })?;
    if class.provider != "aws" {
        bail!(
            "class {} is for provider `{}`, not `aws`",
            class.name,
            class.provider
        );
    }
    let mode = FileMode::parse_octal(&args.permission)?;
    std::fs::create_dir_all(&args.target)
        .with_context(|| format!("creating {}", args.target.display()))?;
    let target = std::fs::canonicalize(&args.target)?;

    let region = args.region.as_deref().map(Region::parse).transpose()?;
    let identity = Arc::new(NoClusterIdentity {
        region: region.clone(),
    });
    let mut service_settings = mount_settings(settings);
    // An explicit --region beats AWS_REGION; the class's own region beats both.
    if region.is_some() {
        service_settings.default_region = region;
    }
    let service = MountService::new(
        identity,
        build_store(settings, Signer::MachineDefault, Arc::default()).await?,
        Arc::new(FsSink::new()),
        service_settings,
    );
    let deadline = settings.mount_timeout();
    let gate = gate_for(deadline);
    // Built directly: the class's parameters are already a map of strings.
    let request = MountRequest {
        attributes: MountAttributes::from_map(&attributes_for(&class.parameters, args))?,
        default_mode: mode,
        target: TargetPath::parse(path_str(&target)?, None)?,
        current_versions: Vec::new(),
        secrets: Default::default(),
        gate: gate.clone(),
    };
    let outcome = within_deadline(service.mount(request), &gate, deadline).await??;
    Ok(outcome)
}

fn attributes_for(
    parameters: &HashMap<String, String>,
    args: &MountArgs,
) -> HashMap<String, String> {
    let mut attributes = parameters.clone();
    attributes.insert(
        "csi.storage.k8s.io/pod.namespace".into(),
        args.namespace.clone(),
    );
    attributes.insert("csi.storage.k8s.io/pod.name".into(), "local-mount".into());
    attributes.insert(
        "csi.storage.k8s.io/serviceAccount.name".into(),
        args.service_account.clone(),
    );
    attributes
}

fn path_str(path: &Path) -> anyhow::Result<&str> {
    path.to_str()
        .with_context(|| format!("{} is not valid UTF-8", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_socket_is_not_ready_until_bound_again_and_each_rebind_is_counted() {
        let metrics = Arc::new(Metrics::new());
        let readiness = Arc::new(Readiness::default());
        readiness.set_ready(true);
        let health = SocketHealth {
            metrics: metrics.clone(),
            readiness: readiness.clone(),
        };
        health.missing();
        assert!(!readiness.is_ready());
        health.rebound();
        assert!(readiness.is_ready());
        assert_eq!(metrics.socket_rebinds.get(), 1);
    }
}
