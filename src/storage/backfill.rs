//! Backfill: samples older than the head accepts go straight into new
//! blocks, one per block-range window, as `promtool tsdb
//! create-blocks-from` does, so a running store can take last month's data
//! instead of refusing it as out of bounds. Blocks may overlap older ones;
//! reads merge them and block merging folds them together.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::block::{self, Block, BlockError, BlockMeta, Compaction, SeriesInput};
use super::codec::{self, Encoding};
use super::{merge_in_time_order, write_lock, Labels, Storage, StorageError};

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
    /// The oldest timestamp an append is accepted at right now; older
    /// samples belong in [`Storage::backfill`].
    pub fn head_min_valid_time(&self) -> i64 {
        self.min_valid_time().max(self.head.refused_before())
    }

    /// The time below which an import at `now_ms` sends samples to
    /// [`Storage::backfill`]: what the head refuses, and anything more than
    /// half a block range before now, so that an import into an empty or
    /// idle head does not pull the head's window back to its first sample.
    pub fn backfill_boundary(&self, now_ms: i64) -> i64 {
        let half_range = self.options.block_range.as_millis() as i64 / 2;
        self.head_min_valid_time().max(now_ms - half_range)
    }

    /// Writes `series` (labels and samples, any order; the last of equal
    /// timestamps wins) as blocks, one per block-range window, and opens
    /// them. Every sample must be older than [`Storage::head_min_valid_time`];
    /// younger ones are refused with an error, so the caller appends them
    /// instead. Blocking.
    pub fn backfill(
        &self,
        series: Vec<(Labels, Vec<(i64, f64)>)>,
    ) -> Result<BackfillReport, StorageError> {
        let _one_at_a_time = self.compacting.lock().unwrap_or_else(|e| e.into_inner());
        let limit = self.head_min_valid_time();
        let range = self.options.block_range.as_millis() as i64;
        let mut windows: BTreeMap<i64, WindowSeries<'_>> = BTreeMap::new();
        for (labels, samples) in &series {
            if let Some(&(t, _)) = samples.iter().find(|(t, _)| *t >= limit) {
                return Err(StorageError::BlockWrite(BlockError::InvalidInput(format!(
                    "{labels}: sample at {t} is not older than the head's window ({limit}); append it instead"
                ))));
            }
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
        for (start, mut window) in windows {
            window.sort_by(|a, b| a.0.cmp(b.0));
            let mut inputs = Vec::with_capacity(window.len());
            for (labels, mut samples) in window {
                merge_in_time_order(&mut samples);
                report.samples += samples.len() as u64;
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
                start,
                start + range - 1,
                Compaction {
                    level: 1,
                    sources: Vec::new(),
                },
                Encoding::Columnar,
            )
            .map_err(StorageError::BlockWrite)?;
            if let Some(meta) = written {
                let opened = Block::open(
                    &self.blocks_dir.join(&meta.id),
                    self.options.block_cache_bytes,
                )
                .map_err(StorageError::BlockWrite)?;
                let mut blocks = write_lock(&self.blocks);
                blocks.push(Arc::new(opened));
                blocks.sort_by_key(|b| b.meta().min_time);
                report.blocks.push(meta);
            }
        }
        Ok(report)
    }
}
