//! The AWS adapters against moto (a real AWS emulator) through a fault-injecting proxy:
//! Secrets Manager, Parameter Store, IRSA through STS, failover, call counts.

use crate::common;

use std::sync::Arc;

use common::aws_env::{aws_env, contents, AwsEnv, REGION};
use common::fault_proxy::Fault;
use common::request::Mount;
use provider::service::{MountError, MountOutcome, MountService, Mounter};

/// The role `Irsa` gives every pod.
const ROLE: &str = common::aws_env::ROLE;

/// The AWS environment and the mount service over it.
struct Env {
    aws: AwsEnv,
    service: MountService,
}

async fn env() -> Option<Env> {
    let aws = aws_env().await?;
    let service = aws.service();
    Some(Env { aws, service })
}

fn version<'a>(out: &'a MountOutcome, id: &str) -> &'a str {
    &out.versions.iter().find(|v| v.id == id).unwrap().version
}

#[tokio::test]
async fn secrets_manager_by_name_arn_version_stage_and_binary() {
    let Some(env) = env().await else { return };
    let client = env.aws.secrets_manager().await;
    let created = client
        .create_secret()
        .name("app/db")
        .secret_string("v1-value")
        .send()
        .await
        .unwrap();
    let arn = created.arn().unwrap().to_string();
    let v1 = created.version_id().unwrap().to_string();
    let v2 = client
        .put_secret_value()
        .secret_id("app/db")
        .secret_string("v2-value")
        .send()
        .await
        .unwrap()
        .version_id()
        .unwrap()
        .to_string();
    client
        .create_secret()
        .name("cert")
        .secret_binary(aws_smithy_types::Blob::new(vec![0u8, 159, 146, 150]))
        .send()
        .await
        .unwrap();

    let objects = format!(
        "- {{objectName: app/db, objectType: secretsmanager}}\n\
         - {{objectName: '{arn}', objectAlias: by-arn}}\n\
         - {{objectName: app/db, objectType: secretsmanager, objectAlias: pinned, objectVersion: '{v1}'}}\n\
         - {{objectName: app/db, objectType: secretsmanager, objectAlias: previous, objectVersionLabel: AWSPREVIOUS}}\n\
         - {{objectName: cert, objectType: secretsmanager}}\n"
    );
    let out = env
        .service
        .mount(Mount::of(&objects).parsed())
        .await
        .unwrap();
    assert_eq!(contents(&out, "app_db"), b"v2-value");
    assert_eq!(version(&out, "app_db"), v2);
    assert_eq!(contents(&out, "by-arn"), b"v2-value");
    assert_eq!(contents(&out, "pinned"), b"v1-value");
    assert_eq!(version(&out, "pinned"), v1);
    assert_eq!(contents(&out, "previous"), b"v1-value");
    assert_eq!(contents(&out, "cert"), &[0u8, 159, 146, 150]);
    assert_eq!(env.aws.proxy.count("GetSecretValue"), 5);
}

#[tokio::test]
async fn a_missing_secret_is_not_found_naming_the_object() {
    let Some(env) = env().await else { return };
    let err = env
        .service
        .mount(Mount::of("- {objectName: nope, objectType: secretsmanager}").parsed())
        .await
        .unwrap_err();
    match &err {
        MountError::Fetch { error, .. } => {
            // moto answers 404 where AWS answers 400: both are "not found".
            assert_eq!(
                error.class,
                provider::domain::failover::ErrorClass::Client(
                    provider::domain::failover::ClientKind::NotFound
                )
            );
        }
        other => panic!("{other}"),
    }
    assert!(
        err.to_string().contains("nope") && err.to_string().contains("ResourceNotFoundException"),
        "{err}"
    );
}

