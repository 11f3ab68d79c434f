//! The integration tests, one binary (linking the provider, the AWS SDK, kube and tonic
//! once instead of once per file): one module per area, and the shared fixtures in
//! `common`. Tests that need moto, the Go tools or a memory cgroup skip with a message
//! unless REQUIRE_MOTO, REQUIRE_GO_TOOLS or REQUIRE_CGROUP make that a failure.

mod common;

mod acm;
mod attacks;
mod aws_contract;
mod aws_credentials_binary;
mod cli;
mod csi_transport;
mod deploy;
mod driver_client;
mod driver_e2e;
mod faults;
mod fuzz_corpus;
mod http_hardening;
mod kube_apiserver;
mod kube_apiserver_deployed;
mod kube_identity;
mod kube_load;
mod logs;
mod operations;
mod pod_identity;
mod properties;
mod selection;
mod sync_controller_e2e;
mod value_cache;
