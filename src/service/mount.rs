//! The mount use case, as one straight walk over the ports: check the class, find the
//! regions and the identity, reserve memory, fetch, plan, publish. Every rule it
//! applies lives in the domain (the class's check, the memory footprint, the plan).

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;

use crate::domain::attributes::{AuthMode, MountAttributes};
use crate::domain::class::{ClassRules, ClassSpec};
use crate::domain::footprint::Footprint;
use crate::domain::freshness::Freshness;
use crate::domain::jmes::JmesLimits;
use crate::domain::mode::FileMode;
use crate::domain::mount_secrets::MountSecrets;
use crate::domain::objects::{ObjectKind, YamlLimits};
use crate::domain::plan::{PlanLimits, DEFAULT_MAX_FILES};
use crate::domain::region::Region;
use crate::domain::target::TargetPath;
use crate::domain::text::capped;
use crate::ports::{
    Identity, IdentityResolver, MountSink, PublishGate, Published, SecretStore, SystemClock,
};

use super::budget::MemoryBudget;
use super::class_cache::ClassCache;
use super::error::MountError;
use super::fetch::Fetch;
use super::memory_watch::{MemoryWatch, Writes, Writing};
use super::planning::{plan_off_the_runtime, PlanHolding, PlanInput};
use super::request::{MountOutcome, MountRequest};
use super::value_cache::{ValueCache, ValueCacheSettings};

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
    /// Serve `objectType: acm` (ExportCertificate); off by default.
    pub acm_certificates: bool,
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

/// Unknown keys named in one mount's log line; the rest are counted.
const MAX_LOGGED_UNKNOWN_KEYS: usize = 20;

/// Longest error in one mount's log line (a class of 256 broken objects makes a long one).
pub const MAX_LOGGED_ERROR_BYTES: usize = 16 * 1024;

impl Default for MountSettings {
    fn default() -> Self {
        MountSettings {
            default_region: None,
            yaml_limits: YamlLimits::default(),
            // The largest value a store holds (Secrets Manager's; Parameter Store's is 8 KiB).
            max_secret_bytes: ObjectKind::SecretsManager.max_value_bytes(),
            strict_objects: false,
            acm_certificates: false,
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
    /// Classes checked once for every mount of them.
    classes: ClassCache,
    budget: MemoryBudget,
    writes: Writes,
    settings: MountSettings,
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
            classes: ClassCache::default(),
            writes: Writes::default(),
            settings,
        }
    }

    /// The node-wide value cache, for the metrics endpoint.
    pub fn value_cache(&self) -> Arc<ValueCache> {
        self.cache.clone()
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
        let (attributes, gate) = (&request.attributes, &request.gate);
        // The class first: a broken one is refused before anyone is asked anything.
        // Checked once per class (the cache): each mount takes its own copy to consume.
        let spec = ClassSpec::of(attributes, self.settings.default_region.as_ref());
        let class = self
            .classes
            .check(&spec, &self.class_rules(request.default_mode))?;
        let regions = match &class.regions {
            Some(regions) => regions.clone(),
            None => class.in_region(self.node_region(attributes).await?)?,
        };
        let parsed = class.parsed.clone();
        self.check_memory(0)?;
        let footprint = self.footprint();
        let worst = parsed.worst_case_bytes(&footprint, &regions);
        let mut held = self.budget.reserve(worst.bytes, gate.deadline()).await?;
        let identity = self.identity_of(attributes, &request.secrets).await?;
        let fetch = self.fetch_as(&identity, attributes, gate);
        let shares = &worst.selection_shares;
        let (fetched, selected) = fetch
            .class(&regions, &parsed, footprint.max_matches, shares, &mut held)
            .await?;
        // A value over max_secret_bytes fails here, before the budget grows for it.
        let needed = parsed.needed_bytes(&footprint, &fetched, &selected)?;
        self.budget.resize(&mut held, needed)?;
        // Planning holds the values and grows the reservation as it makes each file.
        let base = parsed.planning_base_bytes(&footprint, &fetched, &selected);
        let holding = PlanHolding::new(self.budget.clone(), held, base);
        let objects = parsed.objects.len() + selected.iter().map(Vec::len).sum::<usize>();
        let input = PlanInput {
            objects: parsed.objects,
            fetched,
            selections: parsed.selections,
            selected,
            current: request.current_versions,
        };
        let limits = self.plan_limits(attributes);
        let (plan, mut held) = plan_off_the_runtime(input, limits, holding).await;
        let plan = plan?;
        // The files stay held while written, or until the response with them has left.
        self.budget
            .resize(&mut held, footprint.kept_bytes(plan.total_bytes))?;
        tracing::debug!(files = plan.files.len(), "planned");
        let _writing = self.check_memory(plan.total_bytes as u64)?;
        let files = match self.sink.publish(&request.target, plan.files, gate).await? {
            Published::Written => None,
            Published::ForDriver(files) => Some(files),
        };
        Ok(MountOutcome {
            versions: plan.versions,
            files,
            objects,
            summary: plan.summary,
            unknown_keys: parsed.unknown_keys,
            held,
        })
    }

