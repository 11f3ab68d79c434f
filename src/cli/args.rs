//! The command line. Flag names and defaults are the existing provider's; Go-style
//! spellings (`-flag=value`, `--flag value`, bare `--bool-flag`) are accepted.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use serde::Serialize;

use crate::adapters::csi::ErrorReporting;
use crate::config::{LogFormat, StoreKind};
use crate::domain::attributes::parse_go_bool;

#[derive(Debug, Parser)]
#[command(
    name = "secrets-store-csi-driver-provider-aws",
    version,
    about = "AWS provider for the Secrets Store CSI Driver. Without a subcommand it serves the driver on <provider-volume>/aws.sock."
)]
pub struct Cli {
    #[command(flatten)]
    pub flags: Flags,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Settings given on the command line; only those given override the lower layers.
#[derive(Debug, Clone, Default, Args, Serialize)]
pub struct Flags {
    /// TOML configuration file (keys are the flag names with underscores).
    #[arg(long, global = true, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Directory of the socket aws.sock [default: /var/run/secrets-store-csi-providers].
    #[arg(long, global = true, value_name = "DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider_volume: Option<PathBuf>,
    /// Return files to the driver instead of writing them [default: false].
    #[arg(long, global = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, value_name = "BOOL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver_writes_secrets: Option<bool>,
    /// Kubernetes client queries per second [default: 5].
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qps: Option<f32>,
    /// Kubernetes client burst [default: 10].
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
    /// EKS add-on version, used in the AWS user-agent.
    #[arg(long, global = true, value_name = "VERSION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eks_addon_version: Option<String>,
    /// Timeout of each Pod Identity agent call, e.g. 250ms or 2s [default: SDK default].
    #[arg(long, global = true, value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_identity_http_timeout: Option<String>,
    /// Secret store [default: aws].
    #[arg(long, global = true, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub store: Option<StoreKind>,
    /// The local-file store (with --store local).
    #[arg(long, global = true, value_name = "FILE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_store: Option<PathBuf>,
    /// Pod Identity agent URL over IPv4 [default: http://169.254.170.23/v1/credentials].
    #[arg(long, global = true, value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_identity_ipv4_endpoint: Option<String>,
    /// Pod Identity agent URL over IPv6 [default: http://[fd00:ec2::23]/v1/credentials].
    #[arg(long, global = true, value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod_identity_ipv6_endpoint: Option<String>,
    /// Address of /metrics, /healthz and /readyz; empty disables [default: 0.0.0.0:8989].
    #[arg(long, global = true, value_name = "ADDR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_addr: Option<String>,
    /// Log format [default: text].
    #[arg(long, global = true, value_enum)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_format: Option<LogFormat>,
    /// Log filter, e.g. info, debug, provider=debug,info [default: info].
    #[arg(long, global = true, value_name = "FILTER")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub log_level: Option<String>,
    /// Report failures as MountResponse.error.code instead of a gRPC status: true (always),
    /// false, or remounts (only on targets that already hold a mount) [default: false].
    #[arg(long, global = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = error_reporting, value_name = "BOOL|remounts")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_codes: Option<ErrorReporting>,
    /// Deadline of each mount, e.g. 30s [default: 30s].
    #[arg(long, global = true, value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mount_timeout: Option<String>,
    /// Unknown keys in a class's objects fail the mount instead of a warning [default: false].
    #[arg(long, global = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool, value_name = "BOOL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub strict_objects: Option<bool>,
    /// The kubelet's directory: served mounts must target CSI volumes of pods under it
    /// (the chart passes its kubeletPath) [default: unset, any absolute directory].
    #[arg(long, global = true, value_name = "DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kubelet_dir: Option<PathBuf>,
    /// How long a fetched value is served again to the same principal, e.g. 5m; 0s is off
    /// [default: 0s].
    #[arg(long, global = true, value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_cache_ttl: Option<String>,
    /// How long a cached value may stand in for a store failing with a server or
    /// transport error, e.g. 1h; 0s is off [default: 0s].
    #[arg(long, global = true, value_name = "DURATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_cache_stale_if_error: Option<String>,
    /// Entries the value cache holds at most [default: 4096].
    #[arg(long, global = true, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_cache_max_entries: Option<usize>,
    /// Bytes the value cache holds at most, out of the memory budget [default: 4194304].
    #[arg(long, global = true, value_name = "BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value_cache_max_bytes: Option<usize>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Mount a SecretProviderClass into a directory, in process, through the same
    /// mount use case the driver reaches over the socket.
    Mount(MountArgs),
    /// Check SecretProviderClass files offline; prints every error with its object.
    Validate(ValidateArgs),
}

#[derive(Debug, Args)]
pub struct MountArgs {
    /// SecretProviderClass YAML file (the first SecretProviderClass in it, or --name).
    #[arg(long, value_name = "FILE")]
    pub class: PathBuf,
    /// metadata.name of the class to use when the file holds several.
    #[arg(long)]
    pub name: Option<String>,
    /// Directory to write the files into (created if missing).
    #[arg(long, value_name = "DIR")]
    pub target: PathBuf,
    /// Region when the class names none (else AWS_REGION).
    #[arg(long)]
    pub region: Option<String>,
    /// Default file mode, octal.
    #[arg(long, default_value = "0644")]
    pub permission: String,
    /// Namespace of the pretend pod.
    #[arg(long, default_value = "default")]
    pub namespace: String,
    /// Service account of the pretend pod.
    #[arg(long, default_value = "default")]
    pub service_account: String,
}

#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// SecretProviderClass YAML files (several documents per file allowed).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Region to check ARNs against when a class names none.
    #[arg(long)]
    pub region: Option<String>,
    /// Unknown keys in objects are errors (by default they are warnings, exit 0).
    #[arg(long)]
    pub strict: bool,
}

