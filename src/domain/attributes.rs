//! The attributes of a MountRequest (spec §3), parsed once into typed values.

use super::text::bounded;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::time::Duration;

use serde::Deserialize;

use super::assume::{AssumeRole, AssumeRoleError};
use super::duration::parse_go_duration;
use super::naming::{PathTranslation, TranslationError};
use super::region::{Region, RegionError};
use super::secret::Token;

/// Audience of the token used with IRSA (STS AssumeRoleWithWebIdentity).
pub const IRSA_AUDIENCE: &str = "sts.amazonaws.com";
/// Audience of the token used with EKS Pod Identity.
pub const POD_IDENTITY_AUDIENCE: &str = "pods.eks.amazonaws.com";

/// Which address of the Pod Identity agent to try.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AddressPreference {
    /// IPv4 first, then IPv6.
    #[default]
    Auto,
    Ipv4,
    Ipv6,
}

/// How the pod's AWS credentials are obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    Irsa,
    PodIdentity(AddressPreference),
    /// `authentication: nodePublishSecretRef`: static credentials from the volume's
    /// secret, for clusters that can use neither IRSA nor Pod Identity.
    SecretRef,
}

impl AuthMode {
    /// The audience of the service-account token this mode signs with (none for static
    /// credentials).
    pub fn audience(self) -> &'static str {
        match self {
            AuthMode::Irsa => IRSA_AUDIENCE,
            AuthMode::PodIdentity(_) => POD_IDENTITY_AUDIENCE,
            AuthMode::SecretRef => "",
        }
    }
}

/// The pod being mounted, as the driver describes it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PodInfo {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub service_account: String,
}

/// Service-account tokens by audience. Redacted when printed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tokens(BTreeMap<String, Token>);

impl Tokens {
    pub fn get(&self, audience: &str) -> Option<&Token> {
        self.0.get(audience).filter(|t| !t.is_empty())
    }

    pub fn insert(&mut self, audience: impl Into<String>, token: Token) {
        self.0.insert(audience.into(), token);
    }
}

/// Everything a mount needs from the attributes, typed.
#[derive(Debug, Clone)]
pub struct MountAttributes {
    pub objects: String,
    pub region: Option<Region>,
    pub failover_region: Option<Region>,
    pub translation: PathTranslation,
    pub auth: AuthMode,
    pub pod: PodInfo,
    pub tokens: Tokens,
    /// The SecretProviderClass's name (`secretProviderClass`, sent by the driver), for
    /// log lines; empty when absent.
    pub class: String,
    /// `assumeRoleArn` (with its external id and duration): the role the pod's own
    /// credentials assume for this class.
    pub assume: Option<AssumeRole>,
    /// `cacheTTL`: how long this class accepts a cached value (never longer than the
    /// operator allows; zero reads fresh and serves nothing stale).
    pub cache_ttl: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttributeError {
    #[error("attributes are not a JSON object of strings: {}", bounded(&.0))]
    NotJson(String),
    #[error("attribute region: {0}")]
    Region(RegionError),
    #[error("attribute failoverRegion: {0}")]
    FailoverRegion(RegionError),
    #[error(transparent)]
    Translation(#[from] TranslationError),
    #[error("usePodIdentity `{}` is not a boolean (true/false, 1/0, t/f)", bounded(&.0))]
    UsePodIdentity(String),
    #[error("preferredAddressType `{}` must be ipv4, ipv6 or auto", bounded(&.0))]
    AddressType(String),
    #[error("attribute csi.storage.k8s.io/serviceAccount.tokens is not valid JSON: {}", bounded(&.0))]
    Tokens(String),
    #[error("cacheTTL `{}` is not a duration such as 0s, 30s or 5m", bounded(&.0))]
    CacheTtl(String),
    #[error("authentication `{}` must be nodePublishSecretRef (or absent: IRSA, or Pod Identity with usePodIdentity)", bounded(&.0))]
    Authentication(String),
    #[error("authentication nodePublishSecretRef and usePodIdentity cannot both be set")]
    TwoAuthentications,
    #[error(transparent)]
    AssumeRole(#[from] AssumeRoleError),
}

const POD_NAME: &str = "csi.storage.k8s.io/pod.name";
const POD_NAMESPACE: &str = "csi.storage.k8s.io/pod.namespace";
const POD_UID: &str = "csi.storage.k8s.io/pod.uid";
const SERVICE_ACCOUNT: &str = "csi.storage.k8s.io/serviceAccount.name";
const TOKENS: &str = "csi.storage.k8s.io/serviceAccount.tokens";

#[derive(Deserialize)]
struct RawToken {
    #[serde(default)]
    token: String,
}

/// Every error found in one mount's attributes, reported together (as a class's object
/// errors are) so that one edit can fix them all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct AttributeErrors(pub Vec<AttributeError>);

impl fmt::Display for AttributeErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        crate::domain::text::write_joined(f, &self.0)
    }
}

impl From<AttributeError> for AttributeErrors {
    fn from(error: AttributeError) -> Self {
        AttributeErrors(vec![error])
    }
}

/// Collects errors while parsing goes on: a failed attribute yields `None` and the
/// parse carries on to the next one.
#[derive(Default)]
struct Errors(Vec<AttributeError>);

impl Errors {
    fn keep<T, E: Into<AttributeError>>(&mut self, result: Result<T, E>) -> Option<T> {
        result.map_err(|e| self.0.push(e.into())).ok()
    }

