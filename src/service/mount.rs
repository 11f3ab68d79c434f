//! The mount use case. Validates everything before any fetch, fetches concurrently,
//! applies failover and extraction, then publishes all files in one step.

use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;

use crate::domain::attributes::MountAttributes;
use crate::domain::extract::extract;
use crate::domain::mode::FileMode;
use crate::domain::objects::{parse_objects, ClassContext, UnknownKey, YamlLimits};
use crate::domain::region::{Region, Regions};
use crate::domain::versions::{response_versions, ObjectVersion};
use crate::ports::{IdentityResolver, MountSink, OutputFile, Published, SecretStore};

use super::error::MountError;
use super::fetch::fetch_all;

/// A mount as the driver asks for it, before any parsing.
#[derive(Debug, Clone, Default)]
pub struct MountRequest {
    /// JSON object of strings (spec §3).
    pub attributes: String,
    /// Default file mode in decimal, e.g. "420".
    pub permission: String,
    pub target_path: String,
    pub current_versions: Vec<ObjectVersion>,
}

/// What a successful mount produced.
#[derive(Debug, Clone)]
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
}

/// A file of a mount, without its contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSummary {
    pub path: String,
    pub mode: FileMode,
    pub version: String,
}

/// Settings that do not change per mount.
#[derive(Debug, Clone)]
pub struct MountSettings {
    /// The provider's own region (AWS_REGION), used when the class names none.
    pub default_region: Option<Region>,
    /// Store calls in flight at once for one mount.
    pub fetch_concurrency: usize,
    pub yaml_limits: YamlLimits,
    /// Largest value of one object.
    pub max_secret_bytes: usize,
    /// Unknown keys in a class fail the mount instead of being reported.
    pub strict_objects: bool,
}

impl Default for MountSettings {
    fn default() -> Self {
        MountSettings {
            default_region: None,
            fetch_concurrency: 16,
            yaml_limits: YamlLimits::default(),
            // Secrets Manager holds at most 64 KiB, Parameter Store 8 KiB.
            max_secret_bytes: 256 * 1024,
            strict_objects: false,
        }
    }
}

/// The inbound port the transports drive.
#[async_trait]
pub trait Mounter: Send + Sync {
    async fn mount(&self, request: MountRequest) -> Result<MountOutcome, MountError>;
}

pub struct MountService {
    identity: Arc<dyn IdentityResolver>,
    store: Arc<dyn SecretStore>,
    sink: Arc<dyn MountSink>,
    settings: MountSettings,
}

impl MountService {
    pub fn new(
        identity: Arc<dyn IdentityResolver>,
        store: Arc<dyn SecretStore>,
        sink: Arc<dyn MountSink>,
        settings: MountSettings,
    ) -> Self {
        MountService {
            identity,
            store,
            sink,
            settings,
        }
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
    async fn mount(&self, request: MountRequest) -> Result<MountOutcome, MountError> {
        let started = Instant::now();
        let attributes = MountAttributes::parse(&request.attributes);
        let (namespace, pod) = match &attributes {
            Ok(a) => (a.pod.namespace.clone(), a.pod.name.clone()),
            Err(_) => (String::new(), String::new()),
        };
        let result = match attributes {
            Ok(attributes) => self.mount_parsed(attributes, request).await,
            Err(e) => Err(e.into()),
        };
        let millis = started.elapsed().as_millis() as u64;
        match &result {
            Ok(out) if out.unknown_keys.is_empty() => {
                tracing::info!(%namespace, %pod, objects = out.objects, files = out.summary.len(), duration_ms = millis, outcome = "ok", "mount")
            }
            Ok(out) => {
                let unknown_keys = out
                    .unknown_keys
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; ");
                tracing::warn!(%namespace, %pod, objects = out.objects, files = out.summary.len(), duration_ms = millis, outcome = "ok", %unknown_keys, "mount")
            }
            Err(e) => {
                tracing::warn!(%namespace, %pod, duration_ms = millis, outcome = "error", error = %e, "mount")
            }
        }
        result
    }
}

impl MountService {
    async fn mount_parsed(
        &self,
        attributes: MountAttributes,
        request: MountRequest,
    ) -> Result<MountOutcome, MountError> {
        let default_mode = FileMode::parse_decimal(&request.permission)?;
        let primary = self.primary_region(&attributes).await?;
        let regions = Regions::new(primary, attributes.failover_region.clone())
            .map_err(|e| MountError::SameRegions(e.0))?;
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

        let identity = self
            .identity
            .identity(&attributes.pod, attributes.auth, &attributes.tokens)
            .await?;
        let fetched = fetch_all(
            &*self.store,
            &identity,
            &regions,
            &objects,
            self.settings.fetch_concurrency,
        )
        .await?;

        let max = self.settings.max_secret_bytes;
        if let Some((object, f)) = objects
            .iter()
            .zip(&fetched)
            .find(|(_, f)| f.value.len() > max)
        {
            return Err(MountError::Limit(format!(
                "{} is {} bytes, more than max_secret_bytes ({max})",
                object.describe(),
                f.value.len()
            )));
        }
        let mut files = Vec::new();
        for (object, fetched) in objects.iter().zip(&fetched) {
            let extracted =
                extract(&fetched.value, &object.jmes).map_err(|error| MountError::Extract {
                    object: object.describe(),
                    error,
                })?;
            files.push(OutputFile {
                path: object.file.clone(),
                mode: object.mode,
                contents: fetched.value.clone(),
            });
            files.extend(extracted.into_iter().map(|e| OutputFile {
                path: e.file,
                mode: e.mode,
                contents: e.value,
            }));
        }
        // Every file carries its object's version (jmesPath files their parent's).
        let mut summary = Vec::with_capacity(files.len());
        for (object, fetched) in objects.iter().zip(&fetched) {
            let paths = std::iter::once((&object.file, object.mode))
                .chain(object.jmes.iter().map(|j| (&j.file, j.mode)));
            for (path, mode) in paths {
                summary.push(FileSummary {
                    path: path.to_string(),
                    mode,
                    version: fetched.version.clone(),
                });
            }
        }
        let written: Vec<ObjectVersion> = summary
            .iter()
            .map(|f| ObjectVersion {
                id: f.path.clone(),
                version: f.version.clone(),
            })
            .collect();
        let files = match self.sink.publish(&request.target_path, files).await? {
            Published::Written => None,
            Published::ForDriver(files) => Some(files),
        };
        Ok(MountOutcome {
            versions: response_versions(&written, &request.current_versions),
            files,
            objects: objects.len(),
            summary,
            unknown_keys: parsed.unknown_keys,
        })
    }
}

#[cfg(test)]
#[path = "mount_tests.rs"]
mod tests;
