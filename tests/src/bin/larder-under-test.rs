//! The `larder` binary, built inside the test package so its tests can start it.
fn main() -> std::process::ExitCode {
    larder_cli::main()
}
