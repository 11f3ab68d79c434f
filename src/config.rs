//! Settings of the provider, layered with figment: defaults → optional TOML file
//! (`--config`) → environment (`SSCSI_AWS_*`) → command-line flags.

use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

use crate::adapters::aws::credentials::pod_identity::{
    DEFAULT_IPV4_ENDPOINT, DEFAULT_IPV6_ENDPOINT,
};
use crate::adapters::aws::DEFAULT_FETCH_CONCURRENCY;
use crate::adapters::csi::{
    ErrorReporting, DEFAULT_MAX_CONCURRENT_MOUNTS, DEFAULT_MAX_RESPONSE_BYTES,
};
use crate::adapters::kube::KubeSettings;
pub use crate::domain::duration::parse_go_duration;
use crate::domain::freshness::CacheBounds;
use crate::service::{MountSettings, ValueCacheSettings};

/// Worker threads of the runtime: chosen by measurement (README, "Runtime"), not by
/// the node's core count, which a DaemonSet does not own.
pub const DEFAULT_WORKER_THREADS: usize = 2;
/// Blocking threads: the writer's file operations run there.
pub const DEFAULT_MAX_BLOCKING_THREADS: usize = 8;

/// Prefix of the environment variables that set any key, e.g. `SSCSI_AWS_QPS=20`.
pub const ENV_PREFIX: &str = "SSCSI_AWS_";

/// Which secret store serves mounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// AWS Secrets Manager and SSM Parameter Store.
    Aws,
    /// The local-file store (`--local-store`), for development.
    Local,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Directory of the socket `aws.sock`.
    pub provider_volume: PathBuf,
    /// Hand files back to the driver instead of writing them.
    pub driver_writes_secrets: bool,
    /// Client-side rate limit towards the Kubernetes API.
    pub qps: f32,
    pub burst: u32,
    /// Replaces the version in the AWS user-agent app id when set.
    pub eks_addon_version: String,
    /// Go-style duration; invalid or non-positive values are logged and ignored.
    pub pod_identity_http_timeout: String,
    pub store: StoreKind,
    pub local_store: Option<PathBuf>,
    /// Go-style duration bounding each mount, parsed when the settings load.
    pub mount_timeout: GoDuration,
    /// The EKS Pod Identity agent, IPv4 and IPv6 (overridable for tests and odd networks).
    pub pod_identity_ipv4_endpoint: String,
    pub pod_identity_ipv6_endpoint: String,
    /// Store calls in flight at once for one mount.
    pub fetch_concurrency: usize,
    /// Watch service accounts (list/watch RBAC) instead of reading each on first use.
    pub watch_service_accounts: bool,
    /// `/metrics`, `/healthz`, `/readyz`; empty disables.
    pub metrics_addr: String,
    /// `text` or `json`.
    pub log_format: LogFormat,
    /// A tracing filter: `info`, `debug`, `provider=debug,info`, ...
    pub log_level: String,
    /// When failures are reported as MountResponse.error.code (the driver then shows only
    /// the code): `statuses` (false), `codes` (true), or `remounts`.
    pub error_codes: ErrorReporting,
    /// Limits: a request over one fails alone, with a message naming the limit.
    pub max_objects_yaml_bytes: usize,
    pub max_objects: usize,
    pub max_yaml_aliases: usize,
    pub max_jmes_path_bytes: usize,
    /// jmesPath evaluation: steps of one mount, bytes built by one evaluation.
    pub max_jmes_path_steps: u64,
    pub max_jmes_path_eval_bytes: usize,
    pub max_jmes_entries_per_object: usize,
    pub max_jmes_entries_per_mount: usize,
    /// Files one mount writes, whatever makes them (objects, jmesPath, expandJson, select).
    pub max_files_per_mount: usize,
    pub max_secret_bytes: usize,
    pub max_response_bytes: usize,
    pub max_concurrent_mounts: usize,
    /// Keys of a class's objects that name no field fail the mount (default: they are
    /// ignored and reported, as the existing provider ignores them).
    pub strict_objects: bool,
    /// The kubelet's directory (the chart's `kubeletPath`): when set, served mounts
    /// accept only targets `<kubelet_dir>/pods/<uid>/volumes/kubernetes.io~csi/<name>/mount`.
    pub kubelet_dir: Option<PathBuf>,
    /// Secret bytes held in memory at once across mounts (each mount reserves its
    /// worst case up front).
    pub memory_budget_bytes: usize,
    /// How long a fetched value is served again to the same principal (0: off).
    pub value_cache_ttl: GoDuration,
    /// How long a cached value may stand in for a store that fails with a server or
    /// transport error (0: off).
    pub value_cache_stale_if_error: GoDuration,
    pub value_cache_max_entries: usize,
    /// Bytes the cache holds at most, out of `memory_budget_bytes`.
    pub value_cache_max_bytes: usize,
    /// Threads that run mounts (tokio workers), whatever the node's core count.
    pub worker_threads: usize,
    /// Threads for blocking work (file writes, DNS); tokio's own default is 512.
    pub max_blocking_threads: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

