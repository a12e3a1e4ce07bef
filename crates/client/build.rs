//! Compiles `proto/coffer/v1/ledger.proto` into the `LedgerService` client and its
//! messages (no server: that is the `coffer` crate's). The file is parsed by `protox`, a
//! protobuf compiler written in Rust, so building needs no `protoc` binary.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env::var("CARGO_MANIFEST_DIR")?).join("../../proto");
    let file = root.join("coffer/v1/ledger.proto");
    println!("cargo:rerun-if-changed={}", file.display());
    let descriptors = protox::compile([&file], [&root])?;
    tonic_prost_build::configure().build_client(true).build_server(false).compile_fds(descriptors)?;
    Ok(())
}