#[tokio::test]
async fn parameter_store_types_selectors_and_batches() {
    let Some(env) = env().await else { return };
    let client = env.aws.ssm().await;
    use aws_sdk_ssm::types::ParameterType;
    client
        .put_parameter()
        .name("/app/plain")
        .value("p1")
        .r#type(ParameterType::String)
        .send()
        .await
        .unwrap();
    client
        .put_parameter()
        .name("/app/plain")
        .value("p2")
        .r#type(ParameterType::String)
        .overwrite(true)
        .send()
        .await
        .unwrap();
    client
        .label_parameter_version()
        .name("/app/plain")
        .parameter_version(1)
        .labels("stable")
        .send()
        .await
        .unwrap();
    client
        .put_parameter()
        .name("/app/secure")
        .value("s3cr3t")
        .r#type(ParameterType::SecureString)
        .send()
        .await
        .unwrap();
    client
        .put_parameter()
        .name("/app/list")
        .value("a,b,c")
        .r#type(ParameterType::StringList)
        .send()
        .await
        .unwrap();
    let selectors = "- {objectName: /app/plain, objectType: ssmparameter}\n\
         - {objectName: /app/plain, objectType: ssmparameter, objectAlias: v1, objectVersion: '1'}\n\
         - {objectName: /app/plain, objectType: ssmparameter, objectAlias: stable, objectVersionLabel: stable}\n";
    let out = env
        .service
        .mount(Mount::of(selectors).parsed())
        .await
        .unwrap();
    assert_eq!(contents(&out, "_app_plain"), b"p2");
    assert_eq!(version(&out, "_app_plain"), "2");
    assert_eq!(contents(&out, "v1"), b"p1");
    assert_eq!(version(&out, "v1"), "1");
    assert_eq!(contents(&out, "stable"), b"p1");

    let mut objects = String::from(
        "- {objectName: /app/plain, objectType: ssmparameter}\n\
         - {objectName: /app/secure, objectType: ssmparameter}\n\
         - {objectName: /app/list, objectType: ssmparameter}\n",
    );
    for i in 0..22 {
        client
            .put_parameter()
            .name(format!("/bulk/p{i:02}"))
            .value(format!("value-{i}"))
            .r#type(ParameterType::String)
            .send()
            .await
            .unwrap();
        objects.push_str(&format!(
            "- {{objectName: /bulk/p{i:02}, objectType: ssmparameter}}\n"
        ));
    }
    env.aws.proxy.reset_counts();
    let out = env
        .service
        .mount(Mount::of(&objects).parsed())
        .await
        .unwrap();
    assert_eq!(contents(&out, "_app_plain"), b"p2");
    assert_eq!(
        contents(&out, "_app_secure"),
        b"s3cr3t",
        "SecureString is decrypted"
    );
    assert_eq!(contents(&out, "_app_list"), b"a,b,c");
    assert_eq!(contents(&out, "_bulk_p21"), b"value-21");
    assert_eq!(
        env.aws.proxy.count("GetParameters"),
        3,
        "25 parameters: ceil(25/10) calls"
    );
}

#[tokio::test]
async fn missing_parameters_are_listed_in_one_client_error() {
    let Some(env) = env().await else { return };
    let client = env.aws.ssm().await;
    client
        .put_parameter()
        .name("/here")
        .value("x")
        .r#type(aws_sdk_ssm::types::ParameterType::String)
        .send()
        .await
        .unwrap();
    let objects = "- {objectName: /here, objectType: ssmparameter}\n- {objectName: /gone1, objectType: ssmparameter}\n- {objectName: /gone2, objectType: ssmparameter}\n";
    let err = env
        .service
        .mount(Mount::of(objects).parsed())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("/gone1") && text.contains("/gone2"), "{text}");
    assert!(matches!(err, MountError::Fetch { .. }));
}

#[tokio::test]
async fn irsa_one_sts_call_serves_twenty_mounts_and_every_region() {
    let Some(env) = env().await else { return };
    env.aws.secret_in_both_regions("s").await;
    env.aws.proxy.reset_counts();
    let objects = "- {objectName: s, objectType: secretsmanager, objectAlias: s, failoverObject: {objectName: s}}";
    for _ in 0..20 {
        let out = env
            .service
            .mount(
                Mount::of(objects)
                    .with(&[("failoverRegion", "us-west-2")])
                    .parsed(),
            )
            .await
            .unwrap();
        assert_eq!(contents(&out, "s"), b"in-us-east-1");
    }
    assert_eq!(env.aws.proxy.count("AssumeRoleWithWebIdentity"), 1);
    assert_eq!(env.aws.aws_store.credentials().counts(), (1, 39));
    assert_eq!(env.aws.proxy.count_in("GetSecretValue", "us-east-1"), 20);
    assert_eq!(env.aws.proxy.count_in("GetSecretValue", "us-west-2"), 20);
}

