//! The wire types, generated at build time from `proto/mirsal/v1` (see `build.rs`).
//!
//! Every message also implements `serde::Serialize`/`Deserialize` following the
//! canonical proto3 JSON mapping (enum names, base64 bytes, RFC 3339 timestamps).

#![allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]

include!(concat!(env!("OUT_DIR"), "/mirsal.v1.rs"));
include!(concat!(env!("OUT_DIR"), "/mirsal.v1.serde.rs"));

/// The encoded file descriptor set of the contract, for reflection and tooling.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/mirsal_descriptor.bin"));
