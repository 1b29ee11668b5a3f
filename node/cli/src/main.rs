//! The `larder` binary; the command line lives in the library, which the integration
//! tests also start.
fn main() -> std::process::ExitCode {
    larder_cli::main()
}
