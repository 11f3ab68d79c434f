//! Why a mount failed, each cause kept. Classified once (`classify`); the CSI adapter turns
//! that into a gRPC status.

use super::budget::BudgetError;
use crate::domain::attributes::AttributeErrors;
use crate::domain::class::ClassError;
use crate::domain::extract::ExtractError;
use crate::domain::mode::ModeError;
use crate::domain::objects::ClassErrors;
use crate::domain::plan::PlanError;
use crate::domain::region::{Region, SameRegionError};
use crate::domain::target::TargetError;
use crate::ports::{IdentityError, SinkError, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("invalid mount request: {0}")]
    Attributes(#[from] AttributeErrors),
    #[error("invalid mount request: {0}")]
    Permission(#[from] ModeError),
    #[error("invalid SecretProviderClass: {0}")]
    Class(#[from] ClassErrors),
    #[error("no region: set `region` in the SecretProviderClass, AWS_REGION on the provider, or the label topology.kubernetes.io/region on the node")]
    NoRegion,
    #[error(transparent)]
    SameRegions(#[from] SameRegionError),
    #[error("{0}")]
    Identity(#[from] IdentityError),
    /// No region in the class or the environment, and the pod's node could not tell.
    #[error("could not determine the region from the pod's node ({0}): set `region` in the SecretProviderClass, or AWS_REGION on the provider")]
    RegionLookup(#[source] IdentityError),
    #[error("{}", fetch_message(object, region, error, also_failed))]
    Fetch {
        object: String,
        region: Region,
        #[source]
        error: StoreError,
        /// How many other objects failed too.
        also_failed: usize,
    },
    #[error("{object}: {error}")]
    Extract {
        object: String,
        #[source]
        error: ExtractError,
    },
    /// The fetched values do not fit what the class asks of them: an encoding that does
    /// not decode, a JSON object to expand that is not one, file names known only now
    /// that meet.
    #[error("{0}")]
    Values(#[source] PlanError),
    #[error("{0}")]
    Write(#[from] SinkError),
    /// A configured limit was exceeded (size of a value, of the response, ...).
    #[error("limit exceeded: {0}")]
    Limit(#[from] LimitError),
    #[error("the mount did not finish within {0:?}; nothing was written")]
    Deadline(std::time::Duration),
    #[error("invalid mount request: {0}")]
    Target(#[from] TargetError),
    /// The provider's memory cgroup is near its limit and this mount would write files.
    #[error("the provider's memory is at {} MiB of its {} MiB limit, and files it writes into pods' volumes count against it: raise the provider's memory limit (chart value resources.limits.memory), or let the driver write the files (driverWritesSecrets=true)", used / (1024 * 1024), limit / (1024 * 1024))]
    MemoryPressure { used: u64, limit: u64 },
    #[error("internal error: {0}")]
    Internal(#[from] InternalError),
}

/// Which limit a mount went past.
#[derive(Debug, thiserror::Error)]
pub enum LimitError {
    /// The memory budget had no room for what the mount holds.
    #[error(transparent)]
    Budget(#[from] BudgetError),
    /// A value, a file, the files or their count were larger than a mount may make.
    #[error(transparent)]
    Plan(PlanError),
    /// A selection's matches did not fit its share of the memory budget.
    #[error("{selection}: {source}")]
    SelectionBudget {
        selection: String,
        #[source]
        source: StoreError,
    },
    #[error("{selection} matches more than {limit} objects (max_objects): narrow it")]
    TooManyMatches { selection: String, limit: usize },
    /// Files handed to the driver travel in one gRPC response.
    #[error("the files total {total} bytes, more than max_response_bytes ({max}) that the driver can receive; use provider writes or fewer objects")]
    Response { total: usize, max: usize },
}

/// A failure of the provider itself, not of the request or of what it asks for.
#[derive(Debug, thiserror::Error)]
pub enum InternalError {
    /// The transport closed its mount slots: the provider is stopping.
    #[error("shutting down")]
    ShuttingDown(#[source] tokio::sync::AcquireError),
    /// A mount panicked; the panic's message went to the log.
    #[error("the mount failed unexpectedly (a bug; see the provider logs)")]
    Panicked,
    /// A store broke its port's contract: one answer per object asked for.
    #[error("store answered {answered} results for {asked} objects")]
    StoreMiscount { answered: usize, asked: usize },
}

/// Every way planning fails, sorted once: past a limit, a bad extraction, or values that
/// do not fit what the class asks of them.
impl From<PlanError> for MountError {
    fn from(e: PlanError) -> Self {
        match e {
            PlanError::TooLarge { .. }
            | PlanError::ExtractedTooLarge { .. }
            | PlanError::MountTooLarge { .. }
            | PlanError::TooManyFiles { .. }
            | PlanError::NoRoom { .. }
            | PlanError::Extract {
                source: ExtractError::Budget { .. } | ExtractError::TooLarge { .. },
                ..
            } => MountError::Limit(LimitError::Plan(e)),
            PlanError::Extract { object, source } => MountError::Extract {
                object,
                error: source,
            },
            other => MountError::Values(other),
        }
    }
}

/// A class refused by its own rules, before anyone was asked anything.
impl From<ClassError> for MountError {
    fn from(e: ClassError) -> Self {
        match e {
            ClassError::SameRegions(e) => MountError::SameRegions(e),
            ClassError::Objects(e) => MountError::Class(e),
        }
    }
}

impl From<BudgetError> for MountError {
    fn from(e: BudgetError) -> Self {
        MountError::Limit(LimitError::Budget(e))
    }
}

fn fetch_message(object: &str, region: &Region, error: &StoreError, also_failed: &usize) -> String {
    let mut text = format!("failed to fetch {object} in {region}: {error}");
    if *also_failed > 0 {
        text.push_str(&format!(" (and {also_failed} more objects failed)"));
    }
    text
}
