//! The value cache as mounts see it: who is served what, for how long, and what a
//! failing store is answered with. Time moves on a manual clock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::*;
use crate::domain::attributes::{AuthMode, PodInfo, Tokens};
use crate::domain::failover::{ClientKind, ErrorClass};
use crate::domain::freshness::CacheBounds;
use crate::domain::objects::{ObjectRef, Selection};
use crate::domain::region::Region;
use crate::domain::secret::SecretValue;
use crate::ports::clock::ManualClock;
use crate::ports::sink::MockMountSink;
use crate::ports::Selected;
use crate::ports::{
    Fetched, Identity, IdentityError, IdentityResolver, OutputFile, Published, SecretStore,
    StoreError,
};

const MIN: Duration = Duration::from_secs(60);
const EAST: &str = "us-east-1";
const WEST: &str = "us-west-2";

/// A store answering from a table that tests change between mounts.
#[derive(Default)]
struct Table {
    answers: Mutex<HashMap<(String, String), Result<String, ErrorClass>>>,
    /// (region, principal, names) of every call.
    calls: Mutex<Vec<(String, String, Vec<String>)>>,
    hang: AtomicBool,
    /// How long each fetch takes.
    delay: Mutex<Duration>,
}

impl Table {
    fn set(&self, region: &str, name: &str, answer: Result<&str, ErrorClass>) {
        self.answers.lock().unwrap().insert(
            (region.to_string(), name.to_string()),
            answer.map(str::to_string),
        );
    }

    fn calls(&self) -> usize {
        self.calls.lock().unwrap().len()
    }
}

struct FakeStore(Arc<Table>);

#[async_trait]
impl SecretStore for FakeStore {
    async fn fetch(
        &self,
        region: &Region,
        identity: &Identity,
        objects: &[ObjectRef],
    ) -> Vec<Result<Fetched, StoreError>> {
        self.0.calls.lock().unwrap().push((
            region.to_string(),
            identity.sharing_key(),
            objects.iter().map(|o| o.name.clone()).collect(),
        ));
        if self.0.hang.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        let delay = *self.0.delay.lock().unwrap();
        tokio::time::sleep(delay).await;
        let answers = self.0.answers.lock().unwrap();
        objects
            .iter()
            .map(|o| {
                let key = (region.to_string(), o.name.clone());
                match answers.get(&key) {
                    Some(Ok(v)) => Ok(Fetched {
                        value: SecretValue::new(v.as_bytes().to_vec()),
                        version: format!("v-{v}"),
                    }),
                    Some(Err(class)) => Err(StoreError::new(*class, format!("{} failed", o.name))),
                    None => Err(StoreError::new(
                        ErrorClass::Client(ClientKind::NotFound),
                        format!("{} not found", o.name),
                    )),
                }
            })
            .collect()
    }

    /// Every name of the region under the path; `/fail` answers the error of its entry.
    async fn select(
        &self,
        region: &Region,
        identity: &Identity,
        selection: &Selection,
        _: usize,
        _: std::sync::Arc<dyn crate::ports::MatchAccount>,
    ) -> Result<Vec<Selected>, StoreError> {
        let Selection::ParameterPath { path, .. } = selection else {
            unreachable!("tests select by path")
        };
        self.0.calls.lock().unwrap().push((
            region.to_string(),
            identity.sharing_key(),
            vec![path.clone()],
        ));
        let answers = self.0.answers.lock().unwrap();
        if let Some(Err(class)) = answers.get(&(region.to_string(), path.clone())) {
            return Err(StoreError::new(*class, format!("{path} failed")));
        }
        let mut found: Vec<Selected> = answers
            .iter()
            .filter(|((r, n), _)| r == region.as_str() && n.starts_with(&format!("{path}/")))
            .filter_map(|((_, n), a)| {
                a.as_ref().ok().map(|v| Selected {
                    name: n.clone(),
                    fetched: Fetched {
                        value: SecretValue::new(v.as_bytes().to_vec()),
                        version: "1".into(),
                    },
                })
            })
            .collect();
        found.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(found)
    }
}

