//! AWS: Secrets Manager, Parameter Store, ACM, and credentials from IRSA or Pod Identity.

mod acm;
pub mod classify;
pub mod credentials;
mod errors;
pub mod log_filter;
pub mod sdk;
mod select;
pub mod ssm_batch;
mod store;

pub use store::{AwsStore, DEFAULT_FETCH_CONCURRENCY};
