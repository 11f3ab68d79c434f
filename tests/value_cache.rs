//! The value cache against moto, through the fault proxy: spread remounts cost one read
//! per object per TTL, a rotated value arrives within the TTL, a 5xx is answered with
//! the last good value, and a refusal is not. Time moves on a manual clock (tokio's is
//! left running: the SDK's own timeouts use it).

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use common::fault_proxy::{self, Fault, Proxy};
use common::moto::{self, Moto};
use provider::adapters::aws::credentials::pod_identity::AgentSettings;
use provider::adapters::aws::sdk::{self, SdkSettings};
use provider::adapters::aws::AwsStore;
use provider::adapters::coalesce::Coalescing;
use provider::adapters::driver_sink::DriverSink;
use provider::adapters::metrics::Metrics;
use provider::domain::attributes::{AuthMode, PodInfo, Tokens};
use provider::domain::freshness::CacheBounds;
use provider::domain::region::Region;
use provider::domain::secret::Token;
use provider::ports::clock::ManualClock;
use provider::ports::{Identity, IdentityError, IdentityResolver, SecretStore};
use provider::service::{
    MountOutcome, MountRequest, MountService, MountSettings, Mounter, RawMountRequest, ValueCache,
    ValueCacheSettings,
};

const TTL: Duration = Duration::from_secs(300);
const REGION: &str = "us-east-1";

struct Irsa;

#[async_trait]
impl IdentityResolver for Irsa {
    async fn identity(
        &self,
        pod: &PodInfo,
        auth: AuthMode,
        _: &Tokens,
    ) -> Result<Identity, IdentityError> {
        Ok(Identity {
            auth,
            namespace: pod.namespace.clone(),
            service_account: pod.service_account.clone(),
            pod_name: pod.name.clone(),
            pod_uid: pod.uid.clone(),
            role_arn: Some("arn:aws:iam::123456789012:role/app".into()),
            token: Some(Token::new("header.payload.signature")),
        })
    }
    async fn node_region(&self, _: &PodInfo) -> Result<Option<Region>, IdentityError> {
        Ok(None)
    }
}

struct Env {
    _moto: Moto,
    proxy: Proxy,
    service: MountService,
    clock: ManualClock,
    cache: Arc<ValueCache>,
}

async fn env(stale_if_error: Duration) -> Option<Env> {
    let moto = moto::start()?;
    let proxy = fault_proxy::start(&moto.url).await;
    let settings = SdkSettings {
        endpoint_url: Some(proxy.url.clone()),
        ..SdkSettings::default()
    };
    let metrics = Arc::new(Metrics::new());
    let store = Arc::new(AwsStore::new(
        sdk::load(&settings).await.unwrap(),
        AgentSettings::default(),
        false,
        16,
        metrics.clone(),
    ));
    let store: Arc<dyn SecretStore> = Arc::new(Coalescing::new(store, metrics));
    let clock = ManualClock::default();
    let cache = Arc::new(ValueCache::new(
        ValueCacheSettings {
            bounds: CacheBounds {
                ttl: TTL,
                stale_if_error,
            },
            ..ValueCacheSettings::default()
        },
        Arc::new(clock.clone()),
    ));
    let service = MountService::with_cache(
        Arc::new(Irsa),
        store,
        Arc::new(DriverSink),
        MountSettings::default(),
        cache.clone(),
    );
    Some(Env {
        _moto: moto,
        proxy,
        service,
        clock,
        cache,
    })
}

fn request(objects: &str, pod: usize) -> MountRequest {
    let pod = format!("web-{pod}");
    let mut attributes: HashMap<&str, &str> = HashMap::new();
    attributes.insert("objects", objects);
    attributes.insert("region", REGION);
    attributes.insert("csi.storage.k8s.io/pod.namespace", "shop");
    attributes.insert("csi.storage.k8s.io/pod.name", &pod);
    attributes.insert("csi.storage.k8s.io/serviceAccount.name", "web");
    RawMountRequest {
        attributes: serde_json::to_string(&attributes).unwrap(),
        permission: "420".into(),
        target_path: "/unused".into(),
        current_versions: vec![],
    }
    .parse(None)
    .unwrap()
}

fn file(out: &MountOutcome, path: &str) -> String {
    let files = out
        .files
        .as_ref()
        .expect("driver-writes mode returns files");
    let f = files
        .iter()
        .find(|f| f.path.as_str() == path)
        .unwrap_or_else(|| panic!("no file {path}"));
    String::from_utf8(f.contents.expose().to_vec()).unwrap()
}

