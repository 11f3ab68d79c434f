//! The mount use case. Validates everything before any fetch, fetches concurrently,
//! applies failover and extraction, then publishes all files in one step.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;

use crate::domain::attributes::{AuthMode, MountAttributes};
use crate::domain::files::FileSummary;
use crate::domain::freshness::Freshness;
use crate::domain::jmes::{Cancel, JmesLimits, Meter};
use crate::domain::mode::FileMode;
use crate::domain::mount_secrets::MountSecrets;
use crate::domain::objects::{parse_objects, ClassContext, ObjectKind, UnknownKey, YamlLimits};
use crate::domain::plan::{
    plan_mount_metered, PlanError, PlanLimits, PlanMemory, DEFAULT_MAX_FILES, FILE_OVERHEAD_BYTES,
};
use crate::domain::region::{Region, Regions};
use crate::domain::target::TargetPath;
use crate::domain::text::capped;
use crate::domain::versions::ObjectVersion;
use crate::ports::memory::Unlimited;
use crate::ports::{
    Identity, IdentityError, IdentityResolver, MemoryGauge, MountSink, OutputFile, PublishGate,
    Published, SecretStore, SystemClock,
};

use super::budget::{Allowance, MemoryBudget, Reservation};
use super::error::MountError;
use super::fetch::{copies, Fetch};
use super::value_cache::{ValueCache, ValueCacheSettings};

/// A mount as the driver sends it, before any parsing. Transports turn it into a
/// [`MountRequest`] with [`RawMountRequest::parse`]: from there on the core holds typed
/// values only.
#[derive(Clone, Default)]
pub struct RawMountRequest {
    /// JSON object of strings (spec §3).
    pub attributes: String,
    /// Default file mode in decimal, e.g. "420".
    pub permission: String,
    pub target_path: String,
    pub current_versions: Vec<ObjectVersion>,
    /// JSON object of strings: the volume's nodePublishSecretRef (secret values).
    pub secrets: String,
}

/// `secrets` holds the volume's secret in clear text: never printed.
impl std::fmt::Debug for RawMountRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawMountRequest")
            .field("attributes", &self.attributes)
            .field("permission", &self.permission)
            .field("target_path", &self.target_path)
            .field("current_versions", &self.current_versions)
            .field(
                "secrets",
                &format_args!("<{} bytes redacted>", self.secrets.len()),
            )
            .finish()
    }
}

impl RawMountRequest {
    /// Parses every field; with `kubelet_dir`, the target must be a pod's CSI volume.
    /// The volume's secret matters only to classes that authenticate with it: for the
    /// others a secret that does not parse is ignored, as it always was.
    pub fn parse(self, kubelet_dir: Option<&Path>) -> Result<MountRequest, MountError> {
        let attributes = MountAttributes::parse(&self.attributes)?;
        let secrets = match MountSecrets::parse(&self.secrets) {
            Ok(secrets) => secrets,
            Err(e) if attributes.auth == AuthMode::SecretRef => {
                return Err(MountError::Identity(IdentityError::SecretRef(e)))
            }
            Err(_) => MountSecrets::default(),
        };
        Ok(MountRequest {
            attributes,
            default_mode: FileMode::parse_decimal(&self.permission)?,
            target: TargetPath::parse(&self.target_path, kubelet_dir)?,
            current_versions: self.current_versions,
            secrets,
            gate: PublishGate::default(),
        })
    }
}

/// A mount, parsed: what the service works on.
#[derive(Debug, Clone)]
pub struct MountRequest {
    pub attributes: MountAttributes,
    /// The file mode of objects that set no filePermission.
    pub default_mode: FileMode,
    pub target: TargetPath,
    pub current_versions: Vec<ObjectVersion>,
    /// The volume's secret, every value redacted.
    pub secrets: MountSecrets,
    /// Until when the files may be published (the transport's deadline).
    pub gate: PublishGate,
}

/// What a successful mount produced.
#[derive(Debug)]
pub struct MountOutcome {
    pub versions: Vec<ObjectVersion>,
    /// Files for the driver to write (driver-writes mode), else `None`.
    pub files: Option<Vec<OutputFile>>,
    /// Objects of the class (not counting jmesPath files).
    pub objects: usize,
    /// Every file of the mount, for people: path, mode, version.
    pub summary: Vec<FileSummary>,
    /// Keys of the class that name no field (ignored, as the existing provider does).
    pub unknown_keys: Vec<UnknownKey>,
    /// The memory budget this mount's values hold, given back when the outcome is
    /// dropped (in driver-writes mode it is twice the files, and the transport keeps it
    /// until the encoded response has been sent).
    pub held: Reservation,
}

