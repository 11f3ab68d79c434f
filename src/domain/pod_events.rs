//! Which Kubernetes Event a mount earns (`--events`, off by default), and how many a pod
//! and the node may get. Since driver v1.6 a failed remount never reaches the kubelet, so
//! a pod runs on an old value with nothing in `kubectl describe pod`: these events are
//! where people look. Pure: the adapter records them, and times are passed in.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::text::capped;
use super::versions::ObjectVersion;

/// Which mounts earn an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EventsMode {
    #[default]
    Off,
    /// A failed first mount or remount (Warning).
    Failures,
    /// Those, and a remount that brought new object versions (Normal).
    All,
}

#[derive(Debug, thiserror::Error)]
#[error("--events must be off, failures or all, not `{0}`")]
pub struct BadEventsMode(String);

impl std::str::FromStr for EventsMode {
    type Err = BadEventsMode;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "off" | "false" => Ok(EventsMode::Off),
            "failures" | "true" => Ok(EventsMode::Failures),
            "all" => Ok(EventsMode::All),
            other => Err(BadEventsMode(super::text::bounded(other))),
        }
    }
}

impl EventsMode {
    /// As the flag takes it.
    pub fn name(self) -> &'static str {
        match self {
            EventsMode::Off => "off",
            EventsMode::Failures => "failures",
            EventsMode::All => "all",
        }
    }
}

impl serde::Serialize for EventsMode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for EventsMode {
    /// A name, or a boolean (TOML's `true`: failures).
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(serde::Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Bool(true) => Ok(EventsMode::Failures),
            Raw::Bool(false) => Ok(EventsMode::Off),
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    Normal,
    Warning,
}

/// The event reasons, as `kubectl describe pod` shows them.
pub const MOUNT_FAILED: &str = "SecretMountFailed";
pub const ROTATION_FAILED: &str = "SecretRotationFailed";
pub const ROTATED: &str = "SecretRotated";

/// Longest note the API server accepts on an `events.k8s.io/v1` Event (1 kB).
pub const MAX_NOTE_BYTES: usize = 1024;

/// One event for a pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodEvent {
    pub severity: Severity,
    pub reason: &'static str,
    /// What the mount error says (which never holds a value), with the class.
    pub note: String,
}

/// How a mount ended, as far as events care.
pub enum Outcome<'a> {
    /// The mount error's message, the same words the kubelet or the driver's log show.
    Failed(&'a str),
    /// The ids whose version this mount changed (see [`SeenVersions`]).
    Succeeded(&'a [String]),
}

/// The event a mount of a pod of `class` earns under `mode`, if any. `remount` says the
/// target already held a published mount (the driver's rotation).
pub fn event_for(
    mode: EventsMode,
    class: &str,
    remount: bool,
    outcome: Outcome<'_>,
) -> Option<PodEvent> {
    let class = super::text::bounded(class);
    match (mode, outcome) {
        (EventsMode::Off, _) => None,
        (_, Outcome::Failed(error)) => Some(PodEvent {
            severity: Severity::Warning,
            reason: if remount {
                ROTATION_FAILED
            } else {
                MOUNT_FAILED
            },
            note: capped(
                format!(
                    "SecretProviderClass {class}: {}{error}",
                    if remount {
                        "the pod keeps its previous files: "
                    } else {
                        ""
                    }
                ),
                MAX_NOTE_BYTES,
            ),
        }),
        (EventsMode::All, Outcome::Succeeded(changed)) if remount && !changed.is_empty() => {
            let shown: Vec<String> = changed
                .iter()
                .take(10)
                .map(|id| super::text::bounded(id))
                .collect();
            let more = changed.len().saturating_sub(shown.len());
            Some(PodEvent {
                severity: Severity::Normal,
                reason: ROTATED,
                note: capped(
                    format!(
                        "SecretProviderClass {class}: new versions of {}{}",
                        shown.join(", "),
                        if more > 0 {
                            format!(" and {more} more")
                        } else {
                            String::new()
                        }
                    ),
                    MAX_NOTE_BYTES,
                ),
            })
        }
        (_, Outcome::Succeeded(_)) => None,
    }
}

/// The versions each target got at its last successful mount, for `SecretRotated`: the
/// driver (v1.6) sends no current versions on a remount. Bounded: past `max` targets the
/// one seen longest ago is forgotten (the driver never says a pod is gone), and a
/// restart forgets all, so the first remount after one records nothing.
#[derive(Debug)]
pub struct SeenVersions {
    max: usize,
    targets: HashMap<String, (Vec<(String, u64)>, Instant)>,
}

impl SeenVersions {
    pub fn new(max: usize) -> Self {
        SeenVersions {
            max: max.max(1),
            targets: HashMap::new(),
        }
    }

    /// Records `now_versions` for `target` and returns the ids whose version changed
    /// since its last mount (none for a target not seen before).
    pub fn changed(
        &mut self,
        target: &str,
        now_versions: &[ObjectVersion],
        now: Instant,
    ) -> Vec<String> {
        let hashed: Vec<(String, u64)> = now_versions
            .iter()
            .map(|v| (v.id.clone(), fingerprint(&v.version)))
            .collect();
        let changed = match self.targets.get(target) {
            None => Vec::new(),
            Some((before, _)) => hashed
                .iter()
                .filter(|(id, version)| !before.iter().any(|(i, v)| i == id && v == version))
                .map(|(id, _)| id.clone())
                .collect(),
        };
        if !self.targets.contains_key(target) && self.targets.len() >= self.max {
            if let Some(oldest) = self
                .targets
                .iter()
                .min_by_key(|(_, (_, at))| *at)
                .map(|(k, _)| k.clone())
            {
                self.targets.remove(&oldest);
            }
        }
        self.targets.insert(target.to_string(), (hashed, now));
        changed
    }

    pub fn len(&self) -> usize {
        self.targets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }
}

/// A version id kept as a hash: only equality matters, in less memory.
fn fingerprint(version: &str) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    version.hash(&mut h);
    h.finish()
}