/// 2 secrets and 12 parameters: per read, 2 GetSecretValue and 2 GetParameters.
async fn seed(env: &Env) -> String {
    let config = common::seed_config(&env.proxy.url, REGION).await;
    let sm = aws_sdk_secretsmanager::Client::new(&config);
    let ssm = aws_sdk_ssm::Client::new(&config);
    let mut objects = String::new();
    for s in ["db", "api"] {
        sm.create_secret()
            .name(s)
            .secret_string(format!("{s}-1"))
            .send()
            .await
            .unwrap();
        objects.push_str(&format!(
            "- {{objectName: {s}, objectType: secretsmanager}}\n"
        ));
    }
    for p in 0..12 {
        ssm.put_parameter()
            .name(format!("/app/p{p}"))
            .value(format!("p{p}-1"))
            .r#type(aws_sdk_ssm::types::ParameterType::String)
            .send()
            .await
            .unwrap();
        objects.push_str(&format!(
            "- {{objectName: /app/p{p}, objectType: ssmparameter, objectAlias: p{p}}}\n"
        ));
    }
    objects
}

#[tokio::test]
async fn spread_remounts_cost_one_read_per_object_per_ttl_and_see_rotations_within_it() {
    let Some(env) = env(Duration::ZERO).await else {
        return;
    };
    let objects = seed(&env).await;
    env.proxy.reset_counts();
    let pods = 20;
    // Two intervals of the TTL, each pod remounting once per TTL at its own offset.
    let mut rotated = false;
    for round in 0..2 {
        for pod in 0..pods {
            let out = env.service.mount(request(&objects, pod)).await.unwrap();
            let db = file(&out, "db");
            if round == 0 {
                assert_eq!(db, "db-1");
            } else {
                assert_eq!(db, "db-2", "the rotation arrived within one TTL");
            }
            if round == 0 && pod == pods / 2 && !rotated {
                let config = common::seed_config(&env.proxy.url, REGION).await;
                aws_sdk_secretsmanager::Client::new(&config)
                    .put_secret_value()
                    .secret_id("db")
                    .secret_string("db-2")
                    .send()
                    .await
                    .unwrap();
                rotated = true;
            }
            env.clock.advance(TTL / pods as u32);
        }
    }
    assert_eq!(
        env.proxy.count("GetSecretValue"),
        2 * 2,
        "2 secrets, read once per TTL, over 2 TTLs"
    );
    assert_eq!(
        env.proxy.count("GetParameters"),
        2 * 2,
        "12 parameters in 2 calls, once per TTL, over 2 TTLs"
    );
    let stats = env.cache.stats();
    assert_eq!(stats.entries, 14);
    assert!(stats.hits >= 14 * (2 * pods as u64 - 2), "{stats:?}");
}

#[tokio::test]
async fn a_server_error_is_answered_with_the_last_good_value_and_a_refusal_is_not() {
    let Some(env) = env(TTL * 12).await else {
        return;
    };
    let config = common::seed_config(&env.proxy.url, REGION).await;
    aws_sdk_secretsmanager::Client::new(&config)
        .create_secret()
        .name("db")
        .secret_string("good")
        .send()
        .await
        .unwrap();
    let class = "- {objectName: db, objectType: secretsmanager}\n";
    env.service.mount(request(class, 0)).await.unwrap();
    env.clock.advance(TTL * 2);
    env.proxy.fail_region(
        REGION,
        Fault {
            status: 503,
            code: "ServiceUnavailable",
        },
    );
    let out = env.service.mount(request(class, 0)).await.unwrap();
    assert_eq!(file(&out, "db"), "good");
    assert_eq!(env.cache.stats().stale_served, 1);
    assert!(
        env.proxy.count("GetSecretValue") >= 2,
        "the store was asked first"
    );

    env.proxy.fail_region(
        REGION,
        Fault {
            status: 400,
            code: "AccessDeniedException",
        },
    );
    let e = env.service.mount(request(class, 0)).await.unwrap_err();
    assert!(e.to_string().contains("db"), "{e}");
    env.proxy.fail_region(
        REGION,
        Fault {
            status: 503,
            code: "ServiceUnavailable",
        },
    );
    assert!(
        env.service.mount(request(class, 0)).await.is_err(),
        "a refusal forgot the value: a later outage cannot bring it back"
    );
    assert_eq!(env.cache.stats().stale_served, 1);
}
