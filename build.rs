//! Compiles the API's protobuf files with protox (a protobuf compiler in Rust, so no
//! system `protoc` is needed), generates the tonic services and prost messages, and keeps
//! the encoded file descriptor set for gRPC server reflection.

use std::path::PathBuf;

use prost::Message;

const PROTOS: &[&str] = &[
    "proto/divmid/v1/common.proto",
    "proto/divmid/v1/issuer.proto",
    "proto/divmid/v1/wallet.proto",
    "proto/divmid/v1/metering.proto",
    "proto/divmid/v1/trading.proto",
    "proto/divmid/v1/market_data.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let descriptors = protox::compile(PROTOS, ["proto"])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("divmid_descriptor.bin"),
        descriptors.encode_to_vec(),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
