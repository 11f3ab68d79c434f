//! Secrets Manager and Parameter Store behind the `SecretStore` port.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use async_trait::async_trait;
use aws_config::SdkConfig;
use futures::future::join_all;

use super::classify::is_stale_credentials;
use super::credentials::{pod_identity::AgentSettings, CredentialResolver, Signing};
use super::errors::{from_sdk, Classified};
use super::ssm_batch::{answers, request_name, rounds, Returned, MAX_NAMES};
use crate::adapters::metrics::{outcome, Metrics};
use crate::domain::failover::{ClientKind, ErrorClass};
use crate::domain::objects::{ObjectKind, ObjectRef};
use crate::domain::region::Region;
use crate::domain::secret::SecretValue;
use crate::ports::{Fetched, Identity, SecretStore, StoreError};

type Answer = Result<Fetched, StoreError>;

pub struct AwsStore {
    sdk: SdkConfig,
    credentials: CredentialResolver,
    metrics: Arc<Metrics>,
    clients: Mutex<HashMap<ClientKey, Clients>>,
}

/// Clients are built once per region and credentials, not per call: building one
/// assembles its whole runtime (it shares the process's HTTP connection pool either way).
/// The key holds the full credentials, so two identities can never share a client.
type ClientKey = (Region, Option<(String, String, Option<String>)>);

#[derive(Clone)]
struct Clients {
    secrets: aws_sdk_secretsmanager::Client,
    ssm: aws_sdk_ssm::Client,
}

/// Above this many cached clients (regions × live credentials), start over.
const MAX_CLIENTS: usize = 1024;

impl AwsStore {
    /// `default_credentials`: sign with the machine's default chain when a mount brings
    /// no token (the `mount` command); never when serving pods.
    pub fn new(
        sdk: SdkConfig,
        agent: AgentSettings,
        default_credentials: bool,
        metrics: Arc<Metrics>,
    ) -> Self {
        let credentials =
            CredentialResolver::new(sdk.clone(), agent, default_credentials, metrics.clone());
        AwsStore {
            sdk,
            credentials,
            metrics,
            clients: Mutex::default(),
        }
    }

    fn record(
        &self,
        service: &str,
        operation: &str,
        region: &Region,
        class: Option<ErrorClass>,
        started: Instant,
    ) {
        self.metrics.aws_call(
            service,
            operation,
            region.as_str(),
            outcome(class),
            started.elapsed(),
        );
    }

    pub fn credentials(&self) -> &CredentialResolver {
        &self.credentials
    }

    fn clients(&self, region: &Region, signing: &Signing) -> Clients {
        let identity = match signing {
            Signing::Pod(c) => Some((
                c.access_key_id().to_string(),
                c.secret_access_key().to_string(),
                c.session_token().map(str::to_string),
            )),
            Signing::Default => None,
        };
        let key = (region.clone(), identity);
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(found) = clients.get(&key) {
            return found.clone();
        }
        let aws_region = aws_config::Region::new(region.to_string());
        let mut secrets =
            aws_sdk_secretsmanager::config::Builder::from(&self.sdk).region(aws_region.clone());
        let mut ssm = aws_sdk_ssm::config::Builder::from(&self.sdk).region(aws_region);
        if let Signing::Pod(credentials) = signing {
            secrets = secrets.credentials_provider(credentials.clone());
            ssm = ssm.credentials_provider(credentials.clone());
        }
        let built = Clients {
            secrets: aws_sdk_secretsmanager::Client::from_conf(secrets.build()),
            ssm: aws_sdk_ssm::Client::from_conf(ssm.build()),
        };
        if clients.len() >= MAX_CLIENTS {
            clients.clear();
        }
        clients.insert(key, built.clone());
        built
    }

    /// One GetSecretValue per object, all at once. Also says whether AWS refused the
    /// credentials as stale.
    async fn secrets(
        &self,
        region: &Region,
        signing: &Signing,
        batch: &[ObjectRef],
    ) -> (Vec<Answer>, bool) {
        let client = self.clients(region, signing).secrets;
        let calls = batch.iter().map(|object| {
            let client = client.clone();
            async move {
                let what = format!("GetSecretValue {} in {region}", object.name);
                let started = Instant::now();
                let sent = client
                    .get_secret_value()
                    .secret_id(&object.name)
                    .set_version_id(object.version.clone())
                    .set_version_stage(object.label.clone())
                    .send()
                    .await
                    .map_err(|e| from_sdk(&what, &e));
                self.record(
                    "secretsmanager",
                    "GetSecretValue",
                    region,
                    sent.as_ref().err().map(|c| c.error.class),
                    started,
                );
                let out = sent?;
                let value = match (out.secret_string(), out.secret_binary()) {
                    (Some(s), _) => SecretValue::new(s.as_bytes().to_vec()),
                    (None, Some(b)) => SecretValue::new(b.as_ref().to_vec()),
                    (None, None) => {
                        return Err(plain(
                            ErrorClass::Client(ClientKind::Invalid),
                            format!("{what}: neither SecretString nor SecretBinary"),
                        ))
                    }
                };
                let version = out.version_id().unwrap_or_default().to_string();
                Ok(Fetched { value, version })
            }
        });
        split(join_all(calls).await)
    }