#[tokio::test]
async fn credentials_from_the_volumes_secret_sign_the_calls_without_sts() {
    let Some(env) = env().await else { return };
    env.aws.secret("s", "v").await;
    env.aws.proxy.reset_counts();
    let mut req = Mount::of("- {objectName: s, objectType: secretsmanager}")
        .with(&[("authentication", "nodePublishSecretRef")])
        .parsed();
    req.secrets = provider::domain::mount_secrets::MountSecrets::parse(
        r#"{"aws_access_key_id": "AKIASTATIC", "aws_secret_access_key": "static-secret"}"#,
    )
    .unwrap();
    let out = env.service.mount(req).await.unwrap();
    assert_eq!(contents(&out, "s"), b"v");
    assert_eq!(
        env.aws.proxy.count("AssumeRoleWithWebIdentity"),
        0,
        "no STS call"
    );
    assert_eq!(env.aws.proxy.count("GetSecretValue"), 1);
    let signed_with = env.aws.proxy.state.lock().unwrap().access_keys.clone();
    assert_eq!(signed_with, ["AKIASTATIC"], "signed with the volume's key");
}

const CENTRAL: &str = "arn:aws:iam::210987654321:role/central-reader";

/// A Secrets Manager client in the central account (moto keeps one backend per account,
/// chosen by the credentials), to create what the assumed role will read.
async fn central_sm(env: &Env) -> aws_sdk_secretsmanager::Client {
    let seed = common::seed_config(&env.aws.proxy.url, REGION).await;
    let creds = aws_sdk_sts::Client::new(&seed)
        .assume_role()
        .role_arn(CENTRAL)
        .role_session_name("seed")
        .send()
        .await
        .unwrap()
        .credentials
        .unwrap();
    let config = aws_sdk_secretsmanager::config::Builder::from(&seed)
        .credentials_provider(aws_credential_types::Credentials::new(
            creds.access_key_id(),
            creds.secret_access_key(),
            Some(creds.session_token().to_string()),
            None,
            "seed",
        ))
        .build();
    aws_sdk_secretsmanager::Client::from_conf(config)
}

#[tokio::test]
async fn a_class_role_is_assumed_with_the_pods_web_identity_once_per_role_and_external_id() {
    let Some(env) = env().await else { return };
    central_sm(&env)
        .await
        .create_secret()
        .name("s")
        .secret_string("central")
        .send()
        .await
        .unwrap();
    env.aws.secret("s", "own").await;
    env.aws.proxy.reset_counts();
    let class = "- {objectName: s, objectType: secretsmanager}";
    let assumed = [
        ("assumeRoleArn", CENTRAL),
        ("assumeRoleExternalId", "team-a"),
        ("assumeRoleDuration", "30m"),
    ];
    for _ in 0..3 {
        let out = env
            .service
            .mount(Mount::of(class).with(&assumed).parsed())
            .await
            .unwrap();
        assert_eq!(
            contents(&out, "s"),
            b"central",
            "read in the role's account"
        );
    }
    assert_eq!(env.aws.proxy.count("AssumeRoleWithWebIdentity"), 1);
    assert_eq!(env.aws.proxy.count("AssumeRole"), 1, "cached per role");
    let body = env.aws.proxy.state.lock().unwrap().last_body["AssumeRole"].clone();
    assert!(body.contains("ExternalId=team-a"), "{body}");
    assert!(body.contains("DurationSeconds=1800"), "{body}");
    assert!(body.contains("RoleSessionName=shop%40web"), "{body}");
    let other = [("assumeRoleArn", "arn:aws:iam::210987654321:role/other")];
    env.service
        .mount(Mount::of(class).with(&other).parsed())
        .await
        .unwrap();
    assert_eq!(
        env.aws.proxy.count("AssumeRole"),
        2,
        "another role, another session"
    );
    env.service.mount(Mount::of(class).parsed()).await.unwrap();
    assert_eq!(
        env.aws.proxy.count("AssumeRole"),
        2,
        "no role: the pod's own credentials"
    );
}

