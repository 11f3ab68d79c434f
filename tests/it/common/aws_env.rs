//! The one AWS environment of the tests that drive the mount service directly: moto
//! behind the fault proxy, the AWS store as the provider composes it, the identity IRSA
//! would give, and the seeding every contract test starts from.

use std::sync::Arc;

use async_trait::async_trait;
use provider::adapters::aws::credentials::pod_identity::AgentSettings;
use provider::adapters::aws::sdk::{self, SdkSettings};
use provider::adapters::aws::AwsStore;
use provider::adapters::coalesce::Coalescing;
use provider::adapters::driver_sink::DriverSink;
use provider::adapters::metrics::Metrics;
use provider::domain::attributes::{AuthMode, PodInfo, Tokens};
use provider::domain::region::Region;
use provider::domain::secret::Token;
use provider::ports::{Identity, IdentityError, IdentityResolver, SecretStore};
use provider::service::{MountOutcome, MountService, MountSettings, Mounter};

use super::fault_proxy::{self, Proxy};
use super::moto::{self, Moto};
use super::request::Mount;

pub const REGION: &str = "us-east-1";
/// The failover region of the tests that have one.
pub const FAILOVER_REGION: &str = "us-west-2";
pub const ROLE: &str = "arn:aws:iam::123456789012:role/app";

/// The identity IRSA would give every pod: one role, a token.
pub struct Irsa;

#[async_trait]
impl IdentityResolver for Irsa {
    async fn identity(
        &self,
        pod: &PodInfo,
        auth: AuthMode,
        _: &Tokens,
    ) -> Result<Identity, IdentityError> {
        Ok(Identity {
            role_arn: Some(ROLE.into()),
            token: Some(Token::new("header.payload.signature")),
            ..Identity::of_pod(pod, auth)
        })
    }
    async fn node_region(&self, _: &PodInfo) -> Result<Option<Region>, IdentityError> {
        Ok(None)
    }
}

pub struct AwsEnv {
    pub _moto: Moto,
    pub proxy: Proxy,
    /// The AWS store itself (its credential cache counts what it fetched).
    pub aws_store: Arc<AwsStore>,
    /// The store as the provider composes it (coalescing over the AWS store).
    pub store: Arc<dyn SecretStore>,
    /// What both of them count.
    pub metrics: Arc<Metrics>,
}

/// None when moto is not available (and REQUIRE_MOTO is not set).
pub async fn aws_env() -> Option<AwsEnv> {
    let moto = moto::start()?;
    let proxy = fault_proxy::start(&moto.url).await;
    let settings = SdkSettings {
        endpoint_url: Some(proxy.url.clone()),
        ..SdkSettings::default()
    };
    let metrics = Arc::new(Metrics::new());
    let aws_store = Arc::new(AwsStore::new(
        sdk::load(&settings).await.unwrap(),
        AgentSettings::default(),
        false,
        16,
        metrics.clone(),
    ));
    let store: Arc<dyn SecretStore> = Arc::new(Coalescing::new(aws_store.clone(), metrics.clone()));
    Some(AwsEnv {
        _moto: moto,
        proxy,
        aws_store,
        store,
        metrics,
    })
}

impl AwsEnv {
    /// The mount service as the provider composes it in driver-writes mode, every pod
    /// with the identity IRSA gives, settings `settings`.
    pub fn service_with(&self, settings: MountSettings) -> MountService {
        MountService::new(
            Arc::new(Irsa),
            self.store.clone(),
            Arc::new(DriverSink),
            settings,
        )
    }

    /// The same with the default settings.
    pub fn service(&self) -> MountService {
        self.service_with(MountSettings::default())
    }

    /// Seeding clients of Secrets Manager in `region` (through the proxy: counted).
    pub async fn secrets_manager_in(&self, region: &str) -> aws_sdk_secretsmanager::Client {
        aws_sdk_secretsmanager::Client::new(&super::seed_config(&self.proxy.url, region).await)
    }

    pub async fn secrets_manager(&self) -> aws_sdk_secretsmanager::Client {
        self.secrets_manager_in(REGION).await
    }

    pub async fn ssm(&self) -> aws_sdk_ssm::Client {
        aws_sdk_ssm::Client::new(&super::seed_config(&self.proxy.url, REGION).await)
    }

    /// Creates the secret `name` holding `value` in `region`.
    pub async fn secret_in(&self, region: &str, name: &str, value: &str) {
        super::create_secret(&self.proxy.url, region, name, value).await;
    }

    /// Creates the secret `name` holding `value` in REGION.
    pub async fn secret(&self, name: &str, value: &str) {
        self.secret_in(REGION, name, value).await;
    }

    /// Creates `name` in both regions of the failover tests, holding `in-<region>`.
    pub async fn secret_in_both_regions(&self, name: &str) {
        for region in [REGION, FAILOVER_REGION] {
            self.secret_in(region, name, &format!("in-{region}")).await;
        }
    }

    /// The opening of the tests that count calls: the secret `name` holding `value`,
    /// mounted once through `service` (the pod's credentials are then cached), then the
    /// proxy's counters from zero.
    pub async fn seeded(&self, service: &dyn Mounter, name: &str, value: &str) {
        self.secret(name, value).await;
        let class = format!("- {{objectName: {name}, objectType: secretsmanager}}");
        service
            .mount(Mount::of(&class).parsed())
            .await
            .unwrap_or_else(|e| panic!("warming up with {name}: {e}"));
        self.proxy.reset_counts();
    }
}

/// The bytes of one file of a driver-writes mount.
pub fn contents<'a>(out: &'a MountOutcome, path: &str) -> &'a [u8] {
    let files = out
        .files
        .as_ref()
        .expect("driver-writes mode returns files");
    files
        .iter()
        .find(|f| f.path.as_str() == path)
        .unwrap_or_else(|| panic!("no file {path}"))
        .contents
        .expose()
}

/// The text of one file of a driver-writes mount.
pub fn file(out: &MountOutcome, path: &str) -> String {
    String::from_utf8(contents(out, path).to_vec()).unwrap()
}

/// Every file path of a driver-writes mount, sorted.
pub fn paths(out: &MountOutcome) -> Vec<String> {
    let mut paths: Vec<String> = out
        .files
        .as_ref()
        .expect("driver-writes mode returns files")
        .iter()
        .map(|f| f.path.to_string())
        .collect();
    paths.sort();
    paths
}
