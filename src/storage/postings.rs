//! Postings: sorted, deduplicated lists of series refs, one per label pair in the
//! index, and the set operations a selector turns into (intersect the lists of
//! its matchers, union the lists of a regex's values, subtract the lists of
//! negative matchers). Every function takes and returns strictly increasing
//! `u64`s; debug builds check the inputs.

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

/// When one list is at least this many times longer than the other, walking the
/// short one and galloping through the long one beats a linear merge: the merge
/// costs `O(long)`, galloping `O(short · log(long / short))`.
const GALLOP_RATIO: usize = 16;

/// The refs in both `a` and `b`.
pub fn intersect(a: &[u64], b: &[u64]) -> Vec<u64> {
    debug_assert!(is_postings(a) && is_postings(b));
    let (short, long) = if a.len() <= b.len() { (a, b) } else { (b, a) };
    if short.is_empty() {
        return Vec::new();
    }
    let mut out = Vec::with_capacity(short.len());
    if long.len() / short.len() >= GALLOP_RATIO {
        let mut j = 0;
        for &id in short {
            j = gallop(long, j, id);
            match long.get(j) {
                None => break,
                Some(&found) if found == id => {
                    out.push(id);
                    j += 1;
                }
                Some(_) => {}
            }
        }
    } else {
        let (mut i, mut j) = (0, 0);
        while let (Some(&x), Some(&y)) = (short.get(i), long.get(j)) {
            match x.cmp(&y) {
                Ordering::Less => i += 1,
                Ordering::Greater => j += 1,
                Ordering::Equal => {
                    out.push(x);
                    i += 1;
                    j += 1;
                }
            }
        }
    }
    out
}

/// The refs in every list; empty when there are no lists. The shortest lists
/// are intersected first, so the running result is small from the start and an
/// empty one stops the work early.
pub fn intersect_many(mut lists: Vec<Vec<u64>>) -> Vec<u64> {
    lists.sort_unstable_by_key(Vec::len);
    let mut lists = lists.into_iter();
    let Some(mut result) = lists.next() else {
        return Vec::new();
    };
    debug_assert!(is_postings(&result));
    for list in lists {
        if result.is_empty() {
            break;
        }
        result = intersect(&result, &list);
    }
    result
}

/// The refs in any of the lists, by a k-way merge.
pub fn union_many(lists: &[&[u64]]) -> Vec<u64> {
    debug_assert!(lists.iter().all(|list| is_postings(list)));
    match lists {
        [] => Vec::new(),
        [only] => only.to_vec(),
        [a, b] => union_two(a, b),
        _ => union_heap(lists),
    }
}

fn union_two(a: &[u64], b: &[u64]) -> Vec<u64> {
    let mut out = Vec::with_capacity(a.len().max(b.len()));
    let (mut i, mut j) = (0, 0);
    while let (Some(&x), Some(&y)) = (a.get(i), b.get(j)) {
        match x.cmp(&y) {
            Ordering::Less => {
                out.push(x);
                i += 1;
            }
            Ordering::Greater => {
                out.push(y);
                j += 1;
            }
            Ordering::Equal => {
                out.push(x);
                i += 1;
                j += 1;
            }
        }
    }
    out.extend_from_slice(&a[i..]);
    out.extend_from_slice(&b[j..]);
    out
}

fn union_heap(lists: &[&[u64]]) -> Vec<u64> {
    let mut out = Vec::with_capacity(lists.iter().map(|list| list.len()).max().unwrap_or(0));
    // The smallest unread ref of each list, with the list's index; `next[i]` is
    // the position of list i's next unread ref after the one in the heap.
    let mut heap: BinaryHeap<Reverse<(u64, usize)>> = lists
        .iter()
        .enumerate()
        .filter_map(|(i, list)| list.first().map(|&id| Reverse((id, i))))
        .collect();
    let mut next = vec![1; lists.len()];
    while let Some(Reverse((id, i))) = heap.pop() {
        if out.last() != Some(&id) {
            out.push(id);
        }
        let list = lists[i];
        if heap.is_empty() {
            // The last list standing has no one to merge with.
            out.extend_from_slice(&list[next[i]..]);
            break;
        }
        if let Some(&following) = list.get(next[i]) {
            heap.push(Reverse((following, i)));
            next[i] += 1;
        }
    }
    out
}

/// The refs in `a` that are not in `b`.
pub fn subtract(a: &[u64], b: &[u64]) -> Vec<u64> {
    debug_assert!(is_postings(a) && is_postings(b));
    let mut out = Vec::with_capacity(a.len());
    if b.len() <= a.len() {
        // Walk the removals, copying the runs of `a` between them whole.
        let mut i = 0;
        for &id in b {
            let j = gallop(a, i, id);
            out.extend_from_slice(&a[i..j]);
            i = j;
            match a.get(i) {
                None => break,
                Some(&found) if found == id => i += 1,
                Some(_) => {}
            }
        }
        out.extend_from_slice(&a[i..]);
    } else {
        // Walk `a`, galloping through the longer list of removals.
        let mut j = 0;
        for &id in a {
            j = gallop(b, j, id);
            if b.get(j) != Some(&id) {
                out.push(id);
            }
        }
    }
    out
}

