//! Function calls: dispatches range functions (`rate`, `*_over_time`, …)
//! and element-wise functions (math, dates, `clamp`, …) to `functions`, and
//! implements here the ones that need the evaluator: `time`, `vector`,
//! `scalar`, `absent`, `absent_over_time`, `timestamp`, `label_replace`,
//! `label_join`, the `sort*` family and `histogram_quantile` (classic
//! buckets). Name dropping follows Prometheus 3: every function drops
//! `__name__` except `last_over_time`, `first_over_time`, the label
//! functions and the sorts.

use std::collections::{HashMap, HashSet};

use promql_parser::parser::{Call, Expr};

use super::eval::{
    absent, absent_labels, merge_rows, window, Evaluated, Evaluator, Grid, Ranges, Row,
    WindowCursor, ABSENT,
};
use super::functions::{self, Window};
use super::value::QueryError;
use crate::storage::labels::METRIC_NAME;
use crate::storage::Labels;

/// Evaluates a function call.
pub fn eval(ev: &mut Evaluator<'_>, call: &Call, grid: Grid) -> Result<Evaluated, QueryError> {
    let name = call.func.name;
    let args = &call.args.args;
    match name {
        "time" => Ok(Evaluated::Scalar(
            (0..grid.len())
                .map(|i| grid.at(i) as f64 / 1000.0)
                .collect(),
        )),
        "pi" => Ok(Evaluated::Scalar(vec![std::f64::consts::PI; grid.len()])),
        "vector" => {
            let values = scalar_arg(ev, args, 0, grid)?;
            Ok(Evaluated::Vector(vec![Row {
                labels: Labels::from_sorted(Vec::new()),
                values,
                drop_name: false,
            }]))
        }
        "scalar" => {
            let rows = vector_arg(ev, args, 0, grid)?;
            let values = (0..grid.len())
                .map(|step| {
                    let mut present = rows.iter().map(|r| r.values[step]).filter(|v| !absent(*v));
                    match (present.next(), present.next()) {
                        (Some(v), None) => v,
                        _ => f64::NAN,
                    }
                })
                .collect();
            Ok(Evaluated::Scalar(values))
        }
        "absent" => {
            let rows = vector_arg(ev, args, 0, grid)?;
            let labels = match args.first().map(|a| unwrap_parens(a)) {
                Some(Expr::VectorSelector(selector)) => absent_labels(&selector.matchers),
                _ => Labels::from_sorted(Vec::new()),
            };
            let values = (0..grid.len())
                .map(|step| {
                    if rows.iter().all(|r| absent(r.values[step])) {
                        1.0
                    } else {
                        ABSENT
                    }
                })
                .collect();
            Ok(only_present(labels, values))
        }
        "absent_over_time" => {
            let ranges = ranges_arg(ev, args, 0, grid)?;
            let labels = match args.first().map(|a| unwrap_parens(a)) {
                Some(Expr::MatrixSelector(matrix)) => absent_labels(&matrix.vs.matchers),
                _ => Labels::from_sorted(Vec::new()),
            };
            let mut values = vec![1.0; grid.len()];
            for row in &ranges.rows {
                let points = row.points(&ev.budget)?;
                let mut cursor = WindowCursor::default();
                for (step, value) in values.iter_mut().enumerate() {
                    let window = window(&points, ranges.ends[step], ranges.range, &mut cursor);
                    if !window.is_empty() {
                        *value = ABSENT;
                    }
                }
            }
            Ok(only_present(labels, values))
        }
        "timestamp" => timestamp(ev, args, grid),
        "label_replace" => label_replace(ev, args, grid),
        "label_join" => label_join(ev, args, grid),
        "sort" | "sort_desc" => {
            warn_sort_in_range_query(ev);
            let mut rows = vector_arg(ev, args, 0, grid)?;
            let descending = name == "sort_desc";
            rows.sort_by(|a, b| {
                let (x, y) = (a.values[0], b.values[0]);
                let order = match (x.is_nan(), y.is_nan()) {
                    (true, true) => std::cmp::Ordering::Equal,
                    // NaN sorts last either way, as Prometheus.
                    (true, false) => return std::cmp::Ordering::Greater,
                    (false, true) => return std::cmp::Ordering::Less,
                    _ => x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal),
                };
                if descending {
                    order.reverse()
                } else {
                    order
                }
            });
            Ok(Evaluated::Vector(rows))
        }
        "sort_by_label" | "sort_by_label_desc" => {
            warn_sort_in_range_query(ev);
            let mut rows = vector_arg(ev, args, 0, grid)?;
            let mut names = Vec::new();
            for i in 1..args.len() {
                names.push(string_arg(ev, args, i, grid)?);
            }
            rows.sort_by(|a, b| {
                let mut order = std::cmp::Ordering::Equal;
                for name in &names {
                    order = natural_cmp(
                        a.labels.get(name).unwrap_or(""),
                        b.labels.get(name).unwrap_or(""),
                    );
                    if order != std::cmp::Ordering::Equal {
                        break;
                    }
                }
                if order == std::cmp::Ordering::Equal {
                    order = a.labels.cmp(&b.labels);
                }
                if name == "sort_by_label_desc" {
                    order.reverse()
                } else {
                    order
                }
            });
            Ok(Evaluated::Vector(rows))
        }
        "histogram_quantile" => histogram_quantile(ev, args, grid),
        "histogram_fraction" => histogram_fraction(ev, args, grid),
        "histogram_quantiles" => histogram_quantiles(ev, args, grid),
        "hour" | "minute" | "month" | "year" | "day_of_month" | "day_of_week" | "day_of_year"
        | "days_in_month"
            if args.is_empty() =>
        {
            let values: Vec<f64> = (0..grid.len())
                .map(|i| {
                    functions::eval_instant(name, grid.at(i) as f64 / 1000.0, &[]).unwrap_or(ABSENT)
                })
                .collect();
            Ok(Evaluated::Vector(vec![Row {
                labels: Labels::from_sorted(Vec::new()),
                values,
                drop_name: false,
            }]))
        }
        _ if functions::is_range_function(name) => range_function(ev, call, grid),
        _ if functions::is_instant_function(name) => instant_function(ev, call, grid),
        _ => Err(QueryError::BadData(format!(
            "unsupported: function {name} is not implemented yet"
        ))),
    }
}

