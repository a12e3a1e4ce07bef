//! Compiles `proto/coffer/v1/*.proto` into the gRPC server, client and messages (see
//! `src/grpc`), and writes the descriptor set that server reflection serves. The proto
//! files are parsed by `protox`, a protobuf compiler written in Rust, so a build needs
//! nothing but the Rust toolchain (no `protoc` binary).

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let files = [root.join("coffer/v1/ledger.proto"), root.join("coffer/v1/wallet.proto")];
    for file in &files {
        println!("cargo:rerun-if-changed={}", file.display());
    }
    let descriptors = protox::compile(&files, [&root])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    std::fs::write(out.join("coffer_descriptor.bin"), prost::Message::encode_to_vec(&descriptors))?;
    tonic_prost_build::configure().build_client(true).build_server(true).compile_fds(descriptors)?;
    Ok(())
}
