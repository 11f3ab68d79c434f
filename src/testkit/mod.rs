//! Stand-ins for the world outside, shared by the integration tests and the benchmark:
//! a fake Kubernetes API server and a fast AWS stub. Never used by the provider itself.

pub mod aws_stub;
pub mod fake_apiserver;