fn warn_sort_in_range_query(ev: &mut Evaluator<'_>) {
    if ev.range_query {
        ev.notes.warn(functions::notes::sort_in_range_query());
    }
}

/// "Natural" order, as `sort_by_label` uses: runs of digits compare as
/// numbers, the rest byte by byte (`cpu2` < `cpu10`).
fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (a, b) = (a.as_bytes(), b.as_bytes());
    let digits_end =
        |s: &[u8], from: usize| from + s[from..].iter().take_while(|c| c.is_ascii_digit()).count();
    let (mut i, mut j) = (0, 0);
    while i < a.len() && j < b.len() {
        if a[i].is_ascii_digit() && b[j].is_ascii_digit() {
            let (end_a, end_b) = (digits_end(a, i), digits_end(b, j));
            let (x, y) = (
                significant_digits(&a[i..end_a]),
                significant_digits(&b[j..end_b]),
            );
            let order = x.len().cmp(&y.len()).then_with(|| x.cmp(y));
            if order != Ordering::Equal {
                return order;
            }
            (i, j) = (end_a, end_b);
        } else {
            if a[i] != b[j] {
                return a[i].cmp(&b[j]);
            }
            i += 1;
            j += 1;
        }
    }
    (a.len() - i).cmp(&(b.len() - j))
}

/// A run of digits without its leading zeros (one zero stays for zero).
fn significant_digits(digits: &[u8]) -> &[u8] {
    let zeros = digits.iter().take_while(|c| **c == b'0').count();
    &digits[zeros.min(digits.len().saturating_sub(1))..]
}

fn unwrap_parens(expr: &Expr) -> &Expr {
    match expr {
        Expr::Paren(p) => unwrap_parens(&p.expr),
        other => other,
    }
}

fn only_present(labels: Labels, values: Vec<f64>) -> Evaluated {
    if values.iter().all(|v| absent(*v)) {
        Evaluated::Vector(Vec::new())
    } else {
        Evaluated::Vector(vec![Row {
            labels,
            values,
            drop_name: false,
        }])
    }
}

fn arg(args: &[Box<Expr>], i: usize) -> Result<&Expr, QueryError> {
    args.get(i)
        .map(|a| a.as_ref())
        .ok_or_else(|| QueryError::BadData(format!("missing argument {}", i + 1)))
}