    /// GetParameters in calls of at most 10 names, all calls at once.
    async fn parameters(
        &self,
        region: &Region,
        signing: &Signing,
        batch: &[ObjectRef],
    ) -> (Vec<Answer>, bool) {
        let client = self.clients(region, signing).ssm;
        let calls: Vec<Vec<usize>> = rounds(batch)
            .into_iter()
            .flat_map(|round| {
                round
                    .chunks(MAX_NAMES)
                    .map(<[usize]>::to_vec)
                    .collect::<Vec<_>>()
            })
            .collect();
        let futures = calls.iter().map(|indices| {
            let objects: Vec<ObjectRef> = indices.iter().map(|&i| batch[i].clone()).collect();
            let client = &client;
            async move { self.parameter_batch(client, region, &objects).await }
        });
        let mut answers: Vec<Option<Answer>> = vec![None; batch.len()];
        let mut stale = false;
        for (indices, (call_answers, call_stale)) in calls.iter().zip(join_all(futures).await) {
            stale |= call_stale;
            for (&i, answer) in indices.iter().zip(call_answers) {
                answers[i] = Some(answer);
            }
        }
        let missing = || Err(StoreError::new(ErrorClass::Transport, "no answer"));
        (
            answers
                .into_iter()
                .map(|a| a.unwrap_or_else(missing))
                .collect(),
            stale,
        )
    }

    async fn parameter_batch(
        &self,
        client: &aws_sdk_ssm::Client,
        region: &Region,
        batch: &[ObjectRef],
    ) -> (Vec<Answer>, bool) {
        // Two objects may ask for the same name (different aliases): ask once.
        let names: Vec<String> = batch
            .iter()
            .map(request_name)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let what = format!("GetParameters {} in {region}", names.join(", "));
        let out = match client
            .get_parameters()
            .set_names(Some(names))
            .with_decryption(true)
            .send()
            .await
        {
            Ok(out) => out,
            Err(e) => {
                let Classified { error, code } = from_sdk(&what, &e);
                return (
                    vec![Err(error); batch.len()],
                    is_stale_credentials(code.as_deref()),
                );
            }
        };
        let invalid = out.invalid_parameters();
        let returned: Vec<(Returned, &aws_sdk_ssm::types::Parameter)> = out
            .parameters()
            .iter()
            .map(|p| {
                let r = Returned {
                    name: p.name().unwrap_or_default().to_string(),
                    arn: p.arn().map(str::to_string),
                    selector: p.selector().map(str::to_string),
                };
                (r, p)
            })
            .collect();
        let answers = batch
            .iter()
            .map(|object| {
                if let Some((_, p)) = returned.iter().find(|(r, _)| answers(object, r)) {
                    return Ok(Fetched {
                        value: SecretValue::new(p.value().unwrap_or_default().as_bytes().to_vec()),
                        version: p.version().to_string(),
                    });
                }
                let message = if invalid.iter().any(|n| *n == request_name(object)) {
                    format!(
                        "GetParameters in {region}: parameters not found or not readable: {}",
                        invalid.join(", ")
                    )
                } else {
                    format!(
                        "GetParameters in {region}: no answer for {}",
                        request_name(object)
                    )
                };
                Err(StoreError::new(
                    ErrorClass::Client(ClientKind::NotFound),
                    message,
                ))
            })
            .collect();
        (answers, false)
    }
}

fn plain(class: ErrorClass, message: String) -> Classified {
    Classified {
        error: StoreError::new(class, message),
        code: None,
    }
}

fn split(results: Vec<Result<Fetched, Classified>>) -> (Vec<Answer>, bool) {
    let stale = results
        .iter()
        .any(|r| matches!(r, Err(c) if is_stale_credentials(c.code.as_deref())));
    (
        results
            .into_iter()
            .map(|r| r.map_err(|c| c.error))
            .collect(),
        stale,
    )
}

#[async_trait]
impl SecretStore for AwsStore {
    fn batch_limit(&self, kind: ObjectKind) -> usize {
        match kind {
            ObjectKind::SecretsManager => 1,
            ObjectKind::SsmParameter => MAX_NAMES,
        }
    }

    #[tracing::instrument(name = "aws_fetch", skip_all, fields(%region, objects = batch.len()))]
    async fn fetch(
        &self,
        region: &Region,
        identity: &Identity,
        batch: &[ObjectRef],
    ) -> Vec<Answer> {
        let mut retried = false;
        loop {
            let signing = match self.credentials.resolve(identity, region).await {
                Ok(s) => s,
                Err(e) => return vec![Err(e); batch.len()],
            };
            let (secrets, parameters): (Vec<_>, Vec<_>) = batch
                .iter()
                .enumerate()
                .partition(|(_, o)| o.kind == ObjectKind::SecretsManager);
            let secrets: Vec<ObjectRef> = secrets.into_iter().map(|(_, o)| o.clone()).collect();
            let parameter_refs: Vec<ObjectRef> =
                parameters.iter().map(|(_, o)| (*o).clone()).collect();
            let ((mut sm, sm_stale), (mut ssm, ssm_stale)) = futures::join!(
                self.secrets(region, &signing, &secrets),
                self.parameters(region, &signing, &parameter_refs)
            );
            if (sm_stale || ssm_stale) && !retried && matches!(signing, Signing::Pod(_)) {
                // Credentials AWS no longer accepts: fetch fresh ones and try once more.
                self.credentials.invalidate(identity).await;
                retried = true;
                continue;
            }
            // Back into request order.
            sm.reverse();
            ssm.reverse();
            return batch
                .iter()
                .map(|o| {
                    let next = if o.kind == ObjectKind::SecretsManager {
                        sm.pop()
                    } else {
                        ssm.pop()
                    };
                    next.unwrap_or_else(|| Err(StoreError::new(ErrorClass::Transport, "no answer")))
                })
                .collect();
        }
    }
}
