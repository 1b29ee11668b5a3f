//! Generates the gRPC code. `protoc` comes from `protoc-bin-vendored` so a fresh machine
//! needs no manual step; a `PROTOC` environment variable overrides it.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-env-changed=PROTOC");
    println!("cargo:rerun-if-changed=proto");
    let protoc = match std::env::var_os("PROTOC") {
        Some(path) => std::path::PathBuf::from(path),
        None => protoc_bin_vendored::protoc_bin_path()?,
    };
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    // Two runs so the api listener's reflection describes only the public package.
    let runs: [(&str, &[&str]); 2] = [
        (
            "larder_v1_descriptor.bin",
            &[
                "proto/larder/v1/admin.proto",
                "proto/larder/v1/kv.proto",
                "proto/larder/v1/objects.proto",
            ],
        ),
        (
            "larder_peer_v1_descriptor.bin",
            &[
                "proto/larder/peer/v1/peer.proto",
                "proto/larder/peer/v1/kv.proto",
                "proto/larder/peer/v1/objects.proto",
            ],
        ),
    ];
    for (descriptor, protos) in runs {
        let mut config = prost_build::Config::new();
        config.protoc_executable(&protoc);
        tonic_prost_build::configure()
            .file_descriptor_set_path(out_dir.join(descriptor))
            .compile_with_config(config, protos, &["proto"])?;
    }
    // A third run for the load generator's etcd client: no descriptor, no server.
    let mut config = prost_build::Config::new();
    config.protoc_executable(&protoc);
    tonic_prost_build::configure()
        .build_server(false)
        .compile_with_config(config, &["proto/bench/etcd_kv.proto"], &["proto"])?;
    Ok(())
}
