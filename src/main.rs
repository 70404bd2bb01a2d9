fn main() -> std::process::ExitCode {
    klynge::cli::main()
}
