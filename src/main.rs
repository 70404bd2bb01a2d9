//! The `klynge` binary: the command line of [`klynge::cli`] (serve, ingest,
//! train, refresh, eval, …) over mimalloc.

/// mimalloc instead of glibc's malloc: the request path allocates per candidate
/// and per response field from actix and blocking-pool threads at once, where
/// glibc's few shared arenas (capped at two to keep RSS down) contended; mimalloc's
/// per-thread heaps also hand freed pages back to the system on their own.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    klynge::cli::main()
}
