//! AWS provider for the Kubernetes Secrets Store CSI Driver.
//!
//! `domain` is the pure core, `ports` the traits it needs, `service` the mount use case,
//! `adapters` the edges (CSI transport, file system, stores), `config` and `cli` the
//! settings and command line, `app` the composition root.

pub mod adapters;
pub mod app;
pub mod cli;
pub mod config;
pub mod domain;
#[cfg(test)]
mod module_cycles_tests;
pub mod ports;
pub mod service;
