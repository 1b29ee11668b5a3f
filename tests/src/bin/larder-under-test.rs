//! The `larder` binary, built inside the test package so its tests can start it: the
//! same main and allocator as `node/cli/src/main.rs`.

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
fn main() -> std::process::ExitCode {
    larder_cli::main()
}