/// Evaluates argument `i` and takes the kind of value `pick` accepts.
fn typed_arg<T>(
    ev: &mut Evaluator<'_>,
    args: &[Box<Expr>],
    i: usize,
    grid: Grid,
    kind: &str,
    pick: impl FnOnce(Evaluated) -> Option<T>,
) -> Result<T, QueryError> {
    let value = ev.eval(arg(args, i)?, grid)?;
    pick(value).ok_or_else(|| QueryError::BadData(format!("expected {kind} as argument {}", i + 1)))
}

fn scalar_arg(
    ev: &mut Evaluator<'_>,
    args: &[Box<Expr>],
    i: usize,
    grid: Grid,
) -> Result<Vec<f64>, QueryError> {
    typed_arg(ev, args, i, grid, "a scalar", |v| match v {
        Evaluated::Scalar(values) => Some(values),
        _ => None,
    })
}

fn vector_arg(
    ev: &mut Evaluator<'_>,
    args: &[Box<Expr>],
    i: usize,
    grid: Grid,
) -> Result<Vec<Row>, QueryError> {
    typed_arg(ev, args, i, grid, "an instant vector", |v| match v {
        Evaluated::Vector(rows) => Some(rows),
        _ => None,
    })
}

fn ranges_arg(
    ev: &mut Evaluator<'_>,
    args: &[Box<Expr>],
    i: usize,
    grid: Grid,
) -> Result<Ranges, QueryError> {
    typed_arg(ev, args, i, grid, "a range vector", |v| match v {
        Evaluated::Ranges(ranges) => Some(ranges),
        // A selector that matched nothing.
        Evaluated::Vector(rows) if rows.is_empty() => Some(Ranges {
            rows: Vec::new(),
            range: 0,
            ends: vec![0; grid.len()],
        }),
        _ => None,
    })
}

fn string_arg(
    ev: &mut Evaluator<'_>,
    args: &[Box<Expr>],
    i: usize,
    grid: Grid,
) -> Result<String, QueryError> {
    typed_arg(ev, args, i, grid, "a string", |v| match v {
        Evaluated::String(s) => Some(s),
        _ => None,
    })
}

/// `rate(x[5m])`, `quantile_over_time(0.9, x[5m])`, …: one window per step.
fn range_function(
    ev: &mut Evaluator<'_>,
    call: &Call,
    grid: Grid,
) -> Result<Evaluated, QueryError> {
    let name = call.func.name;
    let args = &call.args.args;
    // The range vector is the first argument, except for quantile_over_time.
    let range_position = if name == "quantile_over_time" { 1 } else { 0 };
    let mut scalars: Vec<Vec<f64>> = Vec::new();
    for i in 0..args.len() {
        if i != range_position {
            scalars.push(scalar_arg(ev, args, i, grid)?);
        }
    }
    let ranges = ranges_arg(ev, args, range_position, grid)?;
    let function = functions::RangeFunction::from_name(name)
        .ok_or_else(|| QueryError::BadData(format!("unknown range function: {name}")))?;
    let keeps_name = matches!(name, "last_over_time" | "first_over_time");
    let counter_function = matches!(name, "rate" | "increase");
    let rows = ev.per_series(ranges.rows.len(), |i, budget, notes| {
        let row = &ranges.rows[i];
        let points = row.points(budget)?;
        let mut values = vec![ABSENT; grid.len()];
        let mut step_args = vec![0.0; scalars.len()];
        let mut scratch = functions::StepScratch::default();
        // A window without a drop below the value before (a counter reset;
        // most series have none) lets rate and increase skip their scan for
        // resets. As windows advance, the points they take in are checked:
        // `last_drop` is the last index k < `checked` with a drop at k (the
        // value at k below the one at k - 1), 0 for none.
        let (mut checked, mut last_drop) = (1, 0);
        let mut cursor = WindowCursor::default();
        for (step, slot) in values.iter_mut().enumerate() {
            let end = ranges.ends[step];
            let samples = window(&points, end, ranges.range, &mut cursor);
            if samples.is_empty() {
                continue;
            }
            for (a, values) in step_args.iter_mut().zip(&scalars) {
                *a = values[step];
            }
            let mut input =
                Window::new(samples, end - ranges.range, end).at_eval_time(grid.at(step));
            if counter_function {
                let (lo, hi) = (cursor.lo, cursor.hi);
                if hi > checked {
                    let taken_in = &points[checked - 1..hi];
                    if let Some(j) = taken_in.windows(2).rposition(|w| w[1].1 < w[0].1) {
                        last_drop = checked + j;
                    }
                    checked = hi;
                }
                // Then `last_drop` is also the last drop below `hi`, unless
                // the window moved back before it: then the function scans.
                if last_drop <= lo {
                    input = input.without_drops();
                }
            }
            match function.eval(&input, &step_args, notes, &mut scratch) {
                Some(Ok(v)) => *slot = v,
                Some(Err(message)) => return Err(QueryError::Execution(message)),
                None => {}
            }
        }
        if values.iter().all(|v| absent(*v)) {
            return Ok(None);
        }
        let metric = row.labels.metric_name().unwrap_or("");
        if counter_function && !metric.is_empty() && !functions::is_counter_name(metric) {
            notes.info(functions::notes::possible_non_counter(metric));
        }
        budget.hold(values.len())?;
        Ok(Some((i, values)))
    })?;
    // The range vector is done with: its labels move into the rows.
    let mut series = ranges.rows;
    let rows = rows
        .into_iter()
        .map(|(i, values)| Row {
            labels: std::mem::take(&mut series[i].labels),
            values,
            drop_name: !keeps_name,
        })
        .collect();
    Ok(Evaluated::Vector(merge_rows(rows)?))
}

