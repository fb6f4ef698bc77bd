//! Text import for backfill: exposition text with timestamps (Prometheus
//! text 0.0.4 with millisecond timestamps, as VictoriaMetrics's
//! `/api/v1/import/prometheus` takes it, or OpenMetrics with second
//! timestamps, as `promtool tsdb create-blocks-from openmetrics` reads it),
//! fed in pieces of any size so that files of any length stream through
//! bounded memory. Samples the head accepts are appended; older ones are
//! written as new blocks ([`Storage::backfill`]). Used by
//! `POST /api/v1/import/prometheus` and by `fleetmon import` on a stopped
//! store, which writes every sample to blocks.
//!
//! A parse error stops the import at its line; what was read before it is
//! kept (flushed), and the error names the line.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::scrape::exposition::{Entry, Format, ParseError, Parser, ParserState};
use crate::storage::labels::METRIC_NAME;
use crate::storage::{AppendReport, Labels, SeriesSamples, Storage, StorageError};

/// Samples buffered before they are appended to the head.
const HEAD_BATCH_SAMPLES: usize = 50_000;
/// Samples buffered for blocks before blocks are written: bounds memory
/// (about 16 bytes a sample plus labels) at the cost of more, overlapping
/// blocks for huge imports, which block merging folds together.
const BLOCK_BATCH_SAMPLES: usize = 4_000_000;
/// Most refused-sample examples kept for the summary.
const MAX_EXAMPLES: usize = 10;

/// How to read an import.
#[derive(Debug, Clone)]
pub struct ImportOptions {
    /// Text (ms timestamps) or OpenMetrics (second timestamps).
    pub format: Format,
    /// Labels set on every series, replacing the exposed value
    /// (VictoriaMetrics's `extra_label`).
    pub extra_labels: Vec<(String, String)>,
    /// Timestamp of samples that carry none, ms.
    pub default_timestamp_ms: i64,
    /// Every sample to blocks, none to the head: for a stopped store, as
    /// `promtool tsdb create-blocks-from` does (nothing then waits in the
    /// WAL and the head for the server's next start).
    pub all_to_blocks: bool,
}

/// What an import did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ImportSummary {
    /// Samples read.
    pub samples: u64,
    /// Distinct series read.
    pub series: u64,
    /// Samples appended to the head.
    pub appended: u64,
    /// Samples written to new blocks.
    pub backfilled: u64,
    /// Blocks written.
    pub blocks: u64,
    /// Samples refused, by reason (Prometheus's wording).
    pub rejected: BTreeMap<String, u64>,
    /// A few refused samples.
    pub examples: Vec<String>,
}

/// Why an import stopped.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The input does not parse; everything before the line was imported.
    #[error("{0}")]
    Parse(ParseError),
    /// An `extra_label` is not `name=value` with a valid name.
    #[error("invalid extra_label \"{0}\": write name=value")]
    ExtraLabel(String),
    /// The store failed.
    #[error("the store failed: {0}")]
    Storage(#[from] StorageError),
}

/// An import in progress: feed it pieces, then [`Importer::finish`].
pub struct Importer {
    storage: Arc<Storage>,
    options: ImportOptions,
    state: Option<ParserState>,
    head: HashMap<Labels, Vec<(i64, f64)>>,
    head_samples: usize,
    blocks: HashMap<Labels, Vec<(i64, f64)>>,
    block_samples: usize,
    seen_series: std::collections::HashSet<u64>,
    summary: ImportSummary,
}

/// Parses `name=value` pairs of `extra_label` parameters.
pub fn parse_extra_labels(values: &[String]) -> Result<Vec<(String, String)>, ImportError> {
    values
        .iter()
        .map(|pair| {
            let (name, value) = pair
                .split_once('=')
                .ok_or_else(|| ImportError::ExtraLabel(pair.clone()))?;
            let valid = !name.is_empty()
                && name.chars().enumerate().all(|(i, c)| {
                    c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit())
                });
            if !valid {
                return Err(ImportError::ExtraLabel(pair.clone()));
            }
            Ok((name.to_string(), value.to_string()))
        })
        .collect()
}

impl Importer {
    /// An import into `storage`.
    pub fn new(storage: Arc<Storage>, options: ImportOptions) -> Importer {
        Importer {
            storage,
            options,
            state: Some(ParserState::new()),
            head: HashMap::new(),
            head_samples: 0,
            blocks: HashMap::new(),
            block_samples: 0,
            seen_series: std::collections::HashSet::new(),
            summary: ImportSummary::default(),
        }
    }

    /// Lines read so far (the line the next piece starts on).
    pub fn line(&self) -> usize {
        self.state.as_ref().map_or(0, ParserState::line)
    }