/// Settings that do not change per mount.
#[derive(Debug, Clone)]
pub struct MountSettings {
    /// The provider's own region (AWS_REGION), used when the class names none.
    pub default_region: Option<Region>,
    pub yaml_limits: YamlLimits,
    /// Largest value of one object.
    pub max_secret_bytes: usize,
    /// Unknown keys in a class fail the mount instead of being reported.
    pub strict_objects: bool,
    /// Secret bytes held in memory at once across mounts.
    pub memory_budget_bytes: usize,
    /// The provider's memory cgroup: near its limit, mounts that write files are refused.
    pub memory: MemoryWatch,
    /// The node-wide value cache (off by default) when the service makes its own; its
    /// bytes come out of the budget.
    pub value_cache: ValueCacheSettings,
    /// What one mount's jmesPath evaluations may spend.
    pub jmes: JmesLimits,
    /// Files one mount may write, whatever makes them.
    pub max_files: usize,
}

/// Matches of one selection reserved before it is fetched (see `mount_parsed`).
const SELECTION_RESERVED_MATCHES: usize = 32;

/// Unknown keys named in one mount's log line; the rest are counted.
const MAX_LOGGED_UNKNOWN_KEYS: usize = 20;

/// Longest error in one mount's log line (a class of 256 broken objects makes a long one).
pub const MAX_LOGGED_ERROR_BYTES: usize = 16 * 1024;

/// Share of the cgroup's limit above which mounts that write files are refused: the
/// rest is head room for the provider itself.
pub const MEMORY_REFUSE_PERCENT: u64 = 90;

/// The memory gauge the service asks (a newtype so settings stay `Debug`).
#[derive(Clone)]
pub struct MemoryWatch(pub Arc<dyn MemoryGauge>);

impl Default for MemoryWatch {
    fn default() -> Self {
        MemoryWatch(Arc::new(Unlimited))
    }
}

impl std::fmt::Debug for MemoryWatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MemoryWatch")
    }
}

impl Default for MountSettings {
    fn default() -> Self {
        MountSettings {
            default_region: None,
            yaml_limits: YamlLimits::default(),
            // The largest value a store holds (Secrets Manager's; Parameter Store's is 8 KiB).
            max_secret_bytes: ObjectKind::SecretsManager.max_value_bytes(),
            strict_objects: false,
            memory_budget_bytes: 16 * 1024 * 1024,
            memory: MemoryWatch::default(),
            value_cache: ValueCacheSettings::default(),
            jmes: JmesLimits::default(),
            max_files: DEFAULT_MAX_FILES,
        }
    }
}

/// The inbound port the transports drive.
#[async_trait]
pub trait Mounter: Send + Sync {
    async fn mount(&self, request: MountRequest) -> Result<MountOutcome, MountError>;

    /// Whether `target` already holds a published mount (a failure there is a failed
    /// remount, which the driver hides from kubelet).
    fn holds_mount(&self, target: &TargetPath) -> bool {
        let _ = target;
        false
    }
}

pub struct MountService {
    identity: Arc<dyn IdentityResolver>,
    store: Arc<dyn SecretStore>,
    sink: Arc<dyn MountSink>,
    cache: Arc<ValueCache>,
    budget: MemoryBudget,
    /// Bytes of files being written right now: the cgroup's usage does not show them
    /// yet, so concurrent mounts must not all pass the check on the same reading.
    writing: Arc<std::sync::Mutex<u64>>,
    settings: MountSettings,
}

/// Bytes a mount is writing, given back when the write is over (by then the cgroup's
/// own usage counts them).
struct Writing {
    bytes: u64,
    total: Arc<std::sync::Mutex<u64>>,
}

impl Drop for Writing {
    fn drop(&mut self) {
        let mut total = self.total.lock().unwrap_or_else(|p| p.into_inner());
        *total = total.saturating_sub(self.bytes);
    }
}

impl MountService {
    pub fn new(
        identity: Arc<dyn IdentityResolver>,
        store: Arc<dyn SecretStore>,
        sink: Arc<dyn MountSink>,
        settings: MountSettings,
    ) -> Self {
        let cache = Arc::new(ValueCache::new(settings.value_cache, Arc::new(SystemClock)));
        Self::with_cache(identity, store, sink, settings, cache)
    }

