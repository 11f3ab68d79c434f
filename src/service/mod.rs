//! The mount use case: from a raw request to published files, over the ports.

mod budget;
mod class_cache;
mod classify;
mod deadline;
mod error;
mod fetch;
mod memory_watch;
mod mount;
mod planning;
mod request;
mod value_cache;

#[cfg(test)]
mod cache_tests;

pub use crate::domain::files::FileSummary;
pub use budget::{BudgetError, MemoryBudget, Reservation};
pub use classify::{classify, Classification, ErrorCode, Failure};
pub use deadline::{gate_for, within_deadline};
pub use error::{InternalError, LimitError, MountError};
pub use memory_watch::{MemoryWatch, MEMORY_REFUSE_PERCENT};
pub use mount::{MountService, MountSettings, Mounter, MAX_LOGGED_ERROR_BYTES};
pub use request::{MountOutcome, MountRequest, RawMountRequest};
pub use value_cache::{CacheStats, ValueCache, ValueCacheSettings};