/// Roles by service account, as their annotations say right now.
#[derive(Default)]
struct Roles(Mutex<HashMap<String, String>>);

#[async_trait]
impl IdentityResolver for Roles {
    async fn identity(
        &self,
        pod: &PodInfo,
        auth: AuthMode,
        _: &Tokens,
    ) -> Result<Identity, IdentityError> {
        let role = self.0.lock().unwrap().get(&pod.service_account).cloned();
        Ok(Identity {
            role_arn: role.or_else(|| Some("arn:aws:iam::111122223333:role/app".into())),
            ..Identity::of_pod(pod, auth)
        })
    }

    async fn node_region(&self, _: &PodInfo) -> Result<Option<Region>, IdentityError> {
        Ok(None)
    }
}

/// The latest files published, by pod.
type Written = Arc<Mutex<Vec<Vec<OutputFile>>>>;

struct Node {
    service: MountService,
    table: Arc<Table>,
    roles: Arc<Roles>,
    clock: ManualClock,
    cache: Arc<ValueCache>,
    written: Written,
}

fn node(ttl: Duration, stale: Duration) -> Node {
    let table = Arc::new(Table::default());
    let roles = Arc::new(Roles::default());
    let clock = ManualClock::default();
    let cache = Arc::new(ValueCache::new(
        ValueCacheSettings {
            bounds: CacheBounds {
                ttl,
                stale_if_error: stale,
            },
            ..ValueCacheSettings::default()
        },
        Arc::new(clock.clone()),
    ));
    let written: Written = Arc::default();
    let w = written.clone();
    let mut sink = MockMountSink::new();
    sink.expect_writes_files().return_const(true);
    sink.expect_publish().returning(move |_, files, _| {
        w.lock().unwrap().push(files);
        Ok(Published::Written)
    });
    let settings = MountSettings {
        default_region: Some(Region::parse(EAST).unwrap()),
        ..MountSettings::default()
    };
    let service = MountService::with_cache(
        roles.clone(),
        Arc::new(FakeStore(table.clone())),
        Arc::new(sink),
        settings,
        cache.clone(),
    );
    Node {
        service,
        table,
        roles,
        clock,
        cache,
        written,
    }
}

fn mount_request(objects: &str, pod: &str, sa: &str, extra: &[(&str, &str)]) -> MountRequest {
    let mut map: HashMap<&str, &str> = extra.iter().copied().collect();
    map.insert("objects", objects);
    map.insert("csi.storage.k8s.io/pod.namespace", "shop");
    map.insert("csi.storage.k8s.io/pod.name", pod);
    map.insert("csi.storage.k8s.io/pod.uid", pod);
    map.insert("csi.storage.k8s.io/serviceAccount.name", sa);
    RawMountRequest {
        attributes: serde_json::to_string(&map).unwrap(),
        permission: "420".into(),
        target_path: "/target".into(),
        current_versions: vec![],
        secrets: String::new(),
    }
    .parse(None)
    .unwrap()
}

const ONE: &str = "- objectName: db\n  objectType: secretsmanager\n";

impl Node {
    async fn mount(
        &self,
        pod: &str,
        sa: &str,
        extra: &[(&str, &str)],
    ) -> Result<String, MountError> {
        self.mount_class(ONE, pod, sa, extra).await
    }

    /// Mounts and returns the contents of the class's first file.
    async fn mount_class(
        &self,
        objects: &str,
        pod: &str,
        sa: &str,
        extra: &[(&str, &str)],
    ) -> Result<String, MountError> {
        self.service
            .mount(mount_request(objects, pod, sa, extra))
            .await?;
        let written = self.written.lock().unwrap();
        let files = written.last().expect("published");
        Ok(String::from_utf8(files[0].contents.expose().to_vec()).unwrap())
    }
}

