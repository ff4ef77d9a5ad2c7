//! The gRPC API: the only module that knows tonic and the proto.

pub mod decimal;
pub mod proto;