    /// The same, with a cache made elsewhere (its own clock, its metrics registered).
    pub fn with_cache(
        identity: Arc<dyn IdentityResolver>,
        store: Arc<dyn SecretStore>,
        sink: Arc<dyn MountSink>,
        settings: MountSettings,
        cache: Arc<ValueCache>,
    ) -> Self {
        // The cache may hold up to its bound of the budget: mounts get the rest.
        let cache_share = if cache.is_on() { cache.max_bytes() } else { 0 };
        MountService {
            identity,
            store,
            sink,
            budget: MemoryBudget::new(settings.memory_budget_bytes.saturating_sub(cache_share)),
            cache,
            writing: Arc::default(),
            settings,
        }
    }

    /// The node-wide value cache, for the metrics endpoint.
    pub fn value_cache(&self) -> Arc<ValueCache> {
        self.cache.clone()
    }

    /// Files written by this process count against its memory cgroup (tmpfs pages are
    /// charged to the writer): near the limit, refuse rather than be OOM-killed with
    /// every mount of the node.
    fn check_memory(&self, more: u64) -> Result<Option<Writing>, MountError> {
        if !self.sink.writes_files() {
            return Ok(None);
        }
        // Read under the lock: a write that ends between the reading and the lock would
        // be in neither number.
        let mut writing = self.writing.lock().unwrap_or_else(|p| p.into_inner());
        let Some(memory) = self.settings.memory.0.memory() else {
            return Ok(None);
        };
        let after = memory.used.saturating_add(*writing).saturating_add(more);
        if after > memory.limit / 100 * MEMORY_REFUSE_PERCENT {
            return Err(MountError::MemoryPressure {
                used: memory.used.saturating_add(*writing),
                limit: memory.limit,
            });
        }
        *writing = writing.saturating_add(more);
        Ok(Some(Writing {
            bytes: more,
            total: self.writing.clone(),
        }))
    }

    async fn primary_region(&self, attributes: &MountAttributes) -> Result<Region, MountError> {
        if let Some(region) = attributes
            .region
            .as_ref()
            .or(self.settings.default_region.as_ref())
        {
            return Ok(region.clone());
        }
        self.identity
            .node_region(&attributes.pod)
            .await
            .map_err(MountError::RegionLookup)?
            .ok_or(MountError::NoRegion)
    }
}

#[async_trait]
impl Mounter for MountService {
    /// One log line per mount: pod, namespace, objects, duration, outcome. Never a value.
    /// The span (with the target) holds every debug event of the mount, from request to
    /// files.
    #[tracing::instrument(name = "mount", skip_all, fields(target = %request.target))]
    async fn mount(&self, request: MountRequest) -> Result<MountOutcome, MountError> {
        let started = Instant::now();
        let namespace = request.attributes.pod.namespace.clone();
        let pod = request.attributes.pod.name.clone();
        let class = request.attributes.class.clone();
        let result = self.mount_parsed(request).await;
        let millis = started.elapsed().as_millis() as u64;
        match &result {
            Ok(out) if out.unknown_keys.is_empty() => {
                tracing::info!(%namespace, %pod, %class, objects = out.objects, files = out.summary.len(), duration_ms = millis, outcome = "ok", "mount")
            }
            Ok(out) => {
                let shown = out.unknown_keys.iter().take(MAX_LOGGED_UNKNOWN_KEYS);
                let mut unknown_keys = shown
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ");
                if out.unknown_keys.len() > MAX_LOGGED_UNKNOWN_KEYS {
                    unknown_keys.push_str(&format!(
                        "; and {} more",
                        out.unknown_keys.len() - MAX_LOGGED_UNKNOWN_KEYS
                    ));
                }
                tracing::warn!(%namespace, %pod, %class, objects = out.objects, files = out.summary.len(), duration_ms = millis, outcome = "ok", %unknown_keys, "mount")
            }
            Err(e) => {
                let error = capped(e.to_string(), MAX_LOGGED_ERROR_BYTES);
                tracing::warn!(%namespace, %pod, %class, duration_ms = millis, outcome = "error", %error, "mount")
            }
        }
        result
    }

    fn holds_mount(&self, target: &TargetPath) -> bool {
        self.sink.holds_mount(target)
    }
}

