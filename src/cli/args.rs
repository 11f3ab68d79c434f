//! The command line. The settings' flags are declared with the settings (`config`);
//! their names and defaults are the existing provider's, and Go-style spellings
//! (`-flag=value`, `--flag value`, bare `--bool-flag`) are accepted.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

pub use crate::config::Flags;

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
    use crate::config::StoreKind;

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