#[tokio::test]
async fn a_remount_within_the_ttl_is_served_from_the_cache_and_still_published() {
    let n = node(MIN * 5, Duration::ZERO);
    n.table.set(EAST, "db", Ok("one"));
    assert_eq!(n.mount("web-0", "web", &[]).await.unwrap(), "one");
    n.table.set(EAST, "db", Ok("two"));
    n.clock.advance(MIN * 4);
    assert_eq!(n.mount("web-1", "web", &[]).await.unwrap(), "one");
    assert_eq!(n.table.calls(), 1, "one read per object per TTL");
    assert_eq!(
        n.written.lock().unwrap().len(),
        2,
        "a cached remount still publishes"
    );
    n.clock.advance(MIN);
    assert_eq!(n.mount("web-0", "web", &[]).await.unwrap(), "two");
    assert_eq!(n.table.calls(), 2);
    let stats = n.cache.stats();
    assert_eq!((stats.hits, stats.misses), (1, 2));
}

#[tokio::test]
async fn the_cache_is_off_by_default() {
    let n = node(Duration::ZERO, Duration::ZERO);
    n.table.set(EAST, "db", Ok("one"));
    n.mount("web-0", "web", &[]).await.unwrap();
    n.mount("web-0", "web", &[]).await.unwrap();
    assert_eq!(n.table.calls(), 2);
    assert_eq!(n.cache.stats().entries, 0);
}

#[tokio::test]
async fn a_class_ttl_below_the_operators_reads_sooner_and_zero_reads_every_time() {
    let n = node(MIN * 5, MIN * 60);
    n.table.set(EAST, "db", Ok("one"));
    n.mount("a", "web", &[]).await.unwrap();
    n.clock.advance(MIN * 2);
    n.mount("a", "web", &[("cacheTTL", "10m")]).await.unwrap();
    assert_eq!(
        n.table.calls(),
        1,
        "a class cannot ask for more than the operator"
    );
    n.mount("a", "web", &[("cacheTTL", "1m")]).await.unwrap();
    assert_eq!(n.table.calls(), 2, "past the class's own TTL");
    n.mount("a", "web", &[("cacheTTL", "0s")]).await.unwrap();
    assert_eq!(n.table.calls(), 3);
    // Zero also serves nothing stale.
    n.table.set(EAST, "db", Err(ErrorClass::Server));
    assert!(n.mount("a", "web", &[("cacheTTL", "0s")]).await.is_err());
}

#[tokio::test]
async fn pinned_versions_are_cached_to_the_operators_bound_under_a_shorter_class_ttl() {
    let n = node(MIN * 5, Duration::ZERO);
    let pinned = "- objectName: db\n  objectType: secretsmanager\n  objectVersion: 3f7c\n";
    n.table.set(EAST, "db", Ok("three"));
    n.mount_class(pinned, "a", "web", &[("cacheTTL", "1m")])
        .await
        .unwrap();
    n.clock.advance(MIN * 3);
    n.mount_class(pinned, "a", "web", &[("cacheTTL", "1m")])
        .await
        .unwrap();
    assert_eq!(n.table.calls(), 1);
    n.mount("a", "web", &[("cacheTTL", "1m")]).await.unwrap();
    assert_eq!(n.table.calls(), 2, "the current version is another key");
}

