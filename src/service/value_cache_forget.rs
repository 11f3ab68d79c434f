//! Forgetting what the store refused: an object under every spelling and every version
//! AWS gave for it, and every cached selection that matched it, for one principal.

use std::collections::HashSet;

use super::{Answer, CacheKey, Entry, Subject, ValueCache};
use crate::domain::object_id::{is_unique_version, same_object};
use crate::domain::objects::{ObjectKind, Selection};

impl ValueCache {
    /// Forgets every entry of `principal` for the object `kind`/`name`, in every region,
    /// for every version or label and under every spelling of it (name, full or partial
    /// ARN), and every cached selection of `principal` that matched it: the store said
    /// it is gone or not theirs, and no other spelling may keep serving it. For a secret,
    /// also every entry holding a version AWS gave for it: a Secrets Manager VersionId is
    /// a UUID of that one secret, the canonical id AWS returns with every answer, which
    /// links spellings the names alone cannot tie.
    pub fn forget_object(&self, principal: &str, kind: ObjectKind, name: &str) {
        if !self.is_on() {
            return;
        }
        let mut held = self.held();
        let mine = |k: &CacheKey| k.principal == principal;
        let versions: HashSet<String> = if kind == ObjectKind::SecretsManager {
            held.lru
                .iter()
                .filter(|(k, _)| mine(k))
                .flat_map(|(k, e)| versions_of(k, e, kind, name))
                .collect()
        } else {
            HashSet::new()
        };
        let keys: Vec<CacheKey> = held
            .lru
            .iter()
            .filter(|(k, e)| mine(k) && (holds(k, e, kind, name) || holds_version(k, e, &versions)))
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            self.remove(&mut held, &key, &self.counters.evicted_client_error);
        }
    }

    /// Forgets every entry of `principal` for `selection`, in every region: the store
    /// refused it.
    pub fn forget_selection(&self, principal: &str, selection: &Selection) {
        if !self.is_on() {
            return;
        }
        let mut held = self.held();
        let keys: Vec<CacheKey> = held
            .lru
            .iter()
            .filter(|(k, _)| {
                k.principal == principal
                    && matches!(&k.subject, Subject::Selection(s) if s == selection)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in keys {
            self.remove(&mut held, &key, &self.counters.evicted_client_error);
        }
    }
}

/// True when the entry `key`/`entry` holds the object `kind`/`name`: the object under
/// any spelling, or a selection that matched it.
fn holds(key: &CacheKey, entry: &Entry, kind: ObjectKind, name: &str) -> bool {
    match (&key.subject, &entry.value) {
        (Subject::Object(o), _) => o.kind == kind && same_object(kind, &o.name, name),
        (Subject::Selection(s), Answer::Many(found)) => {
            s.kind() == kind && found.iter().any(|m| same_object(kind, &m.name, name))
        }
        (Subject::Selection(_), Answer::One(_)) => false,
    }
}

/// The versions the entry `key`/`entry` holds of the object `kind`/`name`.
fn versions_of(key: &CacheKey, entry: &Entry, kind: ObjectKind, name: &str) -> Vec<String> {
    match (&key.subject, &entry.value) {
        (Subject::Object(_), Answer::One(f)) if holds(key, entry, kind, name) => {
            vec![f.version.clone()]
        }
        (Subject::Selection(s), Answer::Many(found)) if s.kind() == kind => found
            .iter()
            .filter(|m| same_object(kind, &m.name, name))
            .map(|m| m.fetched.version.clone())
            .collect(),
        _ => Vec::new(),
    }
    .into_iter()
    .filter(|v| is_unique_version(kind, v))
    .collect()
}

/// True when the entry `key`/`entry` holds a secret at one of `versions`.
fn holds_version(key: &CacheKey, entry: &Entry, versions: &HashSet<String>) -> bool {
    if versions.is_empty() {
        return false;
    }
    match (&key.subject, &entry.value) {
        (Subject::Object(o), Answer::One(f)) => {
            o.kind == ObjectKind::SecretsManager && versions.contains(&f.version)
        }
        (Subject::Selection(s), Answer::Many(found)) => {
            s.kind() == ObjectKind::SecretsManager
                && found.iter().any(|m| versions.contains(&m.fetched.version))
        }
        _ => false,
    }
}