impl MountService {
    async fn mount_parsed(&self, request: MountRequest) -> Result<MountOutcome, MountError> {
        let MountRequest {
            attributes,
            default_mode,
            target,
            current_versions,
            secrets,
            gate,
        } = request;
        let primary = self.primary_region(&attributes).await?;
        let regions = Regions::new(primary, attributes.failover_region.clone())?;
        let ctx = ClassContext {
            translation: attributes.translation,
            default_mode,
            primary_region: Some(&regions.primary),
            failover_region: regions.failover.as_ref(),
            limits: self.settings.yaml_limits,
            strict: self.settings.strict_objects,
        };
        let parsed = parse_objects(&attributes.objects, &ctx)?;
        let objects = parsed.objects;
        let selections = parsed.selections;
        self.check_memory(0)?;
        // Worst case: every object at the size limit (its store's own, when smaller),
        // once per file it feeds, and from both regions while failover decides.
        let max = self.settings.max_secret_bytes;
        let regions_asked = if regions.failover.is_some() { 2 } else { 1 };
        let worst: usize = objects
            .iter()
            .map(|o| {
                max.min(o.primary.kind.max_value_bytes())
                    .saturating_mul(o.copies())
                    .saturating_mul(regions_asked)
            })
            .fold(0, usize::saturating_add);
        // A selection may match up to max_objects objects; reserving all of them at the
        // store's maximum would make every Secrets Manager selection run alone, so the
        // first SELECTION_RESERVED_MATCHES are reserved, and the rest are counted as
        // they arrive (each selection's Allowance).
        let select_limit = self.settings.yaml_limits.max_objects;
        let shares: Vec<usize> = selections
            .iter()
            .map(|s| {
                max.min(s.selection.kind().max_value_bytes())
                    .saturating_mul(copies(s))
                    .saturating_mul(select_limit.min(SELECTION_RESERVED_MATCHES))
            })
            .collect();
        let worst = shares.iter().copied().fold(worst, usize::saturating_add);
        // And what planning adds: each file's overhead, one evaluation's allowance; and
        // for files handed to the driver, the response that carries them (see `keep`).
        let known_files = objects
            .iter()
            .map(|o| 1 + o.jmes.len())
            .fold(0usize, usize::saturating_add)
            .saturating_add(
                selections
                    .len()
                    .saturating_mul(select_limit.min(SELECTION_RESERVED_MATCHES)),
            );
        let evaluating = if objects.iter().any(|o| !o.jmes.is_empty()) {
            self.settings.jmes.max_bytes
        } else {
            0
        };
        let response_copies = if self.sink.writes_files() { 1 } else { 2 };
        let worst = worst
            .saturating_add(known_files.saturating_mul(FILE_OVERHEAD_BYTES))
            .saturating_mul(response_copies)
            .saturating_add(evaluating);
        let mut held = self.budget.reserve(worst, gate.deadline()).await?;

        let mut identity = match attributes.auth {
            AuthMode::SecretRef => Identity::from_secret_ref(&attributes.pod, &secrets)?,
            auth => {
                self.identity
                    .identity(&attributes.pod, auth, &attributes.tokens)
                    .await?
            }
        };
        identity.assume = attributes.assume.clone();
        let fetch = Fetch {
            store: &*self.store,
            cache: &self.cache,
            identity: &identity,
            freshness: Freshness::for_class(self.cache.bounds(), attributes.cache_ttl),
            deadline: gate.deadline(),
        };
        let allowances: Vec<Arc<Allowance>> = shares
            .iter()
            .map(|&share| Arc::new(Allowance::new(self.budget.clone(), share)))
            .collect();
        let (fetched, selected) = futures::future::join(
            fetch.all(&regions, &objects),
            fetch.selections(&regions, &selections, select_limit, &allowances),
        )
        .await;
        // Matches beyond the shares stay counted until the resize below.
        for allowance in allowances {
            allowance.add_to(&mut held);
        }
        let (fetched, selected) = (fetched?, selected?);

        let needed: usize = objects
            .iter()
            .zip(&fetched)
            .map(|(o, f)| f.value.len().saturating_mul(o.copies()))
            .fold(0, usize::saturating_add);
        let needed = selections
            .iter()
            .zip(&selected)
            .flat_map(|(s, found)| {
                let copies = copies(s);
                found
                    .iter()
                    .map(move |m| m.fetched.value.len().saturating_mul(copies))
            })
            .fold(needed, usize::saturating_add);
        // A value over the size limit fails now, before the budget is resized for it.
        let too_large = objects
            .iter()
            .zip(&fetched)
            .map(|(o, f)| (o.describe(), f.value.len()))
            .chain(selections.iter().zip(&selected).flat_map(|(s, found)| {
                found
                    .iter()
                    .map(move |m| (s.describe(), m.fetched.value.len()))
            }))
            .find(|(_, size)| *size > max);
        if let Some((object, size)) = too_large {
            return Err(PlanError::TooLarge { object, size, max }.into());
        }
        // Planning builds the files (their overhead counted too) and, when the class
        // extracts anything, the values one jmesPath evaluation builds along the way.
        let known_files = objects
            .iter()
            .map(|o| 1 + o.jmes.len())
            .chain(selected.iter().map(Vec::len))
            .fold(0usize, usize::saturating_add);
        let planning = needed
            .saturating_add(known_files.saturating_mul(FILE_OVERHEAD_BYTES))
            .saturating_add(evaluating);
        self.budget.resize(&mut held, planning)?;
        let max_total = self.budget.total_bytes();
        let limits = PlanLimits {
            max_secret_bytes: max,
            max_total_bytes: max_total,
            max_files: self.settings.max_files,
            translation: attributes.translation,
            jmes: self.settings.jmes,
        };
        let counted = objects.len() + selected.iter().map(Vec::len).sum::<usize>();
        // While it plans, the mount holds its fetched values, one evaluation's allowance,
        // and the files and parsed secrets the plan asks for as it makes them.
        let values: usize = fetched
            .iter()
            .map(|f| f.value.len())
            .chain(selected.iter().flatten().map(|m| m.fetched.value.len()))
            .fold(0, usize::saturating_add);
        let holding = PlanHolding {
            budget: self.budget.clone(),
            held,
            base: values.saturating_add(evaluating),
        };
        let (plan, mut held) = plan_off_the_runtime(
            objects,
            fetched,
            selections,
            selected,
            limits,
            current_versions,
            holding,
        )
        .await;
        let plan = plan?;
        // The files' bytes stay held while they are written. Files handed to the driver
        // are held twice, until the response has left: the message the transport builds
        // from them and the bytes it encodes that into.
        let keep = plan.total_bytes.saturating_mul(response_copies);
        self.budget.resize(&mut held, keep)?;
        tracing::debug!(files = plan.files.len(), "planned");
        let files = plan.files;
        // What the files will leave charged to this process's memory cgroup (tmpfs pages
        // and inodes are charged to their writer).
        let _writing = self.check_memory(plan.total_bytes as u64)?;
        let files = match self.sink.publish(&target, files, &gate).await? {
            Published::Written => None,
            Published::ForDriver(files) => Some(files),
        };
        Ok(MountOutcome {
            versions: plan.versions,
            files,
            objects: counted,
            summary: plan.summary,
            unknown_keys: parsed.unknown_keys,
            held,
        })
    }
}

