//! Compiles `bosun.v1` with a vendored protoc and writes the descriptor set for reflection.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let protoc = protoc_bin_vendored::protoc_bin_path()?;
    // SAFETY: build scripts are single-threaded; prost-build reads PROTOC.
    unsafe { std::env::set_var("PROTOC", protoc) };
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("bosun_descriptor.bin"))
        // Small initial buffers per RPC (see `src/codec.rs`).
        .codec_path("crate::codec::LeanCodec")
        .compile_protos(&["proto/bosun/v1/agent.proto", "proto/bosun/v1/admin.proto"], &["proto"])?;
    println!("cargo:rerun-if-changed=proto");
    Ok(())
}
