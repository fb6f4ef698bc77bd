//! `fleetmon import FILE`: backfill from an OpenMetrics file with timestamps
//! (what `promtool tsdb create-blocks-from openmetrics` reads) or a text
//! file, into a stopped store directly or into a running fleetmon through
//! `POST /api/v1/import/prometheus` (`--server`). Streams the file with a
//! progress line on a terminal, then prints the summary.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use clap::{Args, ValueEnum};
use serde_json::Value;

use crate::clock::now_ms;
use crate::import::{parse_extra_labels, ImportOptions, ImportSummary, Importer};
use crate::scrape::exposition::Format;
use crate::storage::{Kv, KvError, Storage, StorageOptions};

/// Bytes read from the file at a time.
const PIECE_BYTES: usize = 4 * 1024 * 1024;

#[derive(Debug, Args)]
pub(super) struct ImportArgs {
    /// The file to import.
    file: PathBuf,
    /// Its format: OpenMetrics (timestamps in seconds, `# EOF` at the end) or Prometheus text
    /// (timestamps in milliseconds).
    #[arg(long = "format", value_enum, default_value = "openmetrics")]
    input_format: FormatArg,
    /// A label set on every imported series (name=value; repeatable).
    #[arg(long = "extra-label")]
    extra_labels: Vec<String>,
    #[command(flatten)]
    target: super::StoreTarget,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum FormatArg {
    /// OpenMetrics 1.0.
    Openmetrics,
    /// Prometheus text 0.0.4.
    Text,
}

impl FormatArg {
    fn format(self) -> Format {
        match self {
            FormatArg::Openmetrics => Format::OpenMetrics,
            FormatArg::Text => Format::Text,
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            FormatArg::Openmetrics => "application/openmetrics-text; version=1.0.0",
            FormatArg::Text => "text/plain; version=0.0.4",
        }
    }
}

pub(super) fn run(args: ImportArgs) -> anyhow::Result<()> {
    let extra_labels = parse_extra_labels(&args.extra_labels)?;
    let file = std::fs::File::open(&args.file)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", args.file.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let progress = Progress::new(&args.file, size);
    let summary = match &args.target.server {
        Some(server) => {
            super::runtime()?.block_on(import_over_http(server, &args, file, progress))?
        }
        None => {
            let options = ImportOptions {
                format: args.input_format.format(),
                extra_labels,
                default_timestamp_ms: now_ms(),
                all_to_blocks: true,
            };
            import_offline(&args.target.storage_path, options, file, progress)?
        }
    };
    print_summary(&summary);
    Ok(())
}

fn import_offline(
    storage_path: &Path,
    options: ImportOptions,
    mut file: std::fs::File,
    mut progress: Progress,
) -> anyhow::Result<ImportSummary> {
    let kv = Kv::open(storage_path).map_err(|e| match e {
        KvError::InUse(path) => anyhow::anyhow!(
            "fleetmon is running on {}: import through it instead, with `--server http://localhost:8000`",
            path.display()
        ),
        other => other.into(),
    })?;
    let (storage, _) = Storage::open(&kv, storage_path, StorageOptions::default())?;
    let mut importer = Importer::new(Arc::new(storage), options);
    let mut piece = vec![0; PIECE_BYTES];
    loop {
        let read = file.read(&mut piece)?;
        if read == 0 {
            break;
        }
        if let Err(e) = importer.feed(&piece[..read]) {
            progress.done();
            print_summary(importer.summary());
            anyhow::bail!("import stopped: {e}; what came before was imported");
        }
        progress.advance(read as u64, importer.summary().samples);
    }
    progress.done();
    let before = importer.summary().clone();
    let summary = importer.finish().map_err(|e| {
        print_summary(&before);
        anyhow::anyhow!("import stopped: {e}; what came before was imported")
    })?;
    kv.flush()?;
    Ok(summary)
}

async fn import_over_http(
    server: &str,
    args: &ImportArgs,
    mut file: std::fs::File,
    progress: Progress,
) -> anyhow::Result<ImportSummary> {
    let url = format!("{}/api/v1/import/prometheus", server.trim_end_matches('/'));
    let query: Vec<(&str, &str)> = args
        .extra_labels
        .iter()
        .map(|l| ("extra_label", l.as_str()))
        .collect();
    // The file is read on a thread and streamed as the request body.
    let (sender, receiver) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(4);
    std::thread::spawn(move || {
        let mut progress = progress;
        loop {
            let mut piece = vec![0; PIECE_BYTES];
            match file.read(&mut piece) {
                Ok(0) => break,
                Ok(read) => {
                    piece.truncate(read);
                    progress.advance(read as u64, 0);
                    if sender.blocking_send(Ok(piece)).is_err() {
                        break;
                    }
                }
                Err(e) => {
                    let _ = sender.blocking_send(Err(e));
                    break;
                }
            }
        }
        progress.done();
    });
    let body = reqwest::Body::wrap_stream(tokio_stream(receiver));
    let request = reqwest::Client::new()
        .post(&url)
        .query(&query)
        .header(
            reqwest::header::CONTENT_TYPE,
            args.input_format.content_type(),
        )
        .body(body);
    let response = super::authenticate(request, server)?
        .send()
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach {server}: {e}"))?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let summary: ImportSummary = body
        .get("data")
        .and_then(|d| serde_json::from_value(d.clone()).ok())
        .unwrap_or_default();
    if !status.is_success() {
        print_summary(&summary);
        let message = body
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("no error message");
        anyhow::bail!("{server} answered {status}: {message}");
    }
    Ok(summary)
}

/// A channel of file pieces as the stream `reqwest` sends.
fn tokio_stream(
    mut receiver: tokio::sync::mpsc::Receiver<std::io::Result<Vec<u8>>>,
) -> impl futures_util::Stream<Item = std::io::Result<Vec<u8>>> {
    futures_util::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}

fn print_summary(summary: &ImportSummary) {
    println!(
        "samples: {}  series: {}  appended: {}  backfilled: {} (in {} blocks)",
        summary.samples, summary.series, summary.appended, summary.backfilled, summary.blocks
    );
    for (reason, count) in &summary.rejected {
        println!("rejected, {reason}: {count}");
    }
    for example in &summary.examples {
        println!("  e.g. {example}");
    }
}

/// A progress line on stderr when it is a terminal.
struct Progress {
    name: String,
    total: u64,
    read: u64,
    shown: Instant,
    terminal: bool,
}

impl Progress {
    fn new(file: &Path, total: u64) -> Progress {
        Progress {
            name: file.display().to_string(),
            total,
            read: 0,
            shown: Instant::now(),
            terminal: std::io::stderr().is_terminal(),
        }
    }

    fn advance(&mut self, bytes: u64, samples: u64) {
        self.read += bytes;
        if !self.terminal || self.shown.elapsed().as_millis() < 200 {
            return;
        }
        self.shown = Instant::now();
        let percent = (self.read * 100).checked_div(self.total).unwrap_or(100);
        let samples = if samples > 0 {
            format!(", {samples} samples")
        } else {
            String::new()
        };
        eprint!(
            "\rimporting {}: {:.1} / {:.1} MiB ({percent}%){samples}   ",
            self.name,
            self.read as f64 / 1048576.0,
            self.total as f64 / 1048576.0,
        );
        let _ = std::io::stderr().flush();
    }

    fn done(&mut self) {
        if self.terminal {
            eprintln!();
        }
    }
}
