//! Content negotiation and the encoders for the Prometheus text format 0.0.4
//! and OpenMetrics 1.0.

use super::{FamilySnapshot, Kind};

/// Exposition format of a scrape response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text format 0.0.4.
    Text,
    /// OpenMetrics 1.0 text format.
    OpenMetrics,
}

const OPENMETRICS_TYPE: &str = "application/openmetrics-text";
const TEXT_TYPE: &str = "text/plain";

impl Format {
    /// Content negotiation as Prometheus client libraries do it: OpenMetrics
    /// when the Accept header lists `application/openmetrics-text` (any
    /// version param, q-values honoured: an OpenMetrics entry with q=0 does
    /// not count), else Text.
    ///
    /// As in the Go client, the first of `application/openmetrics-text` and
    /// `text/plain` in descending q order wins (header order breaks ties), so
    /// `text/plain;q=1,application/openmetrics-text;q=0.5` gets Text.
    /// Wildcards and other types are ignored; a malformed q counts as 1.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let mut best: Option<(f64, Format)> = None;
        for entry in accept.unwrap_or("").split(',') {
            let mut parts = entry.split(';');
            let media_type = parts.next().unwrap_or("").trim();
            let format = if media_type.eq_ignore_ascii_case(OPENMETRICS_TYPE) {
                Format::OpenMetrics
            } else if media_type.eq_ignore_ascii_case(TEXT_TYPE) {
                Format::Text
            } else {
                continue;
            };
            let q = parts
                .filter_map(|param| param.split_once('='))
                .find(|(key, _)| key.trim().eq_ignore_ascii_case("q"))
                .and_then(|(_, value)| value.trim().parse::<f64>().ok())
                .unwrap_or(1.0);
            if q.is_nan() || q <= 0.0 {
                continue;
            }
            if best.is_none_or(|(best_q, _)| q > best_q) {
                best = Some((q, format));
            }
        }
        best.map_or(Format::Text, |(_, format)| format)
    }

    /// `text/plain; version=0.0.4; charset=utf-8` or
    /// `application/openmetrics-text; version=1.0.0; charset=utf-8`.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Text => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }
}

/// Renders `families` in order, samples as given.
pub(super) fn encode(families: &[FamilySnapshot], format: Format) -> String {
    let mut out = String::with_capacity(256 * families.len() + 8);
    for family in families {
        // The text format names a counter family after its `_total` samples;
        // OpenMetrics names it without the suffix.
        let counter_total = format == Format::Text && family.kind == Kind::Counter;
        let (type_name, canonical_label) = match family.kind {
            Kind::Counter => ("counter", None),
            Kind::Gauge => ("gauge", None),
            Kind::Histogram => ("histogram", Some("le")),
            Kind::Summary => ("summary", Some("quantile")),
        };
        for (keyword, text) in [("HELP", family.help.as_str()), ("TYPE", type_name)] {
            out.push_str("# ");
            out.push_str(keyword);
            out.push(' ');
            out.push_str(&family.name);
            if counter_total {
                out.push_str("_total");
            }
            out.push(' ');
            if keyword == "HELP" {
                // Text 0.0.4 escapes only `\` and newline in HELP;
                // OpenMetrics escapes `"` as well.
                escape(&mut out, text, format == Format::OpenMetrics);
            } else {
                out.push_str(text);
            }
            out.push('\n');
        }
        for sample in &family.samples {
            out.push_str(&family.name);
            out.push_str(sample.suffix);
            if !sample.labels.is_empty() {
                out.push('{');
                for (i, (name, value)) in sample.labels.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(name);
                    out.push_str("=\"");
                    match value.parse::<f64>() {
                        // OpenMetrics requires canonical numbers in `le` and
                        // `quantile` (`1.0`, not `1`).
                        Ok(v)
                            if format == Format::OpenMetrics
                                && canonical_label == Some(name.as_str()) =>
                        {
                            push_openmetrics_number(&mut out, v);
                        }
                        _ => escape(&mut out, value, true),
                    }
                    out.push('"');
                }
                out.push('}');
            }
            out.push(' ');
            out.push_str(&format_value(sample.value));
            out.push('\n');
        }
    }
    if format == Format::OpenMetrics {
        out.push_str("# EOF\n");
    }
    out
}

/// Appends `s` with `\` and newline escaped, and `"` too if `quote`.
fn escape(out: &mut String, s: &str, quote: bool) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '"' if quote => out.push_str("\\\""),
            c => out.push(c),
        }
    }
}

/// A sample value or text-format `le`: `NaN`, `+Inf`, `-Inf`, else Rust's
/// shortest round-trip `Display` form (`3`, `0.25`, `0.00001`).
pub(super) fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".to_string()
    } else if v == f64::INFINITY {
        "+Inf".to_string()
    } else if v == f64::NEG_INFINITY {
        "-Inf".to_string()
    } else {
        v.to_string()
    }
}

/// OpenMetrics canonical number for `le`/`quantile`: like [`format_value`] but
/// integral values keep a `.0` (`1.0`, `10.0`).
fn push_openmetrics_number(out: &mut String, v: f64) {
    let s = format_value(v);
    let integral = v.is_finite() && !s.contains('.');
    out.push_str(&s);
    if integral {
        out.push_str(".0");
    }
}
