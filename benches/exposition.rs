//! Exposition parsing speed: fleetmon's streaming parser
//! (`fleetmon::scrape::exposition`, text format 0.0.4) against the
//! `prometheus-parse` crate, on large real payloads.
//!
//! `cargo bench --bench exposition -- [--mb 50] [--runs 5]`
//!
//! Payloads, each enlarged to about `--mb` MB (10^6 bytes):
//! - `alltypes`: the real exposition
//!   `shared/conformance/exposition/alltypes.237mfs.prom.txt` (237 families:
//!   counters, gauges, histograms, summaries), its sample lines repeated with
//!   a `shard="N"` label inserted so that every copy is a distinct series;
//!   each family keeps one `# HELP`/`# TYPE` header, followed by all its
//!   copies, as a large exporter would print it.
//! - `node-exporter`, when `/usr/bin/prometheus-node-exporter` is installed:
//!   one real `/metrics` response from it (started on a free loopback port,
//!   fetched once, then stopped), enlarged the same way.
//!
//! For each payload and parser: MB/s and samples/s (best of `--runs`), the
//! samples produced, and the ratios fleetmon / prometheus-parse. A sample is
//! one value: prometheus-parse folds the `_bucket` lines of a histogram and
//! the quantile lines of a summary into one `Sample` each, so its buckets and
//! quantiles are counted one by one to compare with fleetmon's count of
//! sample lines. prometheus-parse silently drops valid lines its regular
//! expressions do not match (metric names with `:`, `{}`, ...) and does not
//! unescape label values, so it is only a speed baseline: any difference in
//! the sample counts is reported, with the metric names whose counts differ.

mod common;

use std::collections::BTreeMap;
use std::hint::black_box;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::arg;
use fleetmon::scrape::exposition::{Entry, Format, Parser};

const ALLTYPES: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/conformance/exposition/alltypes.237mfs.prom.txt"
);
const NODE_EXPORTER: &str = "/usr/bin/prometheus-node-exporter";
/// The label inserted into every sample line to tell the copies apart.
const COPY_LABEL: &str = "shard";

/// fleetmon's parser over the whole input: the samples it produced.
///
/// Each sample is consumed (`black_box`) and its label vector handed back
/// with `recycle`, as the scrape loop does.
fn parse_fleetmon(input: &[u8]) -> usize {
    let mut parser = Parser::new(black_box(input), Format::Text);
    let mut samples = 0;
    while let Some(entry) = parser.next_entry() {
        match entry {
            Ok(Entry::Sample(sample)) => {
                samples += 1;
                black_box(&sample);
                parser.recycle(sample.labels);
            }
            Ok(other) => {
                black_box(&other);
            }
            Err(error) => panic!("fleetmon rejected the payload: {error}"),
        }
    }
    samples
}

/// prometheus-parse over the whole input: the values it produced.
///
/// Its only entry point takes an iterator of `io::Result<String>` lines, so
/// the timed work includes splitting the body with `str::lines` and one
/// owned `String` per line, as its README shows (which collects them into a
/// `Vec` first; streaming them is cheaper). The body is already a `&str`, as
/// from `reqwest::Response::text`. Dropping the returned `Scrape` is timed
/// too: it is part of using an API that materializes every sample.
fn parse_prometheus_parse(text: &str) -> usize {
    let lines = black_box(text).lines().map(|line| Ok(line.to_owned()));
    let scrape =
        prometheus_parse::Scrape::parse(lines).expect("prometheus-parse parses the payload");
    let values = scrape.samples.iter().map(value_count).sum();
    black_box(&scrape);
    values
}

/// Values in one prometheus-parse sample: buckets and quantiles one by one.
fn value_count(sample: &prometheus_parse::Sample) -> usize {
    match &sample.value {
        prometheus_parse::Value::Histogram(buckets) => buckets.len(),
        prometheus_parse::Value::Summary(quantiles) => quantiles.len(),
        _ => 1,
    }
}

/// Samples per metric name, for each parser, on an unenlarged payload: where
/// the two counts differ.
fn count_differences(text: &str) -> Vec<(String, usize, usize)> {
    let mut counts: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let mut parser = Parser::new(text.as_bytes(), Format::Text);
    while let Some(entry) = parser.next_entry() {
        if let Entry::Sample(sample) = entry.expect("fleetmon parses the payload") {
            counts.entry(sample.name.into_owned()).or_default().0 += 1;
        }
    }
    let lines = text.lines().map(|line| Ok(line.to_owned()));
    let scrape =
        prometheus_parse::Scrape::parse(lines).expect("prometheus-parse parses the payload");
    for sample in &scrape.samples {
        // Buckets are filed under the family name; the lines were `_bucket`.
        let name = match sample.value {
            prometheus_parse::Value::Histogram(_) => format!("{}_bucket", sample.metric),
            _ => sample.metric.clone(),
        };
        counts.entry(name).or_default().1 += value_count(sample);
    }
    counts
        .into_iter()
        .filter(|(_, (fleetmon, other))| fleetmon != other)
        .map(|(name, (fleetmon, other))| (name, fleetmon, other))
        .collect()
}