fn go_bool(text: &str) -> Result<bool, String> {
    parse_go_bool(text).ok_or_else(|| format!("`{text}` is not a boolean (true/false, 1/0, t/f)"))
}

fn error_reporting(text: &str) -> Result<ErrorReporting, String> {
    ErrorReporting::parse(text)
        .ok_or_else(|| format!("`{text}` is not a boolean (true/false, 1/0, t/f) or `remounts`"))
}

/// Go's flag package accepts `-name` as well as `--name`; clap wants two dashes.
pub fn normalize_go_flags(args: impl IntoIterator<Item = OsString>) -> Vec<OsString> {
    args.into_iter()
        .map(|arg| match arg.to_str() {
            Some(s)
                if s.len() > 2
                    && s.starts_with('-')
                    && !s.starts_with("--")
                    && s.as_bytes()[1].is_ascii_alphabetic() =>
            {
                OsString::from(format!("-{s}"))
            }
            _ => arg,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        let argv = std::iter::once("prog")
            .chain(args.iter().copied())
            .map(OsString::from);
        Cli::try_parse_from(normalize_go_flags(argv))
    }

    #[test]
    fn go_style_spellings_of_flags() {
        let cli = parse(&[
            "-provider-volume=/a",
            "--qps",
            "20",
            "-burst=40",
            "--eks-addon-version",
            "v1.2",
        ])
        .unwrap();
        assert_eq!(cli.flags.provider_volume, Some(PathBuf::from("/a")));
        assert_eq!(cli.flags.qps, Some(20.0));
        assert_eq!(cli.flags.burst, Some(40));
        assert_eq!(cli.flags.eks_addon_version.as_deref(), Some("v1.2"));
        assert!(cli.command.is_none());
    }

    #[test]
    fn boolean_flags_alone_or_with_a_value() {
        assert_eq!(
            parse(&["--driver-writes-secrets"])
                .unwrap()
                .flags
                .driver_writes_secrets,
            Some(true)
        );
        assert_eq!(
            parse(&["-driver-writes-secrets"])
                .unwrap()
                .flags
                .driver_writes_secrets,
            Some(true)
        );
        assert_eq!(
            parse(&["--driver-writes-secrets=false"])
                .unwrap()
                .flags
                .driver_writes_secrets,
            Some(false)
        );
        assert_eq!(
            parse(&["--driver-writes-secrets=1"])
                .unwrap()
                .flags
                .driver_writes_secrets,
            Some(true)
        );
        assert!(parse(&["--driver-writes-secrets=maybe"]).is_err());
        assert_eq!(parse(&[]).unwrap().flags.driver_writes_secrets, None);
    }

    #[test]
    fn only_given_flags_are_serialized() {
        let cli = parse(&["--qps=9"]).unwrap();
        let json = serde_json::to_value(&cli.flags).unwrap();
        assert_eq!(json, serde_json::json!({"qps": 9.0}));
    }

    #[test]
    fn subcommands() {
        let cli = parse(&[
            "mount",
            "--class",
            "c.yaml",
            "--target",
            "/t",
            "--store",
            "local",
            "--local-store",
            "s.yaml",
        ])
        .unwrap();
        assert!(matches!(cli.command, Some(Command::Mount(_))));
        assert_eq!(cli.flags.store, Some(StoreKind::Local));
        let cli = parse(&["validate", "a.yaml", "b.yaml", "--region", "us-east-1"]).unwrap();
        match cli.command {
            Some(Command::Validate(v)) => assert_eq!(v.files.len(), 2),
            other => panic!("{other:?}"),
        }
        assert!(parse(&["validate"]).is_err());
    }
}
