//! Prometheus metrics of the provider. Every label set is bounded: results, error codes,
//! AWS services, operations and regions, Kubernetes resources. Never an object name,
//! never a value.

use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;

use crate::domain::failover::{ClientKind, ErrorClass};
use crate::ports::MemoryGauge;
use crate::service::ValueCache;

const PREFIX: &str = "secrets_store_provider_aws";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MountLabels {
    /// `ok` or `error`.
    pub result: String,
    /// The error code vocabulary (`SecretNotFound`, ...), `none` on success.
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AwsLabels {
    pub service: String,
    pub operation: String,
    pub region: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AwsDurationLabels {
    pub service: String,
    pub operation: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabels {
    /// The error code vocabulary (`SecretNotFound`, ...).
    pub code: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    /// `SecretMountFailed`, `SecretRotationFailed` or `SecretRotated`.
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DroppedEventLabels {
    /// `pod_limit`, `node_limit`, `too_many_pods`, `queue_full` or `api_error`.
    pub why: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    /// `irsa` or `pod_identity`.
    pub source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CredentialLabels {
    pub source: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KubeLabels {
    pub resource: String,
    pub verb: String,
    pub outcome: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

pub struct Metrics {
    registry: Registry,
    pub mounts: Family<MountLabels, Counter>,
    pub mount_duration: Histogram,
    pub mount_objects: Histogram,
    pub mounts_in_flight: Gauge,
    pub aws_calls: Family<AwsLabels, Counter>,
    pub aws_call_duration: HistogramFamily<AwsDurationLabels>,
    pub credential_fetches: Family<CredentialLabels, Counter>,
    pub credential_cache_hits: Family<SourceLabels, Counter>,
    pub coalesced_fetches: Counter,
    pub kube_requests: Family<KubeLabels, Counter>,
    pub panics: Counter,
    pub mounts_with_unknown_keys: Counter,
    /// Failed mounts on targets that already held one: rotations that keep failing.
    pub remount_failures: Family<CodeLabels, Counter>,
    /// Times `aws.sock` was found deleted and bound again.
    pub socket_rebinds: Counter,
    /// Pod events recorded (`--events`), by reason.
    pub events_recorded: Family<EventLabels, Counter>,
    /// Pod events not recorded: over a limit, the queue full, or refused by the API server.
    pub events_dropped: Family<DroppedEventLabels, Counter>,
}

fn latency_histogram() -> Histogram {
    // 1 ms .. ~33 s
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix(PREFIX);
        let mounts = Family::<MountLabels, Counter>::default();
        registry.register("mounts", "Mounts by result and error code", mounts.clone());
        let mount_duration = latency_histogram();
        registry.register_with_unit(
            "mount_duration",
            "Duration of a mount",
            Unit::Seconds,
            mount_duration.clone(),
        );
        let mount_objects = Histogram::new([1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0]);
        registry.register("mount_objects", "Objects per mount", mount_objects.clone());
        let mounts_in_flight = Gauge::default();
        registry.register(
            "mounts_in_flight",
            "Mounts being served",
            mounts_in_flight.clone(),
        );
        let aws_calls = Family::<AwsLabels, Counter>::default();
        registry.register(
            "aws_calls",
            "AWS calls by service, operation, region and outcome",
            aws_calls.clone(),
        );
        let aws_call_duration: HistogramFamily<AwsDurationLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register_with_unit(
            "aws_call_duration",
            "Duration of AWS calls, retries included",
            Unit::Seconds,
            aws_call_duration.clone(),
        );
        let credential_fetches = Family::<CredentialLabels, Counter>::default();
        registry.register(
            "credential_fetches",
            "Credential calls (STS, Pod Identity agent)",
            credential_fetches.clone(),
        );
        let credential_cache_hits = Family::<SourceLabels, Counter>::default();
        registry.register(
            "credential_cache_hits",
            "Credentials served from the cache",
            credential_cache_hits.clone(),
        );
        let coalesced_fetches = Counter::default();
        registry.register(
            "coalesced_fetches",
            "Object fetches that joined an identical one in flight",
            coalesced_fetches.clone(),
        );
        let kube_requests = Family::<KubeLabels, Counter>::default();
        registry.register(
            "kubernetes_requests",
            "Kubernetes API requests by resource, verb and outcome",
            kube_requests.clone(),
        );
        let panics = Counter::default();
        registry.register(
            "mount_panics",
            "Mounts that hit a bug (a panic) and failed alone",
            panics.clone(),
        );
        let mounts_with_unknown_keys = Counter::default();
        registry.register(
            "mounts_with_unknown_keys",
            "Mounts whose class carried keys that name no field (ignored; often a typo)",
            mounts_with_unknown_keys.clone(),
        );
        let remount_failures = Family::<CodeLabels, Counter>::default();
        registry.register(
            "remount_failures",
            "Failed mounts on targets that already held a mount (the driver hides these from kubelet), by code",
            remount_failures.clone(),
        );
        let socket_rebinds = Counter::default();
        registry.register(
            "socket_rebinds",
            "Times the socket was found deleted by another process and bound again",
            socket_rebinds.clone(),
        );
        let events_recorded = Family::<EventLabels, Counter>::default();
        registry.register(
            "events_recorded",
            "Kubernetes Events recorded on pods (--events), by reason",
            events_recorded.clone(),
        );
        let events_dropped = Family::<DroppedEventLabels, Counter>::default();
        registry.register(
            "events_dropped",
            "Kubernetes Events not recorded: over the per-pod or per-node limit, queue full, or refused by the API server",
            events_dropped.clone(),
        );
        Metrics {
            events_recorded,
            events_dropped,
            socket_rebinds,
            panics,
            mounts_with_unknown_keys,
            remount_failures,
            registry,
            mounts,
            mount_duration,
            mount_objects,
            mounts_in_flight,
            aws_calls,
            aws_call_duration,
            credential_fetches,
            credential_cache_hits,
            coalesced_fetches,
            kube_requests,
        }
    }

    /// Credential calls made and answers served from the cache, over every label.
    pub fn credential_totals(&self) -> (u64, u64) {
        let sources = ["irsa", "pod_identity", "assume_role"];
        let outcomes = [
            "ok",
            "not_found",
            "access_denied",
            "invalid",
            "client_error",
            "server_error",
            "transport_error",
        ];
        let mut fetches = 0;
        let mut hits = 0;
        for source in sources {
            for outcome in outcomes {
                let labels = CredentialLabels {
                    source: source.to_string(),
                    outcome: outcome.to_string(),
                };
                fetches += self.credential_fetches.get_or_create(&labels).get();
            }
            let labels = SourceLabels {
                source: source.to_string(),
            };
            hits += self.credential_cache_hits.get_or_create(&labels).get();
        }
        (fetches, hits)
    }

    /// Exposes the provider's memory cgroup (working set and limit), read at each scrape.
    pub fn watch_memory(&mut self, gauge: Arc<dyn MemoryGauge>) {
        self.registry
            .register_collector(Box::new(CgroupCollector(gauge)));
    }

    /// Exposes the node-wide value cache, read at each scrape.
    pub fn watch_value_cache(&mut self, cache: Arc<ValueCache>) {
        self.registry
            .register_collector(Box::new(ValueCacheCollector(cache)));
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }

    pub fn mount_finished(&self, code: Option<&str>, duration: Duration, objects: Option<usize>) {
        let labels = MountLabels {
            result: if code.is_none() { "ok" } else { "error" }.to_string(),
            code: code.unwrap_or("none").to_string(),
        };
        self.mounts.get_or_create(&labels).inc();
        self.mount_duration.observe(duration.as_secs_f64());
        if let Some(n) = objects {
            self.mount_objects.observe(n as f64);
        }
    }

    pub fn aws_call(
        &self,
        service: &str,
        operation: &str,
        region: &str,
        outcome: &str,
        duration: Duration,
    ) {
        let labels = AwsLabels {
            service: service.to_string(),
            operation: operation.to_string(),
            region: region_label(region).to_string(),
            outcome: outcome.to_string(),
        };
        self.aws_calls.get_or_create(&labels).inc();
        let d = AwsDurationLabels {
            service: service.to_string(),
            operation: operation.to_string(),
        };
        self.aws_call_duration
            .get_or_create(&d)
            .observe(duration.as_secs_f64());
    }
}

struct CgroupCollector(Arc<dyn MemoryGauge>);

impl std::fmt::Debug for CgroupCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CgroupCollector")
    }
}

impl Collector for CgroupCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(memory) = self.0.memory() else {
            return Ok(());
        };
        for (name, help, value) in [
            ("cgroup_memory_used", "Working set of the provider's memory cgroup, files written into pods' tmpfs volumes included", memory.used),
            ("cgroup_memory_limit", "Memory limit of the provider's cgroup", memory.limit),
        ] {
            let metric = encoder.encode_descriptor(name, help, Some(&Unit::Bytes), MetricType::Gauge)?;
            ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX)).encode(metric)?;
        }
        Ok(())
    }
}

