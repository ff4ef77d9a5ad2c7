//! Every refusal the exchange can give, turned into a gRPC status in one place: the
//! engine's typed rejects, and the API layer's own (a field the wire conversion refuses,
//! a caller without credentials, a limit of the perimeter, a stream that fell behind, a
//! server stopping). Nothing else in `src/api` builds a `Status`; `tests/tidy.rs` keeps
//! it so. A refusal's message starts with the field or setting it is about.

use std::fmt::Display;

use tonic::{Code, Status};

use crate::error::Reject;
use crate::pipeline::Failure;

/// The status a caller sees for a refused command.
pub fn from_reject(reject: &Reject) -> Status {
    let code = match reject {
        Reject::InvalidArgument { .. } | Reject::TooLong { .. } | Reject::TooPrecise { .. } => {
            Code::InvalidArgument
        }
        Reject::InsufficientFunds { .. } | Reject::FailedPrecondition { .. } => {
            Code::FailedPrecondition
        }
        Reject::NotFound { .. } => Code::NotFound,
        Reject::AlreadyExists { .. } => Code::AlreadyExists,
        Reject::PermissionDenied { .. } => Code::PermissionDenied,
        Reject::LimitExceeded { .. } => Code::ResourceExhausted,
    };
    Status::new(code, reject.to_string())
}

/// The status a caller sees for a request the exchange did not carry out.
pub fn from_failure(failure: &Failure) -> Status {
    match failure {
        Failure::Rejected(reject) => from_reject(reject),
        Failure::Unavailable(reason) => Status::unavailable(*reason),
    }
}

/// `INVALID_ARGUMENT`: a field of the request is refused; nothing was changed.
pub fn invalid(field: &str, reason: impl Display) -> Status {
    Status::invalid_argument(format!("{field}: {reason}"))
}

/// `NOT_FOUND`: nothing the caller may see matches the field.
pub fn not_found(field: &str, reason: impl Display) -> Status {
    Status::not_found(format!("{field}: {reason}"))
}

/// `OUT_OF_RANGE`: the field asks for what the server no longer keeps.
pub fn out_of_range(field: &str, reason: impl Display) -> Status {
    Status::out_of_range(format!("{field}: {reason}"))
}

/// `UNAUTHENTICATED`: the request's `authorization` header.
pub fn unauthenticated(reason: &str) -> Status {
    Status::unauthenticated(format!("authorization: {reason}"))
}

/// `PERMISSION_DENIED`: the call needs a role the caller does not have.
pub fn role_required(role: &str) -> Status {
    Status::permission_denied(format!("this call needs the {role} role"))
}

/// `RESOURCE_EXHAUSTED`: a limit of the server is reached; `setting` names it.
pub fn limit_reached(setting: &str, reason: impl Display) -> Status {
    Status::resource_exhausted(format!("{setting}: {reason}"))
}

/// `RESOURCE_EXHAUSTED`: the server does one of these at a time.
pub fn busy(reason: &str) -> Status {
    Status::resource_exhausted(reason.to_string())
}

/// `DEADLINE_EXCEEDED`: the time `setting` allows has passed.
pub fn deadline_exceeded(setting: &str, reason: impl Display) -> Status {
    Status::deadline_exceeded(format!("{setting}: {reason}"))
}

/// `UNAVAILABLE`: the server cannot answer now (catching up, stopping); a retry or a
/// resubscription later may succeed.
pub fn unavailable(reason: impl Display) -> Status {
    Status::unavailable(reason.to_string())
}

/// `UNAVAILABLE`: the exchange stopped before it answered a command or a query.
pub fn exchange_stopped() -> Status {
    unavailable("the exchange stopped before answering")
}

/// `ABORTED`: a stream fell behind its feed; `reason` says how to resubscribe.
pub fn fell_behind(reason: impl Display) -> Status {
    Status::aborted(reason.to_string())
}

/// `INTERNAL`: something of the server's own failed, not the request.
pub fn internal(what: impl Display) -> Status {
    Status::internal(what.to_string())
}

