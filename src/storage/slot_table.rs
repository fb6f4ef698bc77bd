//! The head's table from a series' key hash to its slab slot, and the
//! cache prefetch the batched append path uses to have several lookups in
//! flight at once.
//!
//! An open-addressing table with linear probing over single `u64` entries
//! (the hash's 32-bit tag above, `slot + 1` below, zero for empty), so that a
//! lookup usually reads one cache line — a line whose address is known from
//! the hash alone, and can therefore be fetched ahead of the lookup. A
//! hashbrown table keeps control bytes and slots in two arrays and offers no
//! way to fetch either ahead, which left every append waiting on two
//! dependent cache misses before it reached the series.

/// Entries are grown past this share of the table (3/4): linear probing
/// stays short, and eight entries share a cache line.
const MAX_LOAD_NUM: usize = 3;
const MAX_LOAD_DEN: usize = 4;
const MIN_CAPACITY: usize = 16;

/// Label hash → slot, for one shard of the head.
#[derive(Debug, Default)]
pub struct SlotTable {
    /// Power-of-two length (or empty): `tag << 32 | (slot + 1)`, 0 when free.
    entries: Vec<u64>,
    len: usize,
}

/// The tag the table keeps of a hash, whose low bits are also its home
/// position. Within one shard the hash's low bits (which chose the shard)
/// are all equal, so the tag is taken from a remix of the whole hash.
fn tag(hash: u64) -> u32 {
    (hash.rotate_right(4).wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as u32
}

impl SlotTable {
    fn mask(&self) -> usize {
        self.entries.len().wrapping_sub(1)
    }

    /// Asks the CPU to bring in the line where a lookup of `hash` starts.
    pub fn prefetch(&self, hash: u64) {
        if let Some(entry) = self.entries.get(tag(hash) as usize & self.mask()) {
            prefetch(entry);
        }
    }

    /// The slots stored under `hash`'s tag, in probe order: the caller
    /// checks which one (nearly always the only one) holds the series.
    pub fn candidates(&self, hash: u64) -> impl Iterator<Item = u32> + '_ {
        let tag = tag(hash);
        let mask = self.mask();
        let start = tag as usize & mask;
        let probes = if self.entries.is_empty() {
            0
        } else {
            self.entries.len()
        };
        (0..probes)
            .map(move |i| self.entries[(start + i) & mask])
            .take_while(|&entry| entry != 0)
            .filter(move |&entry| (entry >> 32) as u32 == tag)
            .map(|entry| (entry as u32).wrapping_sub(1))
    }

    /// Adds `slot` under `hash` (the caller knows it is not there yet).
    pub fn insert(&mut self, hash: u64, slot: u32) {
        if (self.len + 1) * MAX_LOAD_DEN > self.entries.len() * MAX_LOAD_NUM {
            self.grow();
        }
        self.place(u64::from(tag(hash)) << 32 | (u64::from(slot) + 1));
        self.len += 1;
    }

    /// Removes `slot` from under `hash`, if it is there.
    pub fn remove(&mut self, hash: u64, slot: u32) {
        let tag = tag(hash);
        let mask = self.mask();
        let wanted = u64::from(tag) << 32 | (u64::from(slot) + 1);
        let mut at = tag as usize & mask;
        loop {
            match self.entries.get(at) {
                Some(&entry) if entry == wanted => break,
                Some(&entry) if entry != 0 => at = (at + 1) & mask,
                _ => return,
            }
        }
        // Backward-shift deletion: later entries of the probe run move up
        // into the hole when their home position allows it, so that no
        // tombstone is needed and runs never lengthen.
        let mut hole = at;
        let mut next = (hole + 1) & mask;
        while self.entries[next] != 0 {
            let home = (self.entries[next] >> 32) as usize & mask;
            // Whether `home` lies cyclically outside (hole, next].
            let movable = if hole <= next {
                home <= hole || home > next
            } else {
                home <= hole && home > next
            };
            if movable {
                self.entries[hole] = self.entries[next];
                hole = next;
            }
            next = (next + 1) & mask;
        }
        self.entries[hole] = 0;
        self.len -= 1;
    }

    /// Puts an entry in the first free position of its probe run.
    fn place(&mut self, entry: u64) {
        let mask = self.mask();
        let mut at = (entry >> 32) as usize & mask;
        while self.entries[at] != 0 {
            at = (at + 1) & mask;
        }
        self.entries[at] = entry;
    }

    fn grow(&mut self) {
        let capacity = (self.entries.len() * 2).max(MIN_CAPACITY);
        let old = std::mem::replace(&mut self.entries, vec![0; capacity]);
        for entry in old.into_iter().filter(|&e| e != 0) {
            self.place(entry);
        }
    }
}

/// Asks the CPU to bring the cache line holding `value` into its caches,
/// without waiting for it. Only a hint: nothing is read, and an address
/// that has since been freed costs a useless fetch, never a fault.
#[inline(always)]
pub fn prefetch<T>(value: *const T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch has no architectural effect; SSE, which
        // provides it, is part of the x86_64 baseline.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(value.cast()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

/// [`prefetch`] of every cache line of `len` bytes from `start`.
#[inline(always)]
pub fn prefetch_bytes<T>(start: *const T, len: usize) {
    const LINE: usize = 64;
    let start = start.cast::<u8>();
    let misalign = start.addr() % LINE;
    let first_line = start.wrapping_sub(misalign);
    for offset in (0..len + misalign).step_by(LINE) {
        prefetch(first_line.wrapping_add(offset));
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    /// The table against a map, through inserts and removals: a few
    /// thousand hashes for 20,000 slots, so each hash holds several slots
    /// and probe runs are long and interleaved.
    #[test]
    fn lookups_find_exactly_what_is_stored() {
        let mut table = SlotTable::default();
        let mut model: HashMap<u32, u64> = HashMap::new();
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        for slot in 0..20_000u32 {
            // A few distinct hash values only, so runs are long and mixed.
            let hash = next() % 3_000;
            table.insert(hash, slot);
            model.insert(slot, hash);
            if next() % 3 == 0 {
                let victim = (next() % u64::from(slot + 1)) as u32;
                if let Some(hash) = model.remove(&victim) {
                    table.remove(hash, victim);
                }
            }
        }
        assert_eq!(table.len, model.len());
        for (&slot, &hash) in &model {
            assert!(
                table.candidates(hash).any(|s| s == slot),
                "slot {slot} lost"
            );
        }
        for hash in 0..3_000 {
            for slot in table.candidates(hash) {
                assert_eq!(model.get(&slot).map(|&h| tag(h)), Some(tag(hash)));
            }
        }
        // Removing what is not there changes nothing.
        table.remove(7, u32::MAX - 1);
        assert_eq!(table.len, model.len());
    }

    #[test]
    fn an_empty_table_has_no_candidates() {
        let table = SlotTable::default();
        assert_eq!(table.candidates(42).count(), 0);
        table.prefetch(42);
    }
}
