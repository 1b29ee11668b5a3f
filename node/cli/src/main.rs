//! The `larder` binary; the command line lives in the library, which the integration
//! tests also start.

// Measured against glibc's malloc, which took 12-14 % of a node's CPU in gets and
// puts (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
fn main() -> std::process::ExitCode {
    larder_cli::main()
}
