//! The traits the mount use case needs from the outside world. Owned by the core:
//! adapters implement them and turn vendor answers into these types.

pub mod clock;
pub mod events;
pub mod identity;
pub mod memory;
pub mod sink;
pub mod store;

pub use clock::{Clock, SystemClock};
pub use events::{EventSink, PodRef};
pub use identity::{Identity, IdentityError, IdentityResolver};
pub use memory::{MemoryGauge, MemoryUse};
pub use sink::{MountSink, OutputFile, PublishGate, Published, SinkError};
pub use store::{Fetched, MatchAccount, SecretStore, Selected, StoreError, Uncounted};
