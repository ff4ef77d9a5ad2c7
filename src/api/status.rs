//! Every refusal the exchange can give, turned into a gRPC status in one place.

use tonic::{Code, Status};

use crate::error::Reject;
use crate::pipeline::Failure;

/// The status a caller sees for a refused command.
pub fn from_reject(reject: &Reject) -> Status {
    let code = match reject {
        Reject::InvalidArgument { .. } | Reject::TooLong { .. } => Code::InvalidArgument,
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
}
