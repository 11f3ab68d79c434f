//! AWS provider for the Kubernetes Secrets Store CSI Driver.
//!
//! `domain` is the pure core, `ports` the traits it needs, `service` the mount use case,
//! `adapters` the edges (CSI transport, file system, stores), `config` the settings.

pub mod adapters;
pub mod domain;
pub mod ports;
pub mod service;
