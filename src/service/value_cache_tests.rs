use super::*;
use crate::domain::objects::ObjectKind;
use crate::domain::secret::SecretValue;
use crate::ports::clock::ManualClock;

const MIN: Duration = Duration::from_secs(60);

fn settings(ttl: Duration, stale: Duration) -> ValueCacheSettings {
    ValueCacheSettings {
        bounds: CacheBounds {
            ttl,
            stale_if_error: stale,
        },
        ..ValueCacheSettings::default()
    }
}

fn cache(s: ValueCacheSettings) -> (ValueCache, ManualClock) {
    let clock = ManualClock::default();
    (ValueCache::new(s, Arc::new(clock.clone())), clock)
}

fn key(principal: &str, region: &str, name: &str, version: Option<&str>) -> CacheKey {
    CacheKey {
        principal: principal.into(),
        region: Region::parse(region).unwrap(),
        subject: Subject::Object(ObjectRef {
            kind: ObjectKind::SecretsManager,
            name: name.into(),
            version: version.map(Into::into),
            label: None,
        }),
    }
}

fn fetched(bytes: &[u8]) -> Fetched {
    Fetched {
        value: SecretValue::new(bytes.to_vec()),
        version: "v1".into(),
    }
}

fn value(bytes: &[u8]) -> Answer {
    Answer::One(fetched(bytes))
}

fn fresh_bytes(l: Lookup<Fetched>) -> Option<Vec<u8>> {
    match l {
        Lookup::Fresh(f) => Some(f.value.expose().to_vec()),
        _ => None,
    }
}

#[test]
fn a_value_is_served_until_its_ttl_then_asked_again() {
    let (c, clock) = cache(settings(MIN * 5, Duration::ZERO));
    let f = Freshness::for_class(c.bounds(), None);
    let k = key("irsa|r|ns/sa", "us-east-1", "db", None);
    assert!(matches!(c.lookup(&k, &f), Lookup::Miss));
    c.store(k.clone(), value(b"one"));
    clock.advance(MIN * 4);
    assert_eq!(fresh_bytes(c.lookup(&k, &f)), Some(b"one".to_vec()));
    clock.advance(MIN);
    assert!(matches!(c.lookup(&k, &f), Lookup::Miss));
    let s = c.stats();
    assert_eq!((s.hits, s.misses), (1, 2));
    assert_eq!(s.entries, 0, "an entry past every use is dropped");
}

#[test]
fn a_class_ttl_below_the_operators_expires_sooner_for_that_class_only() {
    let (c, clock) = cache(settings(MIN * 5, Duration::ZERO));
    let k = key("p", "us-east-1", "db", None);
    c.store(k.clone(), value(b"v"));
    clock.advance(MIN * 2);
    let short = Freshness::for_class(c.bounds(), Some(MIN));
    let default = Freshness::for_class(c.bounds(), None);
    assert!(matches!(c.lookup(&k, &short), Lookup::Miss));
    assert!(matches!(c.lookup(&k, &default), Lookup::Fresh(_)));
    let zero = Freshness::for_class(c.bounds(), Some(Duration::ZERO));
    assert!(matches!(c.lookup(&k, &zero), Lookup::Miss));
}

#[test]
fn pinned_versions_keep_the_operators_ttl_under_a_shorter_class_ttl() {
    let (c, clock) = cache(settings(MIN * 5, Duration::ZERO));
    let pinned = key("p", "us-east-1", "db", Some("3"));
    let current = key("p", "us-east-1", "db", None);
    c.store(pinned.clone(), value(b"pinned"));
    c.store(current.clone(), value(b"current"));
    clock.advance(MIN * 2);
    let short = Freshness::for_class(c.bounds(), Some(MIN));
    assert_eq!(
        fresh_bytes(c.lookup(&pinned, &short)),
        Some(b"pinned".to_vec())
    );
    assert!(matches!(c.lookup(&current, &short), Lookup::Miss));
}

