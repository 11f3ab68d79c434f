//! The failover decision (spec §7), over the classified outcome of each region.

use std::fmt;

/// Which side of an exchange failed, which decides whether another region may answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorClass {
    /// 4xx: the request is wrong for every region (not found, denied, invalid).
    Client(ClientKind),
    /// 5xx or throttling: this region is unwell.
    Server,
    /// Timeout, refused or broken connection: this region is unreachable.
    Transport,
}

/// The client errors a user acts on differently.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientKind {
    NotFound,
    AccessDenied,
    Invalid,
    Other,
}

impl ErrorClass {
    pub fn is_client(self) -> bool {
        matches!(self, ErrorClass::Client(_))
    }
}

impl fmt::Display for ErrorClass {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ErrorClass::Client(ClientKind::NotFound) => "not found",
            ErrorClass::Client(ClientKind::AccessDenied) => "access denied",
            ErrorClass::Client(ClientKind::Invalid) => "invalid request",
            ErrorClass::Client(ClientKind::Other) => "client error",
            ErrorClass::Server => "server error",
            ErrorClass::Transport => "transport error",
        })
    }
}

/// What one region said about one object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Answered,
    Failed(ErrorClass),
}

/// Which region's answer to use, or which region's error fails the mount.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    UsePrimary,
    UseFailover,
    FailPrimary,
    FailFailover,
}

/// Both answer: the primary wins. A client error anywhere fails the mount (primary first).
/// A server or transport error in one region is covered by an answer from the other.
pub fn decide(primary: Outcome, failover: Option<Outcome>) -> Decision {
    use Outcome::{Answered, Failed};
    let Some(failover) = failover else {
        return match primary {
            Answered => Decision::UsePrimary,
            Failed(_) => Decision::FailPrimary,
        };
    };
    match (primary, failover) {
        (Failed(c), _) if c.is_client() => Decision::FailPrimary,
        (_, Failed(c)) if c.is_client() => Decision::FailFailover,
        (Answered, _) => Decision::UsePrimary,
        (Failed(_), Answered) => Decision::UseFailover,
        (Failed(_), Failed(_)) => Decision::FailPrimary,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Outcome::{Answered, Failed};

    const NOT_FOUND: Outcome = Failed(ErrorClass::Client(ClientKind::NotFound));
    const DENIED: Outcome = Failed(ErrorClass::Client(ClientKind::AccessDenied));
    const SERVER: Outcome = Failed(ErrorClass::Server);
    const TRANSPORT: Outcome = Failed(ErrorClass::Transport);

    #[test]
    fn single_region_uses_its_answer_or_fails() {
        assert_eq!(decide(Answered, None), Decision::UsePrimary);
        assert_eq!(decide(SERVER, None), Decision::FailPrimary);
        assert_eq!(decide(NOT_FOUND, None), Decision::FailPrimary);
    }

    #[test]
    fn both_answer_primary_wins() {
        assert_eq!(decide(Answered, Some(Answered)), Decision::UsePrimary);
    }

    #[test]
    fn server_or_transport_error_in_one_region_is_covered_by_the_other() {
        assert_eq!(decide(SERVER, Some(Answered)), Decision::UseFailover);
        assert_eq!(decide(TRANSPORT, Some(Answered)), Decision::UseFailover);
        assert_eq!(decide(Answered, Some(SERVER)), Decision::UsePrimary);
        assert_eq!(decide(Answered, Some(TRANSPORT)), Decision::UsePrimary);
    }

    #[test]
    fn a_client_error_in_either_region_fails_the_mount() {
        assert_eq!(decide(NOT_FOUND, Some(Answered)), Decision::FailPrimary);
        assert_eq!(decide(Answered, Some(DENIED)), Decision::FailFailover);
        assert_eq!(decide(SERVER, Some(DENIED)), Decision::FailFailover);
        assert_eq!(decide(NOT_FOUND, Some(DENIED)), Decision::FailPrimary);
    }

    #[test]
    fn both_regions_down_fails_with_the_primary() {
        assert_eq!(decide(SERVER, Some(TRANSPORT)), Decision::FailPrimary);
    }
}