struct ValueCacheCollector(Arc<ValueCache>);

impl std::fmt::Debug for ValueCacheCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ValueCacheCollector")
    }
}

impl Collector for ValueCacheCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = self.0.stats();
        let gauge = |v: u64| ConstGauge::new(i64::try_from(v).unwrap_or(i64::MAX));
        for (name, help, unit, value) in [
            (
                "value_cache_entries",
                "Values held by the node-wide value cache",
                None,
                s.entries,
            ),
            (
                "value_cache",
                "Bytes of values, versions and keys held by the value cache",
                Some(Unit::Bytes),
                s.bytes,
            ),
            (
                "value_cache_limit",
                "Bytes the value cache may hold (taken out of the memory budget)",
                Some(Unit::Bytes),
                s.max_bytes,
            ),
        ] {
            let metric = encoder.encode_descriptor(name, help, unit.as_ref(), MetricType::Gauge)?;
            gauge(value).encode(metric)?;
        }
        for (name, help, value) in [
            ("value_cache_hits", "Objects served from the value cache without a store call", s.hits),
            ("value_cache_misses", "Objects the value cache could not serve fresh (asked of the store)", s.misses),
            ("value_cache_stale_served", "Objects served from the value cache past their TTL because the store failed with a server or transport error", s.stale_served),
        ] {
            let metric = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            ConstCounter::new(value).encode(metric)?;
        }
        let mut family = encoder.encode_descriptor(
            "value_cache_evictions",
            "Entries dropped from the value cache, by reason",
            None,
            MetricType::Counter,
        )?;
        for (reason, value) in [
            ("capacity", s.evicted_capacity),
            ("expired", s.evicted_expired),
            ("client_error", s.evicted_client_error),
        ] {
            let labels = [("reason", reason)];
            let metric = family.encode_family(&labels)?;
            ConstCounter::new(value).encode(metric)?;
        }
        Ok(())
    }
}

