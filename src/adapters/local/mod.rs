//! Development adapters that need neither AWS nor a cluster.

mod format;
mod identity;
mod store;

pub use format::StoreFile;
pub use identity::NoClusterIdentity;
pub use store::LocalStore;
