//! How long a fetched value may be served again: the operator's bounds, narrowed by a
//! class's `cacheTTL`, and what a store's error does to a cached value.

use std::time::Duration;

use super::failover::ErrorClass;

/// The operator's bounds (settings `value_cache_ttl`, `value_cache_stale_if_error`).
/// Zero turns each off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheBounds {
    pub ttl: Duration,
    pub stale_if_error: Duration,
}

impl CacheBounds {
    /// How long an entry can still be of use: fresh, or as a stand-in for a failing store.
    pub fn retention(&self) -> Duration {
        self.ttl.max(self.stale_if_error)
    }

    pub fn is_on(&self) -> bool {
        !self.retention().is_zero()
    }
}

/// One class's rules, from the operator's bounds and the class's `cacheTTL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Freshness {
    /// Values selected by label or by the current version.
    ttl: Duration,
    /// Values pinned to a version: immutable in AWS, so the operator's bound applies
    /// even when the class asks for less (but not when it asks for none).
    pinned_ttl: Duration,
    stale_if_error: Duration,
}

/// What a cached entry of a given age is good for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// Serve it without asking the store.
    Fresh,
    /// Ask the store; serve it only if the store fails with a server or transport error.
    StandIn,
    /// Of no use to this class.
    Expired,
}

/// What a store's failure does to the cached entries of that object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// The store is unwell or unreachable: a stand-in may be served.
    MayServeStale,
    /// Not found, access denied, invalid: the failure stands, and the object's entries
    /// of that principal go, so a later outage cannot bring back a revoked value.
    Forget,
}

impl Freshness {
    /// `class_ttl` is the class's `cacheTTL`: it can only lower the operator's bound;
    /// zero reads fresh and serves nothing stale.
    pub fn for_class(bounds: CacheBounds, class_ttl: Option<Duration>) -> Freshness {
        match class_ttl {
            None => Freshness {
                ttl: bounds.ttl,
                pinned_ttl: bounds.ttl,
                stale_if_error: bounds.stale_if_error,
            },
            Some(asked) if asked.is_zero() => Freshness::off(),
            Some(asked) => Freshness {
                ttl: asked.min(bounds.ttl),
                pinned_ttl: bounds.ttl,
                stale_if_error: bounds.stale_if_error,
            },
        }
    }

    pub fn off() -> Freshness {
        Freshness {
            ttl: Duration::ZERO,
            pinned_ttl: Duration::ZERO,
            stale_if_error: Duration::ZERO,
        }
    }

    /// Whether this class reads the cache at all.
    pub fn reads_cache(&self) -> bool {
        !(self.ttl.is_zero() && self.pinned_ttl.is_zero() && self.stale_if_error.is_zero())
    }

    pub fn judge(&self, age: Duration, pinned: bool) -> Use {
        let ttl = if pinned { self.pinned_ttl } else { self.ttl };
        if age < ttl {
            Use::Fresh
        } else if age < self.stale_if_error {
            Use::StandIn
        } else {
            Use::Expired
        }
    }

    pub fn on_failure(class: ErrorClass) -> OnFailure {
        if class.is_client() {
            OnFailure::Forget
        } else {
            OnFailure::MayServeStale
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::failover::ClientKind;

    const MIN: Duration = Duration::from_secs(60);

    fn bounds(ttl: u64, stale: u64) -> CacheBounds {
        CacheBounds {
            ttl: MIN * ttl as u32,
            stale_if_error: MIN * stale as u32,
        }
    }

    #[test]
    fn off_by_default() {
        let f = Freshness::for_class(CacheBounds::default(), None);
        assert!(!f.reads_cache());
        assert_eq!(f.judge(Duration::ZERO, false), Use::Expired);
        assert!(!CacheBounds::default().is_on());
    }

    #[test]
    fn a_value_is_fresh_below_the_ttl_then_a_stand_in_until_the_stale_bound() {
        let f = Freshness::for_class(bounds(5, 30), None);
        assert_eq!(f.judge(MIN * 4, false), Use::Fresh);
        assert_eq!(f.judge(MIN * 5, false), Use::StandIn);
        assert_eq!(f.judge(MIN * 29, false), Use::StandIn);
        assert_eq!(f.judge(MIN * 30, false), Use::Expired);
    }

    #[test]
    fn a_class_can_lower_the_ttl_but_never_raise_it() {
        let lower = Freshness::for_class(bounds(5, 0), Some(MIN));
        assert_eq!(lower.judge(MIN / 2, false), Use::Fresh);
        assert_eq!(lower.judge(MIN * 2, false), Use::Expired);
        let higher = Freshness::for_class(bounds(5, 0), Some(MIN * 60));
        assert_eq!(higher.judge(MIN * 5, false), Use::Expired);
    }

    #[test]
    fn pinned_versions_keep_the_operators_bound_unless_the_class_says_zero() {
        let f = Freshness::for_class(bounds(5, 0), Some(MIN));
        assert_eq!(f.judge(MIN * 2, true), Use::Fresh);
        assert_eq!(f.judge(MIN * 2, false), Use::Expired);
        let zero = Freshness::for_class(bounds(5, 30), Some(Duration::ZERO));
        assert!(!zero.reads_cache());
        assert_eq!(zero.judge(Duration::ZERO, true), Use::Expired);
    }

    #[test]
    fn only_server_and_transport_failures_let_a_stale_value_stand_in() {
        assert_eq!(
            Freshness::on_failure(ErrorClass::Server),
            OnFailure::MayServeStale
        );
        assert_eq!(
            Freshness::on_failure(ErrorClass::Transport),
            OnFailure::MayServeStale
        );
        for kind in [
            ClientKind::NotFound,
            ClientKind::AccessDenied,
            ClientKind::Invalid,
            ClientKind::Other,
        ] {
            assert_eq!(
                Freshness::on_failure(ErrorClass::Client(kind)),
                OnFailure::Forget
            );
        }
    }
}
