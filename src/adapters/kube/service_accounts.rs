//! The IRSA role of each service account, kept current by one watch, so a storm of
//! mounts asks the API server nothing. Only annotated service accounts are remembered
//! (a role string each), so memory stays small on clusters with tens of thousands of
//! them. A service account the watch has not delivered yet is read with one GET,
//! shared by concurrent mounts.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio::time::Instant;

use futures::future::{BoxFuture, FutureExt, Shared};
use futures::StreamExt;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client};

use super::errors::{describe, watch_forbidden, ApiFailure, Refusals};
use crate::ports::identity::Cause;
use crate::ports::IdentityError;

pub const ROLE_ANNOTATION: &str = "eks.amazonaws.com/role-arn";

type Key = (String, String);
type Lookup = Shared<BoxFuture<'static, Result<Option<String>, IdentityError>>>;

/// A role, and until when it may be used when it came from a GET: the watch keeps its
/// own entries current, a read one is asked again after a while (the watch may be off,
/// or lack RBAC).
struct Role {
    arn: String,
    read_until: Option<Instant>,
}

/// How long a role read with GET is trusted without the watch.
const READ_ROLE_TTL: Duration = Duration::from_secs(60);

#[derive(Default)]
struct State {
    roles: HashMap<Key, Role>,
    synced: bool,
}

pub struct ServiceAccounts {
    client: Client,
    state: Arc<RwLock<State>>,
    in_flight: Arc<std::sync::Mutex<HashMap<Key, Lookup>>>,
    timeout: Duration,
    /// The cluster-wide watch, stopped with `stop`.
    watch: std::sync::Mutex<Option<tokio::task::AbortHandle>>,
}

fn role_of(sa: &ServiceAccount) -> Option<String> {
    sa.metadata
        .annotations
        .as_ref()?
        .get(ROLE_ANNOTATION)
        .filter(|r| !r.is_empty())
        .cloned()
}

fn key_of(sa: &ServiceAccount) -> Option<Key> {
    Some((sa.metadata.namespace.clone()?, sa.metadata.name.clone()?))
}