#[tokio::test]
async fn another_service_account_role_or_pod_identity_pod_is_never_served_anothers_entry() {
    let n = node(MIN * 5, Duration::ZERO);
    n.table.set(EAST, "db", Ok("one"));
    n.mount("web-0", "web", &[]).await.unwrap();
    n.mount("web-1", "web", &[]).await.unwrap();
    assert_eq!(n.table.calls(), 1, "same role and service account: shared");
    n.mount("api-0", "api", &[]).await.unwrap();
    assert_eq!(n.table.calls(), 2, "another service account");
    n.roles
        .0
        .lock()
        .unwrap()
        .insert("web".into(), "arn:aws:iam::111122223333:role/other".into());
    n.mount("web-0", "web", &[]).await.unwrap();
    assert_eq!(n.table.calls(), 3, "the annotation now names another role");
    let pod_identity = [("usePodIdentity", "true")];
    n.mount("web-0", "web", &pod_identity).await.unwrap();
    n.mount("web-0", "web", &pod_identity).await.unwrap();
    assert_eq!(
        n.table.calls(),
        4,
        "the same pod under Pod Identity: shared"
    );
    n.mount("web-1", "web", &pod_identity).await.unwrap();
    assert_eq!(n.table.calls(), 5, "another pod under Pod Identity");
    let principals: Vec<String> = n
        .table
        .calls
        .lock()
        .unwrap()
        .iter()
        .map(|(_, p, _)| p.clone())
        .collect();
    let distinct: std::collections::HashSet<_> = principals.iter().collect();
    assert_eq!(distinct.len(), 5, "{principals:?}");
}

#[tokio::test]
async fn a_stale_value_stands_in_for_server_and_transport_errors_within_its_bound() {
    let n = node(MIN, MIN * 30);
    n.table.set(EAST, "db", Ok("one"));
    n.mount("a", "web", &[]).await.unwrap();
    for class in [ErrorClass::Server, ErrorClass::Transport] {
        n.clock.advance(MIN * 2);
        n.table.set(EAST, "db", Err(class));
        assert_eq!(n.mount("a", "web", &[]).await.unwrap(), "one", "{class}");
    }
    assert_eq!(n.cache.stats().stale_served, 2);
    n.clock.advance(MIN * 30);
    let e = n.mount("a", "web", &[]).await.unwrap_err();
    assert!(e.to_string().contains("db failed"), "{e}");
}

#[tokio::test]
async fn not_found_and_access_denied_fail_and_forget_so_a_later_outage_serves_nothing() {
    for refusal in [ClientKind::NotFound, ClientKind::AccessDenied] {
        let n = node(MIN, MIN * 30);
        n.table.set(EAST, "db", Ok("one"));
        n.mount("a", "web", &[]).await.unwrap();
        n.clock.advance(MIN * 2);
        n.table.set(EAST, "db", Err(ErrorClass::Client(refusal)));
        assert!(n.mount("a", "web", &[]).await.is_err(), "{refusal:?}");
        n.table.set(EAST, "db", Err(ErrorClass::Server));
        assert!(
            n.mount("a", "web", &[]).await.is_err(),
            "{refusal:?}: revoked access must not come back through a 5xx"
        );
        assert_eq!(n.cache.stats().stale_served, 0);
    }
}

const FAILOVER: &[(&str, &str)] = &[("failoverRegion", WEST)];

#[tokio::test]
async fn a_fresh_failover_answer_beats_a_stale_primary() {
    let n = node(MIN, MIN * 30);
    n.table.set(EAST, "db", Ok("east"));
    n.table.set(WEST, "db", Ok("west-1"));
    assert_eq!(n.mount("a", "web", FAILOVER).await.unwrap(), "east");
    n.clock.advance(MIN * 2);
    n.table.set(EAST, "db", Err(ErrorClass::Server));
    n.table.set(WEST, "db", Ok("west-2"));
    assert_eq!(n.mount("a", "web", FAILOVER).await.unwrap(), "west-2");
    assert_eq!(n.cache.stats().stale_served, 0);
    // Both regions down: the primary's stale value.
    n.clock.advance(MIN * 2);
    n.table.set(WEST, "db", Err(ErrorClass::Transport));
    assert_eq!(n.mount("a", "web", FAILOVER).await.unwrap(), "east");
}

#[tokio::test]
async fn a_client_error_in_the_failover_region_still_fails_with_a_stale_primary() {
    let n = node(MIN, MIN * 30);
    n.table.set(EAST, "db", Ok("east"));
    n.table.set(WEST, "db", Ok("west"));
    n.mount("a", "web", FAILOVER).await.unwrap();
    n.clock.advance(MIN * 2);
    n.table.set(EAST, "db", Err(ErrorClass::Server));
    n.table.set(
        WEST,
        "db",
        Err(ErrorClass::Client(ClientKind::AccessDenied)),
    );
    assert!(n.mount("a", "web", FAILOVER).await.is_err());
}