/// Token buckets: how many events one pod, and the node, may record.
#[derive(Debug, Clone, Copy)]
pub struct EventLimits {
    /// Events one pod may get at once, then one per `pod_every`.
    pub pod_burst: u32,
    pub pod_every: Duration,
    /// Events the node may record at once, then one per `node_every`.
    pub node_burst: u32,
    pub node_every: Duration,
    /// Pods tracked at once; beyond, events of new pods are refused until older pods'
    /// buckets are full again (idle) and forgotten.
    pub max_pods: usize,
}

impl Default for EventLimits {
    fn default() -> Self {
        // A remount comes every rotation poll (2 min by default): a pod failing for a
        // day gets a handful of events and then one a minute at most, each folded into
        // the Event's series by the recorder. The node: 20 at once, then one a second,
        // a fifth of the default --qps, which its lookups share.
        EventLimits {
            pod_burst: 5,
            pod_every: Duration::from_secs(60),
            node_burst: 20,
            node_every: Duration::from_secs(1),
            max_pods: 4096,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(burst: u32, now: Instant) -> Self {
        Bucket {
            tokens: f64::from(burst),
            at: now,
        }
    }

    fn refill(&mut self, burst: u32, every: Duration, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        let rate = 1.0 / every.as_secs_f64().max(f64::MIN_POSITIVE);
        self.tokens = (self.tokens + elapsed * rate).min(f64::from(burst));
        self.at = now;
    }
}

/// Why an event was not recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    Pod,
    Node,
    TooManyPods,
}

/// The per-pod and per-node limits, in memory bounded by `max_pods`.
#[derive(Debug)]
pub struct EventLimiter {
    limits: EventLimits,
    node: Bucket,
    pods: HashMap<String, Bucket>,
}

impl EventLimiter {
    pub fn new(limits: EventLimits, now: Instant) -> Self {
        EventLimiter {
            limits,
            node: Bucket::full(limits.node_burst, now),
            pods: HashMap::new(),
        }
    }

    /// Takes a token of `pod` (its uid) and of the node, or says which one is out.
    pub fn admit(&mut self, pod: &str, now: Instant) -> Result<(), Refused> {
        let l = self.limits;
        self.node.refill(l.node_burst, l.node_every, now);
        if !self.pods.contains_key(pod) && self.pods.len() >= l.max_pods {
            // Forget the pods whose buckets are full again: they are as if new.
            self.pods.retain(|_, b| {
                b.refill(l.pod_burst, l.pod_every, now);
                b.tokens < f64::from(l.pod_burst)
            });
            if self.pods.len() >= l.max_pods {
                return Err(Refused::TooManyPods);
            }
        }
        let bucket = self
            .pods
            .entry(pod.to_string())
            .or_insert_with(|| Bucket::full(l.pod_burst, now));
        bucket.refill(l.pod_burst, l.pod_every, now);
        if bucket.tokens < 1.0 {
            return Err(Refused::Pod);
        }
        if self.node.tokens < 1.0 {
            return Err(Refused::Node);
        }
        bucket.tokens -= 1.0;
        self.node.tokens -= 1.0;
        Ok(())
    }

