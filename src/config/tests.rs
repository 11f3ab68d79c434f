//! Loading: the layers, their order, and the checks of the loaded values.
#![allow(clippy::result_large_err)] // figment::Jail's closures return figment::Error.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::adapters::csi::ErrorReporting;
use crate::service::MountSettings;

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

#[test]
fn every_table_of_the_docs_gives_the_memory_budget_the_binary_uses() {
    // The Reliability table once said 32 MiB while the binary used 16 MiB. Read at run
    // time: the docs move between files, and any row of any of them must be right.
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = vec![root.join("README.md")];
    if let Ok(dir) = std::fs::read_dir(root.join("docs")) {
        files.extend(dir.filter_map(|e| e.ok()).map(|e| e.path()));
    }
    let default = MountSettings::default().memory_budget_bytes;
    let want = format!("{default} ({} MiB)", default / (1024 * 1024));
    let mut rows = 0;
    for file in files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "md"))
    {
        let text = std::fs::read_to_string(file).unwrap_or_default();
        for row in text
            .lines()
            .filter(|l| l.starts_with("| `memory_budget_bytes` |"))
        {
            rows += 1;
            assert!(
                row.replace('`', "").contains(&want),
                "{}: {row}",
                file.display()
            );
        }
    }
    assert!(rows > 0, "no docs table has a row for memory_budget_bytes");
}