/// `INTERNAL`: a message that does not parse as its protobuf type, as gRPC's status
/// codes and prost's own codec answer it.
pub fn undecodable(error: prost::DecodeError) -> Status {
    Status::internal(error.to_string())
}

/// `INTERNAL`: the sequencer answered a query with a kind of answer its caller does not
/// expect.
pub fn unexpected_answer() -> Status {
    internal("unexpected answer")
}

/// `INTERNAL`: market data's shared state is unreadable (a writer panicked).
pub fn market_data_unavailable() -> Status {
    internal("market data is unavailable")
}

/// A read of the store done on a blocking thread: its result, or `INTERNAL` when the
/// read failed or its thread stopped.
pub fn from_history_read<T, E: Display>(
    joined: Result<Result<T, E>, tokio::task::JoinError>,
) -> Result<T, Status> {
    joined
        .map_err(|_| internal("the history reader stopped"))?
        .map_err(|error| internal(format!("history: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::Asset;

    #[test]
    fn each_reject_maps_to_its_code_with_the_field_in_the_message() {
        let cases = [
            (
                Reject::invalid("price", "must be positive"),
                Code::InvalidArgument,
            ),
            (
                Reject::InsufficientFunds {
                    field: "quantity",
                    asset: Asset::Usd,
                    needed: 2,
                    available: 1,
                },
                Code::FailedPrecondition,
            ),
            (
                Reject::TooLong {
                    field: "memo",
                    length_max: 256,
                },
                Code::InvalidArgument,
            ),
            (
                Reject::TooPrecise {
                    field: "amount",
                    places_max: 6,
                },
                Code::InvalidArgument,
            ),
            (Reject::NotFound { field: "order_id" }, Code::NotFound),
            (
                Reject::AlreadyExists {
                    field: "client_order_id",
                },
                Code::AlreadyExists,
            ),
            (
                Reject::LimitExceeded {
                    field: "open_orders_per_account_max",
                    limit: 3,
                },
                Code::ResourceExhausted,
            ),
        ];
        for (reject, code) in cases {
            let status = from_reject(&reject);
            assert_eq!(status.code(), code, "{reject}");
            assert_eq!(status.message(), reject.to_string());
        }
        let status = from_failure(&Failure::Unavailable("busy"));
        assert_eq!(status.code(), Code::Unavailable);
    }

    #[test]
    fn the_layers_own_refusals_name_their_field_or_setting_first() {
        let cases = [
            (
                invalid("depth", "at most 1000"),
                Code::InvalidArgument,
                "depth: at most 1000",
            ),
            (
                not_found("order_id", "no match"),
                Code::NotFound,
                "order_id: no match",
            ),
            (
                out_of_range("from_seq", "gone"),
                Code::OutOfRange,
                "from_seq: gone",
            ),
            (
                unauthenticated("unknown token"),
                Code::Unauthenticated,
                "authorization: unknown token",
            ),
            (
                limit_reached("connections_max", "reached"),
                Code::ResourceExhausted,
                "connections_max: reached",
            ),
            (
                deadline_exceeded("server.request_timeout_ms", "late"),
                Code::DeadlineExceeded,
                "server.request_timeout_ms: late",
            ),
            (
                role_required("issuer"),
                Code::PermissionDenied,
                "this call needs the issuer role",
            ),
            (fell_behind("resubscribe"), Code::Aborted, "resubscribe"),
            (
                exchange_stopped(),
                Code::Unavailable,
                "the exchange stopped before answering",
            ),
        ];
        for (status, code, message) in cases {
            assert_eq!((status.code(), status.message()), (code, message));
        }
    }

    #[tokio::test]
    async fn a_failed_or_stopped_history_read_is_internal() {
        let read = tokio::task::spawn_blocking(|| Err::<u64, _>("disk on fire")).await;
        let status = from_history_read(read).expect_err("the read failed");
        assert_eq!(status.code(), Code::Internal);
        assert_eq!(status.message(), "history: disk on fire");
        let read = tokio::task::spawn_blocking(|| Ok::<u64, &str>(7)).await;
        assert_eq!(from_history_read(read).expect("read"), 7);
    }
}
