//! Backfill: old samples go straight into new blocks, one per block-range
//! window, as `promtool tsdb create-blocks-from` does, so a running store
//! can take last month's data instead of refusing it as out of bounds.
//! Blocks may overlap older blocks and the head's window; reads merge them
//! (a later source wins a tie) and block merging folds them together.

use std::collections::BTreeMap;

use super::block::{self, BlockError, BlockMeta, Compaction, SeriesInput, BACKFILL_HINT};
use super::codec::{self, Encoding};
use super::{merge_in_time_order, Labels, Storage, StorageError};

/// The series of one block-range window and their samples in it.
type WindowSeries<'a> = Vec<(&'a Labels, Vec<(i64, f64)>)>;

/// What a backfill wrote.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BackfillReport {
    /// Blocks written.
    pub blocks: Vec<BlockMeta>,
    /// Samples written to them.
    pub samples: u64,
}

impl Storage {
    /// The time below which an import at `now_ms` sends samples to
    /// [`Storage::backfill`]: what the head refuses, and anything more than
    /// half a block range before now, so that an import into an empty or
    /// idle head does not pull the head's window back to its first sample.
    pub fn backfill_boundary(&self, now_ms: i64) -> i64 {
        let half_range = self.options.block_range.as_millis() as i64 / 2;
        let head_accepts_from = self.min_valid_time().max(self.head.refused_before());
        head_accepts_from.max(now_ms - half_range)
    }

    /// Writes `series` (labels and samples, any order; the last of equal
    /// timestamps wins) as blocks, one per block-range window, and opens
    /// them. Meant for samples before [`Storage::backfill_boundary`]; the
    /// caller appends younger ones, so that no sample is in both. Blocking.
    pub fn backfill(
        &self,
        series: Vec<(Labels, Vec<(i64, f64)>)>,
    ) -> Result<BackfillReport, StorageError> {
        let _one_at_a_time = self.compacting.lock().unwrap_or_else(|e| e.into_inner());
        let range = self.options.block_range.as_millis() as i64;
        let mut windows: BTreeMap<i64, WindowSeries<'_>> = BTreeMap::new();
        for (labels, samples) in &series {
            let mut by_window: BTreeMap<i64, Vec<(i64, f64)>> = BTreeMap::new();
            for &(t, v) in samples {
                by_window
                    .entry(t.div_euclid(range) * range)
                    .or_default()
                    .push((t, v));
            }
            for (start, samples) in by_window {
                windows.entry(start).or_default().push((labels, samples));
            }
        }
        let mut report = BackfillReport::default();
        for (_, mut window) in windows {
            window.sort_by(|a, b| a.0.cmp(b.0));
            let mut inputs = Vec::with_capacity(window.len());
            // The block spans its samples, not its whole window: at start-up
            // the head skips WAL samples up to the newest block's end (they
            // reached a block before a crash), and a backfilled block of the
            // head's own window must not hide the head's newer samples.
            let (mut min_time, mut max_time) = (i64::MAX, i64::MIN);
            for (labels, mut samples) in window {
                merge_in_time_order(&mut samples);
                report.samples += samples.len() as u64;
                if let (Some(first), Some(last)) = (samples.first(), samples.last()) {
                    min_time = min_time.min(first.0);
                    max_time = max_time.max(last.0);
                }
                let chunks = codec::block_chunks(&samples).map_err(|e| {
                    StorageError::BlockWrite(BlockError::InvalidInput(format!("{labels}: {e}")))
                })?;
                inputs.push(SeriesInput {
                    labels: labels.pairs().to_vec(),
                    chunks,
                });
            }
            let written = block::write_block(
                &self.blocks_dir,
                inputs,
                min_time,
                max_time,
                Compaction {
                    level: 1,
                    sources: Vec::new(),
                    hints: vec![BACKFILL_HINT.to_string()],
                },
                Encoding::Columnar,
            )
            .map_err(StorageError::BlockWrite)?;
            if let Some(meta) = written {
                self.publish_block(&meta, &[])?;
                report.blocks.push(meta);
            }
        }
        Ok(report)
    }
}
