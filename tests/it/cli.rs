//! The binary as a user runs it: `mount`, `validate`, and serving until SIGTERM.

use crate::common;

use common::request::Mount;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use provider::adapters::csi::proto::VersionRequest;

const BIN: &str = env!("CARGO_BIN_EXE_secrets-store-csi-driver-provider-aws");

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

#[test]
fn mount_writes_the_example_class_from_the_example_store() {
    let target = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["mount", "--store", "local", "--local-store"])
        .arg(repo("examples/local/local-store.yaml"))
        .arg("--class")
        .arg(repo("examples/local/secret-provider-class.yaml"))
        .arg("--target")
        .arg(target.path())
        .env_remove("AWS_REGION")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 6, "{stdout}");
    assert!(stdout.contains("username\t0600\t"), "{stdout}");
    assert_eq!(
        std::fs::read_to_string(target.path().join("username")).unwrap(),
        "memeuser"
    );
    assert_eq!(
        std::fs::read_to_string(target.path().join("db-host-stable")).unwrap(),
        "db-old.internal"
    );
}

#[test]
fn validate_passes_every_example_and_lists_each_error_of_the_broken_one() {
    let examples: Vec<PathBuf> = walk(&repo("examples"))
        .into_iter()
        .filter(|p| {
            p.extension().is_some_and(|e| e == "yaml") && !p.starts_with(repo("examples/invalid"))
        })
        .filter(|p| {
            std::fs::read_to_string(p)
                .unwrap()
                .contains("kind: SecretProviderClass")
        })
        .collect();
    assert!(!examples.is_empty());
    let out = Command::new(BIN)
        .arg("validate")
        .args(&examples)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let out = Command::new(BIN)
        .arg("validate")
        .arg(repo("examples/invalid/broken-class.yaml"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    for object in [
        "\"MySecret\"",
        "Other-AbCdEf",
        "\"/app/db/host\"",
        "\"Creds\"",
        "\"Json\"",
        "\"Dr\"",
    ] {
        assert!(stdout.contains(object), "{object} missing from:\n{stdout}");
    }
}

#[test]
fn a_missing_local_store_is_a_clear_startup_error() {
    let out = Command::new(BIN)
        .args([
            "--store",
            "local",
            "--local-store",
            "/nonexistent/store.yaml",
            "--provider-volume",
        ])
        .arg(tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/store.yaml"));
}

#[tokio::test]
async fn serves_until_sigterm_then_removes_its_socket() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::write_store(dir.path());
    let volume = dir.path().join("providers");
    let mut child = Command::new(BIN)
        .arg(format!("-provider-volume={}", volume.display()))
        .arg("--metrics-addr=")
        .args(["--store", "local", "--local-store"])
        .arg(&store)
        .arg("--driver-writes-secrets")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let socket = volume.join("aws.sock");
    common::wait_for_socket(&socket).await;
    let mut client = common::connect(&socket).await;
    let v = client
        .version(VersionRequest {
            version: "v1alpha1".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(v.runtime_name, "secrets-store-csi-driver-provider-aws");
    let target = dir.path().join("pod");
    std::fs::create_dir(&target).unwrap();
    let response = client
        .mount(Mount::of(common::OBJECTS).target(&target).grpc())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        response.files.len(),
        3,
        "--driver-writes-secrets alone turns the mode on"
    );

    drop(client);
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
    assert!(exit.success(), "{exit:?}");
    assert!(!socket.exists(), "the socket is removed on shutdown");
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[tokio::test]
async fn mount_against_aws_uses_the_machine_credentials_and_aws_endpoint_url() {
    let Some(moto) = common::moto::start() else {
        return;
    };
    common::create_secret(&moto.url, "eu-west-1", "MySecret", r#"{"username":"u1"}"#).await;
    let dir = tempfile::tempdir().unwrap();
    let class = dir.path().join("class.yaml");
    std::fs::write(
        &class,
        "kind: SecretProviderClass\nmetadata: {name: c}\nspec:\n  provider: aws\n  parameters:\n    objects: |\n      - objectName: MySecret\n        objectType: secretsmanager\n        jmesPath: [{path: username, objectAlias: user}]\n",
    )
    .unwrap();
    let target = dir.path().join("out");
    let out = tokio::task::spawn_blocking(move || {
        Command::new(BIN)
            .args([
                "mount",
                "--store",
                "aws",
                "--region",
                "eu-west-1",
                "--class",
            ])
            .arg(&class)
            .arg("--target")
            .arg(&target)
            .env("AWS_ENDPOINT_URL", &moto.url)
            .env("AWS_ACCESS_KEY_ID", "local")
            .env("AWS_SECRET_ACCESS_KEY", "local")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_PROFILE")
            .env_remove("AWS_REGION")
            .output()
            .map(|o| (o, target, moto))
            .unwrap()
    })
    .await
    .unwrap();
    let (out, target, _moto) = out;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(target.join("user")).unwrap(), "u1");
}

/// The whole provider as deployed: the binary serving the socket, roles and the node
/// region from a (fake) API server, IRSA credentials and the secret from moto.
#[tokio::test]
async fn serves_pods_with_irsa_and_the_node_region_from_the_cluster() {
    let Some(moto) = common::moto::start() else {
        return;
    };
    let api = common::fake_apiserver::start().await;
    api.set_service_account(
        "shop",
        "web",
        Some("arn:aws:iam::123456789012:role/web"),
        false,
    );
    api.set_node("node-1", Some("eu-west-1"));
    common::create_secret(&moto.url, "eu-west-1", "MySecret", "cluster-value").await;

    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    api.write_kubeconfig(&kubeconfig).unwrap();
    let volume = dir.path().join("providers");
    let mut child = common::deployed_provider(&volume, &kubeconfig, "node-1", &moto.url)
        .arg("--driver-writes-secrets=true")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let socket = volume.join("aws.sock");
    common::wait_for_socket(&socket).await;
    let mut client = common::connect(&socket).await;
    let tokens = r#"{"sts.amazonaws.com":{"token":"header.payload.sig","expirationTimestamp":"2030-01-01T00:00:00Z"}}"#;
    // No region in the class: it comes from the node's label.
    let request = Mount::of("- {objectName: MySecret, objectType: secretsmanager}")
        .target(dir.path())
        .without("region");
    let with_token = request.with(&[("csi.storage.k8s.io/serviceAccount.tokens", tokens)]);
    let response = client.mount(with_token.grpc()).await.unwrap().into_inner();
    assert_eq!(response.files[0].contents, b"cluster-value");

    // A pod without a token: a clear error, not the node's credentials.
    let without_token = with_token.without("csi.storage.k8s.io/serviceAccount.tokens");
    let status = client.mount(without_token.grpc()).await.unwrap_err();
    assert!(
        status.message().contains("tokenRequests"),
        "{}",
        status.message()
    );

    drop(client);
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    tokio::task::spawn_blocking(move || child.wait().unwrap())
        .await
        .unwrap();
}
