//! Secrets Manager and Parameter Store behind the `SecretStore` port.

use std::collections::BTreeSet;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

use async_trait::async_trait;
use aws_config::SdkConfig;
use futures::FutureExt;
use lru::LruCache;

use super::classify::is_stale_credentials;
use super::credentials::{pod_identity::AgentSettings, CredentialResolver, Signing};
use super::errors::{from_sdk, Classified};
use super::ssm_batch::{answers, request_name, rounds, Returned, MAX_NAMES};
use crate::adapters::metrics::{outcome, Metrics};
use crate::domain::failover::{ClientKind, ErrorClass};
use crate::domain::objects::{ObjectKind, ObjectRef, Selection};
use crate::domain::region::Region;
use crate::domain::secret::SecretValue;
use crate::ports::{Fetched, Identity, MatchAccount, SecretStore, Selected, StoreError};

type Answer = Result<Fetched, StoreError>;

pub struct AwsStore {
    sdk: SdkConfig,
    credentials: CredentialResolver,
    metrics: Arc<Metrics>,
    clients: Mutex<ClientCache<Clients>>,
    /// AWS calls in flight at once for one fetch (one mount in one region).
    concurrency: usize,
}

/// AWS calls in flight at once for one mount in one region, unless configured.
pub const DEFAULT_FETCH_CONCURRENCY: usize = 16;

/// The AWS calls one fetch makes: one GetSecretValue per secret, one ExportCertificate
/// per certificate, and GetParameters calls of at most 10 names (in rounds that never
/// ask two selectors of one name). Indices are into the fetched objects.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct CallPlan {
    pub secrets: Vec<usize>,
    pub certificates: Vec<usize>,
    pub parameter_calls: Vec<Vec<usize>>,
}

pub(crate) fn plan_calls(objects: &[ObjectRef]) -> CallPlan {
    let of = |kind: ObjectKind| -> Vec<usize> {
        (0..objects.len())
            .filter(|&i| objects[i].kind == kind)
            .collect()
    };
    let (secrets, certificates, parameters) = (
        of(ObjectKind::SecretsManager),
        of(ObjectKind::Acm),
        of(ObjectKind::SsmParameter),
    );
    let parameter_refs: Vec<ObjectRef> = parameters.iter().map(|&i| objects[i].clone()).collect();
    let parameter_calls = rounds(&parameter_refs)
        .into_iter()
        .flat_map(|round| {
            round
                .chunks(MAX_NAMES)
                .map(|chunk| chunk.iter().map(|&j| parameters[j]).collect())
                .collect::<Vec<Vec<usize>>>()
        })
        .collect();
    CallPlan {
        secrets,
        certificates,
        parameter_calls,
    }
}

/// Clients are built once per region and credentials, not per call: building one
/// assembles its whole runtime (all share the process's one HTTP connection pool).
/// The key holds the full credentials, so two identities can never share a client.
type ClientKey = (Region, Option<(String, String, Option<String>)>);

#[derive(Clone)]
pub(super) struct Clients {
    pub secrets: aws_sdk_secretsmanager::Client,
    pub ssm: aws_sdk_ssm::Client,
    /// Built on the first certificate asked with these credentials in this region:
    /// most nodes never serve one, and a client costs memory in every cached set.
    pub acm: Arc<OnceLock<aws_sdk_acm::Client>>,
}

/// Clients kept at once (regions × live credential sets); the least recently used goes
/// first, one at a time. The Secrets Manager and SSM pair held about 40 KiB beyond the
/// shared pool (measured over 3,000 fresh credential sets, debug build); an ACM client
/// joins a set only once a certificate is asked with it.
const MAX_CLIENTS: usize = 256;
/// Of those, clients of regions AWS does not list (newer or made-up ones): made-up
/// regions can only push each other out, never the clients of listed regions.
const MAX_UNLISTED_CLIENTS: usize = 16;

/// The cached clients, in two LRUs by whether AWS lists their region.
struct ClientCache<V> {
    listed: LruCache<ClientKey, V>,
    unlisted: LruCache<ClientKey, V>,
}

