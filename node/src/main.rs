fn main() -> std::process::ExitCode {
    larder_node::cli::main()
}
