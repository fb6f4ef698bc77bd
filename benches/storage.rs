//! Storage benchmarks on the shared workload (`benches/common/workload.rs`).
//!
//! `cargo bench --bench storage -- [--series 100000] [--hours 5] [--long-series 2000]`
//! (with `STOP_AFTER_RSS=1` in the environment, it stops after the memory
//! figures, which is what a heap profiler such as heaptrack wants to see).
//!
//! Prints, with the figures the storage issue asks for:
//! append throughput with the WAL on (1 and 2 threads), resident memory per
//! active series once the head holds 2 h, WAL replay time for 2 h (and the
//! stop's head checkpoint and a start from it), bytes on
//! disk per sample after compaction, and select latency for 1 and ~1,000
//! series over 1 h and 24 h — with ratios to the reference figures measured
//! for Prometheus 2.42 and VictoriaMetrics 1.79 on this kind of machine.

mod common;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::workload::{Workload, INTERVAL_MS};
use common::{arg, dir_bytes, status_bytes};
use fleetmon::storage::{
    series_key, Kv, MatchOp, Matcher, OfferedSeries, SeriesSamples, Storage, StorageOptions,
};

const HOUR_STEPS: i64 = 3_600_000 / INTERVAL_MS;
const BATCH_SAMPLES: usize = 5_000;
/// Scrapes generated at a time, so that pre-generated batches stay small.
const SLICE_STEPS: i64 = 20;
const T0: i64 = 1_700_006_400_000; // a multiple of 2 h

/// Counts the bytes the process holds on the heap, to tell the store's own
/// memory from the allocator's retained pages in the RSS figure.
struct CountingAlloc;

static HEAP_BYTES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

