//! The code generated from `proto/divmid/v1/*.proto`: messages, enums, service traits and
//! clients. The proto files are the only definition of the wire.

#![allow(clippy::all, clippy::pedantic, missing_docs)]

tonic::include_proto!("divmid.v1");

/// The encoded file descriptor set of the API, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("divmid_descriptor");
