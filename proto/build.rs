fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/sloth.proto");
    tonic_prost_build::configure()
        // Small per-call buffers: watches are long-lived calls (see src/codec.rs).
        .codec_path("crate::codec::SmallBufferCodec")
        .compile_protos(&["proto/sloth.proto"], &["proto"])?;
    Ok(())
}