/// `base` enlarged to about `target` bytes: each family's header lines once,
/// then its sample lines `copies` times, each copy with a distinct
/// `shard="N"` label. Returns the payload and the number of copies.
fn enlarge(base: &str, target: usize) -> (String, usize) {
    // Blocks of comment lines followed by the sample lines after them.
    let mut blocks: Vec<(Vec<&str>, Vec<&str>)> = Vec::new();
    for line in base.lines() {
        let is_sample = !line.trim().is_empty() && !line.trim_start().starts_with('#');
        match blocks.last_mut() {
            Some((_, samples)) if is_sample => samples.push(line),
            Some((header, samples)) if samples.is_empty() => header.push(line),
            _ if is_sample => blocks.push((Vec::new(), vec![line])),
            _ => blocks.push((vec![line], Vec::new())),
        }
    }
    let line_bytes = |lines: &[&str]| lines.iter().map(|l| l.len() + 1).sum::<usize>();
    let header_bytes: usize = blocks.iter().map(|(h, _)| line_bytes(h)).sum();
    let sample_lines: usize = blocks.iter().map(|(_, s)| s.len()).sum();
    // `shard="1234",` on every sample line of a copy.
    let per_copy = blocks.iter().map(|(_, s)| line_bytes(s)).sum::<usize>()
        + sample_lines * (COPY_LABEL.len() + 8);
    let per_copy = per_copy.max(1);
    let copies = ((target.saturating_sub(header_bytes) + per_copy / 2) / per_copy).max(1);
    let mut out = String::with_capacity(header_bytes + copies * per_copy + 1024);
    for (header, samples) in &blocks {
        for line in header {
            out.push_str(line);
            out.push('\n');
        }
        for copy in 0..copies {
            for line in samples {
                push_with_label(&mut out, line, copy);
                out.push('\n');
            }
        }
    }
    (out, copies)
}

/// `line` with `shard="copy"` as its first label.
fn push_with_label(out: &mut String, line: &str, copy: usize) {
    let split = line.find(['{', ' ', '\t']).unwrap_or(line.len());
    let (name, rest) = line.split_at(split);
    out.push_str(name);
    match rest.strip_prefix('{') {
        Some(labels) if labels.trim_start().starts_with('}') => {
            out.push_str(&format!("{{{COPY_LABEL}=\"{copy}\""));
            out.push_str(labels);
        }
        Some(labels) => {
            out.push_str(&format!("{{{COPY_LABEL}=\"{copy}\","));
            out.push_str(labels);
        }
        None => {
            out.push_str(&format!("{{{COPY_LABEL}=\"{copy}\"}}"));
            out.push_str(rest);
        }
    }
}

/// A child process stopped when dropped.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One `/metrics` body of a node exporter started for the purpose, or why
/// there is none.
fn node_exporter_body() -> Result<String, String> {
    if !Path::new(NODE_EXPORTER).exists() {
        return Err(format!("not installed ({NODE_EXPORTER})"));
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("no free port: {e}"))?;
    let _exporter = Running(
        Command::new(NODE_EXPORTER)
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("could not start: {e}"))?,
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut stream = loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(stream) => break stream,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            Err(e) => return Err(format!("did not start listening: {e}")),
        }
    };
    // HTTP/1.0: no chunked transfer encoding, and the server closes the
    // connection after the body; no Accept-Encoding, so no gzip.
    let request = format!(
        "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nAccept: text/plain;version=0.0.4\r\n\r\n"
    );
    let mut response = Vec::new();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .and_then(|()| stream.write_all(request.as_bytes()))
        .and_then(|()| stream.read_to_end(&mut response))
        .map_err(|e| format!("GET /metrics failed: {e}"))?;
    let response = String::from_utf8(response).map_err(|e| format!("body not UTF-8: {e}"))?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .ok_or("response without a header end")?;
    let status = head.lines().next().unwrap_or_default();
    if !status.contains(" 200 ") {
        return Err(format!("GET /metrics answered {status:?}"));
    }
    Ok(body.to_owned())
}