#[test]
fn keys_differ_by_principal_region_and_version() {
    let (c, _) = cache(settings(MIN, Duration::ZERO));
    let f = Freshness::for_class(c.bounds(), None);
    c.store(key("irsa|r|ns/a", "us-east-1", "db", None), value(b"a"));
    for other in [
        key("irsa|r|ns/b", "us-east-1", "db", None),
        key("irsa|r2|ns/a", "us-east-1", "db", None),
        key("irsa|r|ns/a", "us-west-2", "db", None),
        key("irsa|r|ns/a", "us-east-1", "db", Some("1")),
        key("irsa|r|ns/a", "us-east-1", "other", None),
    ] {
        assert!(matches!(c.lookup(&other, &f), Lookup::Miss), "{other:?}");
    }
}

#[test]
fn past_the_ttl_an_entry_stands_in_until_the_stale_bound() {
    let (c, clock) = cache(settings(MIN, MIN * 10));
    let f = Freshness::for_class(c.bounds(), None);
    let k = key("p", "us-east-1", "db", None);
    c.store(k.clone(), value(b"v"));
    clock.advance(MIN * 3);
    match c.lookup(&k, &f) {
        Lookup::StandIn { value, age } => {
            assert_eq!(value.value.expose(), b"v");
            assert_eq!(age, MIN * 3);
        }
        other => panic!("{other:?}"),
    }
    clock.advance(MIN * 7);
    assert!(matches!(c.lookup(&k, &f), Lookup::Miss));
}

#[test]
fn a_client_error_forgets_the_object_for_that_principal_in_every_region_and_version() {
    let (c, _) = cache(settings(MIN, MIN * 10));
    let f = Freshness::for_class(c.bounds(), None);
    let mine = [
        key("p", "us-east-1", "db", None),
        key("p", "us-west-2", "db", None),
        key("p", "us-east-1", "db", Some("3")),
    ];
    let kept = [
        key("p", "us-east-1", "other", None),
        key("q", "us-east-1", "db", None),
    ];
    for k in mine.iter().chain(&kept) {
        c.store(k.clone(), value(b"v"));
    }
    c.forget_object("p", ObjectKind::SecretsManager, "db");
    for k in &mine {
        assert!(matches!(c.lookup(k, &f), Lookup::Miss), "{k:?}");
    }
    for k in &kept {
        assert!(matches!(c.lookup(k, &f), Lookup::Fresh(_)), "{k:?}");
    }
    assert_eq!(c.stats().evicted_client_error, 3);
}

#[test]
fn the_entry_limit_evicts_the_least_recently_used() {
    let (c, _) = cache(ValueCacheSettings {
        max_entries: 2,
        ..settings(MIN, Duration::ZERO)
    });
    let f = Freshness::for_class(c.bounds(), None);
    let (a, b, d) = (
        key("p", "us-east-1", "a", None),
        key("p", "us-east-1", "b", None),
        key("p", "us-east-1", "d", None),
    );
    c.store(a.clone(), value(b"a"));
    c.store(b.clone(), value(b"b"));
    assert!(
        matches!(c.lookup(&a, &f), Lookup::Fresh(_)),
        "a is now the most recent"
    );
    c.store(d.clone(), value(b"d"));
    assert!(matches!(c.lookup(&b, &f), Lookup::Miss));
    assert!(matches!(c.lookup(&a, &f), Lookup::Fresh(_)));
    assert!(matches!(c.lookup(&d, &f), Lookup::Fresh(_)));
    assert_eq!(c.stats().evicted_capacity, 1);
    assert_eq!(c.stats().entries, 2);
}

#[test]
fn the_byte_limit_evicts_the_least_recently_used_and_skips_what_never_fits() {
    let big = vec![b'x'; 1000];
    let (c, _) = cache(ValueCacheSettings {
        max_bytes: 2500,
        ..settings(MIN, Duration::ZERO)
    });
    let f = Freshness::for_class(c.bounds(), None);
    let keys: Vec<CacheKey> = (0..3)
        .map(|i| key("p", "us-east-1", &format!("s{i}"), None))
        .collect();
    for k in &keys {
        c.store(k.clone(), value(&big));
    }
    let s = c.stats();
    assert!(s.bytes <= 2500, "{s:?}");
    assert_eq!(s.entries, 2);
    assert!(matches!(c.lookup(&keys[0], &f), Lookup::Miss));
    c.store(
        key("p", "us-east-1", "huge", None),
        value(&vec![b'x'; 3000]),
    );
    assert!(matches!(
        c.lookup(&key("p", "us-east-1", "huge", None), &f),
        Lookup::Miss
    ));
    assert!(c.stats().bytes <= 2500);
}

