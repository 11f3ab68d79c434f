//! The `secrets` field of a mount: what the driver read from the volume's
//! `nodePublishSecretRef` (and, on clusters whose CSIDriver asks for it, service-account
//! tokens). Every value is treated as secret: redacted when printed, never quoted in an
//! error, wiped when dropped. With `authentication: nodePublishSecretRef` it carries the
//! AWS credentials of clusters that cannot use IRSA or Pod Identity.

use std::collections::BTreeMap;
use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::secret::Token;

/// The keys the credentials are read from, as in `~/.aws/credentials`.
pub const ACCESS_KEY_ID: &str = "aws_access_key_id";
pub const SECRET_ACCESS_KEY: &str = "aws_secret_access_key";
pub const SESSION_TOKEN: &str = "aws_session_token";

#[derive(Clone, Default, PartialEq, Eq)]
pub struct MountSecrets(BTreeMap<String, Token>);

impl fmt::Debug for MountSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MountSecrets(<{} values redacted>)", self.0.len())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretsError {
    #[error("the mount's secrets are not a JSON object of strings")]
    NotJson,
    #[error("authentication nodePublishSecretRef: the volume's secret lacks {missing} (it needs {ACCESS_KEY_ID} and {SECRET_ACCESS_KEY}, and may have {SESSION_TOKEN}); set nodePublishSecretRef on the pod's volume to a Secret with these keys")]
    Missing { missing: String },
    #[error("authentication nodePublishSecretRef: {key} in the volume's secret is not a valid value (empty, or with whitespace or control characters)")]
    Malformed { key: &'static str },
}

impl MountSecrets {
    /// The driver's JSON: an object of strings, or `null`, `{}` or nothing when the
    /// volume has no secret (the driver marshals a nil map as `null`). Values are never
    /// part of an error.
    pub fn parse(json: &str) -> Result<MountSecrets, SecretsError> {
        if matches!(json.trim(), "" | "null") {
            return Ok(MountSecrets::default());
        }
        let map: BTreeMap<String, String> =
            serde_json::from_str(json).map_err(|_| SecretsError::NotJson)?;
        Ok(MountSecrets(
            map.into_iter().map(|(k, v)| (k, Token::new(v))).collect(),
        ))
    }

    pub fn get(&self, key: &str) -> Option<&Token> {
        self.0.get(key)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Static AWS credentials from the volume's secret. Redacted when printed.
#[derive(Clone, PartialEq, Eq)]
pub struct StaticKeys {
    pub access_key_id: Token,
    pub secret_access_key: Token,
    pub session_token: Option<Token>,
}

impl fmt::Debug for StaticKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("StaticKeys(<redacted>)")
    }
}

