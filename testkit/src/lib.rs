//! Stand-ins for the world outside the provider, shared by its integration tests, the
//! benchmark (`bench/`) and the fuzz targets (`fuzz/`): a fast AWS stub, a fake
//! Kubernetes API server, a clock that moves when told, and the fuzzing entry points.
//! A crate of its own so that the shipped provider carries none of it.

pub mod aws_stub;
pub mod clock;
pub mod fake_apiserver;
pub mod fuzzing;