    /// Imports the entries of `piece`; a line cut at its end is kept for the
    /// next piece. Blocking (appends and writes blocks).
    pub fn feed(&mut self, piece: &[u8]) -> Result<(), ImportError> {
        let state = self.state.take().unwrap_or_default();
        let mut parser = Parser::resume(piece, self.options.format, state);
        let result = self.consume(&mut parser);
        self.state = Some(parser.into_state());
        if let Err(e) = result {
            self.flush_all()?;
            return Err(e);
        }
        self.flush_if_full()
    }

    /// Ends the input: imports what is left and flushes everything.
    pub fn finish(mut self) -> Result<ImportSummary, ImportError> {
        let state = self.state.take().unwrap_or_default();
        let mut parser = Parser::resume_last(&[], self.options.format, state);
        let result = self
            .consume(&mut parser)
            .and_then(|()| parser.finish().map_err(ImportError::Parse));
        self.flush_all()?;
        result.map(|()| self.summary)
    }

    /// The summary so far (what was imported before an error, say).
    pub fn summary(&self) -> &ImportSummary {
        &self.summary
    }

    fn consume(&mut self, parser: &mut Parser<'_>) -> Result<(), ImportError> {
        let limit = if self.options.all_to_blocks {
            i64::MAX
        } else {
            self.storage
                .backfill_boundary(self.options.default_timestamp_ms)
        };
        while let Some(entry) = parser.next_entry() {
            let sample = match entry.map_err(ImportError::Parse)? {
                Entry::Sample(sample) => sample,
                _ => continue,
            };
            let mut pairs: Vec<(String, String)> = Vec::with_capacity(sample.labels.len() + 1);
            pairs.push((METRIC_NAME.to_string(), sample.name.to_string()));
            for (name, value) in &sample.labels {
                if !self.options.extra_labels.iter().any(|(n, _)| n == name) {
                    pairs.push((name.to_string(), value.to_string()));
                }
            }
            pairs.extend(self.options.extra_labels.iter().cloned());
            self.summary.samples += 1;
            let labels = match Labels::new(pairs) {
                Ok(labels) => labels,
                Err(e) => {
                    self.reject("invalid labels", 1, || format!("{}: {e}", sample.name));
                    continue;
                }
            };
            if self.seen_series.insert(labels.stable_hash()) {
                self.summary.series += 1;
            }
            let t = sample
                .timestamp_ms
                .unwrap_or(self.options.default_timestamp_ms);
            let (buffer, count) = if t < limit {
                (&mut self.blocks, &mut self.block_samples)
            } else {
                (&mut self.head, &mut self.head_samples)
            };
            buffer.entry(labels).or_default().push((t, sample.value));
            *count += 1;
        }
        Ok(())
    }

    fn reject(&mut self, reason: &str, count: u64, example: impl FnOnce() -> String) {
        *self.summary.rejected.entry(reason.to_string()).or_default() += count;
        if self.summary.examples.len() < MAX_EXAMPLES {
            self.summary
                .examples
                .push(format!("{reason}: {}", example()));
        }
    }

    fn flush_if_full(&mut self) -> Result<(), ImportError> {
        if self.head_samples >= HEAD_BATCH_SAMPLES {
            self.flush_head()?;
        }
        if self.block_samples >= BLOCK_BATCH_SAMPLES {
            self.flush_blocks()?;
        }
        Ok(())
    }

    fn flush_all(&mut self) -> Result<(), ImportError> {
        self.flush_head()?;
        self.flush_blocks()
    }

    fn flush_head(&mut self) -> Result<(), ImportError> {
        if self.head.is_empty() {
            return Ok(());
        }
        let batch: Vec<SeriesSamples> = self
            .head
            .drain()
            .map(|(labels, mut samples)| {
                // Within one import a series' samples may come in any order.
                samples.sort_by_key(|s| s.0);
                SeriesSamples {
                    labels: labels.pairs().to_vec(),
                    samples,
                }
            })
            .collect();
        self.head_samples = 0;
        let report: AppendReport = self.storage.append_blocking(&batch)?;
        self.summary.appended += report.stored + report.duplicates;
        for (why, count) in &report.rejected {
            *self
                .summary
                .rejected
                .entry(why.reason().to_string())
                .or_default() += count;
        }
        for example in report.examples {
            if self.summary.examples.len() < MAX_EXAMPLES {
                self.summary.examples.push(example);
            }
        }
        Ok(())
    }

