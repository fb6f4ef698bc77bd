//! How much a request may spread over the machine: the number of cores,
//! read once. Queries and store reads split their series across this many
//! threads (scoped, for the duration of one call) when there are enough
//! series for the split to pay.

use std::sync::OnceLock;

/// The machine's cores (at least one).
pub fn cores() -> usize {
    static CORES: OnceLock<usize> = OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Runs `work` on each part of `items` cut into as many contiguous parts as
/// there are cores (each of at least `min_part` items), the parts side by
/// side on scoped threads; the results in the parts' order.
pub fn map_parts<T: Sync, R: Send>(
    items: &[T],
    min_part: usize,
    work: impl Fn(&[T]) -> R + Sync,
) -> Vec<R> {
    let parts = cores().min(items.len() / min_part.max(1)).max(1);
    if parts == 1 {
        return vec![work(items)];
    }
    let work = &work;
    std::thread::scope(|scope| {
        let handles: Vec<_> = items
            .chunks(items.len().div_ceil(parts))
            .map(|part| scope.spawn(move || work(part)))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_cover_the_items_in_order() {
        let items: Vec<u32> = (0..10_000).collect();
        let sums = map_parts(&items, 100, |part| part.to_vec());
        assert_eq!(sums.concat(), items);
        assert!(sums.len() <= cores());
        // Too few items for a split: one part.
        assert_eq!(map_parts(&items[..50], 100, |part| part.len()), vec![50]);
        assert_eq!(map_parts(&items[..0], 100, |part| part.len()), vec![0]);
    }
}
