//! How a failed mount reaches the driver. A gRPC status: the driver copies its message
//! into the pod's FailedMount event, where people look, but on a remount the driver
//! hides it from kubelet and its metrics only say `GRPCProviderError`. A
//! `MountResponse.error.code`: the driver's `node_publish_error` metric then names the
//! cause, but events show only the code. `Remounts` gives each case the one that shows.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::domain::attributes::parse_go_bool;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ErrorReporting {
    /// Always a gRPC status (the existing provider's behaviour).
    #[default]
    Statuses,
    /// Always `error.code`.
    Codes,
    /// `error.code` when the target already held a mount, else a status.
    Remounts,
}

impl ErrorReporting {
    /// `statuses`, `codes`, `remounts`, or a Go boolean (true: codes, false: statuses).
    pub fn parse(text: &str) -> Option<ErrorReporting> {
        match text {
            "statuses" => Some(ErrorReporting::Statuses),
            "codes" => Some(ErrorReporting::Codes),
            "remounts" => Some(ErrorReporting::Remounts),
            other => parse_go_bool(other).map(ErrorReporting::from),
        }
    }

    /// Whether a failure is answered with `error.code`.
    pub fn as_code(self, remount: bool) -> bool {
        match self {
            ErrorReporting::Statuses => false,
            ErrorReporting::Codes => true,
            ErrorReporting::Remounts => remount,
        }
    }

    fn name(self) -> &'static str {
        match self {
            ErrorReporting::Statuses => "statuses",
            ErrorReporting::Codes => "codes",
            ErrorReporting::Remounts => "remounts",
        }
    }
}

impl From<bool> for ErrorReporting {
    fn from(codes: bool) -> Self {
        if codes {
            ErrorReporting::Codes
        } else {
            ErrorReporting::Statuses
        }
    }
}

impl Serialize for ErrorReporting {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for ErrorReporting {
    /// A boolean (TOML, or the environment's `true`) or one of the names.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bool(b) => Ok(b.into()),
            Raw::Text(t) => ErrorReporting::parse(&t).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "error_codes `{t}` must be statuses, codes, remounts, true or false"
                ))
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn booleans_keep_their_meaning_and_remounts_is_the_hybrid() {
        assert_eq!(ErrorReporting::parse("true"), Some(ErrorReporting::Codes));
        assert_eq!(ErrorReporting::parse("0"), Some(ErrorReporting::Statuses));
        assert_eq!(
            ErrorReporting::parse("remounts"),
            Some(ErrorReporting::Remounts)
        );
        assert_eq!(ErrorReporting::parse("sometimes"), None);
        assert!(!ErrorReporting::Remounts.as_code(false));
        assert!(ErrorReporting::Remounts.as_code(true));
        assert!(ErrorReporting::Codes.as_code(false));
        assert!(!ErrorReporting::Statuses.as_code(true));
    }
}
