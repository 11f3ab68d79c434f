//! Types of setting values, and the parsers that read them from flags the way the
//! existing provider's Go flags do.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::adapters::csi::ErrorReporting;
use crate::domain::attributes::parse_go_bool;
use crate::domain::duration::parse_go_duration;

/// Which secret store serves mounts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    /// AWS Secrets Manager and SSM Parameter Store.
    Aws,
    /// The local-file store (`--local-store`), for development.
    Local,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    Json,
}

/// clap's name of a value (`aws`, `json`): the spelling the flag takes.
pub fn value_enum_name(value: &impl clap::ValueEnum) -> String {
    value
        .to_possible_value()
        .map(|v| v.get_name().to_string())
        .unwrap_or_default()
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

/// clap value parser of boolean flags: Go's spellings (`true/false`, `1/0`, `t/f`).
pub fn go_bool(text: &str) -> Result<bool, String> {
    parse_go_bool(text).ok_or_else(|| format!("`{text}` is not a boolean (true/false, 1/0, t/f)"))
}

/// clap value parser of `--error-codes`: a Go boolean or `remounts`.
pub fn error_reporting(text: &str) -> Result<ErrorReporting, String> {
    ErrorReporting::parse(text)
        .ok_or_else(|| format!("`{text}` is not a boolean (true/false, 1/0, t/f) or `remounts`"))
}

pub fn events_mode(text: &str) -> Result<crate::domain::pod_events::EventsMode, String> {
    text.parse()
        .map_err(|e: crate::domain::pod_events::BadEventsMode| e.to_string())
}
