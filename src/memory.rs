//! Keeping memory small across a sync's replies.
//!
//! glibc's allocator raises its mmap threshold each time a large buffer is
//! freed, so the next multi-megabyte reply buffers come from arenas that do
//! not shrink: a sync's resident memory then grows with the number of
//! replies, i.e. with the account. With a fixed threshold, buffers of a few
//! megabytes and more are mapped on their own and given back when dropped.
//!
//! glibc also gives each thread that allocates an arena of its own, up to
//! eight per core, and an arena keeps the most it ever held: a sync's
//! threads (the runtime's, one per SQLite connection, a blocking one that
//! pairs member rows) would each keep their share of the peak. Two arenas
//! are shared by all of them instead.

/// Fixes the threshold at 4 MiB (a webwxbatchgetcontact reply is ~7 MB; a
/// contact page under 1 MB stays in the arenas, which reuse it) and the
/// number of arenas at two. Call it before any other thread starts. No-op
/// outside glibc.
pub fn return_big_buffers() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; it takes the
    // allocator's own lock and may be called at any time.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
        libc::mallopt(libc::M_ARENA_MAX, 2);
    }
}

/// Gives the heap's free pages back to the system (glibc's `malloc_trim`,
/// over every thread's arena). The daemon calls it after each full sync:
/// what a big sync (a re-link above all) freed would otherwise stay
/// resident until the process ends. No-op outside glibc.
pub fn give_back() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory; it takes the
    // allocator's own locks and may be called at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}
