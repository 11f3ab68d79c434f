//! ACM certificates against moto through the fault proxy: ExportCertificate with a fresh
//! passphrase per call, the key decrypted and matching the certificate, the files and
//! their modes, the version, the value cache, failover, and each refusal in words.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use common::aws_env::{aws_env, contents, file, paths, AwsEnv, Irsa, FAILOVER_REGION, REGION};
use common::fault_proxy::Fault;
use common::request::Mount;
use provider::adapters::driver_sink::DriverSink;
use provider::domain::freshness::CacheBounds;
use provider::service::{
    MountError, MountOutcome, MountService, MountSettings, Mounter, ValueCache, ValueCacheSettings,
};
use testkit::clock::ManualClock;
use x509_cert::der::DecodePem;

/// The mount service with certificates turned on (they are off by default).
fn certificates_on() -> MountSettings {
    MountSettings {
        acm_certificates: true,
        ..MountSettings::default()
    }
}

async fn acm_in(aws: &AwsEnv, region: &str) -> aws_sdk_acm::Client {
    aws_sdk_acm::Client::new(&common::seed_config(&aws.proxy.url, region).await)
}

/// A private certificate (issued at once, exportable) for `domain` in `region`.
async fn private_certificate(aws: &AwsEnv, region: &str, domain: &str) -> String {
    request_private(&acm_in(aws, region).await, region, domain).await
}

/// A private certificate requested of `acm` (moto issues it at once and lets it export).
pub async fn request_private(acm: &aws_sdk_acm::Client, region: &str, domain: &str) -> String {
    acm.request_certificate()
        .domain_name(domain)
        .certificate_authority_arn(format!(
            "arn:aws:acm-pca:{region}:123456789012:certificate-authority/12345678-1234-1234-1234-123456789012"
        ))
        .send()
        .await
        .unwrap()
        .certificate_arn()
        .unwrap()
        .to_string()
}

/// The class of the example: tls.crt, tls.key and ca.crt, plus the bundle.
pub fn tls_class(arn: &str) -> String {
    format!(
        "- objectName: \"{arn}\"\n  objectAlias: bundle.pem\n  jmesPath:\n    - {{path: certificate, objectAlias: tls.crt}}\n    - {{path: privateKey, objectAlias: tls.key}}\n    - {{path: certificateChain, objectAlias: ca.crt}}\n"
    )
}

fn mode(out: &MountOutcome, path: &str) -> u32 {
    out.summary
        .iter()
        .find(|f| f.path == path)
        .unwrap_or_else(|| panic!("no file {path}"))
        .mode
        .bits()
}

fn version<'a>(out: &'a MountOutcome, id: &str) -> &'a str {
    &out.versions.iter().find(|v| v.id == id).unwrap().version
}

/// A decimal number (moto's `Serial`) as big-endian bytes, without leading zeros.
fn decimal_bytes(decimal: &str) -> Vec<u8> {
    let mut digits: Vec<u32> = decimal.bytes().map(|b| u32::from(b - b'0')).collect();
    let mut bytes = Vec::new();
    while digits.iter().any(|&d| d != 0) {
        let mut rest = 0u32;
        let mut next = Vec::new();
        for d in digits {
            let value = rest * 10 + d;
            if !next.is_empty() || value / 256 != 0 {
                next.push(value / 256);
            }
            rest = value % 256;
        }
        bytes.push(rest as u8);
        digits = next;
    }
    bytes.reverse();
    bytes
}

/// Whether the key in `key_pem` (PKCS #8, or PKCS #1 as the driver writes a
/// `kubernetes.io/tls` Secret's) is the private half of the certificate's RSA key (ring
/// reads the key; x509-cert the certificate's SubjectPublicKeyInfo).
pub fn key_matches(certificate_pem: &str, key_pem: &str) -> bool {
    let certificate = x509_cert::Certificate::from_pem(certificate_pem.as_bytes()).unwrap();
    let public = certificate
        .tbs_certificate()
        .subject_public_key_info()
        .subject_public_key
        .raw_bytes()
        .to_vec();
    let (label, der) = x509_cert::der::pem::decode_vec(key_pem.as_bytes()).unwrap();
    let pair = match label {
        "PRIVATE KEY" => ring::rsa::KeyPair::from_pkcs8(&der).expect("an RSA PKCS #8 key"),
        "RSA PRIVATE KEY" => ring::rsa::KeyPair::from_der(&der).expect("an RSA PKCS #1 key"),
        other => panic!("a key labelled {other}"),
    };
    use ring::signature::KeyPair;
    pair.public_key().as_ref() == public.as_slice()
}

