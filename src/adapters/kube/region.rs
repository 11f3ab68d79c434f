//! The region of the node that runs a pod: label `topology.kubernetes.io/region`.
//!
//! With NODE_NAME (the downward API; the chart sets it) the provider runs on that very
//! node: its label is read once and kept current by a watch of that one node. Without
//! it, pod → node lookups, cached.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client};

use super::errors::{describe, watch_forbidden, ApiFailure, Refusals};
use crate::domain::attributes::PodInfo;
use crate::domain::region::Region;
use crate::ports::identity::Cause;
use crate::ports::IdentityError;

pub const REGION_LABEL: &str = "topology.kubernetes.io/region";
/// Pods remembered (by uid) for their node, without NODE_NAME.
const POD_CACHE: usize = 4096;

pub struct NodeRegion {
    client: Client,
    node_name: Option<String>,
    /// NODE_NAME's region, kept by the watch: None until first seen.
    own: Arc<RwLock<Option<Option<String>>>>,
    nodes: Mutex<HashMap<String, Option<String>>>,
    pods: Mutex<HashMap<String, String>>,
    timeout: Duration,
    /// The watch of NODE_NAME, stopped with `stop` (and when this is dropped).
    watch: Mutex<Option<tokio::task::AbortHandle>>,
}

fn region_label(node: &Node) -> Option<String> {
    node.metadata.labels.as_ref()?.get(REGION_LABEL).cloned()
}

impl NodeRegion {
    pub fn start(client: Client, node_name: Option<String>, timeout: Duration) -> Arc<Self> {
        let this = Arc::new(NodeRegion {
            client,
            node_name,
            own: Arc::default(),
            nodes: Mutex::default(),
            pods: Mutex::default(),
            timeout,
            watch: Mutex::default(),
        });
        if let Some(name) = this.node_name.clone() {
            let task = tokio::spawn(watch_node(this.client.clone(), name, this.own.clone()));
            *this.watch.lock().unwrap_or_else(|p| p.into_inner()) = Some(task.abort_handle());
        }
        this
    }

    /// Stops the watch; lookups go on with GETs.
    pub fn stop(&self) {
        if let Some(task) = self.watch.lock().unwrap_or_else(|p| p.into_inner()).take() {
            task.abort();
        }
    }

    pub async fn region(&self, pod: &PodInfo) -> Result<Option<Region>, IdentityError> {
        let label = match &self.node_name {
            Some(node) => {
                let known = self.own.read().unwrap_or_else(|p| p.into_inner()).clone();
                match known {
                    Some(label) => label,
                    // Not seen by the watch (yet, or RBAC refuses it): a cached GET.
                    None => self.cached_node_label(node).await?,
                }
            }
            None => {
                let node = self.node_of(pod).await?;
                self.cached_node_label(&node).await?
            }
        };
        match label {
            None => Ok(None),
            Some(text) => Region::parse(&text).map(Some).map_err(|e| {
                IdentityError::Region(
                    Cause::from(format!("node label {REGION_LABEL}: {e}")).caused_by(e),
                )
            }),
        }
    }

    /// A node's region label, read once: nodes do not move between regions. A node
    /// without the label is asked again next time (a cloud controller may add it later).
    async fn cached_node_label(&self, node: &str) -> Result<Option<String>, IdentityError> {
        let cached = self
            .nodes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(node)
            .cloned();
        if let Some(label) = cached {
            return Ok(label);
        }
        let label = self.node_label(node).await?;
        if label.is_some() {
            self.nodes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(node.to_string(), label.clone());
        }
        Ok(label)
    }

    async fn node_label(&self, node: &str) -> Result<Option<String>, IdentityError> {
        let api = Api::<Node>::all(self.client.clone());
        let found = self.call(&format!("node {node}"), api.get(node)).await?;
        Ok(region_label(&found))
    }

    async fn node_of(&self, pod: &PodInfo) -> Result<String, IdentityError> {
        if let Some(node) = self
            .pods
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&pod.uid)
        {
            return Ok(node.clone());
        }
        let api = Api::<Pod>::namespaced(self.client.clone(), &pod.namespace);
        let found = self
            .call(
                &format!("pod {}/{}", pod.namespace, pod.name),
                api.get(&pod.name),
            )
            .await?;
        let node = found.spec.and_then(|s| s.node_name).ok_or_else(|| {
            IdentityError::Region(
                format!("pod {}/{} has no node yet", pod.namespace, pod.name).into(),
            )
        })?;
        let mut pods = self.pods.lock().unwrap_or_else(|p| p.into_inner());
        if pods.len() >= POD_CACHE {
            pods.clear();
        }
        if !pod.uid.is_empty() {
            pods.insert(pod.uid.clone(), node.clone());
        }
        Ok(node)
    }

    async fn call<T>(
        &self,
        what: &str,
        call: impl std::future::Future<Output = Result<T, kube::Error>>,
    ) -> Result<T, IdentityError> {
        match tokio::time::timeout(self.timeout, call).await {
            Err(_) => Err(IdentityError::Unavailable(
                format!(
                    "reading {what}: the API server did not answer within {:?}",
                    self.timeout
                )
                .into(),
            )),
            Ok(Err(e)) => Err(match describe(&e) {
                ApiFailure::NotFound => {
                    IdentityError::Region(Cause::from(format!("{what} not found")).caused_by(e))
                }
                ApiFailure::Forbidden(m) => IdentityError::Unavailable(
                    Cause::from(format!("reading {what}: forbidden: {m}")).caused_by(e),
                ),
                ApiFailure::Other(m) => IdentityError::Unavailable(
                    Cause::from(format!("reading {what}: {m}")).caused_by(e),
                ),
            }),
            Ok(Ok(v)) => Ok(v),
        }
    }
}

/// Keeps NODE_NAME's region current. Under a ClusterRole without list/watch on nodes it
/// says so and leaves lookups to a cached GET.
async fn watch_node(client: Client, name: String, own: Arc<RwLock<Option<Option<String>>>>) {
    let mut refusals = Refusals::default();
    loop {
        let Some(refusal) =
            watch_node_until_forbidden(client.clone(), &name, &own, &mut refusals).await
        else {
            return;
        };
        let answer = refusals.refused();
        if answer.warn {
            tracing::warn!(
                refusal = %refusal,
                node = %name,
                "cannot watch this node: the provider's ClusterRole lacks list and watch on nodes (the existing provider's RBAC has only get). The node's region is read once with GET and kept, so a change of its region label is not seen until the watch is allowed (tried again every few seconds at first, then every 10 minutes)"
            );
        } else {
            tracing::info!(refusal = %refusal, node = %name, wait = ?answer.wait, "node watch refused; trying again");
        }
        tokio::time::sleep(answer.wait).await;
    }
}

async fn watch_node_until_forbidden(
    client: Client,
    name: &str,
    own: &RwLock<Option<Option<String>>>,
    refusals: &mut Refusals,
) -> Option<String> {
    let api = Api::<Node>::all(client);
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = watcher::watcher(api, config).default_backoff().boxed();
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Apply(node) | Event::InitApply(node)) => {
                let label = region_label(&node);
                tracing::debug!(node = %name, region = ?label, "node region");
                *own.write().unwrap_or_else(|p| p.into_inner()) = Some(label);
            }
            Ok(Event::InitDone) => refusals.listed(),
            Ok(_) => {}
            Err(e) => {
                if let Some(message) = watch_forbidden(&e) {
                    return Some(message.to_string());
                }
                tracing::warn!(error = %e, node = %name, "node watch failed; retrying");
            }
        }
    }
    None
}
