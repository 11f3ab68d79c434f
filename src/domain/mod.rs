//! The pure core: parsing, validation, naming, extraction and the decisions of a mount.
//! Nothing here does I/O or knows tonic, the AWS SDK or Kubernetes.

pub mod arn;
pub mod assume;
pub mod attributes;
pub mod certificate;
pub mod class;
pub mod class_cache;
pub mod duration;
pub mod encoding;
pub mod expand;
pub mod extract;
pub mod failover;
pub mod fetched;
pub mod files;
pub mod footprint;
pub mod freshness;
pub mod jmes;
pub mod json_text;
pub mod mode;
pub mod mount_secrets;
pub mod naming;
pub mod non_string;
pub mod object_id;
pub mod object_kind;
pub mod objects;
pub mod plan;
pub mod pod_events;
pub mod region;
pub mod secret;
pub mod target;
pub mod text;
pub mod versions;
