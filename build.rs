//! Compiles the v1alpha1 provider protocol with protox, a pure-Rust proto compiler,
//! so that building the crate never needs a system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/v1alpha1.proto");
    let descriptors = protox::compile(["proto/v1alpha1.proto"], ["proto"])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
