//! Settings of the provider, layered with figment: defaults → optional TOML file
//! (`--config`) → environment (`SSCSI_AWS_*`) → command-line flags; each layer overrides
//! only the keys it sets.
//!
//! Every setting is declared once, in `settings.rs`; the macro in `declare.rs` makes the
//! [`Settings`] struct, the clap [`Flags`] and the [`SETTINGS`] table from it, and
//! `docs/configuration.md` shows the table rendered by `docs.rs`.

mod declare;
mod docs;
mod settings;
mod values;

#[cfg(test)]
mod chart_tests;
#[cfg(test)]
mod tests;

use std::path::Path;
use std::time::Duration;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::Serialize;

pub use crate::domain::duration::parse_go_duration;
use crate::domain::freshness::CacheBounds;
use crate::service::ValueCacheSettings;
pub use declare::{ChartValue, SettingInfo};
pub use docs::settings_table;
pub use settings::{Flags, Settings, SETTINGS};
pub use values::{GoDuration, LogFormat, StoreKind};

/// Prefix of the environment variables that set any key, e.g. `SSCSI_AWS_QPS=20`.
pub const ENV_PREFIX: &str = "SSCSI_AWS_";

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
