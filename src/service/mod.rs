//! The mount use case: from a raw request to published files, over the ports.

mod error;
mod fetch;
mod mount;

pub use error::MountError;
pub use mount::{FileSummary, MountOutcome, MountRequest, MountService, MountSettings, Mounter};