// SAFETY: forwards to the system allocator unchanged, only counting sizes.
unsafe impl std::alloc::GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        HEAP_BYTES.fetch_add(layout.size(), std::sync::atomic::Ordering::Relaxed);
        std::alloc::System.alloc(layout)
    }

    // Forwarded too, not left to the default (alloc, then write zeros): the
    // system's calloc hands out fresh pages untouched, and sled's 21.5 MB of
    // zeroed metric histograms, never written, then stay out of the RSS as
    // they do in the server. Without it the empty store measured 30 MB.
    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        HEAP_BYTES.fetch_add(layout.size(), std::sync::atomic::Ordering::Relaxed);
        std::alloc::System.alloc_zeroed(layout)
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        HEAP_BYTES.fetch_sub(layout.size(), std::sync::atomic::Ordering::Relaxed);
        std::alloc::System.dealloc(ptr, layout)
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new: usize) -> *mut u8 {
        HEAP_BYTES.fetch_add(new, std::sync::atomic::Ordering::Relaxed);
        HEAP_BYTES.fetch_sub(layout.size(), std::sync::atomic::Ordering::Relaxed);
        std::alloc::System.realloc(ptr, layout, new)
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn heap_bytes() -> u64 {
    HEAP_BYTES.load(std::sync::atomic::Ordering::Relaxed) as u64
}

/// Resident memory, after handing freed heap pages back to the system so
/// that what the benchmark's own data generation freed is not counted.
fn rss_bytes() -> u64 {
    // SAFETY: malloc_trim only releases free memory held by the allocator.
    unsafe { libc::malloc_trim(0) };
    status_bytes("self", "VmRSS:")
}

fn open(dir: &Path) -> (Storage, fleetmon::storage::ReplayReport) {
    let kv = Kv::open(dir).expect("kv");
    Storage::open(&kv, dir, StorageOptions::default()).expect("storage")
}

/// A series offered with its key, as the scraper (from its series cache)
/// and the remote-write receiver (the request's label bytes) offer theirs.
#[derive(Clone)]
struct Keyed {
    series: SeriesSamples,
    key: Option<Vec<u8>>,
}

impl OfferedSeries for Keyed {
    fn labels(&self) -> impl Iterator<Item = (&str, &str)> {
        self.series.labels()
    }

    fn samples(&self) -> &[(i64, f64)] {
        &self.series.samples
    }

    fn encoded_labels(&self) -> Option<&[u8]> {
        self.key.as_deref()
    }
}

/// Whether the benchmark offers series keys.
#[derive(Clone, Copy, PartialEq)]
enum Keys {
    Offered,
    None,
}

fn keyed(series: SeriesSamples, keys: Keys) -> Keyed {
    let key = (keys == Keys::Offered).then(|| {
        let mut pairs: Vec<(&str, &str)> = series
            .labels
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        pairs.sort_unstable();
        let mut key = Vec::new();
        series_key::encode(&pairs, &mut key);
        key
    });
    Keyed { series, key }
}

/// Appends `steps` scrapes of `workload` from `from_step` with `threads`
/// appenders (each owning a share of the series, as remote-write shards do);
/// returns the samples stored and the time spent in `append` alone (keys
/// are made before the clock starts, as callers cache them).
fn ingest(
    storage: &Arc<Storage>,
    workload: &mut Workload,
    from_step: i64,
    steps: i64,
    threads: usize,
    keys: Keys,
) -> (u64, Duration) {
    let mut stored = 0;
    let mut busy = Duration::ZERO;
    let mut step = from_step;
    while step < from_step + steps {
        let n = SLICE_STEPS.min(from_step + steps - step);
        let batches = workload.batches(T0 + step * INTERVAL_MS, n, 1, BATCH_SAMPLES);
        let mut shares: Vec<Vec<Vec<Keyed>>> = vec![Vec::new(); threads];
        for (i, batch) in batches.into_iter().enumerate() {
            // A batch holds a fixed range of series, so batch i always goes to the same thread.
            let per_step = workload.len().div_ceil(BATCH_SAMPLES);
            let batch = batch.into_iter().map(|s| keyed(s, keys)).collect();
            shares[(i % per_step) % threads].push(batch);
        }
        let start = Instant::now();
        let handles: Vec<_> = shares
            .into_iter()
            .map(|share| {
                let storage = storage.clone();
                std::thread::spawn(move || {
                    let stored = share
                        .iter()
                        .map(|b| storage.append_blocking(b).expect("append").stored)
                        .sum::<u64>();
                    // The generated batches are freed after the clock stops.
                    (stored, share)
                })
            })
            .collect();
        let results: Vec<(u64, Vec<Vec<Keyed>>)> = handles
            .into_iter()
            .map(|h| h.join().expect("appender"))
            .collect();
        busy += start.elapsed();
        stored += results.iter().map(|(n, _)| n).sum::<u64>();
        drop(results);
        step += n;
    }
    (stored, busy)
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn time_select(
    storage: &Storage,
    matchers: &[Matcher],
    mint: i64,
    maxt: i64,
) -> (usize, u64, Duration) {
    let mut runs = Vec::new();
    let mut shape = (0, 0);
    for _ in 0..5 {
        let start = Instant::now();
        let series = storage.select(matchers, mint, maxt).expect("select");
        let samples: usize = series
            .iter()
            .map(|s| s.samples().expect("decode").len())
            .sum();
        runs.push(start.elapsed());
        shape = (series.len(), samples as u64);
    }
    (shape.0, shape.1, median(runs))
}

fn main() {
    let series = arg("--series", 100_000);
    let hours = arg("--hours", 5) as i64;
    let long_series = arg("--long-series", 2_000);
    println!("# fleetmon storage benchmark: {series} series, {hours} h at 15 s; {long_series} series over 24 h for long selects");
    println!("# command: cargo bench --bench storage -- --series {series} --hours {hours} --long-series {long_series}");

    // Append throughput, 1 thread, and memory once the head holds 2 h and a
    // quarter: open chunks are then half full, as they are on average.
    let dir_one = tempfile::tempdir().expect("tempdir");
    // The workload's own series descriptions are not the store's memory: made before the baseline.
    let mut workload = Workload::new(series, 42);
    let process_rss = rss_bytes();
    let one = Arc::new(open(dir_one.path()).0);
    let empty_store_rss = rss_bytes();
    let empty_store_heap = heap_bytes();
    let memory_steps = 2 * HOUR_STEPS + HOUR_STEPS / 4;
    let (stored_head, busy_head) = ingest(&one, &mut workload, 0, memory_steps, 1, Keys::Offered);
    let full_rss = rss_bytes();
    let per_series = |bytes: u64| bytes as f64 / series as f64;
    let rss_per_series = per_series(full_rss.saturating_sub(process_rss));
    let marginal_rss_per_series = per_series(full_rss.saturating_sub(empty_store_rss));
    let heap_per_series = per_series(heap_bytes().saturating_sub(empty_store_heap));
    let (stored_rest, busy_rest) = ingest(
        &one,
        &mut workload,
        memory_steps,
        hours * HOUR_STEPS - memory_steps,
        1,
        Keys::Offered,
    );
    let total_stored = stored_head + stored_rest;
    let one_thread_rate = total_stored as f64 / (busy_head + busy_rest).as_secs_f64();
    println!(
        "append, 1 thread, WAL on:        {:>12.0} samples/s ({total_stored} samples in {:.1?}; series offered with their keys)",
        one_thread_rate,
        busy_head + busy_rest
    );
    println!("RSS per active series, head 2.25 h: {:>9.0} bytes   (process growth, the empty store's fixed cost included; Prometheus 2.42: 3,800–5,200 → ratio {:.2}; VictoriaMetrics 1.79: 2,100 → ratio {:.2}; goal ≤ 1,024)", rss_per_series, rss_per_series / 3_800.0, rss_per_series / 2_100.0);
    println!(
        "  without the empty store's {:>4.1} MB: {:>9.0} bytes",
        empty_store_rss.saturating_sub(process_rss) as f64 / 1e6,
        marginal_rss_per_series
    );
    println!("  of which heap in use:          {heap_per_series:>12.0} bytes");
    if std::env::var_os("STOP_AFTER_RSS").is_some() {
        std::process::exit(0);
    }

    // Compaction and bytes on disk.
    let start = Instant::now();
    let mut blocks = 0;
    while one.compact(None).expect("compact").is_some() {
        blocks += 1;
    }
    let compaction = start.elapsed();
    let block_samples: u64 = one.blocks().iter().map(|b| b.stats.num_samples).sum();
    let block_bytes = one.blocks_size();
    let all_bytes = dir_bytes(dir_one.path());
    println!("compaction:                      {blocks} block(s) in {compaction:.1?}");
    println!("bytes/sample in blocks:          {:>12.3}   (Prometheus 2.42: 2.40 → ratio {:.2}; VictoriaMetrics 1.79: 1.39 → ratio {:.2}; goal ≤ 1.0)", block_bytes as f64 / block_samples.max(1) as f64, block_bytes as f64 / block_samples.max(1) as f64 / 2.40, block_bytes as f64 / block_samples.max(1) as f64 / 1.39);
    println!("bytes/sample, whole store dir:   {:>12.3}   ({all_bytes} bytes for {total_stored} samples; the head's windows are in its checkpoint and chunk files)", all_bytes as f64 / total_stored as f64);

    // Selects over 1 h (blocks + head).
    let end = T0 + hours * HOUR_STEPS * INTERVAL_MS;
    let one_series = [
        Matcher::new(MatchOp::Equal, "__name__", "http_requests_total").expect("matcher"),
        Matcher::new(MatchOp::Equal, "instance", "host-00000:9100").expect("matcher"),
        Matcher::new(MatchOp::Equal, "method", "GET").expect("matcher"),
        Matcher::new(MatchOp::Equal, "endpoint", "/metrics").expect("matcher"),
        Matcher::new(MatchOp::Equal, "status_code", "200").expect("matcher"),
    ];
    // 144 HTTP series per instance, 7 instances: 1,008 series.
    let thousand = [
        Matcher::new(
            MatchOp::Regex,
            "__name__",
            "http_requests_total|http_request_duration_seconds_bucket",
        )
        .expect("matcher"),
        Matcher::new(MatchOp::Regex, "instance", "host-0000[0-6]:9100").expect("matcher"),
    ];
    for (what, matchers) in [
        ("1 series", &one_series[..]),
        ("~1000 series", &thousand[..]),
    ] {
        let (n, samples, latency) = time_select(&one, matchers, end - 3_600_000, end);
        println!("select {what:<13} over 1 h:     {latency:>10.2?}   ({n} series, {samples} samples; median of 5)");
    }
    // A clean stop leaves blocks and the head's checkpoint.
    one.close(None).expect("close");
    let stopped_bytes = dir_bytes(dir_one.path());
    println!("bytes/sample, whole store dir after a clean stop: {:>6.3}   ({stopped_bytes} bytes; VictoriaMetrics 1.79: 1.39 → ratio {:.2})", stopped_bytes as f64 / total_stored as f64, stopped_bytes as f64 / total_stored as f64 / 1.39);
    drop(one);

    // Append throughput, 2 threads, and WAL replay time for 2 h.
    let dir_two = tempfile::tempdir().expect("tempdir");
    let two = Arc::new(open(dir_two.path()).0);
    let mut workload = Workload::new(series, 42);
    let (stored, busy) = ingest(&two, &mut workload, 0, 2 * HOUR_STEPS, 2, Keys::Offered);
    println!(
        "append, 2 threads, WAL on:       {:>12.0} samples/s ({stored} samples in {busy:.1?}; series offered with their keys)",
        stored as f64 / busy.as_secs_f64()
    );
    drop(two);
    {
        let dir = tempfile::tempdir().expect("tempdir");
        let labels_only = Arc::new(open(dir.path()).0);
        let mut workload = Workload::new(series, 42);
        let (stored, busy) = ingest(&labels_only, &mut workload, 0, HOUR_STEPS, 2, Keys::None);
        println!(
            "  the same, labels only, 1 h:    {:>12.0} samples/s ({stored} samples in {busy:.1?})",
            stored as f64 / busy.as_secs_f64()
        );
    }
    let (reopened, replay) = open(dir_two.path());
    println!(
        "WAL replay of 2 h:               {:>10.2?}   ({} series, {} samples, {} WAL records)",
        replay.duration, replay.series, replay.samples, replay.records
    );
    // A clean stop writes the head as a checkpoint; the next start reads it.
    let closed = reopened.close(None).expect("close");
    println!(
        "head checkpoint at a stop, 2 h:  {:>10.2?}   ({} series, {:.3} bytes/sample)",
        closed.duration,
        closed.series,
        closed.checkpoint_bytes as f64 / replay.samples as f64
    );
    drop(reopened);
    let (started, from_checkpoint) = open(dir_two.path());
    println!(
        "start from that checkpoint:      {:>10.2?}   ({} series, {} samples)",
        from_checkpoint.duration, from_checkpoint.series, from_checkpoint.samples
    );
    drop(started);

    // Selects over 24 h, from blocks.
    let dir_long = tempfile::tempdir().expect("tempdir");
    let long = Arc::new(open(dir_long.path()).0);
    let mut workload = Workload::new(long_series, 7);
    for hour in 0..25 {
        ingest(
            &long,
            &mut workload,
            hour * HOUR_STEPS,
            HOUR_STEPS,
            1,
            Keys::Offered,
        );
        while long.compact(None).expect("compact").is_some() {}
    }
    let end = T0 + 25 * HOUR_STEPS * INTERVAL_MS;
    for (what, matchers) in [
        ("1 series", &one_series[..]),
        ("~1000 series", &thousand[..]),
    ] {
        let (n, samples, latency) = time_select(&long, matchers, end - 24 * 3_600_000, end);
        println!("select {what:<13} over 24 h:    {latency:>10.2?}   ({n} series, {samples} samples; median of 5)");
    }
}
