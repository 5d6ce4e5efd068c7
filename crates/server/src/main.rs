fn main() -> std::process::ExitCode {
    crmsync::cli::main()
}