impl ServiceAccounts {
    /// Starts the watch (when `watch` is true) and answers lookups.
    pub fn start(client: Client, timeout: Duration, watch: bool) -> Arc<Self> {
        let this = Arc::new(ServiceAccounts {
            client,
            state: Arc::default(),
            in_flight: Arc::default(),
            timeout,
            watch: std::sync::Mutex::default(),
        });
        if watch {
            let task = tokio::spawn(watch_all(this.client.clone(), this.state.clone()));
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

    /// The role ARN of `namespace/name`. Errors name the service account.
    pub async fn role(&self, namespace: &str, name: &str) -> Result<String, IdentityError> {
        let key = (namespace.to_string(), name.to_string());
        let missing_annotation = || {
            IdentityError::ServiceAccount(format!(
                "service account {namespace}/{name} has no {ROLE_ANNOTATION} annotation: annotate it with the IAM role for its pods"
            ).into())
        };
        if let Some(role) = self
            .state
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .roles
            .get(&key)
        {
            if role.read_until.is_none_or(|until| until > Instant::now()) {
                return Ok(role.arn.clone());
            }
        }
        // Not (yet) known from the watch: read it once, shared by concurrent mounts.
        let lookup = {
            let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
            in_flight
                .entry(key.clone())
                .or_insert_with(|| {
                    let (api, timeout, key2) = (Api::<ServiceAccount>::namespaced(self.client.clone(), namespace), self.timeout, key.clone());
                    let (in_flight, state) = (Arc::downgrade(&self.in_flight), self.state.clone());
                    // Spawned, so the read always ends and retires itself even when every
                    // mount waiting for it was cancelled.
                    let task = tokio::spawn(async move {
                        let what = format!("service account {}/{}", key2.0, key2.1);
                        let answer = match tokio::time::timeout(timeout, api.get(&key2.1)).await {
                            Err(_) => Err(IdentityError::Unavailable(format!("reading {what}: the API server did not answer within {timeout:?}").into())),
                            Ok(Err(e)) => Err(match describe(&e) {
                                ApiFailure::NotFound => IdentityError::ServiceAccount(Cause::from(format!("{what} not found")).caused_by(e)),
                                ApiFailure::Forbidden(m) => IdentityError::Unavailable(Cause::from(format!("reading {what}: forbidden: {m} (the provider needs get on serviceaccounts)")).caused_by(e)),
                                ApiFailure::Other(m) => IdentityError::Unavailable(Cause::from(format!("reading {what}: {m}")).caused_by(e)),
                            }),
                            Ok(Ok(sa)) => {
                                let role = role_of(&sa);
                                if let Some(role) = &role {
                                    let entry = Role { arn: role.clone(), read_until: Some(Instant::now() + READ_ROLE_TTL) };
                                    state.write().unwrap_or_else(|p| p.into_inner()).roles.insert(key2.clone(), entry);
                                }
                                Ok(role)
                            }
                        };
                        if let Some(map) = in_flight.upgrade() {
                            map.lock().unwrap_or_else(|p| p.into_inner()).remove(&key2);
                        }
                        answer
                    });
                    async move {
                        task.await.unwrap_or_else(|_| Err(IdentityError::Unavailable("the service account read failed".to_string().into())))
                    }
                    .boxed()
                    .shared()
                })
                .clone()
        };
        lookup.await?.ok_or_else(missing_annotation)
    }

    /// True once the first full list has been seen.
    pub fn synced(&self) -> bool {
        self.state.read().unwrap_or_else(|p| p.into_inner()).synced
    }
}

/// Keeps the roles current. Under a ClusterRole without list/watch (the existing
/// provider's has only get) it says so and leaves lookups to cached GETs.
async fn watch_all(client: Client, state: Arc<RwLock<State>>) {
    let mut refusals = Refusals::default();
    loop {
        let Some(refusal) = watch_until_forbidden(client.clone(), &state, &mut refusals).await
        else {
            return;
        };
        // Nobody keeps the entries current now. They were current a moment ago, so they
        // are used for as long as a role read with GET would be, then read again (a GET
        // at once would meet the same 403 when the API server has just restarted).
        {
            let mut s = state.write().unwrap_or_else(|p| p.into_inner());
            s.synced = false;
            let until = Instant::now() + READ_ROLE_TTL;
            for role in s.roles.values_mut() {
                role.read_until.get_or_insert(until);
            }
        }
        let answer = refusals.refused();
        if answer.warn {
            tracing::warn!(
                refusal = %refusal,
                "cannot list/watch serviceaccounts: the provider's ClusterRole lacks list and watch on serviceaccounts (the existing provider's RBAC has only get). Falling back to one GET per service account on first use, re-read every {}s; grant list and watch so mount storms need no API requests",
                READ_ROLE_TTL.as_secs()
            );
        } else {
            tracing::info!(refusal = %refusal, wait = ?answer.wait, "service account watch refused; trying again");
        }
        tokio::time::sleep(answer.wait).await;
    }
}

/// Runs one watch; returns the API server's message when RBAC refuses it.
async fn watch_until_forbidden(
    client: Client,
    state: &RwLock<State>,
    refusals: &mut Refusals,
) -> Option<String> {
    let api = Api::<ServiceAccount>::all(client);
    let mut events = watcher::watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut rebuilding: Option<HashMap<Key, Role>> = None;
    let watched = |arn: String| Role {
        arn,
        read_until: None,
    };
    while let Some(event) = events.next().await {
        match event {
            Ok(Event::Init) => rebuilding = Some(HashMap::new()),
            Ok(Event::InitApply(sa)) => {
                if let (Some(map), Some(key), Some(role)) =
                    (rebuilding.as_mut(), key_of(&sa), role_of(&sa))
                {
                    map.insert(key, watched(role));
                }
            }
            Ok(Event::InitDone) => {
                let mut s = state.write().unwrap_or_else(|p| p.into_inner());
                if let Some(map) = rebuilding.take() {
                    s.roles = map;
                }
                s.synced = true;
                refusals.listed();
                tracing::info!(annotated = s.roles.len(), "service accounts synced");
            }
            Ok(Event::Apply(sa)) => {
                let Some(key) = key_of(&sa) else { continue };
                let mut s = state.write().unwrap_or_else(|p| p.into_inner());
                match role_of(&sa) {
                    Some(role) => s.roles.insert(key, watched(role)),
                    None => s.roles.remove(&key),
                };
            }
            Ok(Event::Delete(sa)) => {
                if let Some(key) = key_of(&sa) {
                    state
                        .write()
                        .unwrap_or_else(|p| p.into_inner())
                        .roles
                        .remove(&key);
                }
            }
            Err(e) => {
                if let Some(message) = watch_forbidden(&e) {
                    return Some(message.to_string());
                }
                // The watcher backs off and retries by itself; lookups fall back to GET.
                tracing::warn!(error = %e, "service account watch failed; retrying");
            }
        }
    }
    None
}