    fn refuse<T>(&mut self, error: AttributeError) -> Option<T> {
        self.0.push(error);
        None
    }
}

impl MountAttributes {
    pub fn parse(json: &str) -> Result<MountAttributes, AttributeErrors> {
        let map: HashMap<String, String> =
            serde_json::from_str(json).map_err(|e| AttributeError::NotJson(json_error(&e)))?;
        Self::from_map(&map)
    }

    /// Checks every attribute, and reports every one that is wrong.
    pub fn from_map(map: &HashMap<String, String>) -> Result<MountAttributes, AttributeErrors> {
        let get = |k: &str| map.get(k).map(String::as_str).filter(|v| !v.is_empty());
        let mut errors = Errors::default();
        let region = errors
            .keep(
                get("region")
                    .map(Region::parse)
                    .transpose()
                    .map_err(AttributeError::Region),
            )
            .flatten();
        let failover_region = errors
            .keep(
                get("failoverRegion")
                    .map(Region::parse)
                    .transpose()
                    .map_err(AttributeError::FailoverRegion),
            )
            .flatten();
        let translation = errors
            .keep(PathTranslation::parse(
                map.get("pathTranslation").map(String::as_str),
            ))
            .unwrap_or_default();
        // A usePodIdentity that does not parse is reported, and counts as unset for
        // the checks that depend on it.
        let use_pod_identity = match get("usePodIdentity") {
            None => false,
            Some(v) => errors
                .keep(parse_go_bool(v).ok_or_else(|| AttributeError::UsePodIdentity(v.to_string())))
                .unwrap_or(false),
        };
        let auth = match (get("authentication"), use_pod_identity) {
            (Some("nodePublishSecretRef"), false) => Some(AuthMode::SecretRef),
            (Some("nodePublishSecretRef"), true) => {
                errors.refuse(AttributeError::TwoAuthentications)
            }
            (Some(other), _) => errors.refuse(AttributeError::Authentication(other.to_string())),
            (None, true) => errors
                .keep(parse_address_type(get("preferredAddressType")))
                .map(AuthMode::PodIdentity),
            (None, false) => Some(AuthMode::Irsa),
        };
        let pod = PodInfo {
            namespace: get(POD_NAMESPACE).unwrap_or_default().to_string(),
            name: get(POD_NAME).unwrap_or_default().to_string(),
            uid: get(POD_UID).unwrap_or_default().to_string(),
            service_account: get(SERVICE_ACCOUNT).unwrap_or_default().to_string(),
        };
        let tokens = match get(TOKENS) {
            None => Tokens::default(),
            Some(json) => errors.keep(parse_tokens(json)).unwrap_or_default(),
        };
        let assume = errors
            .keep(parse_assume(
                get("assumeRoleArn"),
                get("assumeRoleExternalId"),
                get("assumeRoleDuration"),
            ))
            .flatten();
        let cache_ttl = errors
            .keep(
                get("cacheTTL")
                    .map(|v| {
                        parse_go_duration(v).ok_or_else(|| AttributeError::CacheTtl(v.to_string()))
                    })
                    .transpose(),
            )
            .flatten();
        match auth {
            Some(auth) if errors.0.is_empty() => Ok(MountAttributes {
                objects: map.get("objects").cloned().unwrap_or_default(),
                region,
                failover_region,
                translation,
                auth,
                pod,
                tokens,
                class: bounded(get("secretProviderClass").unwrap_or_default()),
                assume,
                cache_ttl,
            }),
            // A missing auth always left its error behind.
            _ => Err(AttributeErrors(errors.0)),
        }
    }
}

fn parse_assume(
    arn: Option<&str>,
    external_id: Option<&str>,
    duration: Option<&str>,
) -> Result<Option<AssumeRole>, AssumeRoleError> {
    match (arn, external_id, duration) {
        (None, None, None) => Ok(None),
        (None, _, _) => Err(AssumeRoleError::WithoutRole),
        (Some(arn), external_id, duration) => {
            let duration = match duration {
                None => None,
                Some(text) => Some((
                    parse_go_duration(text)
                        .ok_or_else(|| AssumeRoleError::Duration(text.to_string()))?,
                    text,
                )),
            };
            AssumeRole::parse(arn, external_id, duration).map(Some)
        }
    }
}

fn parse_tokens(json: &str) -> Result<Tokens, AttributeError> {
    let raw: HashMap<String, RawToken> =
        serde_json::from_str(json).map_err(|e| AttributeError::Tokens(json_error(&e)))?;
    let mut tokens = Tokens::default();
    for (audience, t) in raw {
        tokens.insert(audience, Token::new(t.token));
    }
    Ok(tokens)
}

/// Where and what kind of JSON error, without serde_json's message, which may quote the
/// offending value (a token).
fn json_error(e: &serde_json::Error) -> String {
    let kind = match e.classify() {
        serde_json::error::Category::Io => "unreadable",
        serde_json::error::Category::Syntax => "syntax error",
        serde_json::error::Category::Data => "unexpected value type",
        serde_json::error::Category::Eof => "unexpected end",
    };
    format!("{kind} at line {} column {}", e.line(), e.column())
}

/// Go's strconv.ParseBool, which the existing provider uses.
pub fn parse_go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

fn parse_address_type(text: Option<&str>) -> Result<AddressPreference, AttributeError> {
    match text.map(str::to_ascii_lowercase).as_deref() {
        None | Some("auto") => Ok(AddressPreference::Auto),
        Some("ipv4") => Ok(AddressPreference::Ipv4),
        Some("ipv6") => Ok(AddressPreference::Ipv6),
        Some(_) => Err(AttributeError::AddressType(
            text.unwrap_or_default().to_string(),
        )),
    }
}

#[cfg(test)]
#[path = "attributes_tests.rs"]
mod tests;
