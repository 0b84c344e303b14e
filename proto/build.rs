fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto/sloth.proto");
    tonic_prost_build::configure().compile_protos(&["proto/sloth.proto"], &["proto"])?;
    Ok(())
}
