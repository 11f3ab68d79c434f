//! Parameter Store batches: the names asked of GetParameters, and matching the answer
//! back to objects. Results come in any order; a parameter named by ARN may come back
//! under its plain name, so each object matches by name or by ARN. The `Selector` of an
//! answer is not always present (moto omits it), so one call never asks for two
//! selectors of the same name: `rounds` splits such objects into separate calls, and
//! within a call the name alone identifies the answer.

use crate::domain::arn::Arn;
use crate::domain::objects::ObjectRef;

/// The most names one GetParameters call accepts.
pub const MAX_NAMES: usize = 10;

/// `name`, `name:version` or `name:label`, as GetParameters takes it.
pub fn request_name(object: &ObjectRef) -> String {
    match (&object.version, &object.label) {
        (Some(v), _) => format!("{}:{v}", object.name),
        (None, Some(l)) => format!("{}:{l}", object.name),
        (None, None) => object.name.clone(),
    }
}

/// What one returned parameter says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Returned {
    pub name: String,
    pub arn: Option<String>,
    /// `:3` or `:label` when asked with a selector.
    pub selector: Option<String>,
}

/// The parameter a name or ARN designates, for telling whether two requests ask for the
/// same parameter (`/app/db` and `arn:aws:ssm:…:parameter/app/db` do).
fn parameter_name(name: &str) -> String {
    let plain = match Arn::parse(name) {
        Ok(arn) if arn.service == "ssm" => {
            arn.resource.strip_prefix("parameter").map(str::to_string)
        }
        _ => None,
    };
    plain
        .unwrap_or_else(|| name.to_string())
        .trim_start_matches('/')
        .to_string()
}

/// Splits a batch into rounds (lists of indices) in which every name appears with one
/// selector at most; identical requests stay together.
pub fn rounds(batch: &[ObjectRef]) -> Vec<Vec<usize>> {
    let mut rounds: Vec<Vec<usize>> = Vec::new();
    let mut placed: Vec<(String, String, usize)> = Vec::new(); // (name, request, round)
    for (i, object) in batch.iter().enumerate() {
        let request = request_name(object);
        let round = if let Some((_, _, r)) = placed.iter().find(|(_, req, _)| *req == request) {
            *r
        } else {
            let name = parameter_name(&object.name);
            let taken = placed.iter().filter(|(n, _, _)| *n == name).count();
            placed.push((name, request, taken));
            taken
        };
        if rounds.len() <= round {
            rounds.resize_with(round + 1, Vec::new);
        }
        rounds[round].push(i);
    }
    rounds
}

/// True when `returned` answers `object` (within one round).
pub fn answers(object: &ObjectRef, returned: &Returned) -> bool {
    let wanted_selector = match (&object.version, &object.label) {
        (Some(v), _) => Some(format!(":{v}")),
        (None, Some(l)) => Some(format!(":{l}")),
        (None, None) => None,
    };
    if let Some(selector) = returned.selector.as_deref().filter(|s| !s.is_empty()) {
        if Some(selector) != wanted_selector.as_deref() {
            return false;
        }
    }
    if returned.name == object.name || returned.arn.as_deref() == Some(object.name.as_str()) {
        return true;
    }
    // Named by ARN, answered by name: compare the ARN's resource `parameter/<name>`.
    match Arn::parse(&object.name) {
        Ok(arn) if arn.service == "ssm" => {
            arn.resource.strip_prefix("parameter").is_some_and(|rest| {
                rest == returned.name
                    || rest.trim_start_matches('/') == returned.name.trim_start_matches('/')
            })
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::objects::ObjectKind;

    fn obj(name: &str, version: Option<&str>, label: Option<&str>) -> ObjectRef {
        ObjectRef {
            kind: ObjectKind::SsmParameter,
            name: name.into(),
            version: version.map(Into::into),
            label: label.map(Into::into),
        }
    }

    fn ret(name: &str, arn: Option<&str>, selector: Option<&str>) -> Returned {
        Returned {
            name: name.into(),
            arn: arn.map(Into::into),
            selector: selector.map(Into::into),
        }
    }

    #[test]
    fn request_names_carry_the_selector() {
        assert_eq!(request_name(&obj("/a", None, None)), "/a");
        assert_eq!(request_name(&obj("/a", Some("3"), None)), "/a:3");
        assert_eq!(request_name(&obj("/a", None, Some("prod"))), "/a:prod");
    }

    #[test]
    fn matches_by_name_and_selector() {
        assert!(answers(&obj("/a", None, None), &ret("/a", None, None)));
        assert!(answers(
            &obj("/a", Some("3"), None),
            &ret("/a", None, Some(":3"))
        ));
        assert!(
            answers(&obj("/a", Some("3"), None), &ret("/a", None, None)),
            "no selector in the answer (moto)"
        );
        assert!(!answers(
            &obj("/a", None, None),
            &ret("/a", None, Some(":3"))
        ));
        assert!(!answers(
            &obj("/a", Some("3"), None),
            &ret("/a", None, Some(":prod"))
        ));
        assert!(!answers(&obj("/a", None, None), &ret("/b", None, None)));
    }

    #[test]
    fn rounds_never_ask_one_name_with_two_selectors() {
        let batch = vec![
            obj("/a", None, None),
            obj("/b", None, None),
            obj("/a", Some("1"), None),
            obj("/a", None, None),
            obj("/a", None, Some("prod")),
        ];
        assert_eq!(rounds(&batch), vec![vec![0, 1, 3], vec![2], vec![4]]);
        // An ARN and a plain name of one parameter count as the same name.
        let arn = "arn:aws:ssm:us-east-1:111122223333:parameter/app/db";
        let mixed = vec![obj("/app/db", None, None), obj(arn, Some("1"), None)];
        assert_eq!(rounds(&mixed), vec![vec![0], vec![1]]);
        let distinct: Vec<ObjectRef> = (0..25)
            .map(|i| obj(&format!("/p{i}"), None, None))
            .collect();
        assert_eq!(rounds(&distinct).len(), 1);
    }

    #[test]
    fn matches_an_arn_by_arn_or_by_its_name() {
        let arn = "arn:aws:ssm:us-east-1:111122223333:parameter/shared/db";
        assert!(answers(&obj(arn, None, None), &ret(arn, Some(arn), None)));
        assert!(answers(
            &obj(arn, None, None),
            &ret("/shared/db", Some(arn), None)
        ));
        assert!(answers(
            &obj(arn, None, None),
            &ret("/shared/db", None, None)
        ));
        let plain = "arn:aws:ssm:us-east-1:111122223333:parameter/flat";
        assert!(answers(&obj(plain, None, None), &ret("flat", None, None)));
        assert!(!answers(&obj(arn, None, None), &ret("/other", None, None)));
    }
}
