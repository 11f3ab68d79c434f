//! Every setting of the provider, each declared once (see `declare.rs` for what the
//! macro makes of an entry, and CONTRIBUTING.md for adding one).
//!
//! Defaults that belong to a component are taken from that component's own `Default`,
//! so they are written where they are used; the others are written here. Flag names,
//! spellings and defaults are the existing provider's: do not rename a flag.

use std::path::PathBuf;
use std::time::Duration;

use super::declare::declare_settings;
use super::values::{error_reporting, events_mode, go_bool, GoDuration, LogFormat, StoreKind};
use crate::adapters::aws::credentials::pod_identity::{
    DEFAULT_IPV4_ENDPOINT, DEFAULT_IPV6_ENDPOINT,
};
use crate::adapters::aws::DEFAULT_FETCH_CONCURRENCY;
use crate::adapters::csi::{
    ErrorReporting, DEFAULT_MAX_CONCURRENT_MOUNTS, DEFAULT_MAX_RESPONSE_BYTES,
};
use crate::adapters::kube::KubeSettings;
use crate::domain::pod_events::EventsMode;
use crate::service::MountSettings;

declare_settings! {
    flags {
        /// Directory of the socket `aws.sock`; an earlier socket there is replaced.
        provider_volume: PathBuf {
            default: PathBuf::from("/var/run/secrets-store-csi-providers"),
            flag: PathBuf [value_name = "DIR"],
            chart: "providerVolume",
        }
        /// Return the files to the driver instead of writing them.
        driver_writes_secrets: bool {
            default: false,
            flag: bool [num_args = 0..=1, require_equals = true, default_missing_value = "true",
                value_parser = go_bool, value_name = "BOOL"],
            chart: "driverWritesSecrets",
        }
        /// Client-side rate limit (token bucket) on every request to the Kubernetes API:
        /// requests per second.
        qps: f32 {
            default: KubeSettings::default().qps,
            flag: f32 [value_name = "N"],
            chart: "k8sThrottlingParams.qps",
        }
        /// Burst of the rate limit towards the Kubernetes API.
        burst: u32 {
            default: KubeSettings::default().burst,
            flag: u32 [value_name = "N"],
            chart: "k8sThrottlingParams.burst",
        }
        /// Replaces the version in the AWS user-agent app id when set.
        eks_addon_version: String {
            default: String::new(),
            flag: String [value_name = "VERSION"],
            chart: "eksAddonVersion",
        }
        /// Timeout of each Pod Identity agent call, a Go duration (`250ms`, `2s`); invalid
        /// or non-positive values are logged and ignored.
        pod_identity_http_timeout: String {
            default: String::new(),
            when_empty: "SDK default",
            flag: String [value_name = "DURATION"],
            chart: "podIdentityHttpTimeout",
        }
        /// Where secrets come from: `aws` (Secrets Manager and Parameter Store) or `local`
        /// (a file, for development).
        store: StoreKind {
            default: StoreKind::Aws,
            flag: StoreKind [value_enum],
        }
        /// The local-file store, with `--store local`.
        local_store: Option<PathBuf> {
            default: None,
            flag: PathBuf [value_name = "FILE"],
        }
        /// The EKS Pod Identity agent over IPv4.
        pod_identity_ipv4_endpoint: String {
            default: DEFAULT_IPV4_ENDPOINT.to_string(),
            flag: String [value_name = "URL"],
        }
        /// The EKS Pod Identity agent over IPv6.
        pod_identity_ipv6_endpoint: String {
            default: DEFAULT_IPV6_ENDPOINT.to_string(),
            flag: String [value_name = "URL"],
        }
        /// Address of `/metrics`, `/healthz` and `/readyz`; empty disables.
        metrics_addr: String {
            default: "0.0.0.0:8989".to_string(),
            flag: String [value_name = "ADDR"],
            // The chart sets the port only: `--metrics-addr=0.0.0.0:<metrics.port>`.
            chart: "metrics.port" = "8989",
        }
        /// Log lines as `text` or one `json` object each, on stderr.
        log_format: LogFormat {
            default: LogFormat::Text,
            flag: LogFormat [value_enum],
            // Pods' logs are read by collectors: the chart logs JSON.
            chart: "logFormat" = "json",
        }
        /// Log filter: `info`, `debug`, `provider=debug,info`, ...; `RUST_LOG` wins when set.
        log_level: String {
            default: "info".to_string(),
            flag: String [value_name = "FILTER"],
            chart: "logLevel",
        }
        /// Report failures as `MountResponse.error.code` instead of a gRPC status: `true`
        /// (always), `false`, or `remounts` (only on targets that already hold a mount).
        error_codes: ErrorReporting {
            default: ErrorReporting::Statuses,
            flag: ErrorReporting [num_args = 0..=1, require_equals = true,
                default_missing_value = "true", value_parser = error_reporting,
                value_name = "BOOL|remounts"],
            chart: "errorCodes",
        }
        /// Kubernetes Events on the pod: `failures` records a failed mount
        /// (`SecretMountFailed`) or remount (`SecretRotationFailed`) as a Warning, `all`
        /// also a remount that brought new versions (`SecretRotated`), `off` none. Needs
        /// `create` and `patch` on `events.k8s.io` events (the chart adds them).
        events: EventsMode {
            default: EventsMode::Off,
            flag: EventsMode [num_args = 0..=1, require_equals = true,
                default_missing_value = "failures", value_parser = events_mode,
                value_name = "off|failures|all"],
            chart: "events.mode" = "failures",
        }
        /// Serve `objectType: acm` objects: ACM certificates exported with their private
        /// key (`acm:ExportCertificate` on the pod's role). Off, a class naming one fails
        /// its mount, saying so.
        acm_certificates: bool {
            default: MountSettings::default().acm_certificates,
            flag: bool [num_args = 0..=1, require_equals = true, default_missing_value = "true",
                value_parser = go_bool, value_name = "BOOL"],
            chart: "acmCertificates",
        }
        /// Deadline of one mount, a Go duration; past it the mount fails with
        /// `INTERNAL` and publishes nothing.
        mount_timeout: GoDuration {
            default: GoDuration(Duration::from_secs(30)),
            flag: String [value_name = "DURATION"],
            chart: "mountTimeout",
        }
        /// Unknown keys in a class's objects fail the mount instead of a warning (the
        /// existing provider ignores them).
        strict_objects: bool {
            default: MountSettings::default().strict_objects,
            flag: bool [num_args = 0..=1, require_equals = true, default_missing_value = "true",
                value_parser = go_bool, value_name = "BOOL"],
        }
        /// The kubelet's directory: served mounts must target a pod's CSI volume under it,
        /// `<kubelet_dir>/pods/<uid>/volumes/kubernetes.io~csi/<name>/mount`.
        kubelet_dir: Option<PathBuf> {
            default: None,
            when_empty: "unset: any absolute directory",
            flag: PathBuf [value_name = "DIR"],
            chart: "kubeletPath" = "/var/lib/kubelet",
        }
        /// How long a fetched value is served again to the same principal, a Go duration
        /// (`5m`); `0s` is off.
        value_cache_ttl: GoDuration {
            default: GoDuration(MountSettings::default().value_cache.bounds.ttl),
            flag: String [value_name = "DURATION"],
            chart: "cache.valueTTL",
        }
        /// How long a cached value may stand in for a store failing with a server error,
        /// throttling or a timeout (`1h`); `0s` is off.
        value_cache_stale_if_error: GoDuration {
            default: GoDuration(MountSettings::default().value_cache.bounds.stale_if_error),
            flag: String [value_name = "DURATION"],
            chart: "cache.staleIfError",
        }
        /// Entries the value cache holds at most (least recently used out first).
        value_cache_max_entries: usize {
            default: MountSettings::default().value_cache.max_entries,
            flag: usize [value_name = "N"],
            chart: "cache.maxEntries",
        }
        /// Bytes of values, versions and keys the value cache holds at most; they come out
        /// of `memory_budget_bytes`, at most half of it.
        value_cache_max_bytes: usize {
            default: MountSettings::default().value_cache.max_bytes,
            flag: usize [value_name = "BYTES"],
            chart: "cache.maxBytes",
        }
    }
    file_only {
        /// Store calls in flight at once for one mount in one region.
        fetch_concurrency: usize {
            default: DEFAULT_FETCH_CONCURRENCY,
            chart: "cache.fetchConcurrency",
        }
        /// Watch service accounts (list/watch RBAC) instead of reading each on first use.
        watch_service_accounts: bool {
            default: KubeSettings::default().watch_service_accounts,
            chart: "cache.watchServiceAccounts",
        }
        /// Largest `objects` YAML of a class (`INVALID_ARGUMENT` over it).
        max_objects_yaml_bytes: usize {
            default: MountSettings::default().yaml_limits.max_bytes,
        }
        /// Objects one class may list (`INVALID_ARGUMENT` over it).
        max_objects: usize {
            default: MountSettings::default().yaml_limits.max_objects,
        }
        /// YAML aliases in a class's `objects` (replayed events are bounded too).
        max_yaml_aliases: usize {
            default: MountSettings::default().yaml_limits.max_aliases,
        }
        /// Longest jmesPath expression of an entry (nesting is bounded too).
        max_jmes_path_bytes: usize {
            default: MountSettings::default().yaml_limits.max_jmes_path_bytes,
        }
        /// Evaluation steps of all the jmesPath entries of one mount together
        /// (`OUT_OF_RANGE` over it).
        max_jmes_path_steps: u64 {
            default: MountSettings::default().jmes.max_steps,
        }
        /// Bytes one jmesPath evaluation may build (its lists, objects and strings);
        /// reserved from `memory_budget_bytes` while the mount plans, at most half of it.
        max_jmes_path_eval_bytes: usize {
            default: MountSettings::default().jmes.max_bytes,
        }
        /// jmesPath entries of one object, counted before anything compiles.
        max_jmes_entries_per_object: usize {
            default: MountSettings::default().yaml_limits.max_jmes_entries_per_object,
        }
        /// jmesPath entries of one mount, counted before anything compiles.
        max_jmes_entries_per_mount: usize {
            default: MountSettings::default().yaml_limits.max_jmes_entries_per_mount,
        }
        /// Files one mount writes, whatever makes them (objects, jmesPath, expandJson,
        /// selections).
        max_files_per_mount: usize {
            default: MountSettings::default().max_files,
        }
        /// Largest value of one object (Secrets Manager's own maximum; Parameter Store's
        /// is 8 KiB).
        max_secret_bytes: usize {
            default: MountSettings::default().max_secret_bytes,
        }
        /// Largest response in driver-writes mode (the driver's receive limit is 4 MiB).
        max_response_bytes: usize {
            default: DEFAULT_MAX_RESPONSE_BYTES,
        }
        /// Mounts served at once; further mounts wait for a slot within their deadline.
        max_concurrent_mounts: usize {
            default: DEFAULT_MAX_CONCURRENT_MOUNTS,
        }
        /// Secret bytes held in memory at once across mounts: each mount reserves its worst
        /// case before it fetches, and waits for room within its deadline.
        memory_budget_bytes: usize {
            default: MountSettings::default().memory_budget_bytes,
        }
        /// Threads that run mounts (tokio workers), whatever the node's core count.
        worker_threads: usize {
            // Chosen by measurement (the performance docs), not by the node's core count,
            // which a DaemonSet does not own.
            default: 2,
        }
        /// Threads for blocking work (file writes, DNS); tokio's own default is 512.
        max_blocking_threads: usize {
            default: 8,
        }
    }
}