/// The best time of `runs` calls of `parse`, and the count it returned
/// (the same every time).
fn best_of(runs: usize, mut parse: impl FnMut() -> usize) -> (Duration, usize) {
    let mut best = Duration::MAX;
    let mut count = None;
    for _ in 0..runs.max(1) {
        let start = Instant::now();
        let n = parse();
        best = best.min(start.elapsed());
        assert!(
            count.is_none_or(|c| c == n),
            "sample count changed between runs"
        );
        count = Some(n);
    }
    (best, count.unwrap_or_default())
}

/// One payload's figures for both parsers.
struct Row {
    payload: String,
    bytes: usize,
    /// fleetmon: best time and samples.
    fleetmon: (Duration, usize),
    /// prometheus-parse: best time and values.
    other: (Duration, usize),
    /// Metric names whose sample counts differ on the unenlarged payload.
    differences: Vec<(String, usize, usize)>,
}

fn measure(payload: &str, base: &str, target: usize, runs: usize) -> Row {
    let (text, copies) = enlarge(base, target);
    eprintln!(
        "{payload}: {copies} copies, {:.1} MB; timing fleetmon, then prometheus-parse ({runs} runs each)",
        text.len() as f64 / 1e6
    );
    let fleetmon = best_of(runs, || parse_fleetmon(text.as_bytes()));
    let base_samples = parse_fleetmon(base.as_bytes());
    assert_eq!(
        fleetmon.1,
        copies * base_samples,
        "the enlarged {payload} payload should hold {copies} × {base_samples} samples"
    );
    let other = best_of(runs, || parse_prometheus_parse(&text));
    Row {
        payload: format!("{payload} ×{copies}"),
        bytes: text.len(),
        fleetmon,
        other,
        differences: count_differences(base),
    }
}

fn main() {
    let mb = arg("--mb", 50);
    let runs = arg("--runs", 5);
    let target = mb * 1_000_000;
    let mut rows = Vec::new();

    let alltypes = std::fs::read_to_string(ALLTYPES).expect("read the alltypes payload (shared/)");
    rows.push(measure("alltypes", &alltypes, target, runs));
    let mut skipped = None;
    match node_exporter_body() {
        Ok(body) => rows.push(measure("node-exporter", &body, target, runs)),
        Err(why) => skipped = Some(why),
    }

    println!("# exposition parsing, text format 0.0.4: each payload enlarged to ~{mb} MB with a `{COPY_LABEL}` label per copy; best of {runs} runs");
    println!("# command: cargo bench --bench exposition -- --mb {mb} --runs {runs}");
    println!(
        "{:<20} {:<17} {:>8} {:>9} {:>14} {:>11} {:>11}",
        "payload", "parser", "MB", "MB/s", "samples/s", "samples", "best run"
    );
    for row in &rows {
        let mb = row.bytes as f64 / 1e6;
        let figures = |(time, samples): (Duration, usize)| {
            let secs = time.as_secs_f64();
            (mb / secs, samples as f64 / secs, samples, time)
        };
        let (f_mbs, f_sps, f_n, f_t) = figures(row.fleetmon);
        let (o_mbs, o_sps, o_n, o_t) = figures(row.other);
        println!(
            "{:<20} {:<17} {:>8.1} {:>9.1} {:>14.0} {:>11} {:>11.2?}",
            row.payload, "fleetmon", mb, f_mbs, f_sps, f_n, f_t
        );
        println!(
            "{:<20} {:<17} {:>8.1} {:>9.1} {:>14.0} {:>11} {:>11.2?}   fleetmon/prometheus-parse: {:.2}× MB/s, {:.2}× samples/s",
            "", "prometheus-parse", mb, o_mbs, o_sps, o_n, o_t, f_mbs / o_mbs, f_sps / o_sps
        );
    }
    if let Some(why) = skipped {
        println!("# node-exporter: skipped, {why}");
    }
    println!("# ratios are fleetmon / prometheus-parse (above 1: fleetmon is faster)");
    for row in &rows {
        let (fleetmon, other) = (row.fleetmon.1, row.other.1);
        if fleetmon == other {
            println!(
                "# {}: both parsers produced {fleetmon} samples",
                row.payload
            );
        } else {
            println!(
                "# {}: prometheus-parse produced {other} samples, fleetmon {fleetmon}: {} {} ({:.2}%)",
                row.payload,
                fleetmon.abs_diff(other),
                if other < fleetmon { "fewer" } else { "more" },
                100.0 * fleetmon.abs_diff(other) as f64 / fleetmon as f64
            );
        }
        if !row.differences.is_empty() {
            println!("#   samples per copy that differ, by metric name:");
        }
        for (name, f, o) in row.differences.iter().take(8) {
            println!("#   {name}: fleetmon {f}, prometheus-parse {o}");
        }
        if row.differences.len() > 8 {
            println!("#   … and {} more names", row.differences.len() - 8);
        }
    }
}