#[tokio::test(start_paused = true)]
async fn a_hanging_store_gives_way_to_a_stale_value_before_the_deadline() {
    let n = node(MIN, MIN * 30);
    n.table.set(EAST, "db", Ok("one"));
    n.mount("a", "web", &[]).await.unwrap();
    n.clock.advance(MIN * 2);
    n.table.hang.store(true, Ordering::SeqCst);
    let mut request = mount_request(ONE, "a", "web", &[]);
    request.gate = gate_for(Duration::from_secs(10));
    let deadline = request.gate.deadline().unwrap();
    let out = n.service.mount(request).await;
    assert!(out.is_ok(), "{out:?}");
    assert!(tokio::time::Instant::now().into_std() < deadline);
    assert_eq!(n.cache.stats().stale_served, 1);
}

#[tokio::test]
async fn a_cached_remount_advances_the_targets_mtime() {
    use crate::adapters::fs_sink::FsSink;
    let dir = tempfile::tempdir().unwrap();
    let table = Arc::new(Table::default());
    table.set(EAST, "db", Ok("one"));
    let clock = ManualClock::default();
    let cache = Arc::new(ValueCache::new(
        ValueCacheSettings {
            bounds: CacheBounds {
                ttl: MIN * 5,
                stale_if_error: Duration::ZERO,
            },
            ..ValueCacheSettings::default()
        },
        Arc::new(clock.clone()),
    ));
    let service = MountService::with_cache(
        Arc::new(Roles::default()),
        Arc::new(FakeStore(table.clone())),
        Arc::new(FsSink::new()),
        MountSettings {
            default_region: Some(Region::parse(EAST).unwrap()),
            ..MountSettings::default()
        },
        cache,
    );
    let target = dir.path().to_str().unwrap().to_string();
    let at = |target: &str| {
        let mut r = mount_request(ONE, "a", "web", &[]);
        r.target = crate::domain::target::TargetPath::parse(target, None).unwrap();
        r
    };
    service.mount(at(&target)).await.unwrap();
    let first = std::fs::metadata(&target).unwrap().modified().unwrap();
    std::thread::sleep(Duration::from_millis(20));
    clock.advance(MIN);
    service.mount(at(&target)).await.unwrap();
    let second = std::fs::metadata(&target).unwrap().modified().unwrap();
    assert_eq!(table.calls(), 1, "the remount was served from the cache");
    assert!(
        second > first,
        "the driver schedules rotation from this mtime"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("db")).unwrap(),
        "one"
    );
}

const SELECT: &str = "- {objectType: ssmparameter, select: {path: /app}}\n";

#[tokio::test]
async fn repeated_selections_are_served_from_the_cache_and_stand_in_for_a_failing_store() {
    let n = node(MIN, MIN * 30);
    n.table.set(EAST, "/app/a", Ok("a1"));
    n.table.set(EAST, "/app/b", Ok("b1"));
    assert_eq!(n.mount_class(SELECT, "p", "web", &[]).await.unwrap(), "a1");
    n.table.set(EAST, "/app/a", Ok("a2"));
    assert_eq!(n.mount_class(SELECT, "q", "web", &[]).await.unwrap(), "a1");
    assert_eq!(n.table.calls(), 1, "one selection call per TTL");
    n.clock.advance(MIN);
    assert_eq!(n.mount_class(SELECT, "p", "web", &[]).await.unwrap(), "a2");
    assert_eq!(n.table.calls(), 2);
    n.clock.advance(MIN * 2);
    n.table.set(EAST, "/app", Err(ErrorClass::Server));
    assert_eq!(n.mount_class(SELECT, "p", "web", &[]).await.unwrap(), "a2");
    assert_eq!(n.cache.stats().stale_served, 1);
    n.table.set(
        EAST,
        "/app",
        Err(ErrorClass::Client(ClientKind::AccessDenied)),
    );
    assert!(n.mount_class(SELECT, "p", "web", &[]).await.is_err());
    n.table.set(EAST, "/app", Err(ErrorClass::Server));
    assert!(
        n.mount_class(SELECT, "p", "web", &[]).await.is_err(),
        "a refused selection is forgotten"
    );
}

