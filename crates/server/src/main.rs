fn main() -> std::process::ExitCode {
    limit_malloc_arenas();
    crmsync::cli::main()
}

/// glibc gives threads that allocate at the same time arenas of their own (up to eight per
/// core) and keeps what is freed in each: applying packets on tokio's blocking threads left
/// each process 60-70 MiB bigger than with two arenas, at the same speed (a 300,000-row
/// initial sync took 13.1 s either way; see the README's performance section).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn limit_malloc_arenas() {
    // SAFETY: mallopt only sets a tunable of the allocator; it runs first in main, before
    // any other thread of this process exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn limit_malloc_arenas() {}