impl StaticKeys {
    pub fn from_secrets(secrets: &MountSecrets) -> Result<StaticKeys, SecretsError> {
        let missing: Vec<&str> = [ACCESS_KEY_ID, SECRET_ACCESS_KEY]
            .into_iter()
            .filter(|k| secrets.get(k).is_none_or(|v| v.is_empty()))
            .collect();
        if !missing.is_empty() {
            return Err(SecretsError::Missing {
                missing: missing.join(" and "),
            });
        }
        let valid = |key: &'static str| -> Result<Option<Token>, SecretsError> {
            match secrets.get(key) {
                None => Ok(None),
                Some(v)
                    if v.is_empty()
                        || v.expose()
                            .chars()
                            .any(|c| c.is_whitespace() || c.is_control()) =>
                {
                    Err(SecretsError::Malformed { key })
                }
                Some(v) => Ok(Some(v.clone())),
            }
        };
        let pick = |key| valid(key)?.ok_or(SecretsError::Malformed { key });
        Ok(StaticKeys {
            access_key_id: pick(ACCESS_KEY_ID)?,
            secret_access_key: pick(SECRET_ACCESS_KEY)?,
            session_token: valid(SESSION_TOKEN)?,
        })
    }

    /// A keyed hash of every part (never the access key id alone): two mounts share
    /// credentials, clients and cached values only when all parts are equal. `key` is
    /// the process's own random key, so the hash says nothing outside the process.
    pub fn fingerprint(&self, key: &[u8]) -> String {
        // HMAC takes a key of any length: this cannot fail.
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key)
            .expect("HMAC accepts keys of any length");
        for part in [
            Some(&self.access_key_id),
            Some(&self.secret_access_key),
            self.session_token.as_ref(),
        ] {
            let text = part.map_or("", Token::expose);
            mac.update(&(text.len() as u64).to_be_bytes());
            mac.update(text.as_bytes());
        }
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn secrets(pairs: &[(&str, &str)]) -> MountSecrets {
        let map: BTreeMap<&str, &str> = pairs.iter().copied().collect();
        MountSecrets::parse(&serde_json::to_string(&map).unwrap()).unwrap()
    }

    #[test]
    fn reads_the_three_keys_and_names_the_missing_ones_without_values() {
        let keys = StaticKeys::from_secrets(&secrets(&[
            (ACCESS_KEY_ID, "AKIAEXAMPLE"),
            (SECRET_ACCESS_KEY, "wJalr-leak-me"),
            (SESSION_TOKEN, "tok"),
        ]))
        .unwrap();
        assert_eq!(keys.access_key_id.expose(), "AKIAEXAMPLE");
        assert!(keys.session_token.is_some());
        assert!(!format!("{keys:?}").contains("AKIA"));
        let e = StaticKeys::from_secrets(&secrets(&[(ACCESS_KEY_ID, "AKIA-leak-me")])).unwrap_err();
        assert_eq!(
            e,
            SecretsError::Missing {
                missing: SECRET_ACCESS_KEY.into()
            }
        );
        assert!(!e.to_string().contains("leak-me"));
        let e = StaticKeys::from_secrets(&secrets(&[])).unwrap_err();
        assert!(e
            .to_string()
            .contains("aws_access_key_id and aws_secret_access_key"));
        let e = StaticKeys::from_secrets(&secrets(&[
            (ACCESS_KEY_ID, "AKIA leak-me"),
            (SECRET_ACCESS_KEY, "s"),
        ]))
        .unwrap_err();
        assert_eq!(e, SecretsError::Malformed { key: ACCESS_KEY_ID });
        assert!(!e.to_string().contains("leak-me"));
    }

    #[test]
    fn the_fingerprint_covers_every_part() {
        let base = [(ACCESS_KEY_ID, "AKIA1"), (SECRET_ACCESS_KEY, "s1")];
        let one = StaticKeys::from_secrets(&secrets(&base)).unwrap();
        let same = StaticKeys::from_secrets(&secrets(&base)).unwrap();
        let other_secret = StaticKeys::from_secrets(&secrets(&[
            (ACCESS_KEY_ID, "AKIA1"),
            (SECRET_ACCESS_KEY, "s2"),
        ]))
        .unwrap();
        let with_token = StaticKeys::from_secrets(&secrets(&[
            (ACCESS_KEY_ID, "AKIA1"),
            (SECRET_ACCESS_KEY, "s1"),
            (SESSION_TOKEN, "t"),
        ]))
        .unwrap();
        // Moving a character between parts changes it too (lengths are hashed).
        let shifted = StaticKeys::from_secrets(&secrets(&[
            (ACCESS_KEY_ID, "AKIA1s"),
            (SECRET_ACCESS_KEY, "1"),
        ]))
        .unwrap();
        let f = |k: &StaticKeys| k.fingerprint(KEY);
        assert_eq!(f(&one), f(&same));
        for other in [&other_secret, &with_token, &shifted] {
            assert_ne!(f(&one), f(other));
        }
        assert!(!f(&one).contains("AKIA"));
        assert_ne!(
            one.fingerprint(KEY),
            one.fingerprint(b"another key of thirty-two bytes!")
        );
    }

    #[test]
    fn secrets_print_no_value_and_bad_json_quotes_nothing() {
        let s = secrets(&[("token", "eyJ-leak-me")]);
        assert!(!format!("{s:?}").contains("leak-me"));
        let e = MountSecrets::parse("{\"a\": 1, \"leak-me\"").unwrap_err();
        assert!(!e.to_string().contains("leak-me"));
        assert!(MountSecrets::parse("").unwrap().is_empty());
        assert!(
            MountSecrets::parse("null").unwrap().is_empty(),
            "the driver's nil map"
        );
    }
}