#[tokio::test]
async fn a_refused_role_fails_with_permission_denied_naming_the_role() {
    let Some(env) = env().await else { return };
    env.aws.proxy.fail_next(
        "AssumeRole",
        1,
        Fault {
            status: 403,
            code: "AccessDenied",
        },
    );
    let err = env
        .service
        .mount(
            Mount::of("- {objectName: s, objectType: secretsmanager}")
                .with(&[("assumeRoleArn", CENTRAL)])
                .parsed(),
        )
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(CENTRAL) && text.contains("AccessDenied"),
        "{text}"
    );
    assert_eq!(
        provider::adapters::csi::status_of(&err).code(),
        tonic::Code::PermissionDenied
    );
}

#[tokio::test]
async fn the_volumes_static_credentials_can_assume_a_role_too() {
    let Some(env) = env().await else { return };
    central_sm(&env)
        .await
        .create_secret()
        .name("s")
        .secret_string("v")
        .send()
        .await
        .unwrap();
    env.aws.proxy.reset_counts();
    let mut req = Mount::of("- {objectName: s, objectType: secretsmanager}")
        .with(&[
            ("authentication", "nodePublishSecretRef"),
            ("assumeRoleArn", CENTRAL),
        ])
        .parsed();
    req.secrets = provider::domain::mount_secrets::MountSecrets::parse(
        r#"{"aws_access_key_id": "AKIASTATIC", "aws_secret_access_key": "static-secret"}"#,
    )
    .unwrap();
    env.aws.proxy.reset_counts();
    env.service.mount(req).await.unwrap();
    assert_eq!(env.aws.proxy.count("AssumeRole"), 1);
    let keys = env.aws.proxy.state.lock().unwrap().access_keys.clone();
    assert_eq!(
        keys[0], "AKIASTATIC",
        "AssumeRole signed with the volume's key"
    );
    assert_ne!(
        keys[1], "AKIASTATIC",
        "the read signed with the assumed role's"
    );
}

#[tokio::test]
async fn failover_covers_a_server_error_but_not_a_client_error() {
    let Some(env) = env().await else { return };
    env.aws.secret_in_both_regions("s").await;
    let objects = "- {objectName: s, objectType: secretsmanager, objectAlias: s, failoverObject: {objectName: s}}";
    let two = [("failoverRegion", "us-west-2")];
    // Warm the credentials first so the fault hits the secret call, not STS.
    env.service
        .mount(Mount::of(objects).with(&two).parsed())
        .await
        .unwrap();

    env.aws.proxy.fail_region(
        "us-east-1",
        Fault {
            status: 500,
            code: "InternalServiceError",
        },
    );
    let out = env
        .service
        .mount(Mount::of(objects).with(&two).parsed())
        .await
        .unwrap();
    assert_eq!(contents(&out, "s"), b"in-us-west-2");

    env.aws.proxy.fail_region(
        "us-east-1",
        Fault {
            status: 400,
            code: "AccessDeniedException",
        },
    );
    let err = env
        .service
        .mount(Mount::of(objects).with(&two).parsed())
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("us-east-1") && err.to_string().contains("AccessDeniedException"),
        "{err}"
    );

    env.aws.proxy.fail_region(
        "us-east-1",
        Fault {
            status: 400,
            code: "ThrottlingException",
        },
    );
    let out = env
        .service
        .mount(Mount::of(objects).with(&two).parsed())
        .await
        .unwrap();
    assert_eq!(
        contents(&out, "s"),
        b"in-us-west-2",
        "throttling counts as a server error"
    );
}

#[tokio::test]
async fn when_the_primary_sts_fails_the_failover_regions_sts_is_used() {
    let Some(env) = env().await else { return };
    env.aws.secret_in_both_regions("s").await;
    env.aws.proxy.reset_counts();
    // The first region to ask STS gets 503 on every attempt (the SDK retries 3 times);
    // the credentials call is then made again for the other region, which succeeds.
    env.aws.proxy.fail_next(
        "AssumeRoleWithWebIdentity",
        3,
        Fault {
            status: 503,
            code: "ServiceUnavailable",
        },
    );
    let objects = "- {objectName: s, objectType: secretsmanager, objectAlias: s, failoverObject: {objectName: s}}";
    let out = env
        .service
        .mount(
            Mount::of(objects)
                .with(&[("failoverRegion", "us-west-2")])
                .parsed(),
        )
        .await
        .unwrap();
    assert_eq!(env.aws.proxy.count("AssumeRoleWithWebIdentity"), 4);
    // Exactly one region's fetch ran with credentials: its answer is the mount's.
    assert_eq!(env.aws.proxy.count("GetSecretValue"), 1);
    assert!(contents(&out, "s").starts_with(b"in-us-"));
    assert_eq!(env.aws.aws_store.credentials().counts().0, 2);
}

