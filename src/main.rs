//! `secrets-store-csi-driver-provider-aws`: serves the CSI driver, or runs `mount` and
//! `validate` for development. All wiring lives in `provider::app`.

use std::process::ExitCode;

use clap::Parser;
use provider::cli::validate::validate_files;
use provider::cli::{normalize_go_flags, Cli, Command};
use provider::config::{LogFormat, Settings};
use provider::domain::region::Region;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = Cli::parse_from(normalize_go_flags(std::env::args_os()));
    // One TLS crypto provider for the whole process (the AWS SDK and kube both use rustls).
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            // The cause chain, without repeating a cause its effect already quotes.
            let mut text = e.to_string();
            for cause in e.chain().skip(1) {
                let cause = cause.to_string();
                if !text.contains(&cause) {
                    text = format!("{text}: {cause}");
                }
            }
            eprintln!("error: {text}");
            ExitCode::FAILURE
        }
    }
}

/// Logs go to stderr; RUST_LOG, when set, wins over `--log-level`.
fn init_logging(format: LogFormat, level: &str) -> anyhow::Result<()> {
    let filter = match EnvFilter::try_from_default_env() {
        Ok(filter) => filter,
        Err(_) => {
            EnvFilter::try_new(level).map_err(|e| anyhow::anyhow!("--log-level `{level}`: {e}"))?
        }
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
    Ok(())
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Some(Command::Validate(args)) = &cli.command {
        init_logging(LogFormat::Text, "warn")?;
        let region = args.region.as_deref().map(Region::parse).transpose()?;
        let report = validate_files(&args.files, region.as_ref(), args.strict);
        for warning in &report.warnings {
            println!("warning: {warning}");
        }
        for error in &report.errors {
            println!("{error}");
        }
        println!(
            "{} classes checked, {} errors, {} warnings",
            report.classes,
            report.errors.len(),
            report.warnings.len()
        );
        return Ok(if report.errors.is_empty() {
            ExitCode::SUCCESS
        } else {
            ExitCode::FAILURE
        });
    }
    let settings = Settings::load(cli.flags.config.as_deref(), &cli.flags)?;
    init_logging(settings.log_format, &settings.log_level)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    // With a handler installed, a file-size limit (RLIMIT_FSIZE) surfaces as a write
    // error (EFBIG) of that one mount instead of killing the process with SIGXFSZ.
    let _xfsz = runtime.block_on(async {
        tokio::signal::unix::signal(tokio::signal::unix::SignalKind::from_raw(libc::SIGXFSZ))
    });
    match cli.command {
        Some(Command::Mount(args)) => {
            let outcome = runtime.block_on(provider::app::mount_once(&settings, &args))?;
            for file in &outcome.summary {
                println!(
                    "{}\t{}\t{}",
                    args.target.join(&file.path).display(),
                    file.mode,
                    file.version
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Validate(_)) => Ok(ExitCode::SUCCESS),
        None => {
            runtime.block_on(provider::app::serve(settings, shutdown_signal()))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGTERM; only SIGINT stops the server");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: finishing in-flight mounts"),
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT: finishing in-flight mounts"),
    }
}