    fn flush_blocks(&mut self) -> Result<(), ImportError> {
        if self.blocks.is_empty() {
            return Ok(());
        }
        let series: Vec<(Labels, Vec<(i64, f64)>)> = self.blocks.drain().collect();
        self.block_samples = 0;
        let report = self.storage.backfill(series)?;
        self.summary.backfilled += report.samples;
        self.summary.blocks += report.blocks.len() as u64;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::{Kv, MatchOp, Matcher, StorageOptions};

    const NOW: i64 = 1_800_000_000_000;

    fn store(dir: &std::path::Path) -> Arc<Storage> {
        let kv = Kv::open(dir).unwrap();
        Arc::new(
            Storage::open(&kv, dir, StorageOptions::default())
                .unwrap()
                .0,
        )
    }

    fn options(format: Format, extra: &[(&str, &str)]) -> ImportOptions {
        ImportOptions {
            format,
            extra_labels: extra
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            default_timestamp_ms: NOW,
            all_to_blocks: false,
        }
    }

    type Found = Vec<(Vec<(String, String)>, Vec<(i64, f64)>)>;

    fn samples(storage: &Storage, name: &str) -> Found {
        let matcher = Matcher::new(MatchOp::Equal, "__name__", name).unwrap();
        storage
            .select(&[matcher], i64::MIN, i64::MAX)
            .unwrap()
            .into_iter()
            .map(|s| (s.labels.pairs().to_vec(), s.samples().unwrap()))
            .collect()
    }

    #[test]
    fn old_samples_go_to_blocks_and_recent_ones_to_the_head_in_any_piece_size() {
        let dir = tempfile::tempdir().unwrap();
        let storage = store(dir.path());
        // The head holds "now": a month-old sample is out of its window.
        storage
            .append_blocking(&[SeriesSamples {
                labels: vec![("__name__".into(), "anchor".into())],
                samples: vec![(NOW, 1.0)],
            }])
            .unwrap();
        let month_ago = NOW - 30 * 24 * 3_600_000;
        let text = format!(
            "# TYPE temp gauge\ntemp{{site=\"a\"}} 20.5 {month_ago}\ntemp{{site=\"a\"}} 21 {}\ntemp{{site=\"a\",job=\"x\"}} 22 {NOW}\nno_timestamp 7\n",
            month_ago + 60_000
        );
        let mut importer =
            Importer::new(storage.clone(), options(Format::Text, &[("job", "import")]));
        for piece in text.as_bytes().chunks(7) {
            importer.feed(piece).unwrap();
        }
        let summary = importer.finish().unwrap();
        assert_eq!(summary.samples, 4);
        // The job label of the third line is replaced by the extra label: same series as the first two.
        assert_eq!(summary.series, 2);
        assert_eq!((summary.backfilled, summary.appended), (2, 2));
        assert_eq!(summary.blocks, 1);
        let temp = samples(&storage, "temp");
        assert_eq!(temp.len(), 1);
        assert_eq!(
            temp[0].0,
            [("__name__", "temp"), ("job", "import"), ("site", "a")]
                .map(|(n, v)| (n.to_string(), v.to_string()))
        );
        assert_eq!(
            temp[0].1,
            vec![(month_ago, 20.5), (month_ago + 60_000, 21.0), (NOW, 22.0)]
        );
        assert_eq!(samples(&storage, "no_timestamp")[0].1, vec![(NOW, 7.0)]);
    }

    #[test]
    fn a_parse_error_names_its_line_and_keeps_what_came_before() {
        let dir = tempfile::tempdir().unwrap();
        let storage = store(dir.path());
        let mut importer = Importer::new(storage.clone(), options(Format::OpenMetrics, &[]));
        let text = format!("good 1 {}\nbad{{ 2\n# EOF\n", NOW / 1000);
        let error = importer.feed(text.as_bytes()).unwrap_err();
        assert!(
            matches!(error, ImportError::Parse(ref e) if e.line == 2),
            "{error}"
        );
        assert_eq!(importer.summary().appended, 1);
        assert_eq!(samples(&storage, "good")[0].1, vec![(NOW, 1.0)]);
    }

    #[test]
    fn openmetrics_needs_its_eof() {
        let dir = tempfile::tempdir().unwrap();
        let storage = store(dir.path());
        let mut importer = Importer::new(storage.clone(), options(Format::OpenMetrics, &[]));
        importer
            .feed(format!("m 1 {}\n", NOW / 1000).as_bytes())
            .unwrap();
        let error = importer.finish().unwrap_err();
        assert!(error.to_string().contains("EOF"), "{error}");
        // The sample read before the missing EOF is kept.
        assert_eq!(samples(&storage, "m")[0].1, vec![(NOW, 1.0)]);
    }

    #[test]
    fn extra_labels_must_be_name_value() {
        assert!(parse_extra_labels(&["a=b".into()]).is_ok());
        assert!(parse_extra_labels(&["ab".into()]).is_err());
        assert!(parse_extra_labels(&["1a=b".into()]).is_err());
    }
}
