//! How the process's heap is kept small: glibc's allocator limited to one
//! arena per core, large buffers mapped from the system and given straight
//! back, and freed heap given back to the system after a large piece of
//! work (a query over millions of samples, a compaction). glibc keeps what
//! was freed in its arenas for reuse, so without this the process would
//! stay at the size of its largest query ever, and the next query's peak
//! would start from there.

/// Allocations from this size on get their own mapping, returned to the
/// system when freed. Set explicitly, the threshold stays put instead of
/// rising to the size of each large buffer freed (up to 32 MB), after
/// which such buffers come from the arenas and leave holes there: writing
/// a block of 100k series then raised the peak by 20 MB. It is above the
/// few hundred kilobytes a remote-write request's buffers take, which
/// mapped afresh each time cost a page fault per 4 KB (glibc's 128 KiB
/// default: 2.2 million faults instead of 40 thousand, and 10 % more CPU
/// per sample). `cargo bench --bench ingest` (100k series), peak and
/// settled RSS per series: dynamic 1267–1503 and 1106–1251; fixed here
/// 1201 and 1087–1092, at the same CPU per sample.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const MMAP_THRESHOLD_BYTES: libc::c_int = 512 * 1024;

/// Free memory at the top of an arena beyond this is given back to the
/// system at once. Fixing the mmap threshold also fixes this one at its
/// 128 KiB default, and arenas then shrank and grew back request after
/// request (700 thousand page faults); a few megabytes is what glibc's own
/// adjustment would reach. Larger free space is returned by
/// [`return_free_memory`] after large work.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const TRIM_THRESHOLD_BYTES: libc::c_int = 4 * 1024 * 1024;

/// Sets glibc's allocator up for a long-running server, unless the
/// environment already says otherwise (`MALLOC_ARENA_MAX`,
/// `MALLOC_MMAP_THRESHOLD_`, `MALLOC_TRIM_THRESHOLD_`); call before any
/// thread starts.
///
/// One malloc arena per core: by default glibc gives threads up to eight
/// arenas per core, and memory freed in one arena cannot serve another
/// thread's next allocation: with tokio's workers and the query threads
/// each holding their own, remote-write ingestion of 100k series measured
/// 2.0 KB RSS per series, against 1.4 KB with one arena per core (`cargo
/// bench --bench ingest`), at the same speed; query latency is unchanged
/// (one arena for the whole process made parallel queries wait on its
/// lock). And fixed mmap and trim thresholds: [`MMAP_THRESHOLD_BYTES`],
/// [`TRIM_THRESHOLD_BYTES`].
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
            let arenas =
                libc::c_int::try_from(crate::parallel::cores()).unwrap_or(libc::c_int::MAX);
            // SAFETY: mallopt only sets a parameter of glibc's allocator; it
            // is called before other threads exist.
            unsafe {
                libc::mallopt(libc::M_ARENA_MAX, arenas);
            }
        }
        for (variable, parameter, value) in [
            (
                "MALLOC_MMAP_THRESHOLD_",
                libc::M_MMAP_THRESHOLD,
                MMAP_THRESHOLD_BYTES,
            ),
            (
                "MALLOC_TRIM_THRESHOLD_",
                libc::M_TRIM_THRESHOLD,
                TRIM_THRESHOLD_BYTES,
            ),
        ] {
            if std::env::var_os(variable).is_none() {
                // SAFETY: as above.
                unsafe {
                    libc::mallopt(parameter, value);
                }
            }
        }
    }
}

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