/// Inserts `id` keeping the list sorted and unique (appends are the common case:
/// new ids are increasing).
pub fn insert_sorted(list: &mut Vec<u64>, id: u64) {
    match list.last() {
        Some(&last) if last >= id => {
            if let Err(pos) = list.binary_search(&id) {
                reserve_one(list);
                list.insert(pos, id);
            }
        }
        _ => push(list, id),
    }
}

/// Appends `id`, without keeping the list sorted.
pub fn push(list: &mut Vec<u64>, id: u64) {
    reserve_one(list);
    list.push(id);
}

/// Makes room for one more id, growing a full list by an eighth rather
/// than doubling it: the head's lists grow a series at a time and live as
/// long as the head, and doubling left a quarter of them unused on average
/// (2.5 of 8.9 MB at 100k series). Each id is then moved about eight times
/// as a list grows, for lists too small to be remapped in place.
fn reserve_one(list: &mut Vec<u64>) {
    if list.len() == list.capacity() {
        list.reserve_exact((list.len() / 8).max(4));
    }
}

/// Removes `id`; returns whether it was there.
pub fn remove_sorted(list: &mut Vec<u64>, id: u64) -> bool {
    match list.binary_search(&id) {
        Ok(pos) => {
            list.remove(pos);
            true
        }
        Err(_) => false,
    }
}

/// The first position at or after `from` whose ref is `>= id` (`list.len()` if
/// none), probing 1, 2, 4, … ahead and then bisecting, so that a short walk costs
/// little whether the target is near or far.
fn gallop(list: &[u64], from: usize, id: u64) -> usize {
    // Everything before `low` is known to be `< id`.
    let mut low = from;
    let mut high = from;
    let mut step = 1;
    while list.get(high).is_some_and(|&x| x < id) {
        low = high + 1;
        high += step;
        step *= 2;
    }
    let high = high.min(list.len());
    low + list[low..high].partition_point(|&x| x < id)
}

