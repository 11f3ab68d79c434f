//! The mount use case: from a raw request to published files, over the ports.

mod budget;
mod classify;
mod deadline;
mod error;
mod fetch;
mod mount;
mod value_cache;

#[cfg(test)]
mod cache_tests;

pub use crate::domain::files::FileSummary;
pub use budget::{BudgetError, MemoryBudget, Reservation};
pub use classify::{classify, Classification, ErrorCode, Failure};
pub use deadline::{gate_for, within_deadline};
pub use error::{InternalError, LimitError, MountError};
pub use mount::{
    MemoryWatch, MountOutcome, MountRequest, MountService, MountSettings, Mounter, RawMountRequest,
    MAX_LOGGED_ERROR_BYTES, MEMORY_REFUSE_PERCENT,
};
pub use value_cache::{CacheStats, ValueCache, ValueCacheSettings};
