//! Rules across the whole list: duplicate objects, aliases and files, and a file that
//! another object's path needs as a directory.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::{ObjectError, ObjectSpec, Rule};
use crate::domain::text::bounded;

/// Duplicate objects, aliases and files, across the whole list.
pub(super) fn check_uniqueness(specs: &[ObjectSpec], errors: &mut Vec<ObjectError>) {
    let push = |errors: &mut Vec<ObjectError>, spec: &ObjectSpec, rule, message: String| {
        errors.push(ObjectError {
            object: spec.describe(),
            rule,
            message,
        });
    };
    // Same objectName conflicts when alias and label are both the same (absent counts as a value).
    let mut seen: HashMap<(&str, Option<&str>, Option<&str>), usize> = HashMap::new();
    let mut aliases: HashMap<&str, usize> = HashMap::new();
    let mut files: BTreeMap<&str, usize> = BTreeMap::new();
    for spec in specs {
        let alias = spec.alias.as_deref();
        let key = (
            spec.primary.name.as_str(),
            alias,
            spec.primary.label.as_deref(),
        );
        if let Some(first) = seen.insert(key, spec.position) {
            push(errors, spec, Rule::DuplicateObject, format!("conflicts with object #{first}: same objectName, objectAlias and objectVersionLabel"));
        }
        let jmes_aliases = spec.jmes.iter().map(|j| j.alias.as_str());
        for a in alias.into_iter().chain(jmes_aliases) {
            if let Some(first) = aliases.insert(a, spec.position) {
                push(
                    errors,
                    spec,
                    Rule::DuplicateAlias,
                    format!(
                        "objectAlias `{}` is already used by object #{first}",
                        bounded(a)
                    ),
                );
            }
        }
        for file in std::iter::once(&spec.file).chain(spec.jmes.iter().map(|j| &j.file)) {
            if let Some(first) = files.insert(file.as_str(), spec.position) {
                if seen_duplicate_reported(errors, spec) {
                    continue;
                }
                push(
                    errors,
                    spec,
                    Rule::DuplicateFile,
                    format!(
                        "file `{}` is also written by object #{first}",
                        bounded(file.as_str())
                    ),
                );
            }
        }
    }
    // With translation off, `a` and `a/b` cannot both exist: one would be a file and a directory.
    let names: HashSet<&str> = files.keys().copied().collect();
    for (file, position) in &files {
        let mut prefix = String::new();
        for element in file
            .split('/')
            .collect::<Vec<_>>()
            .iter()
            .rev()
            .skip(1)
            .rev()
        {
            if !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(element);
            if names.contains(prefix.as_str()) {
                if let Some(spec) = specs.iter().find(|s| s.position == *position) {
                    push(errors, spec, Rule::DuplicateFile, format!("file `{}` needs `{}` to be a directory, but another object writes a file there", bounded(file), bounded(&prefix)));
                }
            }
        }
    }
}

fn seen_duplicate_reported(errors: &[ObjectError], spec: &ObjectSpec) -> bool {
    let me = spec.describe();
    errors
        .iter()
        .any(|e| e.object == me && matches!(e.rule, Rule::DuplicateObject | Rule::DuplicateAlias))
}
