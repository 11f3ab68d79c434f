//! The edges: CSI transport, file system, secret stores, cluster lookups.

pub mod fs_sink;