impl<V> Default for ClientCache<V> {
    fn default() -> Self {
        let cap = |n: usize| NonZeroUsize::new(n).unwrap_or(NonZeroUsize::MIN);
        ClientCache {
            listed: LruCache::new(cap(MAX_CLIENTS - MAX_UNLISTED_CLIENTS)),
            unlisted: LruCache::new(cap(MAX_UNLISTED_CLIENTS)),
        }
    }
}

impl<V: Clone> ClientCache<V> {
    fn lru(&mut self, region: &Region) -> &mut LruCache<ClientKey, V> {
        if region.is_listed() {
            &mut self.listed
        } else {
            &mut self.unlisted
        }
    }

    /// The cached clients of `key`, or those `build` makes, kept in place of the least
    /// recently used when full.
    fn get_or_build(&mut self, key: ClientKey, build: impl FnOnce() -> V) -> V {
        let lru = self.lru(&key.0);
        if let Some(found) = lru.get(&key) {
            return found.clone();
        }
        let built = build();
        lru.push(key, built.clone());
        built
    }

    #[cfg(test)]
    fn len(&self) -> (usize, usize) {
        (self.listed.len(), self.unlisted.len())
    }
}

impl AwsStore {
    /// `default_credentials`: sign with the machine's default chain when a mount brings
    /// no token (the `mount` command); never when serving pods.
    pub fn new(
        sdk: SdkConfig,
        agent: AgentSettings,
        default_credentials: bool,
        concurrency: usize,
        metrics: Arc<Metrics>,
    ) -> Self {
        let credentials =
            CredentialResolver::new(sdk.clone(), agent, default_credentials, metrics.clone());
        AwsStore {
            sdk,
            credentials,
            metrics,
            clients: Mutex::default(),
            concurrency: concurrency.max(1),
        }
    }