/// A mount that brings its credentials in the volume's secret.
fn secret_ref_request(pod: &str, access_key: &str, secret_key: &str) -> MountRequest {
    let mut request = mount_request(
        ONE,
        pod,
        "web",
        &[("authentication", "nodePublishSecretRef")],
    );
    let secrets = serde_json::json!({
        "aws_access_key_id": access_key,
        "aws_secret_access_key": secret_key,
    });
    request.secrets =
        crate::domain::mount_secrets::MountSecrets::parse(&secrets.to_string()).unwrap();
    request
}

#[tokio::test]
async fn volume_credentials_share_cached_values_only_when_every_part_is_equal() {
    let n = node(MIN * 5, Duration::ZERO);
    n.table.set(EAST, "db", Ok("one"));
    for (pod, id, secret) in [
        ("a", "AKIA1", "s1"),
        ("b", "AKIA1", "s1"),
        ("c", "AKIA1", "s2"),
        ("d", "AKIA2", "s1"),
    ] {
        n.service
            .mount(secret_ref_request(pod, id, secret))
            .await
            .unwrap();
    }
    let calls = n.table.calls.lock().unwrap().clone();
    assert_eq!(
        calls.len(),
        3,
        "equal credentials share; the same access key id with another secret does not"
    );
    for (_, principal, _) in &calls {
        assert!(principal.starts_with("secret-ref|"), "{principal}");
        assert!(!principal.contains("AKIA") && !principal.contains("s1"));
    }
}

#[tokio::test]
async fn volume_credentials_missing_a_key_fail_naming_the_keys_not_the_values() {
    let n = node(MIN, Duration::ZERO);
    let mut request = secret_ref_request("a", "AKIA-leak", "");
    request.secrets =
        crate::domain::mount_secrets::MountSecrets::parse(r#"{"aws_access_key_id": "AKIA-leak"}"#)
            .unwrap();
    let e = n.service.mount(request).await.unwrap_err();
    let text = e.to_string();
    assert!(
        matches!(e, MountError::Identity(IdentityError::SecretRef(_))),
        "{text}"
    );
    assert!(
        text.contains("aws_secret_access_key") && !text.contains("AKIA-leak"),
        "{text}"
    );
    assert_eq!(n.table.calls(), 0, "nothing fetched");
}

#[tokio::test(start_paused = true)]
async fn a_slow_store_is_not_cut_short_for_an_object_without_a_stand_in() {
    let n = node(MIN, MIN * 30);
    let two = "- {objectName: db, objectType: secretsmanager}\n- {objectName: api, objectType: secretsmanager}\n";
    n.table.set(EAST, "db", Ok("one"));
    n.mount_class(ONE, "a", "web", &[]).await.unwrap();
    n.clock.advance(MIN * 2);
    n.table.set(EAST, "db", Ok("two"));
    n.table.set(EAST, "api", Ok("api"));
    // Past the stand-in cut-off (8 s of 10) but before the deadline.
    *n.table.delay.lock().unwrap() = Duration::from_secs(9);
    let mut request = mount_request(two, "a", "web", &[]);
    request.gate = gate_for(Duration::from_secs(10));
    n.service.mount(request).await.unwrap();
    let written = n.written.lock().unwrap();
    let db = &written.last().unwrap()[0];
    assert_eq!(
        db.contents.expose(),
        b"two",
        "the fresh answer, not the stand-in"
    );
    assert_eq!(n.cache.stats().stale_served, 0);
}
