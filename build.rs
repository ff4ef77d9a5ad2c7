//! Compiles the API's protobuf files with protox (a protobuf compiler in Rust, so no
//! system `protoc` is needed), generates the tonic services and prost messages, and keeps
//! the encoded file descriptor set for gRPC server reflection. pbjson-build adds serde
//! implementations of every message following protobuf's JSON mapping (with the proto's
//! own field names, every field written), for the command-line client's `--output json`
//! and the web gateway.

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
    let encoded = descriptors.encode_to_vec();
    std::fs::write(out.join("divmid_descriptor.bin"), &encoded)?;
    // `TradeBatch` and `BookUpdate` are written by hand (`src/api/trade_batch.rs`,
    // `src/api/book_update.rs`) so that subscribers share encodings, and
    // `OrderSessionResponse` (`src/api/session_response.rs`) so that a session's answers
    // are written as bytes straight from the outcomes; they are the same messages on the
    // wire.
    let trade_batch = (
        ".divmid.v1.TradeBatch",
        "crate::api::trade_batch::TradeBatch",
    );
    let book_update = (
        ".divmid.v1.BookUpdate",
        "crate::api::book_update::BookUpdate",
    );
    let session_response = (
        ".divmid.v1.OrderSessionResponse",
        "crate::api::session_response::OrderSessionResponse",
    );
    pbjson_build::Builder::new()
        .register_descriptors(&encoded)?
        .preserve_proto_field_names()
        // Empty lists and zeros are written too: a JSON reader finds every field.
        .emit_fields()
        .exclude([trade_batch.0, book_update.0, session_response.0])
        .build(&[".divmid.v1"])?;
    tonic_prost_build::configure()
        .codec_path("crate::api::codec::Codec")
        .build_client(true)
        .build_server(true)
        .extern_path(trade_batch.0, trade_batch.1)
        .extern_path(book_update.0, book_update.1)
        .extern_path(session_response.0, session_response.1)
        .compile_fds(descriptors)?;
    Ok(())
}