    /// What this mount fetches with: its identity, the cache at its class's freshness,
    /// the budget its selections draw on, its deadline.
    fn fetch_as<'a>(
        &'a self,
        identity: &'a Identity,
        attributes: &MountAttributes,
        gate: &PublishGate,
    ) -> Fetch<'a> {
        Fetch {
            store: &*self.store,
            cache: &self.cache,
            identity,
            budget: &self.budget,
            freshness: Freshness::for_class(self.cache.bounds(), attributes.cache_ttl),
            deadline: gate.deadline(),
        }
    }

    fn class_rules(&self, default_mode: FileMode) -> ClassRules {
        ClassRules {
            default_mode,
            limits: self.settings.yaml_limits,
            strict: self.settings.strict_objects,
            certificates: self.settings.acm_certificates,
        }
    }

    fn footprint(&self) -> Footprint {
        Footprint {
            max_secret_bytes: self.settings.max_secret_bytes,
            max_matches: self.settings.yaml_limits.max_objects,
            evaluation_bytes: self.settings.jmes.max_bytes,
            driver_writes: !self.sink.writes_files(),
        }
    }

    fn plan_limits(&self, attributes: &MountAttributes) -> PlanLimits {
        PlanLimits {
            max_secret_bytes: self.settings.max_secret_bytes,
            max_total_bytes: self.budget.total_bytes(),
            max_files: self.settings.max_files,
            translation: attributes.translation,
            jmes: self.settings.jmes,
        }
    }

    /// The primary region when neither the class nor the provider names one: the
    /// pod's node's.
    async fn node_region(&self, attributes: &MountAttributes) -> Result<Region, MountError> {
        self.identity
            .node_region(&attributes.pod)
            .await
            .map_err(MountError::RegionLookup)?
            .ok_or(MountError::NoRegion)
    }

    /// Who the mount reads as: the volume's own credentials, or the pod's identity.
    async fn identity_of(
        &self,
        attributes: &MountAttributes,
        secrets: &MountSecrets,
    ) -> Result<Identity, MountError> {
        let mut identity = match attributes.auth {
            AuthMode::SecretRef => Identity::from_secret_ref(&attributes.pod, secrets)?,
            auth => {
                self.identity
                    .identity(&attributes.pod, auth, &attributes.tokens)
                    .await?
            }
        };
        identity.assume = attributes.assume.clone();
        Ok(identity)
    }

    /// Files written by this process count against its memory cgroup: near the limit,
    /// refuse rather than be OOM-killed with every mount of the node.
    fn check_memory(&self, more: u64) -> Result<Option<Writing>, MountError> {
        if !self.sink.writes_files() {
            return Ok(None);
        }
        self.writes.start(&self.settings.memory, more)
    }
}

#[cfg(test)]
#[path = "mount_tests.rs"]
mod tests;
