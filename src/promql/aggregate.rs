//! Aggregation operators (`sum`, `avg`, `min`, `max`, `count`, `group`,
//! `stddev`, `stdvar`, `quantile`, `topk`, `bottomk`, `limitk`,
//! `limit_ratio`, `count_values`) with `by`/`without`, step by step. Groups
//! are computed once per series; `sum`, `avg` and `stdvar` share the
//! compensated sums of the `*_over_time` functions, as in Prometheus 3.

use std::collections::HashMap;

use promql_parser::parser::token::TokenId;
use promql_parser::parser::token::{
    T_AVG, T_BOTTOMK, T_COUNT, T_COUNT_VALUES, T_GROUP, T_LIMITK, T_LIMIT_RATIO, T_MAX, T_MIN,
    T_QUANTILE, T_STDDEV, T_STDVAR, T_SUM, T_TOPK,
};
use promql_parser::parser::{AggregateExpr, LabelModifier};

use super::eval::{absent, kept_labels, Evaluated, Evaluator, Grid, Row, ABSENT};
use super::functions;
use super::value::QueryError;
use crate::storage::Labels;

/// Evaluates an aggregation.
pub fn eval(
    ev: &mut Evaluator<'_>,
    expr: &AggregateExpr,
    grid: Grid,
) -> Result<Evaluated, QueryError> {
    let op = expr.op.id();
    let param = match &expr.param {
        Some(param) => Some(ev.eval(param, grid)?),
        None => None,
    };
    let rows = match ev.eval(&expr.expr, grid)? {
        Evaluated::Vector(rows) => rows,
        _ => {
            return Err(QueryError::BadData(
                "expected type instant vector in aggregation expression".into(),
            ))
        }
    };
    let modifier = expr.modifier.as_ref();
    match op {
        T_TOPK | T_BOTTOMK | T_LIMITK | T_LIMIT_RATIO => {
            let values = scalar_param(param, "k")?;
            select_series(op, rows, modifier, &values, grid)
        }
        T_COUNT_VALUES => {
            let label = match param {
                Some(Evaluated::String(label)) => label,
                _ => {
                    return Err(QueryError::BadData(
                        "count_values needs a label name".into(),
                    ))
                }
            };
            count_values(&label, rows, modifier, grid)
        }
        _ => {
            let phi = if op == T_QUANTILE {
                Some(scalar_param(param, "quantile")?)
            } else {
                None
            };
            if let Some(phi) = &phi {
                if let Some(q) = phi
                    .iter()
                    .find(|q| !absent(**q) && !(0.0..=1.0).contains(*q))
                {
                    ev.notes.warn(functions::notes::invalid_quantile(*q));
                }
            }
            Ok(Evaluated::Vector(reduce(
                op,
                rows,
                modifier,
                phi.as_deref(),
                grid,
            )))
        }
    }
}

fn scalar_param(param: Option<Evaluated>, what: &str) -> Result<Vec<f64>, QueryError> {
    match param {
        Some(Evaluated::Scalar(values)) => Ok(values),
        _ => Err(QueryError::BadData(format!(
            "expected type scalar for the {what} parameter"
        ))),
    }
}

/// The labels of a series' group.
fn group_labels(labels: &Labels, modifier: Option<&LabelModifier>) -> Labels {
    Labels::from_sorted(modifier.map_or_else(Vec::new, |m| kept_labels(labels, m)))
}

/// Series indices by group, groups in order of first appearance.
fn groups(rows: &[Row], modifier: Option<&LabelModifier>) -> Vec<(Labels, Vec<usize>)> {
    let mut index: HashMap<Labels, usize> = HashMap::new();
    let mut out: Vec<(Labels, Vec<usize>)> = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let labels = group_labels(&row.labels, modifier);
        match index.get(&labels) {
            Some(&g) => out[g].1.push(i),
            None => {
                index.insert(labels.clone(), out.len());
                out.push((labels, vec![i]));
            }
        }
    }
    out
}

/// Values the members of all groups hold between them from which groups
/// are reduced side by side on every core.
const PARALLEL_VALUES: usize = 1 << 20;

