//! Giving freed heap back to the system after a large piece of work (a
//! query over millions of samples, a compaction). glibc keeps what was
//! freed in its arenas for reuse, so without this the process would stay
//! at the size of its largest query ever, and the next query's peak would
//! start from there.

/// Returns the heap's free pages to the system (glibc's `malloc_trim`;
/// nothing elsewhere). Takes about a millisecond per hundred megabytes
/// held free; meant for after large work, not after every request.
pub fn return_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks and releases glibc's own free lists;
    // it takes no pointers and is safe to call from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}