/// Element-wise functions: `abs(x)`, `clamp(x, 0, 1)`, `round(x, 0.5)`, …
fn instant_function(
    ev: &mut Evaluator<'_>,
    call: &Call,
    grid: Grid,
) -> Result<Evaluated, QueryError> {
    let name = call.func.name;
    let args = &call.args.args;
    let rows = vector_arg(ev, args, 0, grid)?;
    let mut scalars = Vec::new();
    for i in 1..args.len() {
        scalars.push(scalar_arg(ev, args, i, grid)?);
    }
    let mut step_args = vec![0.0; scalars.len()];
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let mut values = row.values;
        for (step, v) in values.iter_mut().enumerate() {
            if absent(*v) {
                continue;
            }
            for (a, s) in step_args.iter_mut().zip(&scalars) {
                *a = s[step];
            }
            *v = functions::eval_instant(name, *v, &step_args).unwrap_or(ABSENT);
        }
        if values.iter().any(|v| !absent(*v)) {
            out.push(Row {
                labels: row.labels,
                values,
                drop_name: true,
            });
        }
    }
    Ok(Evaluated::Vector(merge_rows(out)?))
}

/// `timestamp(v)`: the time of each sample; for a selector, the time of the
/// sample it read, not the step's.
fn timestamp(
    ev: &mut Evaluator<'_>,
    args: &[Box<Expr>],
    grid: Grid,
) -> Result<Evaluated, QueryError> {
    let selector = match arg(args, 0).map(unwrap_parens)? {
        Expr::VectorSelector(selector) => Some(selector.clone()),
        _ => None,
    };
    let Some(selector) = selector else {
        let rows = vector_arg(ev, args, 0, grid)?;
        let out = rows
            .into_iter()
            .map(|row| Row {
                labels: row.labels,
                drop_name: true,
                values: row
                    .values
                    .iter()
                    .enumerate()
                    .map(|(i, v)| {
                        if absent(*v) {
                            ABSENT
                        } else {
                            grid.at(i) as f64 / 1000.0
                        }
                    })
                    .collect(),
            })
            .collect();
        return Ok(Evaluated::Vector(merge_rows(out)?));
    };
    // The selector read as a range vector of the lookback window: its last
    // point in (t - lookback, t] is the sample the plain selector returns.
    let lookback = ev.lookback();
    let Evaluated::Ranges(ranges) = ev.ranges(&selector, lookback, grid)? else {
        return Ok(Evaluated::Vector(Vec::new()));
    };
    let mut rows = Vec::new();
    for row in &ranges.rows {
        let points = row.points(&ev.budget)?;
        let mut cursor = WindowCursor::default();
        let values: Vec<f64> = ranges
            .ends
            .iter()
            .map(
                |end| match window(&points, *end, lookback, &mut cursor).last() {
                    Some((t, _)) => *t as f64 / 1000.0,
                    None => ABSENT,
                },
            )
            .collect();
        if values.iter().any(|v| !absent(*v)) {
            rows.push(Row {
                labels: row.labels.clone(),
                values,
                drop_name: true,
            });
        }
    }
    Ok(Evaluated::Vector(merge_rows(rows)?))
}