/// The mount's share of the budget while it plans, grown as the plan asks.
struct PlanHolding {
    budget: MemoryBudget,
    held: Reservation,
    /// Held besides the plan's own: the fetched values and one evaluation.
    base: usize,
}

impl PlanMemory for PlanHolding {
    fn hold(&mut self, bytes: usize) -> bool {
        self.budget
            .grow_to(&mut self.held, self.base.saturating_add(bytes))
            .is_ok()
    }
}

/// Plans the mount on a blocking thread, so that a slow class never holds a runtime
/// worker (other mounts, timers and the shutdown signal run there). The evaluation
/// stops at its allowance, and sooner when this future is dropped (the mount's
/// deadline, the provider's shutdown): dropping it sets the cancel flag the evaluation
/// checks. The thread owns the mount's reservation until its work ends, so the budget
/// comes back only once the data the plan holds is gone.
async fn plan_off_the_runtime(
    objects: Vec<crate::domain::objects::ObjectSpec>,
    fetched: Vec<crate::domain::fetched::Fetched>,
    selections: Vec<crate::domain::objects::SelectionSpec>,
    selected: Vec<Vec<crate::domain::fetched::Selected>>,
    limits: PlanLimits,
    current: Vec<ObjectVersion>,
    mut holding: PlanHolding,
) -> (
    Result<crate::domain::plan::MountPlan, PlanError>,
    Reservation,
) {
    let cancel = Cancel::default();
    let _stop_when_dropped = cancel.on_drop();
    let work = tokio::task::spawn_blocking(move || {
        let mut meter = Meter::new(limits.jmes, cancel);
        let selected: Vec<_> = selections.iter().zip(selected).collect();
        let plan = plan_mount_metered(
            &objects,
            &fetched,
            &selected,
            limits,
            &current,
            &mut meter,
            &mut holding,
        );
        (plan, holding.held)
    });
    match work.await {
        Ok(done) => done,
        // A panic in planning fails this mount alone, as a panic anywhere in a mount.
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        // The runtime is shutting down (the reservation went with the thread's work).
        Err(_) => (
            Err(PlanError::Cancelled {
                object: "the mount".to_string(),
                source: crate::domain::jmes::BudgetError::Cancelled,
            }),
            Reservation::none(),
        ),
    }
}

#[cfg(test)]
#[path = "mount_tests.rs"]
mod tests;
