//! Selection by path, prefix and tag against moto, through the fault proxy:
//! GetParametersByPath (pages, recursion), BatchGetSecretValue with filters (pages,
//! tags), a refusal by IAM, and the max_objects bound; per-secret errors against the
//! benchmark's stub (moto reports them only for listed ids).

use crate::common;

use std::sync::Arc;

use common::aws_env::{aws_env, file, paths, AwsEnv, Irsa};
use common::fault_proxy::Fault;
use common::request::Mount;
use provider::adapters::driver_sink::DriverSink;
use provider::domain::objects::YamlLimits;
use provider::service::{MountError, MountService, MountSettings, Mounter};

/// The mount service over `aws`, refusing classes of more than `max_objects` objects.
fn service(aws: &AwsEnv, max_objects: usize) -> MountService {
    aws.service_with(MountSettings {
        yaml_limits: YamlLimits {
            max_objects,
            ..YamlLimits::default()
        },
        ..MountSettings::default()
    })
}

#[tokio::test]
async fn a_parameter_path_follows_every_page_and_recurses_only_when_asked() {
    let Some(aws) = aws_env().await else { return };
    let ssm = aws.ssm().await;
    let names: Vec<String> = (0..15)
        .map(|i| format!("/app/p{i:02}"))
        .chain((0..3).map(|i| format!("/app/sub/q{i}")))
        .chain(["/other/x".to_string()])
        .collect();
    for name in &names {
        ssm.put_parameter()
            .name(name)
            .value(format!("value of {name}"))
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .send()
            .await
            .unwrap();
    }
    let svc = service(&aws, 256);
    aws.proxy.reset_counts();
    let flat = svc
        .mount(Mount::of("- {objectType: ssmparameter, select: {path: /app}}\n").parsed())
        .await
        .unwrap();
    assert_eq!(paths(&flat).len(), 15, "{:?}", paths(&flat));
    assert_eq!(file(&flat, "_app_p07"), "value of /app/p07", "decrypted");
    assert_eq!(aws.proxy.count("GetParametersByPath"), 2, "pages of 10");
    let deep = svc
        .mount(Mount::of("- {objectType: ssmparameter, select: {path: /app/, recursive: true}, filePermission: \"0400\"}\n").parsed())
        .await
        .unwrap();
    let all = paths(&deep);
    assert_eq!(all.len(), 18);
    assert!(all.contains(&"_app_sub_q2".to_string()), "{all:?}");
    assert!(!all.iter().any(|p| p.contains("other")));
    assert!(deep
        .files
        .as_ref()
        .unwrap()
        .iter()
        .all(|f| f.mode.bits() == 0o400));
    assert!(deep.versions.iter().all(|v| v.version == "1"));
}

#[tokio::test]
async fn secrets_by_name_prefix_follow_pages_and_by_tag_choose_only_the_tagged() {
    let Some(aws) = aws_env().await else { return };
    let sm = aws.secrets_manager().await;
    for i in 0..25 {
        let mut create = sm
            .create_secret()
            .name(format!("svc/s{i:02}"))
            .secret_string(format!("secret {i}"));
        if i < 2 {
            create = create.tags(
                aws_sdk_secretsmanager::types::Tag::builder()
                    .key("team")
                    .value("payments")
                    .build(),
            );
        }
        create.send().await.unwrap();
    }
    sm.create_secret()
        .name("elsewhere/x")
        .secret_string("x")
        .send()
        .await
        .unwrap();
    let svc = service(&aws, 256);
    aws.proxy.reset_counts();
    let out = svc
        .mount(Mount::of("- {objectType: secretsmanager, select: {namePrefix: svc/}}\n- {objectName: elsewhere/x, objectType: secretsmanager, objectAlias: x}\n").parsed())
        .await
        .unwrap();
    let all = paths(&out);
    assert_eq!(all.len(), 26, "{all:?}");
    assert_eq!(file(&out, "svc_s13"), "secret 13");
    assert_eq!(file(&out, "x"), "x");
    assert_eq!(aws.proxy.count("BatchGetSecretValue"), 2, "pages of 20");
    let tagged = svc
        .mount(
            Mount::of(
                "- {objectType: secretsmanager, select: {tagKey: team, tagValue: payments}}\n",
            )
            .parsed(),
        )
        .await
        .unwrap();
    assert_eq!(paths(&tagged), ["svc_s00", "svc_s01"]);
}

