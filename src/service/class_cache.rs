//! Classes checked once and reused by every mount of the same class (its rules, bounds
//! and key in domain/class_cache.rs). Only classes that passed are kept: a refused
//! class is checked again on every mount, and so refused with the same error, and
//! takes no room from good ones.

use std::sync::{Arc, Mutex};

use lru::LruCache;

use crate::domain::class::{CheckedClass, ClassError, ClassRules, ClassSpec};
use crate::domain::class_cache::{ClassCacheLimits, ClassKey};

pub(super) struct ClassCache {
    limits: ClassCacheLimits,
    held: Mutex<Held>,
}

struct Held {
    /// Each class with the length of its text, which counts against the bound.
    lru: LruCache<ClassKey, (Arc<CheckedClass>, usize)>,
    text_bytes: usize,
}

impl ClassCache {
    pub fn new(limits: ClassCacheLimits) -> Self {
        ClassCache {
            limits,
            held: Mutex::new(Held {
                // Entries are bounded by hand below, with the bytes.
                lru: LruCache::unbounded(),
                text_bytes: 0,
            }),
        }
    }

    /// The class checked: from the cache when the same check passed before, else
    /// checked now (outside the lock: a large class must not hold other mounts up).
    pub fn check(
        &self,
        spec: &ClassSpec<'_>,
        rules: &ClassRules,
    ) -> Result<Arc<CheckedClass>, ClassError> {
        let admitted = self.limits.max_entries > 0 && self.limits.admits(spec);
        if !admitted {
            return spec.check(rules).map(Arc::new);
        }
        let key = ClassKey::of(spec, rules);
        if let Some((class, _)) = self.lock().lru.get(&key) {
            return Ok(class.clone());
        }
        let class = Arc::new(spec.check(rules)?);
        self.keep(key, class.clone(), spec.objects.len());
        Ok(class)
    }

    fn keep(&self, key: ClassKey, class: Arc<CheckedClass>, text_bytes: usize) {
        let mut held = self.lock();
        // Two mounts may have checked the same class at once: the second replaces the first.
        if let Some((_, old)) = held.lru.put(key, (class, text_bytes)) {
            held.text_bytes -= old;
        }
        held.text_bytes += text_bytes;
        while held.lru.len() > self.limits.max_entries
            || held.text_bytes > self.limits.max_text_bytes
        {
            match held.lru.pop_lru() {
                Some((_, (_, bytes))) => held.text_bytes -= bytes,
                None => break,
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Held> {
        // The cache holds no invariant a panic elsewhere could break mid-way.
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().lru.len()
    }
}

/// The cache of a service that was given no limits.
impl Default for ClassCache {
    fn default() -> Self {
        ClassCache::new(ClassCacheLimits::default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::naming::PathTranslation;
    use crate::domain::region::Region;

    fn spec(objects: &str) -> ClassSpec<'_> {
        ClassSpec {
            objects,
            translation: PathTranslation::default(),
            region: None,
            failover_region: None,
        }
    }

    fn class(name: &str) -> String {
        format!("- {{objectName: {name}, objectType: secretsmanager}}\n")
    }

    #[test]
    fn a_hit_returns_the_same_checked_class() {
        let cache = ClassCache::default();
        let text = class("a");
        let first = cache.check(&spec(&text), &ClassRules::default()).unwrap();
        let again = cache.check(&spec(&text), &ClassRules::default()).unwrap();
        assert!(Arc::ptr_eq(&first, &again), "checked once");
        assert_eq!(again.parsed.objects[0].primary.name, "a");
        assert_eq!(cache.len(), 1);
    }

    #[test]
    fn a_changed_attribute_misses() {
        let cache = ClassCache::default();
        let text = class("a");
        let rules = ClassRules::default();
        let first = cache.check(&spec(&text), &rules).unwrap();
        let mut regional = spec(&text);
        regional.region = Some(Region::parse("us-west-2").unwrap());
        let other = cache.check(&regional, &rules).unwrap();
        assert!(!Arc::ptr_eq(&first, &other));
        assert_eq!(
            other.regions.as_ref().map(|r| r.primary.to_string()),
            Some("us-west-2".to_string())
        );
        let strict = ClassRules {
            strict: true,
            ..rules
        };
        let third = cache.check(&spec(&text), &strict).unwrap();
        assert!(!Arc::ptr_eq(&first, &third));
        assert_eq!(cache.len(), 3);
    }

    #[test]
    fn the_bounds_hold_least_recently_used_first_out() {
        let cache = ClassCache::new(ClassCacheLimits {
            max_entries: 2,
            ..ClassCacheLimits::default()
        });
        let rules = ClassRules::default();
        let (a, b, c) = (class("a"), class("b"), class("c"));
        let first_a = cache.check(&spec(&a), &rules).unwrap();
        cache.check(&spec(&b), &rules).unwrap();
        cache.check(&spec(&a), &rules).unwrap(); // a is now the most recent
        cache.check(&spec(&c), &rules).unwrap(); // b goes
        assert_eq!(cache.len(), 2);
        assert!(Arc::ptr_eq(
            &first_a,
            &cache.check(&spec(&a), &rules).unwrap()
        ));
        let by_bytes = ClassCache::new(ClassCacheLimits {
            max_text_bytes: a.len() * 2,
            ..ClassCacheLimits::default()
        });
        for text in [&a, &b, &c] {
            by_bytes.check(&spec(text), &rules).unwrap();
        }
        assert_eq!(by_bytes.len(), 2, "two texts fit in the bytes");
        assert!(by_bytes.lock().text_bytes <= a.len() * 2);
    }

    #[test]
    fn a_refused_class_stays_refused_with_the_same_error_and_is_not_kept() {
        let cache = ClassCache::default();
        let broken = "- {objectName: a, objectType: nosuchstore}\n";
        let rules = ClassRules::default();
        let first = cache.check(&spec(broken), &rules).unwrap_err();
        let again = cache.check(&spec(broken), &rules).unwrap_err();
        assert_eq!(first, again);
        assert_eq!(first, spec(broken).check(&rules).unwrap_err());
        assert_eq!(cache.len(), 0);
    }

    #[test]
    fn classes_not_admitted_are_checked_every_time() {
        let cache = ClassCache::default();
        let anchored = "- &x {objectName: a, objectType: secretsmanager, objectAlias: b}\n";
        let first = cache
            .check(&spec(anchored), &ClassRules::default())
            .unwrap();
        let again = cache
            .check(&spec(anchored), &ClassRules::default())
            .unwrap();
        assert!(!Arc::ptr_eq(&first, &again));
        assert_eq!(cache.len(), 0);
        let off = ClassCache::new(ClassCacheLimits {
            max_entries: 0,
            ..ClassCacheLimits::default()
        });
        off.check(&spec(&class("a")), &ClassRules::default())
            .unwrap();
        assert_eq!(off.len(), 0);
    }
}