fn reduce(
    op: TokenId,
    rows: Vec<Row>,
    modifier: Option<&LabelModifier>,
    phi: Option<&[f64]>,
    grid: Grid,
) -> Vec<Row> {
    let groups = groups(&rows, modifier);
    // Groups are independent: each is reduced whole by one thread, so the
    // order of its additions, and the result, is the same either way.
    let min_part = if rows.len() * grid.len() >= PARALLEL_VALUES {
        1
    } else {
        groups.len()
    };
    crate::parallel::map_parts(&groups, min_part, |part| {
        let mut scratch = Vec::new();
        part.iter()
            .filter_map(|(labels, members)| {
                reduce_group(op, &rows, members, phi, grid, &mut scratch).map(
                    |(values, drop_name)| Row {
                        labels: labels.clone(),
                        values,
                        drop_name,
                    },
                )
            })
            .collect::<Vec<Row>>()
    })
    .into_iter()
    .flatten()
    .collect()
}

/// One group's values, and whether its row loses its name; `None` when it
/// has no value at any step.
fn reduce_group(
    op: TokenId,
    rows: &[Row],
    members: &[usize],
    phi: Option<&[f64]>,
    grid: Grid,
    scratch: &mut Vec<f64>,
) -> Option<(Vec<f64>, bool)> {
    let mut values = vec![ABSENT; grid.len()];
    if matches!(op, T_SUM | T_COUNT | T_GROUP) {
        sum_rowwise(op, rows, members, &mut values);
    } else {
        for (step, slot) in values.iter_mut().enumerate() {
            scratch.clear();
            scratch.extend(
                members
                    .iter()
                    .map(|i| rows[*i].values[step])
                    .filter(|v| !absent(*v)),
            );
            if scratch.is_empty() {
                continue;
            }
            *slot = match op {
                T_AVG => functions::mean(scratch.iter().copied()),
                T_MIN => extreme(scratch, |a, b| a < b),
                T_MAX => extreme(scratch, |a, b| a > b),
                T_STDDEV => functions::variance(scratch.iter().copied()).sqrt(),
                T_STDVAR => functions::variance(scratch.iter().copied()),
                T_QUANTILE => {
                    let q = phi.map_or(f64::NAN, |p| p[step]);
                    functions::quantile(q, scratch)
                }
                _ => ABSENT,
            };
        }
    }
    if values.iter().all(|v| absent(*v)) {
        return None;
    }
    // Grouping by `__name__` keeps a name some member is to lose: the group
    // loses it too (delayed name removal).
    let drop_name = members.iter().any(|i| rows[*i].drop_name);
    Some((values, drop_name))
}

/// `sum`, `count` and `group` of a group's members into `values`, member
/// by member (each row read once, in order) rather than step by step:
/// the same additions in the same order as [`functions::kahan_sum`] per
/// step, without gathering each step's values from every row.
fn sum_rowwise(op: TokenId, rows: &[Row], members: &[usize], values: &mut [f64]) {
    let mut sums = vec![functions::KahanSum::default(); values.len()];
    let mut counts = vec![0u32; values.len()];
    for &i in members {
        for (step, &v) in rows[i].values.iter().enumerate() {
            if absent(v) {
                continue;
            }
            counts[step] += 1;
            if op == T_SUM {
                sums[step].add(v);
            }
        }
    }
    for (step, slot) in values.iter_mut().enumerate() {
        if counts[step] > 0 {
            *slot = match op {
                T_SUM => sums[step].total(),
                T_COUNT => f64::from(counts[step]),
                _ => 1.0,
            };
        }
    }
}

/// `min`/`max`: NaN only when every value is NaN, as Prometheus.
fn extreme(values: &[f64], better: impl Fn(f64, f64) -> bool) -> f64 {
    let mut best = values[0];
    for &v in &values[1..] {
        if better(v, best) || best.is_nan() {
            best = v;
        }
    }
    best
}

