//! The code generated from `proto/divmid/v1/*.proto`: messages, enums, service traits and
//! clients, and serde implementations following protobuf's JSON mapping with the proto's
//! field names (for `divmid --output json`). The proto files are the only definition of
//! the wire.

#![allow(clippy::all, clippy::pedantic, missing_docs)]

tonic::include_proto!("divmid.v1");
include!(concat!(env!("OUT_DIR"), "/divmid.v1.serde.rs"));

pub use super::book_update::BookUpdate;
pub use super::session_response::OrderSessionResponse;
pub use super::trade_batch::TradeBatch;

/// The members of `BookUpdate`'s `update`.
pub mod book_update {
    pub use crate::api::book_update::Update;
}

/// The members of `OrderSessionResponse`'s `result`.
pub mod order_session_response {
    pub use crate::api::session_response::Result;
}

/// The encoded file descriptor set of the API, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("divmid_descriptor");
