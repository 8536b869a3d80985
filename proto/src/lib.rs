//! The `bosun.v1` gRPC API: generated types, clients and servers, and the file descriptor set
//! that servers register for reflection. Domain types live in `bosun-core`; conversions sit
//! at the edges (control plane, agent, CLI).

#![allow(clippy::all, missing_docs)]

pub mod codec;
pub mod convert;

pub mod v1 {
    tonic::include_proto!("bosun.v1");
}

/// Encoded `FileDescriptorSet` of `bosun.v1`, for tonic-reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("bosun_descriptor");
