//! Generates the wire types from `proto/mirsal/v1` at build time.
//!
//! `protox` compiles the .proto files in pure Rust, so no system `protoc` is needed;
//! `prost-build` turns the descriptors into Rust types and `pbjson-build` adds the
//! canonical proto3 JSON mapping used by the JSON view.

use std::{env, fs, path::PathBuf};

use protox::prost::Message as _;

const PROTO_ROOT: &str = "../../proto";
const FILES: &[&str] = &[
    "mirsal/v1/envelope.proto",
    "mirsal/v1/content.proto",
    "mirsal/v1/letter.proto",
    "mirsal/v1/sealed.proto",
    "mirsal/v1/receipt.proto",
    "mirsal/v1/request.proto",
    "mirsal/v1/notice.proto",
    "mirsal/v1/reason.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed={PROTO_ROOT}");
    for file in FILES {
        println!("cargo:rerun-if-changed={PROTO_ROOT}/{file}");
    }
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let descriptors = protox::compile(FILES, [PROTO_ROOT])?;
    let descriptor_bytes = descriptors.encode_to_vec();
    fs::write(out_dir.join("mirsal_descriptor.bin"), &descriptor_bytes)?;

    prost_build::Config::new()
        .bytes(["."])
        .compile_well_known_types()
        .extern_path(".google.protobuf", "::pbjson_types")
        .compile_fds(descriptors)?;

    pbjson_build::Builder::new().register_descriptors(&descriptor_bytes)?.build(&[".mirsal"])?;
    Ok(())
}
