fn main() -> std::process::ExitCode {
    larder_cli::main()
}