    /// Pods tracked now (for tests and the bound).
    pub fn tracked(&self) -> usize {
        self.pods.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(id: &str, version: &str) -> ObjectVersion {
        ObjectVersion {
            id: id.into(),
            version: version.into(),
        }
    }

    #[test]
    fn off_records_nothing_and_failures_only_failures() {
        assert_eq!(
            event_for(EventsMode::Off, "c", true, Outcome::Failed("x")),
            None
        );
        let changed = vec!["MySecret".to_string()];
        assert_eq!(
            event_for(
                EventsMode::Failures,
                "c",
                true,
                Outcome::Succeeded(&changed)
            ),
            None
        );
    }

    #[test]
    fn a_failed_remount_and_a_failed_first_mount_are_warnings_with_the_cause() {
        let e = event_for(
            EventsMode::Failures,
            "db",
            true,
            Outcome::Failed("failed to fetch object \"MySecret\" (#1): AccessDenied"),
        )
        .unwrap();
        assert_eq!(e.severity, Severity::Warning);
        assert_eq!(e.reason, ROTATION_FAILED);
        assert!(e.note.starts_with("SecretProviderClass db: the pod keeps its previous files: failed to fetch object \"MySecret\""), "{}", e.note);
        let e = event_for(EventsMode::All, "db", false, Outcome::Failed("bad class")).unwrap();
        assert_eq!(e.reason, MOUNT_FAILED);
        assert_eq!(e.note, "SecretProviderClass db: bad class");
    }

    #[test]
    fn a_rotation_is_recorded_only_when_versions_changed_and_asked_for() {
        let changed = vec!["MySecret".to_string()];
        let e = event_for(EventsMode::All, "db", true, Outcome::Succeeded(&changed)).unwrap();
        assert_eq!((e.severity, e.reason), (Severity::Normal, ROTATED));
        assert_eq!(e.note, "SecretProviderClass db: new versions of MySecret");
        assert_eq!(
            event_for(EventsMode::All, "db", true, Outcome::Succeeded(&[])),
            None
        );
        assert_eq!(
            event_for(EventsMode::All, "db", false, Outcome::Succeeded(&changed)),
            None,
            "a first mount is no rotation"
        );
    }

    #[test]
    fn notes_fit_the_api_servers_limit() {
        let long = "é".repeat(5000);
        let e = event_for(EventsMode::Failures, &long, true, Outcome::Failed(&long)).unwrap();
        assert!(e.note.len() <= MAX_NOTE_BYTES, "{}", e.note.len());
        let ids: Vec<String> = (0..100).map(|i| format!("object-{i}")).collect();
        let e = event_for(EventsMode::All, "c", true, Outcome::Succeeded(&ids)).unwrap();
        assert!(e.note.ends_with("and 90 more"), "{}", e.note);
    }

    #[test]
    fn seen_versions_tell_what_a_remount_changed_and_stay_bounded() {
        let t0 = Instant::now();
        let mut seen = SeenVersions::new(2);
        assert!(
            seen.changed("/t1", &[v("a", "1")], t0).is_empty(),
            "first mount"
        );
        assert!(
            seen.changed("/t1", &[v("a", "1")], t0).is_empty(),
            "nothing new"
        );
        assert_eq!(
            seen.changed("/t1", &[v("a", "2"), v("b", "1")], t0),
            vec!["a", "b"]
        );
        seen.changed("/t2", &[v("a", "1")], t0 + Duration::from_secs(1));
        seen.changed("/t3", &[v("a", "1")], t0 + Duration::from_secs(2));
        assert_eq!(seen.len(), 2, "the oldest target forgotten");
        assert!(
            seen.changed("/t1", &[v("a", "3")], t0).is_empty(),
            "a forgotten target is as new"
        );
    }

    #[test]
    fn modes_parse_and_a_bad_one_says_the_choices() {
        assert_eq!("all".parse::<EventsMode>().unwrap(), EventsMode::All);
        assert_eq!("true".parse::<EventsMode>().unwrap(), EventsMode::Failures);
        let err = "loud".parse::<EventsMode>().unwrap_err().to_string();
        assert!(err.contains("off, failures or all"), "{err}");
    }

    #[test]
    fn a_pod_gets_its_burst_then_one_per_period() {
        let t0 = Instant::now();
        let mut l = EventLimiter::new(EventLimits::default(), t0);
        for _ in 0..5 {
            assert_eq!(l.admit("pod-a", t0), Ok(()));
        }
        assert_eq!(l.admit("pod-a", t0), Err(Refused::Pod));
        assert_eq!(l.admit("pod-b", t0), Ok(()), "another pod has its own");
        assert_eq!(l.admit("pod-a", t0 + Duration::from_secs(61)), Ok(()));
        assert_eq!(
            l.admit("pod-a", t0 + Duration::from_secs(62)),
            Err(Refused::Pod)
        );
    }

    #[test]
    fn the_node_has_a_limit_of_its_own() {
        let t0 = Instant::now();
        let limits = EventLimits {
            node_burst: 3,
            node_every: Duration::from_millis(200),
            ..EventLimits::default()
        };
        let mut l = EventLimiter::new(limits, t0);
        for pod in ["a", "b", "c"] {
            assert_eq!(l.admit(pod, t0), Ok(()));
        }
        assert_eq!(l.admit("d", t0), Err(Refused::Node));
        assert_eq!(l.admit("d", t0 + Duration::from_millis(200)), Ok(()));
    }

    #[test]
    fn memory_is_bounded_by_max_pods_and_idle_pods_are_forgotten() {
        let t0 = Instant::now();
        let limits = EventLimits {
            max_pods: 2,
            ..EventLimits::default()
        };
        let mut l = EventLimiter::new(limits, t0);
        assert_eq!(l.admit("a", t0), Ok(()));
        assert_eq!(l.admit("b", t0), Ok(()));
        assert_eq!(l.admit("c", t0), Err(Refused::TooManyPods));
        assert_eq!(l.tracked(), 2);
        // After a minute a and b have their token back: forgotten, c fits.
        assert_eq!(l.admit("c", t0 + Duration::from_secs(60)), Ok(()));
        assert_eq!(l.tracked(), 1);
    }
}
