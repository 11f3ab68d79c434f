//! Where a mount's Kubernetes Event goes (`--events`). Recording must never slow or fail
//! a mount: an implementation queues the event, bounded, and drops it when full.

use crate::domain::pod_events::PodEvent;

/// The pod an event is about: `kubectl describe pod` finds events by these.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

pub trait EventSink: Send + Sync {
    /// Queues `event` for `pod`; returns at once, whatever becomes of it.
    fn record(&self, pod: &PodRef, event: PodEvent);
}