fn check_label_name(name: &str) -> Result<(), QueryError> {
    let valid = !name.is_empty()
        && name
            .chars()
            .enumerate()
            .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
    if valid {
        Ok(())
    } else {
        Err(QueryError::Execution(format!(
            "invalid label name {name:?}"
        )))
    }
}

fn with_label(labels: &Labels, name: &str, value: &str) -> Labels {
    let mut pairs: Vec<(String, String)> = labels
        .pairs()
        .iter()
        .filter(|(n, _)| n != name)
        .cloned()
        .collect();
    if !value.is_empty() {
        pairs.push((name.to_string(), value.to_string()));
        pairs.sort();
    }
    Labels::from_sorted(pairs)
}

/// `label_replace(v, dst, replacement, src, regex)`.
fn label_replace(
    ev: &mut Evaluator<'_>,
    args: &[Box<Expr>],
    grid: Grid,
) -> Result<Evaluated, QueryError> {
    let rows = vector_arg(ev, args, 0, grid)?;
    let dst = string_arg(ev, args, 1, grid)?;
    let replacement = string_arg(ev, args, 2, grid)?;
    let src = string_arg(ev, args, 3, grid)?;
    let pattern = string_arg(ev, args, 4, grid)?;
    let regex = crate::storage::matcher::anchored_regex(&pattern)
        .map_err(|e| QueryError::BadData(e.to_string()))?;
    check_label_name(&dst)?;
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let source = row.labels.get(&src).unwrap_or("").to_string();
        let labels = match regex.captures(&source) {
            Some(captures) => {
                let mut value = String::new();
                captures.expand(&replacement, &mut value);
                with_label(&row.labels, &dst, &value)
            }
            None => row.labels,
        };
        // Setting the name explicitly keeps it.
        out.push(Row {
            labels,
            values: row.values,
            drop_name: row.drop_name && dst != METRIC_NAME,
        });
    }
    Ok(Evaluated::Vector(merge_rows(out)?))
}

/// `label_join(v, dst, separator, src...)`.
fn label_join(
    ev: &mut Evaluator<'_>,
    args: &[Box<Expr>],
    grid: Grid,
) -> Result<Evaluated, QueryError> {
    let rows = vector_arg(ev, args, 0, grid)?;
    let dst = string_arg(ev, args, 1, grid)?;
    let separator = string_arg(ev, args, 2, grid)?;
    let mut sources = Vec::new();
    for i in 3..args.len() {
        sources.push(string_arg(ev, args, i, grid)?);
    }
    check_label_name(&dst)?;
    let out = rows
        .into_iter()
        .map(|row| {
            let joined: Vec<&str> = sources
                .iter()
                .map(|s| row.labels.get(s).unwrap_or(""))
                .collect();
            Row {
                labels: with_label(&row.labels, &dst, &joined.join(&separator)),
                values: row.values,
                drop_name: row.drop_name && dst != METRIC_NAME,
            }
        })
        .collect();
    Ok(Evaluated::Vector(merge_rows(out)?))
}

/// `histogram_quantile(φ, buckets)` over classic `le` buckets.
fn histogram_quantile(
    ev: &mut Evaluator<'_>,
    args: &[Box<Expr>],
    grid: Grid,
) -> Result<Evaluated, QueryError> {
    let phi = scalar_arg(ev, args, 0, grid)?;
    if let Some(q) = phi.iter().find(|q| !(0.0..=1.0).contains(*q)) {
        ev.notes.warn(functions::notes::invalid_quantile(*q));
    }
    let rows = vector_arg(ev, args, 1, grid)?;
    let mut noted = HashSet::new();
    classic_histograms(ev, &rows, grid, |ev, metric, step, buckets| {
        let (value, notes) = functions::histogram_quantile(phi[step], buckets);
        if notes.forced_monotonic {
            note_forced_monotonicity(ev, &mut noted, metric);
        }
        value
    })
}

/// Notes once per metric (not at every step and series: the text is
/// the same) that buckets had to be made monotonic.
fn note_forced_monotonicity(ev: &mut Evaluator<'_>, noted: &mut HashSet<String>, metric: &str) {
    if !noted.contains(metric) {
        noted.insert(metric.to_owned());
        ev.notes.info(functions::notes::forced_monotonicity(metric));
    }
}