#[tokio::test]
async fn an_exported_certificate_mounts_as_tls_crt_and_tls_key_whose_key_matches() {
    let Some(aws) = aws_env().await else { return };
    let service = aws.service_with(certificates_on());
    let arn = private_certificate(&aws, REGION, "app.example.com").await;
    let described = acm_in(&aws, REGION)
        .await
        .describe_certificate()
        .certificate_arn(&arn)
        .send()
        .await
        .unwrap();
    let serial = described
        .certificate()
        .unwrap()
        .serial()
        .unwrap()
        .to_string();

    let out = service
        .mount(Mount::of(&tls_class(&arn)).parsed())
        .await
        .unwrap();
    assert_eq!(paths(&out), ["bundle.pem", "ca.crt", "tls.crt", "tls.key"]);
    let (crt, key, chain) = (
        file(&out, "tls.crt"),
        file(&out, "tls.key"),
        file(&out, "ca.crt"),
    );
    assert!(crt.starts_with("-----BEGIN CERTIFICATE-----"), "{crt}");
    assert!(
        chain.starts_with("-----BEGIN CERTIFICATE-----"),
        "moto's chain"
    );
    assert!(
        key.starts_with("-----BEGIN PRIVATE KEY-----\n"),
        "decrypted"
    );
    assert!(key_matches(&crt, &key), "the key is the certificate's");
    let bundle = file(&out, "bundle.pem");
    assert!(bundle.starts_with(crt.trim_end()), "certificate first");
    assert!(bundle.contains(chain.trim_end()), "then its chain");
    assert!(bundle.trim_end().ends_with(key.trim_end()), "then the key");
    assert_eq!(
        [
            mode(&out, "bundle.pem"),
            mode(&out, "tls.key"),
            mode(&out, "tls.crt"),
            mode(&out, "ca.crt")
        ],
        [0o400, 0o400, 0o644, 0o644]
    );
    // The version is the certificate's serial (moto prints it in decimal).
    let reported = version(&out, "tls.crt").replace(':', "");
    assert_eq!(
        hex::decode(&reported).unwrap(),
        decimal_bytes(&serial),
        "{reported} vs {serial}"
    );
    assert_eq!(aws.proxy.count("ExportCertificate"), 1);
}

#[tokio::test]
async fn each_export_asks_with_a_fresh_passphrase() {
    let Some(aws) = aws_env().await else { return };
    let service = aws.service_with(certificates_on());
    let arn = private_certificate(&aws, REGION, "fresh.example.com").await;
    let class = tls_class(&arn);
    let mut passphrases = Vec::new();
    for _ in 0..2 {
        let out = service.mount(Mount::of(&class).parsed()).await.unwrap();
        assert!(key_matches(&file(&out, "tls.crt"), &file(&out, "tls.key")));
        let body: serde_json::Value =
            serde_json::from_str(&aws.proxy.last_body("ExportCertificate")).unwrap();
        let sent = base64::engine::general_purpose::STANDARD
            .decode(body["Passphrase"].as_str().unwrap())
            .unwrap();
        assert_eq!(sent.len(), 32);
        assert!(sent.iter().all(u8::is_ascii_alphanumeric));
        passphrases.push(sent);
    }
    assert_ne!(passphrases[0], passphrases[1]);
    assert_eq!(
        aws.proxy.count("ExportCertificate"),
        2,
        "no value cache here"
    );
}

