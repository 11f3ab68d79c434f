//! Object-version bookkeeping (spec §6): what the response reports for each file.

use std::collections::BTreeMap;

/// One `ObjectVersion` of the protocol: the file id and the version it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectVersion {
    pub id: String,
    pub version: String,
}

/// The versions to report: one per written file, plus every version the pod already had
/// that this mount does not overwrite, passed back unchanged. Sorted by id, so the
/// answer does not depend on fetch order.
pub fn response_versions(
    written: &[ObjectVersion],
    current: &[ObjectVersion],
) -> Vec<ObjectVersion> {
    let mut merged: BTreeMap<&str, &str> = current
        .iter()
        .map(|v| (v.id.as_str(), v.version.as_str()))
        .collect();
    for v in written {
        merged.insert(&v.id, &v.version);
    }
    merged
        .into_iter()
        .map(|(id, version)| ObjectVersion {
            id: id.to_string(),
            version: version.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(id: &str, version: &str) -> ObjectVersion {
        ObjectVersion {
            id: id.to_string(),
            version: version.to_string(),
        }
    }

    #[test]
    fn written_files_replace_current_versions_and_others_pass_through() {
        let out = response_versions(&[v("a", "2"), v("b", "1")], &[v("a", "1"), v("old", "9")]);
        assert_eq!(out, vec![v("a", "2"), v("b", "1"), v("old", "9")]);
    }

    #[test]
    fn without_current_versions_only_written_files() {
        assert_eq!(response_versions(&[v("x", "7")], &[]), vec![v("x", "7")]);
    }
}