/// `histogram_quantiles(buckets, "label", φ…)`: one series per φ, labelled
/// with it (as Prometheus 3 writes floats in labels).
fn histogram_quantiles(
    ev: &mut Evaluator<'_>,
    args: &[Box<Expr>],
    grid: Grid,
) -> Result<Evaluated, QueryError> {
    let rows = vector_arg(ev, args, 0, grid)?;
    let label = string_arg(ev, args, 1, grid)?;
    check_label_name(&label)?;
    let mut out = Vec::new();
    let mut noted = HashSet::new();
    for i in 2..args.len() {
        let phi = scalar_arg(ev, args, i, grid)?;
        if let Some(q) = phi.iter().find(|q| !(0.0..=1.0).contains(*q)) {
            ev.notes.warn(functions::notes::invalid_quantile(*q));
        }
        let value = crate::scrape::exposition::canonical_float(phi[0]);
        let Evaluated::Vector(result) =
            classic_histograms(ev, &rows, grid, |ev, metric, step, buckets| {
                let (value, notes) = functions::histogram_quantile(phi[step], buckets);
                if notes.forced_monotonic {
                    note_forced_monotonicity(ev, &mut noted, metric);
                }
                value
            })?
        else {
            continue;
        };
        for row in result {
            if row.labels.get(&label).is_some() {
                return Err(QueryError::Execution(format!(
                    "label {label:?} already exists on the buckets of histogram_quantiles"
                )));
            }
            out.push(Row {
                labels: with_label(&row.labels, &label, &value),
                values: row.values,
                drop_name: row.drop_name,
            });
        }
    }
    Ok(Evaluated::Vector(merge_rows(out)?))
}

/// `histogram_fraction(lower, upper, buckets)` over classic `le` buckets.
fn histogram_fraction(
    ev: &mut Evaluator<'_>,
    args: &[Box<Expr>],
    grid: Grid,
) -> Result<Evaluated, QueryError> {
    let lower = scalar_arg(ev, args, 0, grid)?;
    let upper = scalar_arg(ev, args, 1, grid)?;
    let rows = vector_arg(ev, args, 2, grid)?;
    classic_histograms(ev, &rows, grid, |_, _, step, buckets| {
        functions::histogram_fraction(lower[step], upper[step], buckets)
    })
}

/// Groups bucket series by their labels without `le` (and the name) and
/// computes `per_step(evaluator, metric, step, buckets)` for each group and
/// step. Series without a valid `le` are skipped with Prometheus's warning.
fn classic_histograms(
    ev: &mut Evaluator<'_>,
    rows: &[Row],
    grid: Grid,
    mut per_step: impl FnMut(&mut Evaluator<'_>, &str, usize, &mut Vec<(f64, f64)>) -> f64,
) -> Result<Evaluated, QueryError> {
    // Group labels → (metric name, (bucket bound, row) list).
    let mut groups: HashMap<Labels, (String, Vec<(f64, usize)>)> = HashMap::new();
    let mut order: Vec<Labels> = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let metric = row.labels.metric_name().unwrap_or("");
        let le = row.labels.get("le").unwrap_or("");
        let Some(bound) = functions::parse_bucket_bound(le) else {
            ev.notes
                .warn(functions::notes::bad_bucket_label(le, metric));
            continue;
        };
        let labels = Labels::from_sorted(
            row.labels
                .pairs()
                .iter()
                .filter(|(n, _)| n != "le" && n != METRIC_NAME)
                .cloned()
                .collect(),
        );
        groups
            .entry(labels.clone())
            .or_insert_with(|| {
                order.push(labels);
                (metric.to_string(), Vec::new())
            })
            .1
            .push((bound, i));
    }
    let mut out = Vec::with_capacity(order.len());
    let mut buckets: Vec<(f64, f64)> = Vec::new();
    for labels in order {
        let (metric, members) = &groups[&labels];
        let mut values = vec![ABSENT; grid.len()];
        for (step, slot) in values.iter_mut().enumerate() {
            buckets.clear();
            buckets.extend(
                members
                    .iter()
                    .map(|(bound, i)| (*bound, rows[*i].values[step]))
                    .filter(|(_, v)| !absent(*v)),
            );
            if !buckets.is_empty() {
                *slot = per_step(ev, metric, step, &mut buckets);
            }
        }
        if values.iter().any(|v| !absent(*v)) {
            out.push(Row {
                labels,
                values,
                drop_name: false,
            });
        }
    }
    Ok(Evaluated::Vector(out))
}
