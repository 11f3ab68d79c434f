//! The macro that turns the list in `settings.rs` into everything a setting needs, and
//! the table it leaves for help, docs and tests.
//!
//! Each setting is written once: its doc comment (the help), its type, its default, its
//! flag (if it has one, with clap's per-flag attributes such as `value_parser`) and its
//! chart value (if the chart sets it). From that one entry the macro makes
//! - a field of [`Settings`](super::Settings) and its `Default`,
//! - a field of [`Flags`](super::Flags), whose help ends in `[default: …]` computed from
//!   the same default ([`flag_help`]),
//! - a row of [`SETTINGS`](super::SETTINGS), from which `docs/configuration.md`'s table
//!   is rendered and against which the chart is checked.
//!
//! A macro rather than a table plus tests that the copies agree: with copies, adding a
//! setting still means writing its default three times and waiting for a test to say
//! which one is wrong. clap's attributes that only some flags need pass through
//! untouched, so the macro stays small. Two groups, `flags` and `file_only`, because a
//! `macro_rules!` macro cannot leave a field out of a struct one entry at a time.

use std::path::PathBuf;

use super::values::{value_enum_name, GoDuration, LogFormat, StoreKind};
use super::{Settings, ENV_PREFIX, SETTINGS};
use crate::adapters::csi::ErrorReporting;
use crate::domain::duration::format_go_duration;
use crate::domain::pod_events::EventsMode;

/// One setting, as help, docs and tests see it.
#[derive(Debug)]
pub struct SettingInfo {
    /// The key in the TOML file, the `Settings` field and the flag with `-` for `_`.
    pub name: &'static str,
    /// Its doc comment, one paragraph (may hold `code` in backticks).
    pub doc: &'static str,
    /// Whether it has a flag; every setting has a file key and an environment variable.
    pub has_flag: bool,
    /// What the docs show when the default is empty (`unset`, `SDK default`, …).
    pub when_empty: Option<&'static str>,
    /// The Helm chart's value that sets it, if any.
    pub chart: Option<ChartValue>,
    /// The setting's value in the given settings, spelled as a flag takes it.
    pub spell: fn(&Settings) -> String,
}

/// A value of the chart (`values.yaml`) that the chart passes on as the setting.
#[derive(Debug)]
pub struct ChartValue {
    /// Dotted path in `values.yaml`, e.g. `cache.valueTTL`.
    pub key: &'static str,
    /// The chart's default when it differs from the binary's on purpose (the chart logs
    /// JSON, passes its `kubeletPath`, …), as `values.yaml` spells it.
    pub default: Option<&'static str>,
}

impl SettingInfo {
    /// `--max-objects` style name, when the setting has a flag.
    pub fn flag(&self) -> Option<String> {
        self.has_flag
            .then(|| format!("--{}", self.name.replace('_', "-")))
    }

    /// `SSCSI_AWS_MAX_OBJECTS` style name.
    pub fn env_var(&self) -> String {
        format!("{ENV_PREFIX}{}", self.name.to_ascii_uppercase())
    }

    /// The doc comment as one trimmed line.
    pub fn help(&self) -> String {
        self.doc.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// The default as docs and help show it: the flag's spelling, or what an empty one
    /// means. `when_empty` is never shown for a default that is not empty, so it cannot
    /// hide a changed default.
    pub fn default_text(&self, defaults: &Settings) -> String {
        let spelled = (self.spell)(defaults);
        if spelled.is_empty() {
            self.when_empty.unwrap_or("unset").to_string()
        } else {
            spelled
        }
    }
}

/// The setting called `name`.
pub fn find(name: &str) -> Option<&'static SettingInfo> {
    SETTINGS.iter().find(|s| s.name == name)
}

/// clap's help of a flag: the doc comment without backticks or its last full stop,
/// then `[default: …]`.
pub fn flag_help(name: &str) -> String {
    match find(name) {
        Some(info) => format!(
            "{} [default: {}]",
            info.help().replace('`', "").trim_end_matches('.'),
            info.default_text(&Settings::default())
        ),
        // Unreachable: the macro passes only declared names.
        None => String::new(),
    }
}

/// How a value is written on the command line, in the environment and in `values.yaml`.
pub trait Spelled {
    fn spell(&self) -> String;
}

macro_rules! spelled_by_display {
    ($($ty:ty),*) => {
        $(impl Spelled for $ty {
            fn spell(&self) -> String {
                self.to_string()
            }
        })*
    };
}

spelled_by_display!(bool, f32, u32, u64, usize, String);