#[tokio::test]
async fn concurrent_identical_mounts_share_aws_calls() {
    let Some(env) = env().await else { return };
    env.aws.seeded(&env.service, "s", "v").await;
    let service = Arc::new(env.service);
    let mounts = (0..30).map(|_| {
        let service = service.clone();
        async move {
            service
                .mount(Mount::of("- {objectName: s, objectType: secretsmanager}").parsed())
                .await
                .unwrap()
        }
    });
    futures::future::join_all(mounts).await;
    let calls = env.aws.proxy.count("GetSecretValue");
    assert!(
        calls < 30,
        "30 concurrent identical mounts made {calls} calls"
    );
}

#[tokio::test]
async fn credentials_refused_as_expired_are_dropped_and_the_call_retried_once() {
    let Some(env) = env().await else { return };
    env.aws.seeded(&env.service, "s", "v").await;
    env.aws.proxy.fail_next(
        "GetSecretValue",
        1,
        Fault {
            status: 400,
            code: "ExpiredTokenException",
        },
    );
    let out = env
        .service
        .mount(Mount::of("- {objectName: s, objectType: secretsmanager}").parsed())
        .await
        .unwrap();
    assert_eq!(contents(&out, "s"), b"v");
    assert_eq!(
        env.aws.proxy.count("AssumeRoleWithWebIdentity"),
        1,
        "fresh credentials after the refusal"
    );
    assert_eq!(env.aws.proxy.count("GetSecretValue"), 2);
}

#[tokio::test]
async fn aws_calls_and_credentials_are_counted_by_bounded_labels() {
    let Some(env) = env().await else { return };
    env.aws.secret("counted", "v").await;
    env.service
        .mount(Mount::of("- {objectName: counted, objectType: secretsmanager}").parsed())
        .await
        .unwrap();
    env.service
        .mount(Mount::of("- {objectName: counted, objectType: secretsmanager}").parsed())
        .await
        .unwrap();
    let _ = env
        .service
        .mount(Mount::of("- {objectName: absent, objectType: secretsmanager}").parsed())
        .await;
    let text = env.aws.metrics.encode();
    for line in [
        r#"aws_calls_total{service="secretsmanager",operation="GetSecretValue",region="us-east-1",outcome="ok"} 2"#,
        r#"aws_calls_total{service="secretsmanager",operation="GetSecretValue",region="us-east-1",outcome="not_found"} 1"#,
        r#"aws_calls_total{service="sts",operation="AssumeRoleWithWebIdentity",region="us-east-1",outcome="ok"} 1"#,
        r#"credential_fetches_total{source="irsa",outcome="ok"} 1"#,
        r#"credential_cache_hits_total{source="irsa"} 2"#,
    ] {
        assert!(text.contains(line), "missing {line} in\n{text}");
    }
    assert!(
        !text.contains("counted"),
        "object names never become labels"
    );
}

#[tokio::test]
async fn sts_refusing_the_role_is_an_authentication_error_naming_the_role() {
    let Some(env) = env().await else { return };
    env.aws.proxy.fail_next(
        "AssumeRoleWithWebIdentity",
        1,
        Fault {
            status: 403,
            code: "AccessDenied",
        },
    );
    let err = env
        .service
        .mount(Mount::of("- {objectName: s, objectType: secretsmanager}").parsed())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains(ROLE) && text.contains("AccessDenied"),
        "{text}"
    );
    match err {
        MountError::Fetch { error, .. } => assert_eq!(
            error.class,
            provider::domain::failover::ErrorClass::Client(
                provider::domain::failover::ClientKind::AccessDenied
            )
        ),
        other => panic!("{other}"),
    }
}
