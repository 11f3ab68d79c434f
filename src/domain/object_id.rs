//! Which spellings of an object name the same secret or parameter. A class may name a
//! secret by its name, its full ARN (name plus AWS's six-character suffix) or a partial
//! ARN (no suffix), and a selection reports the names it matched: when AWS refuses one
//! spelling, every other spelling of that object must be forgotten too.
//!
//! The comparison is by the names a spelling can stand for, so it may match a little
//! more than the one object (a name that itself ends in `-` and six letters or digits):
//! forgetting too much costs one fetch, forgetting too little serves what AWS refused.

use super::arn::Arn;
use super::objects::ObjectKind;

/// Length of the random suffix AWS appends to a secret's name in its full ARN.
const SUFFIX: usize = 6;

/// The names `spelling` can stand for: itself when it is a name; for an ARN of the
/// object's service, the name inside it (for a secret, also without the suffix).
pub fn names_of(kind: ObjectKind, spelling: &str) -> Vec<String> {
    if !Arn::looks_like_arn(spelling) {
        return vec![spelling.to_string()];
    }
    let Ok(arn) = Arn::parse(spelling) else {
        return vec![spelling.to_string()];
    };
    match kind {
        ObjectKind::SecretsManager => {
            let Some(name) = arn.resource.strip_prefix("secret:") else {
                return vec![spelling.to_string()];
            };
            let mut names = vec![name.to_string()];
            if let Some(stem) = without_suffix(name) {
                names.push(stem.to_string());
            }
            names
        }
        ObjectKind::SsmParameter => {
            let Some(path) = arn.resource.strip_prefix("parameter") else {
                return vec![spelling.to_string()];
            };
            // `parameter/app/db` is `/app/db`; `parameter/db` is `db` (or `/db`).
            let mut names = vec![path.to_string()];
            if let Some(bare) = path.strip_prefix('/') {
                names.push(bare.to_string());
            }
            names
        }
        // A certificate has one spelling: its ARN.
        ObjectKind::Acm => vec![spelling.to_string()],
    }
}

/// `name` without a trailing `-XXXXXX` of six ASCII letters or digits, if it has one.
fn without_suffix(name: &str) -> Option<&str> {
    let cut = name.len().checked_sub(SUFFIX + 1)?;
    let (stem, tail) = name.split_at_checked(cut)?;
    let suffix = tail.strip_prefix('-')?;
    (!stem.is_empty() && suffix.bytes().all(|b| b.is_ascii_alphanumeric())).then_some(stem)
}

/// True when `version` identifies one version of one object across every spelling of
/// it: a Secrets Manager VersionId (a UUID, or a client token of 32 to 64 characters,
/// as AWS requires). Parameter Store versions are counters shared by every parameter.
pub fn is_unique_version(kind: ObjectKind, version: &str) -> bool {
    kind == ObjectKind::SecretsManager && (32..=64).contains(&version.len())
}

/// True when the two spellings may name the same object of `kind`.
pub fn same_object(kind: ObjectKind, a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    let theirs = names_of(kind, b);
    names_of(kind, a).iter().any(|n| theirs.contains(n))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SM: ObjectKind = ObjectKind::SecretsManager;
    const SSM: ObjectKind = ObjectKind::SsmParameter;
    const FULL: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:app/db-AbC123";
    const PARTIAL: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:app/db";

    #[test]
    fn a_secrets_name_full_arn_and_partial_arn_are_one_secret() {
        for (a, b) in [
            ("app/db", FULL),
            ("app/db", PARTIAL),
            (FULL, PARTIAL),
            (FULL, "app/db"),
            (PARTIAL, "app/db"),
            ("app/db", "app/db"),
        ] {
            assert!(same_object(SM, a, b), "{a} / {b}");
        }
    }

    #[test]
    fn other_secrets_stay_apart() {
        for (a, b) in [
            ("app/db", "app/dbx"),
            (
                "app/db",
                "arn:aws:secretsmanager:us-east-1:1:secret:app/other-AbC123",
            ),
            (
                "app/db",
                "arn:aws:secretsmanager:us-east-1:1:secret:app/d-AbC123",
            ),
            ("app", "app/db"),
        ] {
            assert!(!same_object(SM, a, b), "{a} / {b}");
        }
    }

    #[test]
    fn a_parameters_name_and_arn_are_one_parameter() {
        assert!(same_object(
            SSM,
            "/app/db",
            "arn:aws:ssm:us-east-1:123456789012:parameter/app/db"
        ));
        assert!(same_object(
            SSM,
            "db",
            "arn:aws:ssm:us-east-1:123456789012:parameter/db"
        ));
        assert!(!same_object(
            SSM,
            "/app/db",
            "arn:aws:ssm:us-east-1:1:parameter/app/dbx"
        ));
    }

    #[test]
    fn only_secrets_manager_version_ids_are_unique() {
        assert!(is_unique_version(
            SM,
            "a1b2c3d4-5678-90ab-cdef-EXAMPLE11111"
        ));
        assert!(!is_unique_version(SM, "v1"));
        assert!(!is_unique_version(
            SSM,
            "a1b2c3d4-5678-90ab-cdef-EXAMPLE11111"
        ));
    }

    #[test]
    fn odd_text_compares_as_itself() {
        assert_eq!(names_of(SM, "arn:broken"), ["arn:broken"]);
        assert_eq!(without_suffix("-AbC123"), None);
        assert_eq!(without_suffix("x-AbC12!"), None);
        assert_eq!(without_suffix("x-AbC123"), Some("x"));
    }
}