#[test]
fn replacing_a_value_keeps_the_byte_count_right() {
    let (c, _) = cache(settings(MIN, Duration::ZERO));
    let k = key("p", "us-east-1", "db", None);
    c.store(k.clone(), value(&[1; 100]));
    let once = c.stats().bytes;
    c.store(k.clone(), value(&[2; 100]));
    assert_eq!(c.stats().bytes, once);
    assert_eq!(c.stats().entries, 1);
    assert_eq!(c.stats().evicted_capacity, 0);
}

#[test]
fn entries_past_every_use_are_swept_when_values_are_stored() {
    let (c, clock) = cache(settings(MIN, MIN * 2));
    c.store(key("p", "us-east-1", "old", None), value(b"v"));
    clock.advance(MIN * 3);
    c.store(key("p", "us-east-1", "new", None), value(b"v"));
    let s = c.stats();
    assert_eq!(s.entries, 1);
    assert_eq!(s.evicted_expired, 1);
}

#[test]
fn an_off_cache_holds_nothing() {
    let (c, _) = cache(ValueCacheSettings::default());
    let k = key("p", "us-east-1", "db", None);
    c.store(k.clone(), value(b"v"));
    assert_eq!(c.stats().entries, 0);
    assert!(matches!(
        c.lookup(&k, &Freshness::for_class(c.bounds(), None)),
        Lookup::Miss
    ));
}

#[test]
fn selections_are_cached_under_their_own_key_and_forgotten_on_a_refusal() {
    let (c, clock) = cache(settings(MIN, MIN * 10));
    let f = Freshness::for_class(c.bounds(), None);
    let selection = Selection::ParameterPath {
        path: "/app".into(),
        recursive: false,
    };
    let key = CacheKey {
        principal: "p".into(),
        region: Region::parse("us-east-1").unwrap(),
        subject: Subject::Selection(selection.clone()),
    };
    let found = Arc::new(vec![Selected {
        name: "/app/a".into(),
        fetched: fetched(b"a"),
    }]);
    c.store(key.clone(), Answer::Many(found));
    match c.lookup_selection(&key, &f) {
        Lookup::Fresh(m) => assert_eq!(m[0].name, "/app/a"),
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(c.lookup(&key, &f), Lookup::Miss),
        "not an object's value"
    );
    clock.advance(MIN * 2);
    assert!(matches!(
        c.lookup_selection(&key, &f),
        Lookup::StandIn { .. }
    ));
    c.forget_selection("p", &selection);
    assert!(matches!(c.lookup_selection(&key, &f), Lookup::Miss));
}

const FULL_ARN: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:app/db-AbC123";
const PARTIAL_ARN: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:app/db";

fn secrets_selection(prefix: &str) -> CacheKey {
    CacheKey {
        principal: "p".into(),
        region: Region::parse("us-east-1").unwrap(),
        subject: Subject::Selection(Selection::Secrets {
            name_prefix: Some(prefix.into()),
            tag_key: None,
            tag_value: None,
        }),
    }
}

fn matches(names: &[&str]) -> Answer {
    Answer::Many(Arc::new(
        names
            .iter()
            .map(|n| Selected {
                name: n.to_string(),
                fetched: fetched(b"v"),
            })
            .collect(),
    ))
}

/// After a refusal under `refused`, nothing of the secret may stand in for an outage:
/// every spelling of it, and every selection that matched it, is gone for `p` only.
fn refusal_forgets_every_spelling(refused: &str) {
    let (c, clock) = cache(settings(MIN, MIN * 10));
    let f = Freshness::for_class(c.bounds(), None);
    let spellings = ["app/db", FULL_ARN, PARTIAL_ARN];
    let mine: Vec<CacheKey> = spellings
        .iter()
        .map(|s| key("p", "us-east-1", s, None))
        .chain([
            key("p", "us-west-2", "app/db", None),
            secrets_selection("app/"),
        ])
        .collect();
    let kept = [
        key("q", "us-east-1", "app/db", None),
        key("p", "us-east-1", "app/dbx", None),
        secrets_selection("other/"),
    ];
    for k in mine.iter().chain(&kept) {
        let answer = match &k.subject {
            Subject::Selection(Selection::Secrets { name_prefix, .. })
                if name_prefix.as_deref() == Some("app/") =>
            {
                matches(&["app/cache", "app/db"])
            }
            Subject::Selection(_) => matches(&["other/db"]),
            Subject::Object(_) => value(b"v"),
        };
        c.store(k.clone(), answer);
    }
    // Past the TTL: each would stand in for a failing store.
    clock.advance(MIN * 2);
    c.forget_object("p", ObjectKind::SecretsManager, refused);
    for k in &mine {
        assert!(
            matches!(c.find(k, &f), Lookup::Miss),
            "{refused} refused, {k:?} still held"
        );
    }
    for k in &kept {
        assert!(
            matches!(c.find(k, &f), Lookup::StandIn { .. }),
            "{refused} refused, {k:?} lost"
        );
    }
}

