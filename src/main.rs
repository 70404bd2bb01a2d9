fn main() -> std::process::ExitCode {
    klynge::memory::limit_arenas();
    klynge::cli::main()
}