impl Default for Settings {
    /// Each component's own default, so a default is written once, where it is used.
    fn default() -> Self {
        let mount = MountSettings::default();
        let kube = KubeSettings::default();
        Settings {
            provider_volume: PathBuf::from("/var/run/secrets-store-csi-providers"),
            driver_writes_secrets: false,
            qps: kube.qps,
            burst: kube.burst,
            eks_addon_version: String::new(),
            pod_identity_http_timeout: String::new(),
            store: StoreKind::Aws,
            local_store: None,
            mount_timeout: GoDuration(Duration::from_secs(30)),
            pod_identity_ipv4_endpoint: DEFAULT_IPV4_ENDPOINT.to_string(),
            pod_identity_ipv6_endpoint: DEFAULT_IPV6_ENDPOINT.to_string(),
            fetch_concurrency: DEFAULT_FETCH_CONCURRENCY,
            watch_service_accounts: kube.watch_service_accounts,
            metrics_addr: "0.0.0.0:8989".to_string(),
            log_format: LogFormat::Text,
            log_level: "info".to_string(),
            error_codes: ErrorReporting::Statuses,
            max_objects_yaml_bytes: mount.yaml_limits.max_bytes,
            max_objects: mount.yaml_limits.max_objects,
            max_yaml_aliases: mount.yaml_limits.max_aliases,
            max_jmes_path_bytes: mount.yaml_limits.max_jmes_path_bytes,
            max_jmes_path_steps: mount.jmes.max_steps,
            max_jmes_path_eval_bytes: mount.jmes.max_bytes,
            max_jmes_entries_per_object: mount.yaml_limits.max_jmes_entries_per_object,
            max_jmes_entries_per_mount: mount.yaml_limits.max_jmes_entries_per_mount,
            max_files_per_mount: mount.max_files,
            max_secret_bytes: mount.max_secret_bytes,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            max_concurrent_mounts: DEFAULT_MAX_CONCURRENT_MOUNTS,
            strict_objects: mount.strict_objects,
            kubelet_dir: None,
            memory_budget_bytes: mount.memory_budget_bytes,
            value_cache_ttl: GoDuration(mount.value_cache.bounds.ttl),
            value_cache_stale_if_error: GoDuration(mount.value_cache.bounds.stale_if_error),
            value_cache_max_entries: mount.value_cache.max_entries,
            value_cache_max_bytes: mount.value_cache.max_bytes,
            worker_threads: DEFAULT_WORKER_THREADS,
            max_blocking_threads: DEFAULT_MAX_BLOCKING_THREADS,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("configuration: {0}")]
    Figment(#[from] Box<figment::Error>),
    #[error("configuration: {key} `{value}` is not a duration such as 250ms, 2s or 1m30s")]
    Duration { key: &'static str, value: String },
    #[error("configuration: store = \"local\" needs local_store (--local-store PATH)")]
    LocalStoreMissing,
    #[error("configuration: {0}")]
    Invalid(String),
}

impl Settings {
    /// Layers defaults, the TOML file, the environment and `flags` (only the keys set).
    pub fn load(file: Option<&Path>, flags: impl Serialize) -> Result<Settings, ConfigError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(file) = file {
            if !file.exists() {
                return Err(ConfigError::Invalid(format!(
                    "config file {} does not exist",
                    file.display()
                )));
            }
            figment = figment.merge(Toml::file(file));
        }
        let settings: Settings = figment
            .merge(Env::prefixed(ENV_PREFIX))
            .merge(Serialized::defaults(flags))
            .extract()
            .map_err(Box::new)?;
        settings.check()?;
        Ok(settings)
    }

    fn check(&self) -> Result<(), ConfigError> {
        if self.mount_timeout.0.is_zero() {
            return Err(ConfigError::Duration {
                key: "mount_timeout",
                value: "0".into(),
            });
        }
        if self.store == StoreKind::Local && self.local_store.is_none() {
            return Err(ConfigError::LocalStoreMissing);
        }
        if self.qps.is_nan() || self.qps <= 0.0 || self.burst == 0 {
            return Err(ConfigError::Invalid(
                "qps and burst must be positive".into(),
            ));
        }
        if self.max_concurrent_mounts == 0 || self.max_objects == 0 {
            return Err(ConfigError::Invalid(
                "max_concurrent_mounts and max_objects must be at least 1".into(),
            ));
        }
        if self.max_jmes_path_steps == 0
            || self.max_jmes_path_eval_bytes == 0
            || self.max_files_per_mount == 0
        {
            return Err(ConfigError::Invalid(
                "max_jmes_path_steps, max_jmes_path_eval_bytes and max_files_per_mount must be at least 1".into(),
            ));
        }
        if self.max_jmes_path_eval_bytes > self.memory_budget_bytes / 2 {
            return Err(ConfigError::Invalid(format!(
                "max_jmes_path_eval_bytes ({}) may be at most half of memory_budget_bytes ({}): a mount that extracts reserves it from the budget while it plans",
                self.max_jmes_path_eval_bytes, self.memory_budget_bytes
            )));
        }
        if self.worker_threads == 0 || self.max_blocking_threads == 0 {
            return Err(ConfigError::Invalid(
                "worker_threads and max_blocking_threads must be at least 1".into(),
            ));
        }
        if self.fetch_concurrency == 0 {
            return Err(ConfigError::Invalid(
                "fetch_concurrency must be at least 1".into(),
            ));
        }
        let cache = self.value_cache();
        if cache.is_on() && cache.max_bytes > self.memory_budget_bytes / 2 {
            return Err(ConfigError::Invalid(format!(
                "value_cache_max_bytes ({}) may be at most half of memory_budget_bytes ({}): the cache's bytes come out of the budget mounts use",
                cache.max_bytes, self.memory_budget_bytes
            )));
        }
        if cache.bounds.is_on() && (cache.max_entries == 0 || cache.max_bytes == 0) {
            return Err(ConfigError::Invalid(
                "value_cache_max_entries and value_cache_max_bytes must be at least 1 when the value cache is on".into(),
            ));
        }
        Ok(())
    }

    pub fn value_cache(&self) -> ValueCacheSettings {
        ValueCacheSettings {
            bounds: CacheBounds {
                ttl: self.value_cache_ttl.0,
                stale_if_error: self.value_cache_stale_if_error.0,
            },
            max_entries: self.value_cache_max_entries,
            max_bytes: self.value_cache_max_bytes,
        }
    }

    pub fn mount_timeout(&self) -> Duration {
        self.mount_timeout.0
    }

    /// The Pod Identity HTTP timeout, or `Err(text)` when set but unusable (the caller
    /// logs and ignores it, as the existing provider does).
    pub fn pod_identity_http_timeout(&self) -> Result<Option<Duration>, String> {
        if self.pod_identity_http_timeout.is_empty() {
            return Ok(None);
        }
        match parse_go_duration(&self.pod_identity_http_timeout) {
            Some(d) if !d.is_zero() => Ok(Some(d)),
            _ => Err(self.pod_identity_http_timeout.clone()),
        }
    }
}

/// A Go-style duration in the settings (`250ms`, `2s`, `1m30s`): text in files, flags
/// and the environment, a `Duration` once loaded, so no use parses it again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoDuration(pub Duration);

impl Serialize for GoDuration {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!("{}ns", self.0.as_nanos()))
    }
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        parse_go_duration(&text).map(GoDuration).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "`{text}` is not a duration such as 250ms, 2s or 1m30s"
            ))
        })
    }
}