#[tokio::test]
async fn certificates_go_through_the_value_cache_and_are_exported_again_when_it_expires() {
    let Some(aws) = aws_env().await else { return };
    let clock = ManualClock::default();
    let ttl = Duration::from_secs(300);
    let cache = Arc::new(ValueCache::new(
        ValueCacheSettings {
            bounds: CacheBounds {
                ttl,
                stale_if_error: Duration::ZERO,
            },
            ..ValueCacheSettings::default()
        },
        Arc::new(clock.clone()),
    ));
    let service = MountService::with_cache(
        Arc::new(Irsa),
        aws.store.clone(),
        Arc::new(DriverSink),
        certificates_on(),
        cache,
    );
    let arn = private_certificate(&aws, REGION, "cached.example.com").await;
    let class = tls_class(&arn);
    let first = service.mount(Mount::of(&class).parsed()).await.unwrap();
    let again = service.mount(Mount::of(&class).parsed()).await.unwrap();
    assert_eq!(
        aws.proxy.count("ExportCertificate"),
        1,
        "the second is served"
    );
    assert_eq!(contents(&first, "tls.key"), contents(&again, "tls.key"));

    // After the entry's TTL the next mount exports again: a renewal (a new serial, so a
    // new version) reaches the pod at the latest one TTL after it. moto cannot renew.
    clock.advance(ttl + Duration::from_secs(1));
    let later = service.mount(Mount::of(&class).parsed()).await.unwrap();
    assert_eq!(aws.proxy.count("ExportCertificate"), 2);
    assert!(key_matches(
        &file(&later, "tls.crt"),
        &file(&later, "tls.key")
    ));
    assert_eq!(
        version(&later, "tls.crt"),
        version(&first, "tls.crt"),
        "same serial"
    );
}

#[tokio::test]
async fn a_certificate_fails_over_on_a_server_error() {
    let Some(aws) = aws_env().await else { return };
    let service = aws.service_with(certificates_on());
    let primary = private_certificate(&aws, REGION, "east.example.com").await;
    let standby = private_certificate(&aws, FAILOVER_REGION, "west.example.com").await;
    let class = format!(
        "- {{objectName: \"{primary}\", objectAlias: tls.pem, failoverObject: {{objectName: \"{standby}\"}}}}\n"
    );
    let two = [("failoverRegion", FAILOVER_REGION)];
    // The first mount also warms the pod's credentials, so the fault hits ACM only.
    let before = service
        .mount(Mount::of(&class).with(&two).parsed())
        .await
        .unwrap();
    aws.proxy.reset_counts();
    aws.proxy.fail_region(
        REGION,
        Fault {
            status: 500,
            code: "InternalFailure",
        },
    );
    let after = service
        .mount(Mount::of(&class).with(&two).parsed())
        .await
        .unwrap();
    assert!(
        file(&before, "tls.pem") != file(&after, "tls.pem"),
        "the standby's certificate, not the primary's"
    );
    assert!(file(&after, "tls.pem").contains("-----BEGIN PRIVATE KEY-----"));
    assert!(
        aws.proxy.count_in("ExportCertificate", REGION) >= 1,
        "tried first"
    );
    assert_eq!(aws.proxy.count_in("ExportCertificate", FAILOVER_REGION), 1);
}

async fn refusal(service: &MountService, arn: &str) -> MountError {
    service
        .mount(Mount::of(&tls_class(arn)).parsed())
        .await
        .unwrap_err()
}

#[tokio::test]
async fn each_refusal_says_which_and_what_to_do() {
    let Some(aws) = aws_env().await else { return };
    let service = aws.service_with(certificates_on());
    let acm = acm_in(&aws, REGION).await;
    let exportable = private_certificate(&aws, REGION, "ok.example.com").await;

    // Imported: never exportable (moto answers ValidationException).
    let out = service
        .mount(Mount::of(&tls_class(&exportable)).parsed())
        .await
        .unwrap();
    let imported = acm
        .import_certificate()
        .certificate(aws_smithy_types::Blob::new(file(&out, "tls.crt")))
        .private_key(aws_smithy_types::Blob::new(file(&out, "tls.key")))
        .send()
        .await
        .unwrap()
        .certificate_arn()
        .unwrap()
        .to_string();
    // Public, requested without export enabled.
    let public = acm
        .request_certificate()
        .domain_name("public.example.com")
        .send()
        .await
        .unwrap()
        .certificate_arn()
        .unwrap()
        .to_string();
    for arn in [&imported, &public] {
        let err = refusal(&service, arn).await;
        let text = err.to_string();
        assert!(
            text.contains(arn.as_str()) && text.contains("cannot be exported"),
            "{text}"
        );
        assert_eq!(
            provider::adapters::csi::status_of(&err).code(),
            tonic::Code::FailedPrecondition,
            "{text}"
        );
    }

    let missing = exportable.replace(&exportable[exportable.len() - 4..], "0000");
    let text = refusal(&service, &missing).await.to_string();
    assert!(text.contains("check the ARN"), "{text}");

    for (code, words, status) in [
        (
            "AccessDeniedException",
            "acm:ExportCertificate",
            tonic::Code::PermissionDenied,
        ),
        (
            "RequestInProgressException",
            "not issued yet",
            tonic::Code::FailedPrecondition,
        ),
    ] {
        aws.proxy
            .fail_next("ExportCertificate", 1, Fault { status: 400, code });
        let err = refusal(&service, &exportable).await;
        let text = err.to_string();
        assert!(text.contains(code) && text.contains(words), "{text}");
        assert_eq!(
            provider::adapters::csi::status_of(&err).code(),
            status,
            "{text}"
        );
        assert!(!text.contains("PRIVATE KEY"), "{text}");
    }
}

