//! The deploy files agree with the binary: the installer's arguments are accepted, and
//! the Dockerfile builds the binary the way docs/operations.md ("Image") says.

use provider::cli::{normalize_go_flags, Cli};
use provider::config::Settings;

fn repo(path: &str) -> String {
    std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(path)).unwrap()
}

#[test]
fn the_installer_arguments_are_accepted_by_the_binary() {
    use clap::Parser;
    let docs: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(&repo("deploy/installer.yaml")).unwrap();
    let ds = docs.iter().find(|d| d["kind"] == "DaemonSet").unwrap();
    let container = &ds["spec"]["template"]["spec"]["containers"][0];
    let args: Vec<String> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect();
    let argv = std::iter::once("provider".to_string())
        .chain(args)
        .map(std::ffi::OsString::from);
    let cli = Cli::try_parse_from(normalize_go_flags(argv)).unwrap();
    let settings = Settings::load(None, &cli.flags).unwrap();
    assert_eq!(
        settings.provider_volume,
        std::path::PathBuf::from("/var/run/secrets-store-csi-providers")
    );
    assert_eq!(settings.metrics_addr, "0.0.0.0:8989");
    // The socket directory mounted into the container is the one the flag names.
    let mounts = container["volumeMounts"].as_array().unwrap();
    assert!(mounts
        .iter()
        .any(|m| m["mountPath"] == "/var/run/secrets-store-csi-providers"));
    assert!(mounts
        .iter()
        .any(|m| m["mountPropagation"] == "HostToContainer"));
}

#[test]
fn the_dockerfile_builds_the_locked_dist_binary() {
    let dockerfile = repo("deploy/Dockerfile");
    assert!(dockerfile.contains(
        "cargo build --profile dist --locked --bin secrets-store-csi-driver-provider-aws"
    ));
    assert!(dockerfile.contains("cp target/dist/secrets-store-csi-driver-provider-aws"));
    let manifest = repo("Cargo.toml");
    assert!(
        manifest.contains("[profile.dist]") && manifest.contains("strip = true"),
        "the shipped profile exists and strips"
    );
    assert!(
        dockerfile.contains("distroless/cc-debian12"),
        "glibc base with CA certificates"
    );
}
