//! The attributes of a MountRequest (spec §3), parsed once into typed values.

use super::text::bounded;
use std::collections::{BTreeMap, HashMap};
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

impl MountAttributes {
    pub fn parse(json: &str) -> Result<MountAttributes, AttributeError> {
        let map: HashMap<String, String> =
            serde_json::from_str(json).map_err(|e| AttributeError::NotJson(json_error(&e)))?;
        Self::from_map(&map)
    }

    pub fn from_map(map: &HashMap<String, String>) -> Result<MountAttributes, AttributeError> {
        let get = |k: &str| map.get(k).map(String::as_str).filter(|v| !v.is_empty());
        let region = get("region")
            .map(Region::parse)
            .transpose()
            .map_err(AttributeError::Region)?;
        let failover_region = get("failoverRegion")
            .map(Region::parse)
            .transpose()
            .map_err(AttributeError::FailoverRegion)?;
        let translation = PathTranslation::parse(map.get("pathTranslation").map(String::as_str))?;
        let use_pod_identity = match get("usePodIdentity") {
            None => false,
            Some(v) => {
                parse_go_bool(v).ok_or_else(|| AttributeError::UsePodIdentity(v.to_string()))?
            }
        };
        let auth = match (get("authentication"), use_pod_identity) {
            (Some("nodePublishSecretRef"), false) => AuthMode::SecretRef,
            (Some("nodePublishSecretRef"), true) => return Err(AttributeError::TwoAuthentications),
            (Some(other), _) => return Err(AttributeError::Authentication(other.to_string())),
            (None, true) => AuthMode::PodIdentity(parse_address_type(get("preferredAddressType"))?),
            (None, false) => AuthMode::Irsa,
        };
        let pod = PodInfo {
            namespace: get(POD_NAMESPACE).unwrap_or_default().to_string(),
            name: get(POD_NAME).unwrap_or_default().to_string(),
            uid: get(POD_UID).unwrap_or_default().to_string(),
            service_account: get(SERVICE_ACCOUNT).unwrap_or_default().to_string(),
        };
        let tokens = match get(TOKENS) {
            None => Tokens::default(),
            Some(json) => parse_tokens(json)?,
        };
        let assume = match (
            get("assumeRoleArn"),
            get("assumeRoleExternalId"),
            get("assumeRoleDuration"),
        ) {
            (None, None, None) => None,
            (None, _, _) => return Err(AssumeRoleError::WithoutRole.into()),
            (Some(arn), external_id, duration) => {
                let duration = match duration {
                    None => None,
                    Some(text) => Some((
                        parse_go_duration(text)
                            .ok_or_else(|| AssumeRoleError::Duration(text.to_string()))?,
                        text,
                    )),
                };
                Some(AssumeRole::parse(arn, external_id, duration)?)
            }
        };
        let cache_ttl = get("cacheTTL")
            .map(|v| parse_go_duration(v).ok_or_else(|| AttributeError::CacheTtl(v.to_string())))
            .transpose()?;
        Ok(MountAttributes {
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
        })
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
mod tests {
    use super::*;

    fn attrs(pairs: &[(&str, &str)]) -> Result<MountAttributes, AttributeError> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        MountAttributes::parse(&serde_json::to_string(&map).unwrap())
    }

    #[test]
    fn reads_pod_regions_and_objects() {
        let a = attrs(&[
            ("objects", "- objectName: x"),
            ("region", "us-east-1"),
            ("failoverRegion", "us-west-2"),
            (POD_NAME, "web-0"),
            (POD_NAMESPACE, "shop"),
            (SERVICE_ACCOUNT, "web"),
            ("secretProviderClass", "ignored"),
        ])
        .unwrap();
        assert_eq!(a.objects, "- objectName: x");
        assert_eq!(a.region.unwrap().as_str(), "us-east-1");
        assert_eq!(a.failover_region.unwrap().as_str(), "us-west-2");
        assert_eq!(a.pod.namespace, "shop");
        assert_eq!(a.pod.service_account, "web");
        assert_eq!(a.auth, AuthMode::Irsa);
        assert_eq!(a.translation, PathTranslation::Replace('_'));
    }

    #[test]
    fn authentication_by_the_volumes_secret_is_opt_in_and_exclusive() {
        assert_eq!(attrs(&[]).unwrap().auth, AuthMode::Irsa);
        assert_eq!(
            attrs(&[("authentication", "nodePublishSecretRef")])
                .unwrap()
                .auth,
            AuthMode::SecretRef
        );
        assert_eq!(
            attrs(&[("authentication", "secret")]).unwrap_err(),
            AttributeError::Authentication("secret".into())
        );
        assert_eq!(
            attrs(&[
                ("authentication", "nodePublishSecretRef"),
                ("usePodIdentity", "true")
            ])
            .unwrap_err(),
            AttributeError::TwoAuthentications
        );
    }

    #[test]
    fn a_role_to_assume_is_checked_with_its_external_id_and_duration() {
        assert_eq!(attrs(&[]).unwrap().assume, None);
        let a = attrs(&[
            ("assumeRoleArn", "arn:aws:iam::210987654321:role/reader"),
            ("assumeRoleExternalId", "team-a"),
            ("assumeRoleDuration", "30m"),
        ])
        .unwrap()
        .assume
        .unwrap();
        assert_eq!(a.duration, Duration::from_secs(1800));
        assert!(matches!(
            attrs(&[("assumeRoleArn", "reader")]),
            Err(AttributeError::AssumeRole(AssumeRoleError::Arn(_)))
        ));
        assert!(matches!(
            attrs(&[("assumeRoleExternalId", "team-a")]),
            Err(AttributeError::AssumeRole(AssumeRoleError::WithoutRole))
        ));
        assert!(matches!(
            attrs(&[
                ("assumeRoleArn", "arn:aws:iam::210987654321:role/reader"),
                ("assumeRoleDuration", "soon")
            ]),
            Err(AttributeError::AssumeRole(AssumeRoleError::Duration(_)))
        ));
    }

    #[test]
    fn cache_ttl_is_a_go_duration_and_absent_by_default() {
        assert_eq!(attrs(&[]).unwrap().cache_ttl, None);
        assert_eq!(
            attrs(&[("cacheTTL", "1m30s")]).unwrap().cache_ttl,
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            attrs(&[("cacheTTL", "0s")]).unwrap().cache_ttl,
            Some(Duration::ZERO)
        );
        for bad in ["5", "-1s", "soon"] {
            assert_eq!(
                attrs(&[("cacheTTL", bad)]).unwrap_err(),
                AttributeError::CacheTtl(bad.into())
            );
        }
    }

    #[test]
    fn attributes_must_be_a_json_object_of_strings() {
        assert!(matches!(
            MountAttributes::parse("[]"),
            Err(AttributeError::NotJson(_))
        ));
        assert!(matches!(
            MountAttributes::parse(r#"{"a": 1}"#),
            Err(AttributeError::NotJson(_))
        ));
        assert!(matches!(
            MountAttributes::parse("{"),
            Err(AttributeError::NotJson(_))
        ));
    }

    #[test]
    fn failover_region_is_checked_against_the_primary_by_regions_not_here() {
        // The primary may come from AWS_REGION or the node: `Regions::new` is the one
        // place that compares them.
        let a = attrs(&[("region", "us-east-1"), ("failoverRegion", "us-east-1")]).unwrap();
        let (primary, failover) = (a.region.unwrap(), a.failover_region);
        assert!(crate::domain::region::Regions::new(primary, failover).is_err());
    }

    #[test]
    fn bad_region_names_are_refused() {
        assert!(matches!(
            attrs(&[("region", "US EAST")]),
            Err(AttributeError::Region(_))
        ));
    }

    #[test]
    fn use_pod_identity_takes_go_booleans_only() {
        for t in ["1", "t", "T", "TRUE", "true", "True"] {
            let a = attrs(&[("usePodIdentity", t)]).unwrap();
            assert_eq!(
                a.auth,
                AuthMode::PodIdentity(AddressPreference::Auto),
                "{t}"
            );
        }
        for f in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(
                attrs(&[("usePodIdentity", f)]).unwrap().auth,
                AuthMode::Irsa,
                "{f}"
            );
        }
        for bad in ["yes", "tRUE", "2"] {
            assert!(matches!(
                attrs(&[("usePodIdentity", bad)]),
                Err(AttributeError::UsePodIdentity(_))
            ));
        }
    }

    #[test]
    fn preferred_address_type_any_case() {
        let a = attrs(&[("usePodIdentity", "true"), ("preferredAddressType", "IPv6")]).unwrap();
        assert_eq!(a.auth, AuthMode::PodIdentity(AddressPreference::Ipv6));
        let a = attrs(&[("usePodIdentity", "true"), ("preferredAddressType", "AUTO")]).unwrap();
        assert_eq!(a.auth, AuthMode::PodIdentity(AddressPreference::Auto));
        assert!(attrs(&[("usePodIdentity", "true"), ("preferredAddressType", "v6")]).is_err());
    }

    #[test]
    fn path_translation_is_checked() {
        assert!(matches!(
            attrs(&[("pathTranslation", "ab")]),
            Err(AttributeError::Translation(_))
        ));
        assert_eq!(
            attrs(&[("pathTranslation", "false")]).unwrap().translation,
            PathTranslation::Off
        );
    }

    #[test]
    fn tokens_by_audience() {
        let tokens = r#"{"sts.amazonaws.com":{"token":"abc","expirationTimestamp":"2026-01-01T00:00:00Z"},"pods.eks.amazonaws.com":{"token":""}}"#;
        let a = attrs(&[(TOKENS, tokens)]).unwrap();
        assert_eq!(a.tokens.get(IRSA_AUDIENCE).unwrap().expose(), "abc");
        assert!(
            a.tokens.get(POD_IDENTITY_AUDIENCE).is_none(),
            "an empty token counts as missing"
        );
        assert!(matches!(
            attrs(&[(TOKENS, "nope")]),
            Err(AttributeError::Tokens(_))
        ));
    }

    #[test]
    fn a_token_in_the_wrong_shape_is_not_echoed() {
        let e = attrs(&[(TOKENS, r#"{"sts.amazonaws.com":"eyJsecret-token"}"#)]).unwrap_err();
        assert!(!e.to_string().contains("eyJ"), "{e}");
        assert!(e.to_string().contains("unexpected value type"), "{e}");
    }

    #[test]
    fn token_parse_errors_do_not_echo_the_token() {
        let e = attrs(&[(
            TOKENS,
            r#"{"sts.amazonaws.com":{"token":"sekrit-token-value"#,
        )])
        .unwrap_err();
        assert!(!e.to_string().contains("sekrit"), "{e}");
    }
}