    pub(super) fn record(
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

    pub(super) fn clients(&self, region: &Region, signing: &Signing) -> Clients {
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
        clients.get_or_build(key, || {
            let aws_region = aws_config::Region::new(region.to_string());
            let mut secrets =
                aws_sdk_secretsmanager::config::Builder::from(&self.sdk).region(aws_region.clone());
            let mut ssm = aws_sdk_ssm::config::Builder::from(&self.sdk).region(aws_region);
            if let Signing::Pod(credentials) = signing {
                secrets = secrets.credentials_provider(credentials.clone());
                ssm = ssm.credentials_provider(credentials.clone());
            }
            Clients {
                secrets: aws_sdk_secretsmanager::Client::from_conf(secrets.build()),
                ssm: aws_sdk_ssm::Client::from_conf(ssm.build()),
                acm: Arc::default(),
            }
        })
    }

    /// The ACM client of `clients` (the same region and credentials), built on first use.
    fn acm<'c>(
        &self,
        clients: &'c Clients,
        region: &Region,
        signing: &Signing,
    ) -> &'c aws_sdk_acm::Client {
        clients.acm.get_or_init(|| {
            let aws_region = aws_config::Region::new(region.to_string());
            let mut acm = aws_sdk_acm::config::Builder::from(&self.sdk).region(aws_region);
            if let Signing::Pod(credentials) = signing {
                acm = acm.credentials_provider(credentials.clone());
            }
            aws_sdk_acm::Client::from_conf(acm.build())
        })
    }

    /// One GetSecretValue. The `Classified` error keeps the AWS code, so a stale
    /// credential can be told apart.
    async fn secret(
        &self,
        client: &aws_sdk_secretsmanager::Client,
        region: &Region,
        object: &ObjectRef,
    ) -> Result<Fetched, Classified> {
        let what = format!("GetSecretValue {} in {region}", object.name);
        let started = Instant::now();
        let sent = client
            .get_secret_value()
            .secret_id(&object.name)
            .set_version_id(object.version.clone())
            .set_version_stage(object.label.clone())
            .send()
            .await
            .map_err(|e| from_sdk(&what, e));
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

    /// Every call of `plan`, at most `concurrency` at once; answers in object order.
    /// Also says whether AWS refused the credentials as stale.
    async fn run_plan(
        &self,
        region: &Region,
        signing: &Signing,
        objects: &[ObjectRef],
        plan: &CallPlan,
    ) -> (Vec<Answer>, bool) {
        use futures::future::BoxFuture;
        use futures::stream::{self, StreamExt};
        type Call<'a> = BoxFuture<'a, (Vec<usize>, Vec<Answer>, bool)>;
        let clients = self.clients(region, signing);
        let mut calls: Vec<Call<'_>> = Vec::new();
        for &i in &plan.secrets {
            let (client, object) = (&clients.secrets, &objects[i]);
            calls.push(
                async move {
                    let result = self.secret(client, region, object).await;
                    let stale =
                        matches!(&result, Err(c) if is_stale_credentials(c.code.as_deref()));
                    (vec![i], vec![result.map_err(|c| c.error)], stale)
                }
                .boxed(),
            );
        }
        for &i in &plan.certificates {
            let (client, object) = (self.acm(&clients, region, signing), &objects[i]);
            calls.push(
                async move {
                    let result = self.certificate(client, region, object).await;
                    let stale = matches!(&result, Err(c) if c.is_stale_credentials());
                    (vec![i], vec![result.map_err(|c| c.error)], stale)
                }
                .boxed(),
            );
        }
        for indices in &plan.parameter_calls {
            let client = &clients.ssm;
            let asked: Vec<ObjectRef> = indices.iter().map(|&i| objects[i].clone()).collect();
            calls.push(
                async move {
                    let (answers, stale) = self.parameter_batch(client, region, &asked).await;
                    (indices.clone(), answers, stale)
                }
                .boxed(),
            );
        }
        let mut answers: Vec<Option<Answer>> = vec![None; objects.len()];
        let mut stale = false;
        let mut done = stream::iter(calls).buffer_unordered(self.concurrency);
        while let Some((indices, call_answers, call_stale)) = done.next().await {
            stale |= call_stale;
            for (i, answer) in indices.into_iter().zip(call_answers) {
                answers[i] = Some(answer);
            }
        }
        (
            answers
                .into_iter()
                .map(|a| a.unwrap_or_else(|| Err(StoreError::no_answer())))
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
                let Classified { error, code } = from_sdk(&what, e);
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

#[async_trait]
impl SecretStore for AwsStore {
    #[tracing::instrument(name = "aws_fetch", skip_all, fields(%region, objects = objects.len()))]
    async fn fetch(
        &self,
        region: &Region,
        identity: &Identity,
        objects: &[ObjectRef],
    ) -> Vec<Answer> {
        let plan = plan_calls(objects);
        let mut retried = false;
        loop {
            let signing = match self.credentials.resolve(identity, region).await {
                Ok(s) => s,
                Err(e) => return vec![Err(e); objects.len()],
            };
            let (answers, stale) = self.run_plan(region, &signing, objects, &plan).await;
            if stale && !retried && matches!(signing, Signing::Pod(_)) {
                // Credentials AWS no longer accepts: fetch fresh ones and try once more.
                self.credentials.invalidate(identity).await;
                retried = true;
                continue;
            }
            return answers;
        }
    }

    #[tracing::instrument(name = "aws_select", skip_all, fields(%region))]
    async fn select(
        &self,
        region: &Region,
        identity: &Identity,
        selection: &Selection,
        limit: usize,
        account: Arc<dyn MatchAccount>,
    ) -> Result<Vec<Selected>, StoreError> {
        let mut retried = false;
        loop {
            let signing = self.credentials.resolve(identity, region).await?;
            match self
                .select_with(region, &signing, selection, limit, &*account)
                .await
            {
                Ok(found) => return Ok(found),
                Err(e)
                    if e.is_stale_credentials()
                        && !retried
                        && matches!(signing, Signing::Pod(_)) =>
                {
                    self.credentials.invalidate(identity).await;
                    retried = true;
                }
                Err(e) => return Err(e.error),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn objects(secrets: usize, parameters: usize) -> Vec<ObjectRef> {
        let make = |kind, name: String| ObjectRef {
            kind,
            name,
            version: None,
            label: None,
        };
        (0..parameters)
            .map(|i| make(ObjectKind::SsmParameter, format!("p{i}")))
            .chain((0..secrets).map(|i| make(ObjectKind::SecretsManager, format!("s{i}"))))
            .chain(
                (0..2).map(|i| make(ObjectKind::Acm, format!("arn:aws:acm:r:1:certificate/{i}"))),
            )
            .collect()
    }

    fn sizes(plan: &CallPlan) -> Vec<usize> {
        let mut sizes: Vec<usize> = plan
            .secrets
            .iter()
            .map(|_| 1)
            .chain(plan.certificates.iter().map(|_| 1))
            .chain(plan.parameter_calls.iter().map(Vec::len))
            .collect();
        sizes.sort();
        sizes
    }

    fn client_key(region: &str, key_id: usize) -> ClientKey {
        let credentials = (format!("AKIA{key_id}"), "secret".into(), None);
        (Region::parse(region).unwrap(), Some(credentials))
    }

    #[test]
    fn clients_are_reused_and_evicted_one_at_a_time_never_all_at_once() {
        let mut cache = ClientCache::<usize>::default();
        let listed = MAX_CLIENTS - MAX_UNLISTED_CLIENTS;
        let mut built = 0;
        for i in 0..listed + 10 {
            cache.get_or_build(client_key("us-east-1", i), || {
                built += 1;
                i
            });
            assert_eq!(cache.len().0, (i + 1).min(listed));
        }
        assert_eq!(built, listed + 10);
        // The most recent are still there; the oldest ten went.
        let last = listed + 9;
        assert_eq!(
            cache.get_or_build(client_key("us-east-1", last), || 0),
            last
        );
        assert_eq!(cache.get_or_build(client_key("us-east-1", 0), || 7), 7);
    }

    #[test]
    fn made_up_regions_cannot_push_out_the_clients_of_listed_regions() {
        let mut cache = ClientCache::<usize>::default();
        cache.get_or_build(client_key("eu-west-1", 1), || 1);
        for i in 0..1000 {
            cache.get_or_build(client_key(&format!("us-made{i}-1"), 1), || i);
        }
        assert_eq!(cache.len(), (1, MAX_UNLISTED_CLIENTS));
        assert_eq!(cache.get_or_build(client_key("eu-west-1", 1), || 0), 1);
    }

    #[test]
    fn parameters_are_batched_by_ten_and_secrets_and_certificates_one_per_call() {
        let objects = objects(2, 12);
        let plan = plan_calls(&objects);
        assert_eq!(sizes(&plan), vec![1, 1, 1, 1, 2, 10]);
        assert!(plan
            .certificates
            .iter()
            .all(|&i| objects[i].kind == ObjectKind::Acm));
        assert!(plan
            .secrets
            .iter()
            .all(|&i| objects[i].kind == ObjectKind::SecretsManager));
    }

    #[test]
    fn parameter_batches_at_the_boundaries_ten_eleven_and_twenty_five() {
        for (count, expected) in [
            (10usize, vec![1usize, 1, 10]),
            (11, vec![1, 1, 1, 10]),
            (25, vec![1, 1, 5, 10, 10]),
        ] {
            assert_eq!(
                sizes(&plan_calls(&objects(0, count))),
                expected,
                "{count} parameters"
            );
        }
    }

    #[test]
    fn every_object_is_in_exactly_one_call() {
        let objects = objects(3, 23);
        let plan = plan_calls(&objects);
        let mut seen: Vec<usize> = plan
            .secrets
            .iter()
            .copied()
            .chain(plan.certificates.iter().copied())
            .chain(plan.parameter_calls.iter().flatten().copied())
            .collect();
        seen.sort();
        assert_eq!(seen, (0..objects.len()).collect::<Vec<_>>());
    }
}
