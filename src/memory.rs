//! How the process hands memory back to the operating system. The binary runs
//! on mimalloc (`src/main.rs`), which returns freed pages on its own after a
//! short delay; a service that refits its models under load frees a whole
//! model's scratch at once, and hands it back at once here so RSS falls to what
//! is live without waiting for that delay.

/// Returns the free pages of every thread's heap to the operating system. Called
/// after a model fit, whose scratch arrays (and the replaced model) were just
/// freed. A no-op for memory that another allocator manages (the library's own
/// tests run on the system allocator).
pub fn release_free_memory() {
    // SAFETY: mi_collect only releases pages mimalloc no longer hands out; it is
    // thread-safe.
    unsafe {
        libmimalloc_sys::mi_collect(true);
    }
}