impl Spelled for PathBuf {
    fn spell(&self) -> String {
        self.display().to_string()
    }
}

impl Spelled for Option<PathBuf> {
    fn spell(&self) -> String {
        self.as_ref().map(Spelled::spell).unwrap_or_default()
    }
}

impl Spelled for GoDuration {
    fn spell(&self) -> String {
        format_go_duration(self.0)
    }
}

impl Spelled for StoreKind {
    fn spell(&self) -> String {
        value_enum_name(self)
    }
}

impl Spelled for LogFormat {
    fn spell(&self) -> String {
        value_enum_name(self)
    }
}

impl Spelled for EventsMode {
    fn spell(&self) -> String {
        self.name().to_string()
    }
}

impl Spelled for ErrorReporting {
    /// As the flag takes it (the existing provider's boolean, or `remounts`).
    fn spell(&self) -> String {
        match self {
            ErrorReporting::Statuses => "false",
            ErrorReporting::Codes => "true",
            ErrorReporting::Remounts => "remounts",
        }
        .to_string()
    }
}

/// Declares the settings; see the module's doc. Each entry:
///
/// ```text
/// /// Doc comment: the help and the docs' "what it does".
/// name: Type {
///     default: expression,
///     when_empty: "what an empty default means",   // optional
///     flag: FlagType [clap attributes],            // `flags` group only
///     chart: "values.key" = "chart default",       // optional; `= …` only if it differs
/// }
/// ```
macro_rules! declare_settings {
    (
        flags {
            $(
                $(#[doc = $fdoc:literal])*
                $fname:ident: $fty:ty {
                    default: $fdefault:expr,
                    $(when_empty: $fempty:literal,)?
                    flag: $flag_ty:ty [$($arg:tt)*],
                    $(chart: $fchart:literal $(= $fchart_default:literal)?,)?
                }
            )*
        }
        file_only {
            $(
                $(#[doc = $odoc:literal])*
                $oname:ident: $oty:ty {
                    default: $odefault:expr,
                    $(when_empty: $oempty:literal,)?
                    $(chart: $ochart:literal $(= $ochart_default:literal)?,)?
                }
            )*
        }
    ) => {
        /// The provider's settings, once every layer is applied (see `config`).
        #[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
        #[serde(default, deny_unknown_fields)]
        pub struct Settings {
            $($(#[doc = $fdoc])* pub $fname: $fty,)*
            $($(#[doc = $odoc])* pub $oname: $oty,)*
        }

        impl Default for Settings {
            fn default() -> Self {
                Settings {
                    $($fname: $fdefault,)*
                    $($oname: $odefault,)*
                }
            }
        }

        /// Settings given on the command line; only those given override the lower layers.
        #[derive(Debug, Clone, Default, clap::Args, serde::Serialize)]
        pub struct Flags {
            /// TOML configuration file (keys are the flag names with underscores).
            #[arg(long, global = true, value_name = "FILE")]
            #[serde(skip)]
            pub config: Option<std::path::PathBuf>,
            $(
                #[arg(long, global = true, $($arg)*)]
                #[arg(help = $crate::config::declare::flag_help(stringify!($fname)))]
                #[serde(skip_serializing_if = "Option::is_none")]
                pub $fname: Option<$flag_ty>,
            )*
        }

        /// Every setting, flags first, in the order of the declaration.
        pub static SETTINGS: &[$crate::config::declare::SettingInfo] = &[
            $($crate::config::declare::SettingInfo {
                name: stringify!($fname),
                doc: concat!($($fdoc, " ",)*),
                has_flag: true,
                when_empty: declare_settings!(@option $($fempty)?),
                chart: declare_settings!(@chart $($fchart $(= $fchart_default)?)?),
                spell: |s| $crate::config::declare::Spelled::spell(&s.$fname),
            },)*
            $($crate::config::declare::SettingInfo {
                name: stringify!($oname),
                doc: concat!($($odoc, " ",)*),
                has_flag: false,
                when_empty: declare_settings!(@option $($oempty)?),
                chart: declare_settings!(@chart $($ochart $(= $ochart_default)?)?),
                spell: |s| $crate::config::declare::Spelled::spell(&s.$oname),
            },)*
        ];
    };
    (@option) => { None };
    (@option $text:literal) => { Some($text) };
    (@chart) => { None };
    (@chart $key:literal $(= $default:literal)?) => {
        Some($crate::config::declare::ChartValue {
            key: $key,
            default: declare_settings!(@option $($default)?),
        })
    };
}

pub(crate) use declare_settings;