/// The `mount` command over a local store holding `arn` with these texts.
fn mount_locally(
    arn: &str,
    certificate: &str,
    chain: &str,
    key: &str,
) -> (std::process::Output, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = serde_json::json!({
        "acm": { arn: {
            "certificate": certificate,
            "certificateChain": chain,
            "privateKey": key,
        }}
    });
    std::fs::write(dir.path().join("store.yaml"), store.to_string()).unwrap();
    let class = format!(
        "apiVersion: secrets-store.csi.x-k8s.io/v1\nkind: SecretProviderClass\nmetadata: {{name: local}}\nspec:\n  provider: aws\n  parameters:\n    region: {REGION}\n    objects: |\n{}",
        tls_class(arn)
            .lines()
            .map(|l| format!("      {l}\n"))
            .collect::<String>()
    );
    std::fs::write(dir.path().join("class.yaml"), class).unwrap();
    let target = dir.path().join("target");
    std::fs::create_dir(&target).unwrap();
    let run =
        std::process::Command::new(env!("CARGO_BIN_EXE_secrets-store-csi-driver-provider-aws"))
            .args([
                "mount",
                "--acm-certificates",
                "--store",
                "local",
                "--local-store",
            ])
            .arg(dir.path().join("store.yaml"))
            .arg("--class")
            .arg(dir.path().join("class.yaml"))
            .arg("--target")
            .arg(&target)
            .env_remove("AWS_REGION")
            .output()
            .unwrap();
    (run, dir)
}

#[tokio::test]
async fn the_local_store_serves_certificates_and_refuses_a_huge_chain_writing_nothing() {
    use std::os::unix::fs::PermissionsExt;
    let Some(aws) = aws_env().await else { return };
    // A real certificate and key, exported from moto, given to the local store in clear.
    let arn = private_certificate(&aws, REGION, "local.example.com").await;
    let out = aws
        .service_with(certificates_on())
        .mount(Mount::of(&tls_class(&arn)).parsed())
        .await
        .unwrap();
    let (crt, chain, key) = (
        file(&out, "tls.crt"),
        file(&out, "ca.crt"),
        file(&out, "tls.key"),
    );

    let (run, dir) = mount_locally(&arn, &crt, &chain, &key);
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let written = dir.path().join("target/tls.key");
    assert_eq!(std::fs::read_to_string(&written).unwrap(), key);
    let mode = std::fs::metadata(&written).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o400);

    // A 70 KiB chain: refused by its size, naming the object, and nothing is written.
    let huge = chain.repeat(70 * 1024 / chain.len() + 1);
    let (run, dir) = mount_locally(&arn, &crt, &huge, &key);
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success(), "{stderr}");
    assert!(
        stderr.contains(&arn) && stderr.contains("more than max_secret_bytes (65536)"),
        "{stderr}"
    );
    assert!(!stderr.contains("PRIVATE KEY"), "{stderr}");
    assert_eq!(
        std::fs::read_dir(dir.path().join("target"))
            .unwrap()
            .count(),
        0
    );
}

#[tokio::test]
async fn certificates_are_off_unless_the_operator_turns_them_on() {
    let Some(aws) = aws_env().await else { return };
    let arn = private_certificate(&aws, REGION, "off.example.com").await;
    let err = aws
        .service()
        .mount(Mount::of(&tls_class(&arn)).parsed())
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("--acm-certificates"), "{text}");
    assert_eq!(
        provider::adapters::csi::status_of(&err).code(),
        tonic::Code::InvalidArgument
    );
    assert_eq!(
        aws.proxy.count("ExportCertificate"),
        0,
        "refused before any call"
    );
}