#[cfg(test)]
#[allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error.
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn defaults_match_the_existing_provider() {
        // In a jail: other tests set SSCSI_AWS_* variables in theirs, and the jail's
        // lock keeps this one from reading them.
        figment::Jail::expect_with(|_| {
            let s = Settings::load(None, BTreeMap::<String, String>::new()).unwrap();
            assert_eq!(
                s.provider_volume,
                PathBuf::from("/var/run/secrets-store-csi-providers")
            );
            assert!(!s.driver_writes_secrets);
            assert_eq!((s.qps, s.burst), (5.0, 10));
            assert_eq!(s.store, StoreKind::Aws);
            assert_eq!(s.mount_timeout(), Duration::from_secs(30));
            Ok(())
        });
    }

    #[test]
    fn layers_file_then_env_then_flags() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "p.toml",
                "qps = 7.0\nburst = 20\nprovider_volume = \"/from/file\"\n",
            )?;
            jail.set_env("SSCSI_AWS_BURST", "30");
            let mut flags = BTreeMap::new();
            flags.insert("provider_volume", "/from/flag");
            let s = Settings::load(Some(Path::new("p.toml")), flags).map_err(|e| e.to_string())?;
            assert_eq!(s.qps, 7.0, "file beats default");
            assert_eq!(s.burst, 30, "env beats file");
            assert_eq!(
                s.provider_volume,
                PathBuf::from("/from/flag"),
                "flag beats everything"
            );
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_and_bad_values_are_errors() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("bad.toml", "qsp = 7\n")?;
            assert!(Settings::load(
                Some(Path::new("bad.toml")),
                BTreeMap::<String, String>::new()
            )
            .is_err());
            jail.create_file("bad2.toml", "mount_timeout = \"soon\"\n")?;
            let e = Settings::load(
                Some(Path::new("bad2.toml")),
                BTreeMap::<String, String>::new(),
            )
            .unwrap_err();
            assert!(e.to_string().contains("soon"));
            jail.create_file("bad3.toml", "store = \"local\"\n")?;
            assert!(matches!(
                Settings::load(
                    Some(Path::new("bad3.toml")),
                    BTreeMap::<String, String>::new()
                ),
                Err(ConfigError::LocalStoreMissing)
            ));
            Ok(())
        });
    }

    #[test]
    fn the_value_cache_is_off_by_default_and_its_bytes_fit_the_budget() {
        figment::Jail::expect_with(|jail| {
            let s = Settings::load(None, BTreeMap::<String, String>::new()).unwrap();
            assert!(!s.value_cache().is_on());
            jail.set_env("SSCSI_AWS_VALUE_CACHE_TTL", "5m");
            jail.set_env("SSCSI_AWS_VALUE_CACHE_STALE_IF_ERROR", "1h");
            let s = Settings::load(None, BTreeMap::<String, String>::new()).unwrap();
            let cache = s.value_cache();
            assert!(cache.is_on());
            assert_eq!(cache.bounds.ttl, Duration::from_secs(300));
            assert_eq!(cache.bounds.stale_if_error, Duration::from_secs(3600));
            jail.set_env("SSCSI_AWS_VALUE_CACHE_MAX_BYTES", "9000000");
            let e = Settings::load(None, BTreeMap::<String, String>::new()).unwrap_err();
            assert!(e.to_string().contains("at most half"), "{e}");
            Ok(())
        });
    }

    #[test]
    fn the_runtime_is_small_whatever_the_node() {
        figment::Jail::expect_with(|jail| {
            let s = Settings::load(None, BTreeMap::<String, String>::new()).unwrap();
            assert_eq!((s.worker_threads, s.max_blocking_threads), (2, 8));
            jail.set_env("SSCSI_AWS_WORKER_THREADS", "0");
            assert!(Settings::load(None, BTreeMap::<String, String>::new()).is_err());
            Ok(())
        });
    }

    #[test]
    fn error_codes_take_a_boolean_or_remounts() {
        figment::Jail::expect_with(|jail| {
            let s = Settings::load(None, BTreeMap::<String, String>::new()).unwrap();
            assert_eq!(s.error_codes, ErrorReporting::Statuses);
            jail.set_env("SSCSI_AWS_ERROR_CODES", "true");
            let s = Settings::load(None, BTreeMap::<String, String>::new()).unwrap();
            assert_eq!(s.error_codes, ErrorReporting::Codes);
            jail.set_env("SSCSI_AWS_ERROR_CODES", "remounts");
            let s = Settings::load(None, BTreeMap::<String, String>::new()).unwrap();
            assert_eq!(s.error_codes, ErrorReporting::Remounts);
            jail.set_env("SSCSI_AWS_ERROR_CODES", "sometimes");
            assert!(Settings::load(None, BTreeMap::<String, String>::new()).is_err());
            Ok(())
        });
    }

    #[test]
    fn pod_identity_timeout_is_optional_and_bad_values_are_reported() {
        let mut s = Settings::default();
        assert_eq!(s.pod_identity_http_timeout(), Ok(None));
        s.pod_identity_http_timeout = "250ms".into();
        assert_eq!(
            s.pod_identity_http_timeout(),
            Ok(Some(Duration::from_millis(250)))
        );
        s.pod_identity_http_timeout = "0s".into();
        assert!(s.pod_identity_http_timeout().is_err());
    }
}