fn select_series(
    op: TokenId,
    rows: Vec<Row>,
    modifier: Option<&LabelModifier>,
    k: &[f64],
    grid: Grid,
) -> Result<Evaluated, QueryError> {
    let mut keep: Vec<Vec<f64>> = rows.iter().map(|_| vec![ABSENT; grid.len()]).collect();
    let groups = groups(&rows, modifier);
    for step in 0..grid.len() {
        let param = k[step];
        if param.is_nan() {
            // Checked even when there is nothing to select, as Prometheus.
            let what = if op == T_LIMIT_RATIO {
                "Ratio"
            } else {
                "Parameter"
            };
            return Err(QueryError::Execution(format!("{what} value is NaN")));
        }
        for (_, members) in &groups {
            let present: Vec<usize> = members
                .iter()
                .copied()
                .filter(|i| !absent(rows[*i].values[step]))
                .collect();
            let chosen: Vec<usize> = match op {
                T_LIMIT_RATIO => {
                    let ratio = param.clamp(-1.0, 1.0);
                    present
                        .into_iter()
                        .filter(|i| ratio_selects(&rows[*i].labels, ratio))
                        .collect()
                }
                _ => {
                    let count = if param < 1.0 {
                        0
                    } else {
                        param.min(1e9) as usize
                    };
                    let mut ordered = present;
                    match op {
                        T_TOPK => ordered.sort_by(|a, b| {
                            descending(rows[*a].values[step], rows[*b].values[step])
                        }),
                        T_BOTTOMK => ordered.sort_by(|a, b| {
                            ascending(rows[*a].values[step], rows[*b].values[step])
                        }),
                        _ => {}
                    }
                    ordered.truncate(count);
                    ordered
                }
            };
            for i in chosen {
                keep[i][step] = rows[i].values[step];
            }
        }
    }
    let group_of: HashMap<usize, usize> = groups
        .iter()
        .enumerate()
        .flat_map(|(g, (_, members))| members.iter().map(move |i| (*i, g)))
        .collect();
    let mut out: Vec<(usize, Row)> = rows
        .into_iter()
        .zip(keep)
        .enumerate()
        .filter(|(_, (_, values))| values.iter().any(|v| !absent(*v)))
        .map(|(i, (row, values))| {
            (
                group_of.get(&i).copied().unwrap_or(0),
                Row {
                    labels: row.labels,
                    values,
                    drop_name: row.drop_name,
                },
            )
        })
        .collect();
    // An instant topk/bottomk lists each group's series best first, as
    // Prometheus does.
    if grid.len() == 1 && matches!(op, T_TOPK | T_BOTTOMK) {
        out.sort_by(|(ga, a), (gb, b)| {
            ga.cmp(gb).then_with(|| {
                if op == T_TOPK {
                    descending(a.values[0], b.values[0])
                } else {
                    ascending(a.values[0], b.values[0])
                }
            })
        });
    }
    Ok(Evaluated::Vector(
        out.into_iter().map(|(_, row)| row).collect(),
    ))
}

/// Orders larger values first, NaN last (topk prefers any number to NaN).
fn descending(a: f64, b: f64) -> std::cmp::Ordering {
    nan_last(a, b).unwrap_or_else(|| b.partial_cmp(&a).unwrap_or(std::cmp::Ordering::Equal))
}

/// Orders smaller values first, NaN last (so does bottomk).
fn ascending(a: f64, b: f64) -> std::cmp::Ordering {
    nan_last(a, b).unwrap_or_else(|| a.partial_cmp(&b).unwrap_or(std::cmp::Ordering::Equal))
}

/// The order of `a` and `b` when either is NaN: NaN after numbers.
fn nan_last(a: f64, b: f64) -> Option<std::cmp::Ordering> {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Some(std::cmp::Ordering::Equal),
        (true, false) => Some(std::cmp::Ordering::Greater),
        (false, true) => Some(std::cmp::Ordering::Less),
        _ => None,
    }
}

/// Whether `limit_ratio(ratio)` keeps a series: decided by the series'
/// label hash, so the same series are kept at every step, and `ratio` and
/// `-(1 - ratio)` pick complementary sets.
fn ratio_selects(labels: &Labels, ratio: f64) -> bool {
    let position = labels.stable_hash() as f64 / u64::MAX as f64;
    if ratio >= 0.0 {
        position < ratio
    } else {
        position >= 1.0 + ratio
    }
}

fn count_values(
    label: &str,
    rows: Vec<Row>,
    modifier: Option<&LabelModifier>,
    grid: Grid,
) -> Result<Evaluated, QueryError> {
    let mut out: HashMap<Labels, Vec<f64>> = HashMap::new();
    let mut order: Vec<Labels> = Vec::new();
    for row in &rows {
        let base = group_labels(&row.labels, modifier);
        for (step, v) in row.values.iter().enumerate() {
            if absent(*v) {
                continue;
            }
            let mut pairs: Vec<(String, String)> = base
                .pairs()
                .iter()
                .filter(|(n, _)| n != label)
                .cloned()
                .collect();
            pairs.push((label.to_string(), super::value::format_value(*v)));
            pairs.sort();
            let labels = Labels::from_sorted(pairs);
            let values = out.entry(labels.clone()).or_insert_with(|| {
                order.push(labels);
                vec![ABSENT; grid.len()]
            });
            values[step] = if absent(values[step]) {
                1.0
            } else {
                values[step] + 1.0
            };
        }
    }
    let rows = order
        .into_iter()
        .filter_map(|labels| {
            let values = out.remove(&labels)?;
            Some(Row {
                labels,
                values,
                drop_name: false,
            })
        })
        .collect();
    Ok(Evaluated::Vector(rows))
}