/// Regions come from tenants' classes: only the ones AWS lists become label values, so
/// the number of series stays bounded.
fn region_label(region: &str) -> &str {
    if crate::domain::region::is_listed(region) {
        region
    } else {
        "other"
    }
}

/// The outcome label of a classified result.
pub fn outcome(class: Option<ErrorClass>) -> &'static str {
    match class {
        None => "ok",
        Some(ErrorClass::Client(ClientKind::NotFound)) => "not_found",
        Some(ErrorClass::Client(ClientKind::AccessDenied)) => "access_denied",
        Some(ErrorClass::Client(ClientKind::Invalid)) => "invalid",
        Some(ErrorClass::Client(ClientKind::Other)) => "client_error",
        Some(ErrorClass::Server) => "server_error",
        Some(ErrorClass::Transport) => "transport_error",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_regions_are_not_label_values() {
        let m = Metrics::new();
        m.aws_call("ssm", "GetParameters", "zz-made-up-9", "ok", Duration::ZERO);
        assert!(m.encode().contains(r#"region="other""#));
    }

    #[test]
    fn the_value_cache_is_read_at_each_scrape() {
        use crate::domain::freshness::CacheBounds;
        use crate::service::ValueCacheSettings;
        let cache = Arc::new(ValueCache::new(
            ValueCacheSettings {
                bounds: CacheBounds {
                    ttl: Duration::from_secs(60),
                    stale_if_error: Duration::ZERO,
                },
                ..ValueCacheSettings::default()
            },
            Arc::new(crate::ports::SystemClock),
        ));
        let mut m = Metrics::new();
        m.watch_value_cache(cache.clone());
        cache.note_stale_served();
        let text = m.encode();
        for line in [
            "secrets_store_provider_aws_value_cache_entries 0",
            "secrets_store_provider_aws_value_cache_bytes 0",
            "secrets_store_provider_aws_value_cache_limit_bytes 4194304",
            "secrets_store_provider_aws_value_cache_hits_total 0",
            "secrets_store_provider_aws_value_cache_stale_served_total 1",
            r#"secrets_store_provider_aws_value_cache_evictions_total{reason="capacity"} 0"#,
        ] {
            assert!(text.contains(line), "{line} missing from\n{text}");
        }
    }

    #[test]
    fn names_are_prefixed_with_units() {
        let m = Metrics::new();
        m.mount_finished(None, Duration::from_millis(5), Some(3));
        m.mount_finished(Some("SecretNotFound"), Duration::from_millis(5), None);
        m.aws_call(
            "secretsmanager",
            "GetSecretValue",
            "us-east-1",
            "ok",
            Duration::from_millis(2),
        );
        let text = m.encode();
        assert!(
            text.contains(r#"secrets_store_provider_aws_mounts_total{result="ok",code="none"} 1"#),
            "{text}"
        );
        assert!(text.contains(
            r#"secrets_store_provider_aws_mounts_total{result="error",code="SecretNotFound"} 1"#
        ));
        assert!(text.contains("secrets_store_provider_aws_mount_duration_seconds_bucket"));
        assert!(text.contains("secrets_store_provider_aws_socket_rebinds_total 0"));
        assert!(text.contains(r#"secrets_store_provider_aws_aws_calls_total{service="secretsmanager",operation="GetSecretValue",region="us-east-1",outcome="ok"} 1"#));
    }
}
