//! How the process hands memory back to the operating system. glibc's malloc
//! keeps freed pages for reuse; a service that refits its models every few
//! seconds under load then holds the high-water mark of every fit. These two
//! knobs keep RSS near what is live. Other platforms' allocators need neither.

/// Caps glibc's malloc arenas at two. By default every thread that allocates
/// gets its own arena and keeps that arena's freed pages: after a few model fits
/// on the rayon pool the service held ~100 MiB it no longer used (RSS 136 → 234
/// MiB over 8 refits of the demo catalogue; with two arenas 138 → 145 MiB). Two
/// arenas cost no measurable speed here, since the hot paths allocate little.
///
/// Call first thing in `main`, before any other thread exists.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn limit_arenas() {
    // SAFETY: mallopt only changes allocator tuning; called before other threads.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Returns the free pages of every arena to the operating system. Called after
/// a model fit, whose scratch arrays (and the replaced model) were just freed.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn release_free_memory() {
    // SAFETY: malloc_trim is thread-safe and only releases memory malloc no
    // longer hands out.
    unsafe {
        libc::malloc_trim(0);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn limit_arenas() {}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_memory() {}
