//! What an error tells a client about its operation: certainly not applied
//! (`fail`) or maybe applied (`unknown`).
//!
//! # Correctness
//!
//! Only errors that etcd (and Firebreak, which answers with etcd's codes)
//! returns *before* a request can reach the Raft log are `fail`: the request
//! was invalid (`InvalidArgument`, `OutOfRange`, `NotFound`,
//! `AlreadyExists`, `ResourceExhausted`, `PermissionDenied`,
//! `Unauthenticated`, `Unimplemented`), refused as not proposable
//! (`FailedPrecondition`), or never left the client (a malformed URI or
//! argument). `Unavailable` (which etcd uses for timeouts and lost leaders
//! alike), `DeadlineExceeded`, `Cancelled`, transport errors and the
//! client's own timeout are `unknown`. Misclassifying towards `unknown` can
//! only make the checker more permissive, never produce a false FAIL;
//! misclassifying towards `fail` could, so when in doubt it is `unknown`.

use firebreak_check::Outcome;
use tonic::Code;

/// The outcome an error implies.
pub fn classify(error: &etcd_client::Error) -> Outcome {
    use etcd_client::Error as E;
    match error {
        E::GRpcStatus(status) => classify_code(status.code()),
        E::InvalidArgs(_) | E::InvalidUri(_) | E::InvalidMetadataValue(_) | E::EndpointError(_) => Outcome::Fail,
        _ => Outcome::Unknown,
    }
}

/// The outcome a gRPC status code implies.
pub fn classify_code(code: Code) -> Outcome {
    match code {
        Code::InvalidArgument
        | Code::FailedPrecondition
        | Code::OutOfRange
        | Code::NotFound
        | Code::AlreadyExists
        | Code::PermissionDenied
        | Code::Unauthenticated
        | Code::Unimplemented
        | Code::ResourceExhausted => Outcome::Fail,
        _ => Outcome::Unknown,
    }
}

/// Whether the client should move to another endpoint after this error
/// (the endpoint may be down or cut off; an invalid request is not).
pub fn should_fail_over(outcome: Outcome, error: &etcd_client::Error) -> bool {
    match error {
        etcd_client::Error::GRpcStatus(status) => {
            outcome == Outcome::Unknown || status.code() == Code::FailedPrecondition
        }
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_errors_before_the_log_are_failures() {
        assert_eq!(classify_code(Code::InvalidArgument), Outcome::Fail);
        assert_eq!(classify_code(Code::FailedPrecondition), Outcome::Fail);
        assert_eq!(classify_code(Code::Unavailable), Outcome::Unknown);
        assert_eq!(classify_code(Code::DeadlineExceeded), Outcome::Unknown);
        assert_eq!(classify_code(Code::Cancelled), Outcome::Unknown);
        assert_eq!(classify_code(Code::Unknown), Outcome::Unknown);
        let status = etcd_client::Error::GRpcStatus(tonic::Status::unavailable("etcdserver: request timed out"));
        assert_eq!(classify(&status), Outcome::Unknown);
        assert!(should_fail_over(Outcome::Unknown, &status));
        let invalid =
            etcd_client::Error::GRpcStatus(tonic::Status::invalid_argument("etcdserver: key is not provided"));
        assert_eq!(classify(&invalid), Outcome::Fail);
        assert!(!should_fail_over(Outcome::Fail, &invalid));
    }
}