#[tokio::test]
async fn a_selection_refused_by_iam_fails_naming_it_and_the_cause() {
    let Some(aws) = aws_env().await else { return };
    aws.proxy.fail_next(
        "BatchGetSecretValue",
        1,
        Fault {
            status: 400,
            code: "AccessDeniedException",
        },
    );
    let err = service(&aws, 256)
        .mount(Mount::of("- {objectType: secretsmanager, select: {namePrefix: svc/}}\n").parsed())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, MountError::Fetch { .. }), "{text}");
    assert!(
        text.contains("select name prefix `svc/`") && text.contains("AccessDeniedException"),
        "{text}"
    );
}

#[tokio::test]
async fn more_matches_than_max_objects_fail_after_the_first_page() {
    let Some(aws) = aws_env().await else { return };
    let ssm = aws.ssm().await;
    for i in 0..30 {
        ssm.put_parameter()
            .name(format!("/many/p{i}"))
            .value("v")
            .r#type(aws_sdk_ssm::types::ParameterType::String)
            .send()
            .await
            .unwrap();
    }
    aws.proxy.reset_counts();
    let err = service(&aws, 5)
        .mount(Mount::of("- {objectType: ssmparameter, select: {path: /many}}\n").parsed())
        .await
        .unwrap_err();
    assert!(matches!(err, MountError::Limit(_)), "{err}");
    assert!(err.to_string().contains("more than 5"), "{err}");
    assert_eq!(aws.proxy.count("GetParametersByPath"), 1, "stopped paging");
}

/// The benchmark's stub serves both selection operations in their wire format, and a
/// secret a selection matches but may not read fails the mount naming it.
#[tokio::test]
async fn against_the_stub_selections_page_and_a_per_secret_error_names_the_secret() {
    use provider::adapters::aws::credentials::pod_identity::AgentSettings;
    use provider::adapters::aws::sdk::{self, SdkSettings};
    use provider::adapters::aws::AwsStore;
    use provider::adapters::metrics::Metrics;
    use testkit::aws_stub::{self, SELECTION_SIZE};

    let stub = aws_stub::start(std::time::Duration::ZERO).await.unwrap();
    let settings = SdkSettings {
        endpoint_url: Some(stub.url.clone()),
        ..SdkSettings::default()
    };
    let store = Arc::new(AwsStore::new(
        sdk::load(&settings).await.unwrap(),
        AgentSettings::default(),
        false,
        16,
        Arc::new(Metrics::new()),
    ));
    let svc = MountService::new(
        Arc::new(Irsa),
        store,
        Arc::new(DriverSink),
        MountSettings::default(),
    );
    let both = "- {objectType: ssmparameter, select: {path: /app}}\n- {objectType: secretsmanager, select: {namePrefix: svc/}}\n";
    let out = svc.mount(Mount::of(both).parsed()).await.unwrap();
    assert_eq!(paths(&out).len(), 2 * SELECTION_SIZE);
    assert_eq!(file(&out, "_app_param-11"), "/app/param-11=1");
    assert_eq!(file(&out, "svc_secret-3"), "svc/secret-3=1");
    assert_eq!(stub.count("GetParametersByPath"), 2, "12 in pages of 10");
    assert_eq!(stub.count("BatchGetSecretValue"), 1, "12 in one page of 20");

    stub.fail_selected_secret("AccessDeniedException");
    let err = svc.mount(Mount::of(both).parsed()).await.unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("secret `svc/secret-0`") && text.contains("AccessDeniedException"),
        "{text}"
    );
    assert!(matches!(err, MountError::Fetch { .. }));
}