#[test]
fn a_refusal_by_name_forgets_the_arns_and_the_selections() {
    refusal_forgets_every_spelling("app/db");
}

#[test]
fn a_refusal_by_full_arn_forgets_the_name_the_partial_arn_and_the_selections() {
    refusal_forgets_every_spelling(FULL_ARN);
}

#[test]
fn a_refusal_by_partial_arn_forgets_the_name_the_full_arn_and_the_selections() {
    refusal_forgets_every_spelling(PARTIAL_ARN);
}

#[test]
fn a_refused_parameter_is_forgotten_by_arn_and_from_path_selections() {
    let (c, _) = cache(settings(MIN, MIN * 10));
    let f = Freshness::for_class(c.bounds(), None);
    let by_arn = CacheKey {
        subject: Subject::Object(ObjectRef {
            kind: ObjectKind::SsmParameter,
            name: "arn:aws:ssm:us-east-1:123456789012:parameter/app/db".into(),
            version: None,
            label: None,
        }),
        ..key("p", "us-east-1", "x", None)
    };
    let path = CacheKey {
        subject: Subject::Selection(Selection::ParameterPath {
            path: "/app".into(),
            recursive: false,
        }),
        ..key("p", "us-east-1", "x", None)
    };
    // A secret of that name is another object.
    let secret = key("p", "us-east-1", "/app/db", None);
    c.store(by_arn.clone(), value(b"v"));
    c.store(path.clone(), matches(&["/app/db", "/app/host"]));
    c.store(secret.clone(), value(b"v"));
    c.forget_object("p", ObjectKind::SsmParameter, "/app/db");
    assert!(matches!(c.find(&by_arn, &f), Lookup::Miss));
    assert!(matches!(c.find(&path, &f), Lookup::Miss));
    assert!(matches!(c.find(&secret, &f), Lookup::Fresh(_)));
}

#[test]
fn a_refusal_forgets_every_entry_holding_a_version_aws_gave_for_that_secret() {
    let (c, clock) = cache(settings(MIN, MIN * 10));
    let f = Freshness::for_class(c.bounds(), None);
    const VERSION: &str = "a1b2c3d4-5678-90ab-cdef-111111111111";
    let at = |version: &str| {
        Answer::One(Fetched {
            value: SecretValue::new(b"v".to_vec()),
            version: version.into(),
        })
    };
    let by_name = key("p", "us-east-1", "app/db", None);
    // A spelling the names cannot tie to `app/db`: only AWS's VersionId links them.
    let other_spelling = key(
        "p",
        "us-east-1",
        "arn:aws:secretsmanager:us-east-1:1:secret:old",
        None,
    );
    let other_secret = key("p", "us-east-1", "app/cache", None);
    let through_selection = secrets_selection("old");
    c.store(by_name.clone(), at(VERSION));
    c.store(other_spelling.clone(), at(VERSION));
    c.store(
        other_secret.clone(),
        at("a1b2c3d4-5678-90ab-cdef-222222222222"),
    );
    c.store(
        through_selection.clone(),
        Answer::Many(Arc::new(vec![Selected {
            name: "old".into(),
            fetched: Fetched {
                value: SecretValue::new(b"v".to_vec()),
                version: VERSION.into(),
            },
        }])),
    );
    clock.advance(MIN * 2);
    c.forget_object("p", ObjectKind::SecretsManager, "app/db");
    for k in [&by_name, &other_spelling, &through_selection] {
        assert!(matches!(c.find(k, &f), Lookup::Miss), "{k:?} still held");
    }
    assert!(matches!(c.find(&other_secret, &f), Lookup::StandIn { .. }));
}
