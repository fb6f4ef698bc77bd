//! How much a request may spread over the machine: the number of cores,
//! read once. Queries and store reads split their series into parts that
//! this many threads (scoped, for the duration of one call) take in turn,
//! when there are enough series for the split to pay.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::OnceLock;

/// The machine's cores (at least one).
pub fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// How many parts each thread gets on average: enough that a thread slowed
/// down (by other work on its core) hands most of its share to the others,
/// few enough that the per-part cost stays small.
const PARTS_PER_THREAD: usize = 8;

/// Runs `work` on each part of `items` cut into contiguous parts (each of at
/// least `min_part` items, about [`PARTS_PER_THREAD`] per core) on as many
/// scoped threads as there are cores, each taking the next part when it is
/// free; the results in the parts' order.
pub fn map_parts<T: Sync, R: Send>(
    items: &[T],
    min_part: usize,
    work: impl Fn(&[T]) -> R + Sync,
) -> Vec<R> {
    let threads = cores().min(items.len() / min_part.max(1)).max(1);
    if threads == 1 {
        return vec![work(items)];
    }
    let part_len = min_part
        .max(1)
        .max(items.len().div_ceil(threads * PARTS_PER_THREAD));
    let parts: Vec<&[T]> = items.chunks(part_len).collect();
    let next = AtomicUsize::new(0);
    let (work, parts, next) = (&work, &parts, &next);
    let mut done: Vec<(usize, R)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(move || {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(part) = parts.get(i) else {
                            return mine;
                        };
                        mine.push((i, work(part)));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    done.sort_unstable_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, result)| result).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_cover_the_items_in_order() {
        let items: Vec<u32> = (0..10_000).collect();
        let sums = map_parts(&items, 100, |part| part.to_vec());
        assert_eq!(sums.concat(), items);
        assert!(sums.len() <= cores() * PARTS_PER_THREAD);
        assert!(sums[..sums.len() - 1].iter().all(|part| part.len() >= 100));
        // Too few items for a split: one part.
        assert_eq!(map_parts(&items[..50], 100, |part| part.len()), vec![50]);
        assert_eq!(map_parts(&items[..0], 100, |part| part.len()), vec![0]);
    }
}
