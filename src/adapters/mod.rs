//! The edges: CSI transport, file system, secret stores, cluster lookups.

pub mod accept;
pub mod aws;
pub mod cgroup;
pub mod coalesce;
pub mod csi;
pub mod driver_sink;
pub mod fs_sink;
pub mod kube;
pub mod local;
pub mod metrics;
pub mod ops_http;
pub mod ops_listen;
pub mod x509;
