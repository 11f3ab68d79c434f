//! The rules of the checked-class cache: which classes are kept, how many, and what
//! makes two checks the same. A storm mounts one class hundreds of times; checking it
//! once (YAML parse, every rule, jmesPath compiled) instead of per mount is most of the
//! CPU a mount spends on its class. The cache itself lives in the service.

use sha2::{Digest, Sha256};

use super::class::{ClassRules, ClassSpec};

/// How much the cache may keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClassCacheLimits {
    /// Classes kept; least recently used first out.
    pub max_entries: usize,
    /// `objects` text of the classes kept, in bytes, all together: a checked class is
    /// a few times its text, so this bounds the memory the cache holds.
    pub max_text_bytes: usize,
    /// Longest `objects` text kept: a larger class is checked on every mount.
    pub max_class_text_bytes: usize,
}

impl Default for ClassCacheLimits {
    fn default() -> Self {
        // Real classes are a few KiB and a node mounts a few dozen of them; 256 KiB of
        // text is well under a MiB of checked classes even at 64 entries.
        ClassCacheLimits {
            max_entries: 64,
            max_text_bytes: 256 * 1024,
            max_class_text_bytes: 16 * 1024,
        }
    }
}

impl ClassCacheLimits {
    /// Whether a check of `spec` may be kept. Not when its text is over the per-class
    /// bound, and not when it defines a YAML anchor: aliases of anchors make the checked
    /// class grow with the expansions (up to the alias limits), no longer with its
    /// text, so the text would not bound what the cache holds. (`&` may also be part
    /// of a name or a path: such a class is merely checked every time, as before.)
    pub fn admits(&self, spec: &ClassSpec<'_>) -> bool {
        spec.objects.len() <= self.max_class_text_bytes.min(self.max_text_bytes)
            && !spec.objects.contains('&')
    }
}

/// What makes two checks the same: a SHA-256 digest of everything a check reads, the
/// class's text and attributes and the provider's rules. The text itself is not kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClassKey([u8; 32]);

impl ClassKey {
    pub fn of(spec: &ClassSpec<'_>, rules: &ClassRules) -> Self {
        let mut digest = Sha256::new();
        // The text with its length first, then the rest in Debug form (regions are
        // quoted there), so no two different inputs run together into one byte string.
        digest.update((spec.objects.len() as u64).to_le_bytes());
        digest.update(spec.objects.as_bytes());
        let rest = format!(
            "{:?}|{:?}|{:?}|{:?}",
            spec.translation, spec.region, spec.failover_region, rules
        );
        digest.update(rest.as_bytes());
        ClassKey(digest.finalize().into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::mode::FileMode;
    use crate::domain::naming::PathTranslation;
    use crate::domain::region::Region;

    const OBJECTS: &str = "- {objectName: a, objectType: secretsmanager}\n";

    fn spec(objects: &str) -> ClassSpec<'_> {
        ClassSpec {
            objects,
            translation: PathTranslation::default(),
            region: None,
            failover_region: None,
        }
    }

    #[test]
    fn the_key_changes_with_everything_a_check_reads() {
        let rules = ClassRules::default();
        let base = ClassKey::of(&spec(OBJECTS), &rules);
        assert_eq!(base, ClassKey::of(&spec(OBJECTS), &rules));
        let other_text = "- {objectName: b, objectType: secretsmanager}\n";
        assert_ne!(base, ClassKey::of(&spec(other_text), &rules));
        let mut region = spec(OBJECTS);
        region.region = Some(Region::parse("us-east-1").unwrap());
        assert_ne!(base, ClassKey::of(&region, &rules));
        let mut failover = spec(OBJECTS);
        failover.failover_region = Some(Region::parse("us-east-1").unwrap());
        assert_ne!(base, ClassKey::of(&failover, &rules));
        assert_ne!(
            ClassKey::of(&region, &rules),
            ClassKey::of(&failover, &rules)
        );
        let mut translation = spec(OBJECTS);
        translation.translation = PathTranslation::Off;
        assert_ne!(base, ClassKey::of(&translation, &rules));
        let mode = ClassRules {
            default_mode: FileMode::new(0o600).unwrap(),
            ..rules
        };
        assert_ne!(base, ClassKey::of(&spec(OBJECTS), &mode));
        let strict = ClassRules {
            strict: true,
            ..rules
        };
        assert_ne!(base, ClassKey::of(&spec(OBJECTS), &strict));
    }

    #[test]
    fn large_classes_and_anchors_are_not_kept() {
        let limits = ClassCacheLimits::default();
        assert!(limits.admits(&spec(OBJECTS)));
        let large = OBJECTS.repeat(limits.max_class_text_bytes / OBJECTS.len() + 1);
        assert!(!limits.admits(&spec(&large)));
        let anchored = "- &x {objectName: a, objectType: secretsmanager}\n- *x\n";
        assert!(!limits.admits(&spec(anchored)));
    }
}
