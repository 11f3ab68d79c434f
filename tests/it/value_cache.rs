//! The value cache against moto, through the fault proxy: spread remounts cost one read
//! per object per TTL, a rotated value arrives within the TTL, a 5xx is answered with
//! the last good value, and a refusal is not. Time moves on a manual clock (tokio's is
//! left running: the SDK's own timeouts use it).

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use common::aws_env::{aws_env, file, AwsEnv, Irsa, REGION};
use common::fault_proxy::Fault;
use common::request::Mount;
use provider::adapters::driver_sink::DriverSink;
use provider::domain::freshness::CacheBounds;
use provider::service::{MountService, MountSettings, Mounter, ValueCache, ValueCacheSettings};
use testkit::clock::ManualClock;

const TTL: Duration = Duration::from_secs(300);

struct Env {
    aws: AwsEnv,
    service: MountService,
    clock: ManualClock,
    cache: Arc<ValueCache>,
}

async fn env(stale_if_error: Duration) -> Option<Env> {
    let aws = aws_env().await?;
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
        aws.store.clone(),
        Arc::new(DriverSink),
        MountSettings::default(),
        cache.clone(),
    );
    Some(Env {
        aws,
        service,
        clock,
        cache,
    })
}

/// 2 secrets and 12 parameters: per read, 2 GetSecretValue and 2 GetParameters.
async fn seed(env: &Env) -> String {
    let sm = env.aws.secrets_manager().await;
    let ssm = env.aws.ssm().await;
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
    env.aws.proxy.reset_counts();
    let pods = 20;
    // Two intervals of the TTL, each pod remounting once per TTL at its own offset.
    let mut rotated = false;
    for round in 0..2 {
        for pod in 0..pods {
            let out = env
                .service
                .mount(Mount::of(&objects).pod(pod).parsed())
                .await
                .unwrap();
            let db = file(&out, "db");
            if round == 0 {
                assert_eq!(db, "db-1");
            } else {
                assert_eq!(db, "db-2", "the rotation arrived within one TTL");
            }
            if round == 0 && pod == pods / 2 && !rotated {
                env.aws
                    .secrets_manager()
                    .await
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
        env.aws.proxy.count("GetSecretValue"),
        2 * 2,
        "2 secrets, read once per TTL, over 2 TTLs"
    );
    assert_eq!(
        env.aws.proxy.count("GetParameters"),
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
    env.aws.secret("db", "good").await;
    let class = "- {objectName: db, objectType: secretsmanager}\n";
    env.service.mount(Mount::of(class).parsed()).await.unwrap();
    env.clock.advance(TTL * 2);
    env.aws.proxy.fail_region(
        REGION,
        Fault {
            status: 503,
            code: "ServiceUnavailable",
        },
    );
    let out = env.service.mount(Mount::of(class).parsed()).await.unwrap();
    assert_eq!(file(&out, "db"), "good");
    assert_eq!(env.cache.stats().stale_served, 1);
    assert!(
        env.aws.proxy.count("GetSecretValue") >= 2,
        "the store was asked first"
    );

    env.aws.proxy.fail_region(
        REGION,
        Fault {
            status: 400,
            code: "AccessDeniedException",
        },
    );
    let e = env
        .service
        .mount(Mount::of(class).parsed())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("db"), "{e}");
    env.aws.proxy.fail_region(
        REGION,
        Fault {
            status: 503,
            code: "ServiceUnavailable",
        },
    );
    assert!(
        env.service.mount(Mount::of(class).parsed()).await.is_err(),
        "a refusal forgot the value: a later outage cannot bring it back"
    );
    assert_eq!(env.cache.stats().stale_served, 1);
}