fn is_postings(list: &[u64]) -> bool {
    list.windows(2).all(|pair| pair[0] < pair[1])
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use std::collections::BTreeSet;

    /// A random list of up to `max_len` refs below `range`, and its model.
    fn random_list(rng: &mut StdRng, max_len: usize, range: u64) -> (Vec<u64>, BTreeSet<u64>) {
        let len = rng.gen_range(0..=max_len);
        let set: BTreeSet<u64> = (0..len).map(|_| rng.gen_range(0..range)).collect();
        (set.iter().copied().collect(), set)
    }

    /// Sizes from empty to large, dense and sparse, alike and lopsided, so that
    /// both the merging and the galloping paths run.
    fn random_shape(rng: &mut StdRng) -> (usize, u64) {
        let max_len = [0, 1, 3, 20, 200, 2000][rng.gen_range(0..6)];
        let range = [4, 50, 1000, 100_000, u64::MAX][rng.gen_range(0..5)];
        (max_len, range)
    }

    fn from_model(set: &BTreeSet<u64>) -> Vec<u64> {
        set.iter().copied().collect()
    }

    #[test]
    fn two_list_operations_match_the_model() {
        let mut rng = StdRng::seed_from_u64(1);
        for _ in 0..3000 {
            let (len_a, range) = random_shape(&mut rng);
            let (len_b, _) = random_shape(&mut rng);
            let (a, model_a) = random_list(&mut rng, len_a, range);
            let (b, model_b) = random_list(&mut rng, len_b, range);
            assert_eq!(
                intersect(&a, &b),
                from_model(&(&model_a & &model_b)),
                "{a:?} ∩ {b:?}"
            );
            assert_eq!(
                subtract(&a, &b),
                from_model(&(&model_a - &model_b)),
                "{a:?} \\ {b:?}"
            );
            assert_eq!(
                union_many(&[&a, &b]),
                from_model(&(&model_a | &model_b)),
                "{a:?} ∪ {b:?}"
            );
        }
    }

    #[test]
    fn lopsided_lists_gallop_correctly() {
        let mut rng = StdRng::seed_from_u64(2);
        for _ in 0..500 {
            let (long, model_long) = random_list(&mut rng, 5000, 20_000);
            let (short, model_short) = random_list(&mut rng, 8, 20_000);
            // Also ids that are certainly present, at the ends and inside.
            let mut short_model = model_short.clone();
            if let (Some(&first), Some(&last)) = (long.first(), long.last()) {
                short_model.extend([first, last, long[long.len() / 2]]);
            }
            let short2 = from_model(&short_model);
            for s in [&short, &short2] {
                let model_s: BTreeSet<u64> = s.iter().copied().collect();
                assert_eq!(intersect(s, &long), from_model(&(&model_s & &model_long)));
                assert_eq!(intersect(&long, s), from_model(&(&model_s & &model_long)));
                assert_eq!(subtract(&long, s), from_model(&(&model_long - &model_s)));
                assert_eq!(subtract(s, &long), from_model(&(&model_s - &model_long)));
            }
        }
    }

    #[test]
    fn many_list_operations_match_the_model() {
        let mut rng = StdRng::seed_from_u64(3);
        for _ in 0..1000 {
            let count = rng.gen_range(0..=6);
            let (max_len, range) = random_shape(&mut rng);
            let (lists, models): (Vec<Vec<u64>>, Vec<BTreeSet<u64>>) = (0..count)
                .map(|_| {
                    let (len, _) = random_shape(&mut rng);
                    random_list(&mut rng, len.min(max_len.max(1) * 4), range)
                })
                .unzip();
            let union_model = models.iter().fold(BTreeSet::new(), |acc, s| &acc | s);
            let slices: Vec<&[u64]> = lists.iter().map(Vec::as_slice).collect();
            assert_eq!(union_many(&slices), from_model(&union_model), "∪ {lists:?}");
            let intersection_model = match models.split_first() {
                None => BTreeSet::new(),
                Some((first, rest)) => rest.iter().fold(first.clone(), |acc, s| &acc & s),
            };
            assert_eq!(
                intersect_many(lists.clone()),
                from_model(&intersection_model),
                "∩ {lists:?}"
            );
        }
    }

    #[test]
    fn empty_inputs() {
        assert_eq!(intersect_many(Vec::new()), Vec::<u64>::new());
        assert_eq!(intersect_many(vec![vec![1, 2]]), vec![1, 2]);
        assert_eq!(intersect_many(vec![vec![1, 2], vec![]]), Vec::<u64>::new());
        assert_eq!(union_many(&[]), Vec::<u64>::new());
        assert_eq!(union_many(&[&[], &[], &[]]), Vec::<u64>::new());
        assert_eq!(union_many(&[&[], &[3], &[]]), vec![3]);
        assert_eq!(intersect(&[], &[1]), Vec::<u64>::new());
        assert_eq!(subtract(&[1, 2], &[]), vec![1, 2]);
        assert_eq!(subtract(&[], &[1, 2]), Vec::<u64>::new());
        assert_eq!(
            union_many(&[&[u64::MAX], &[0, u64::MAX]]),
            vec![0, u64::MAX]
        );
    }

    #[test]
    fn gallop_finds_the_first_not_smaller() {
        let list: Vec<u64> = (0..100).map(|i| i * 2).collect();
        for from in [0, 1, 7, 50, 99, 100] {
            for id in 0..210 {
                let want = from + list[from..].partition_point(|&x| x < id);
                assert_eq!(gallop(&list, from, id), want, "from {from} id {id}");
            }
        }
    }

    #[test]
    fn insert_and_remove_keep_the_list_sorted_and_unique() {
        let mut rng = StdRng::seed_from_u64(4);
        for _ in 0..200 {
            let range = [5, 100, 10_000][rng.gen_range(0..3)];
            let mut list = Vec::new();
            let mut model = BTreeSet::new();
            let mut next_new = 0;
            for _ in 0..300 {
                match rng.gen_range(0..4) {
                    // The common case: a new series gets the next, larger ref.
                    0 => {
                        next_new += rng.gen_range(1..3);
                        insert_sorted(&mut list, next_new);
                        model.insert(next_new);
                    }
                    1 => {
                        let id = rng.gen_range(0..range);
                        insert_sorted(&mut list, id);
                        model.insert(id);
                    }
                    _ => {
                        let id = rng.gen_range(0..range);
                        assert_eq!(
                            remove_sorted(&mut list, id),
                            model.remove(&id),
                            "remove {id}"
                        );
                    }
                }
                assert_eq!(list, from_model(&model));
            }
        }
    }

    #[test]
    fn growing_lists_leave_at_most_an_eighth_unused() {
        let (mut appended, mut inserted) = (Vec::new(), Vec::new());
        for id in 0..10_000u64 {
            push(&mut appended, id);
            // Odd ids first, then the even ones in between.
            let id = if id < 5_000 {
                2 * id + 1
            } else {
                2 * (id - 5_000)
            };
            insert_sorted(&mut inserted, id);
            for list in [&appended, &inserted] {
                assert!(
                    list.capacity() <= list.len() + list.len() / 8 + 4,
                    "{} ids in room for {}",
                    list.len(),
                    list.capacity()
                );
            }
        }
        assert_eq!(inserted, (0..10_000).collect::<Vec<u64>>());
    }
}
