//! `secrets-store-csi-driver-provider-aws`: serves the CSI driver, or runs `mount` and
//! `validate` for development. All wiring lives in `provider::app`.

use std::fmt;
use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use provider::adapters::aws::log_filter;
use provider::cli::validate::validate_files;
use provider::cli::{normalize_go_flags, Cli, Command};
use provider::config::{LogFormat, Settings};
use provider::domain::region::Region;
use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::filter::FilterExt;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

fn main() -> ExitCode {
    let cli = Cli::parse_from(normalize_go_flags(std::env::args_os()));
    // One TLS crypto provider for the whole process (the AWS SDK and kube both use rustls):
    // ring, chosen by measurement over aws-lc-rs (docs/performance.md, "TLS crypto").
    let _ = rustls::crypto::ring::default_provider().install_default();
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

/// Logs go to stderr; RUST_LOG, when set, wins over `--log-level`, except that the AWS
/// SDK never logs below info (its debug and trace print credentials and secret values:
/// see `adapters::aws::log_filter`). Colours only on a terminal: in a file or a log
/// collector they are noise that a reader's terminal would interpret.
fn init_logging(format: LogFormat, level: &str) -> anyhow::Result<()> {
    let asked = match EnvFilter::try_from_default_env() {
        Ok(filter) => filter,
        Err(_) => {
            EnvFilter::try_new(level).map_err(|e| anyhow::anyhow!("--log-level `{level}`: {e}"))?
        }
    };
    let filter = asked.and(log_filter::without_sdk_credentials());
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let layer = match format {
        // JSON escapes every control character in strings itself.
        LogFormat::Json => layer.json().with_filter(filter).boxed(),
        LogFormat::Text => layer.fmt_fields(EscapedFields).with_filter(filter).boxed(),
    };
    tracing_subscriber::registry().with(layer).init();
    Ok(())
}

/// Text-log fields (of events and spans, the message included) with control characters
/// escaped: object names, aliases and error messages quote class input, and a newline or
/// an escape sequence in one must not start a forged line or drive the reader's
/// terminal. tracing-subscriber 0.3.23 escapes ESC, BEL, BS, FF and DEL in the message
/// only; `%` values (`error = %e`) and newlines it writes as they are.
struct EscapedFields;

impl<'w> FormatFields<'w> for EscapedFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut visitor = EscapingVisitor {
            writer,
            result: Ok(()),
            first: true,
        };
        fields.record(&mut visitor);
        visitor.result
    }
}

/// Writes fields as the default text formatter does (`message name=value ...`).
struct EscapingVisitor<'w> {
    writer: Writer<'w>,
    result: fmt::Result,
    first: bool,
}

impl EscapingVisitor<'_> {
    fn write(&mut self, name: &str, value: &dyn fmt::Debug) -> fmt::Result {
        if !std::mem::take(&mut self.first) {
            self.writer.write_char(' ')?;
        }
        if name != "message" {
            write!(self.writer, "{}=", name.strip_prefix("r#").unwrap_or(name))?;
        }
        fmt::write(&mut Escaping(&mut self.writer), format_args!("{value:?}"))
    }
}

impl Visit for EscapingVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        // As the default formatter: the message bare, other strings quoted.
        if field.name() == "message" {
            self.record_debug(field, &format_args!("{value}"));
        } else {
            self.record_debug(field, &value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `log.*` fields carry a `log` record's metadata, already in the line's prefix.
        if self.result.is_ok() && !field.name().starts_with("log.") {
            self.result = self.write(field.name(), value);
        }
    }
}

/// Characters that could end a line, move the cursor or reorder what a reader sees:
/// C0 and C1 controls, DEL, the Unicode line and paragraph separators, and the
/// bidirectional overrides.
fn must_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// Passes text through with `\n`, `\r`, `\t` and `\u{..}` in place of those characters.
struct Escaping<'a, W: fmt::Write>(&'a mut W);

impl<W: fmt::Write> fmt::Write for Escaping<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s;
        while let Some((at, c)) = rest.char_indices().find(|&(_, c)| must_escape(c)) {
            self.0.write_str(&rest[..at])?;
            match c {
                '\n' => self.0.write_str("\\n")?,
                '\r' => self.0.write_str("\\r")?,
                '\t' => self.0.write_str("\\t")?,
                c => write!(self.0, "\\u{{{:x}}}", c as u32)?,
            }
            rest = &rest[at + c.len_utf8()..];
        }
        self.0.write_str(rest)
    }
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
        .worker_threads(settings.worker_threads)
        .max_blocking_threads(settings.max_blocking_threads)
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
            let served = runtime.block_on(provider::app::serve(settings, shutdown_signal()));
            // serve() already waited the grace period (mount timeout + 5 s); blocking work
            // still running (a plan is cancelled when its mount is dropped, a file write
            // stuck in the kernel is not) must not hold the process beyond it.
            runtime.shutdown_timeout(std::time::Duration::from_secs(1));
            served?;
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

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn control_characters_are_escaped_and_other_text_is_kept() {
        let mut out = String::new();
        fmt::write(
            &mut Escaping(&mut out),
            format_args!("a\nb\r\tc\x1b[31md\u{9b}e\u{2028}f\u{202e}g ü \\ \""),
        )
        .unwrap();
        assert_eq!(
            out,
            "a\\nb\\r\\tc\\u{1b}[31md\\u{9b}e\\u{2028}f\\u{202e}g ü \\ \""
        );
    }

    #[test]
    fn text_log_fields_of_events_and_spans_stay_on_one_line() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .fmt_fields(EscapedFields)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            let evil = "x\nINFO forged=\"yes\"\x1b[31m";
            let span = tracing::info_span!("mount", pod = %evil);
            let _entered = span.enter();
            let error = std::io::Error::other(evil);
            tracing::warn!(name = evil, error = %error, debug = ?evil, "failed {evil}");
        });
        let logs = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        assert_eq!(logs.lines().count(), 1, "{logs}");
        assert!(!logs.contains('\x1b'), "{logs}");
        assert!(
            logs.contains("pod=x\\nINFO forged=\"yes\"\\u{1b}[31m"),
            "{logs}"
        );
        assert!(logs.contains("failed x\\nINFO"), "{logs}");
        assert!(logs.contains("error=x\\nINFO"), "{logs}");
        // Strings are quoted by Debug, which escapes them already: not twice.
        assert!(
            logs.contains(r#"name="x\nINFO forged=\"yes\"\u{1b}[31m""#),
            "{logs}"
        );
    }
}
