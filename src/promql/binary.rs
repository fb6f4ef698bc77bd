//! Binary operators: arithmetic, comparison (filtering or `bool`) and set
//! operators between scalars and instant vectors, with Prometheus's vector
//! matching (`on`/`ignoring`, `group_left`/`group_right`), its result
//! labels (the metric name dropped by arithmetic and `bool`), and its
//! errors for ambiguous matches. Matching signatures are computed once per
//! series; which series meet is decided step by step, as in Prometheus.

use std::collections::HashMap;

use promql_parser::label::Labels as ParserLabels;
use promql_parser::parser::token::TokenId;
use promql_parser::parser::token::{
    T_ADD, T_ATAN2, T_DIV, T_EQLC, T_GTE, T_GTR, T_LAND, T_LOR, T_LSS, T_LTE, T_LUNLESS, T_MOD,
    T_MUL, T_NEQ, T_POW, T_SUB,
};
use promql_parser::parser::{BinaryExpr, LabelModifier, VectorMatchCardinality};

use super::eval::{absent, kept_labels, merge_rows, Evaluated, Evaluator, Grid, Row, ABSENT};
use super::value::QueryError;
use crate::storage::labels::METRIC_NAME;
use crate::storage::Labels;

/// Evaluates `lhs op rhs`.
pub fn eval(
    ev: &mut Evaluator<'_>,
    expr: &BinaryExpr,
    grid: Grid,
) -> Result<Evaluated, QueryError> {
    let op = expr.op.id();
    let return_bool = expr.modifier.as_ref().is_some_and(|m| m.return_bool);
    let lhs = ev.eval(&expr.lhs, grid)?;
    let rhs = ev.eval(&expr.rhs, grid)?;
    match (lhs, rhs) {
        (Evaluated::Scalar(l), Evaluated::Scalar(r)) => {
            let values = l
                .iter()
                .zip(&r)
                .map(|(a, b)| {
                    let (v, keep) = apply(op, *a, *b, true);
                    if keep {
                        v
                    } else {
                        ABSENT
                    }
                })
                .collect();
            Ok(Evaluated::Scalar(values))
        }
        (Evaluated::Vector(rows), Evaluated::Scalar(s)) => Ok(Evaluated::Vector(vector_scalar(
            op,
            rows,
            &s,
            false,
            return_bool,
        ))),
        (Evaluated::Scalar(s), Evaluated::Vector(rows)) => Ok(Evaluated::Vector(vector_scalar(
            op,
            rows,
            &s,
            true,
            return_bool,
        ))),
        (Evaluated::Vector(l), Evaluated::Vector(r)) => {
            let rows = match op {
                T_LAND | T_LOR | T_LUNLESS => set_operation(op, expr, l, r, grid),
                _ => vector_vector(op, expr, l, r, grid, return_bool)?,
            };
            Ok(Evaluated::Vector(rows))
        }
        _ => Err(QueryError::BadData(
            "binary expression must contain only scalar and instant vector types".into(),
        )),
    }
}

/// `op` applied to two floats: the value and whether the element is kept
/// (comparisons without `bool` filter).
fn apply(op: TokenId, lhs: f64, rhs: f64, return_bool: bool) -> (f64, bool) {
    let compared = |holds: bool| {
        if return_bool {
            (if holds { 1.0 } else { 0.0 }, true)
        } else {
            (lhs, holds)
        }
    };
    match op {
        T_ADD => (lhs + rhs, true),
        T_SUB => (lhs - rhs, true),
        T_MUL => (lhs * rhs, true),
        T_DIV => (lhs / rhs, true),
        T_POW => (lhs.powf(rhs), true),
        T_MOD => (go_mod(lhs, rhs), true),
        T_ATAN2 => (lhs.atan2(rhs), true),
        T_EQLC => compared(lhs == rhs),
        T_NEQ => compared(lhs != rhs),
        T_GTR => compared(lhs > rhs),
        T_LSS => compared(lhs < rhs),
        T_GTE => compared(lhs >= rhs),
        T_LTE => compared(lhs <= rhs),
        _ => (f64::NAN, false),
    }
}

/// Go's `math.Mod`: the sign of the dividend, NaN for a zero divisor.
fn go_mod(lhs: f64, rhs: f64) -> f64 {
    if rhs == 0.0 || lhs.is_infinite() || lhs.is_nan() || rhs.is_nan() {
        return f64::NAN;
    }
    lhs % rhs
}

fn is_comparison(op: TokenId) -> bool {
    matches!(op, T_EQLC | T_NEQ | T_GTR | T_LSS | T_GTE | T_LTE)
}

/// Whether the result loses `__name__`: arithmetic does, and so does a
/// comparison with `bool`.
fn drops_name(op: TokenId, return_bool: bool) -> bool {
    !is_comparison(op) || return_bool
}

fn vector_scalar(
    op: TokenId,
    rows: Vec<Row>,
    scalar: &[f64],
    scalar_on_left: bool,
    return_bool: bool,
) -> Vec<Row> {
    let drop = drops_name(op, return_bool);
    rows.into_iter()
        .filter_map(|row| {
            let values: Vec<f64> = row
                .values
                .iter()
                .zip(scalar)
                .map(|(v, s)| {
                    if absent(*v) || absent(*s) {
                        return ABSENT;
                    }
                    let (value, keep) = if scalar_on_left {
                        let (value, keep) = apply(op, *s, *v, return_bool);
                        // A filtering comparison keeps the vector's value.
                        if is_comparison(op) && !return_bool {
                            (*v, keep)
                        } else {
                            (value, keep)
                        }
                    } else {
                        apply(op, *v, *s, return_bool)
                    };
                    if keep {
                        value
                    } else {
                        ABSENT
                    }
                })
                .collect();
            let drop_name = drop || row.drop_name;
            values.iter().any(|v| !absent(*v)).then_some(Row {
                labels: row.labels,
                values,
                drop_name,
            })
        })
        .collect()
}

/// The labels two series are matched on: the `on`/`ignoring` clause's,
/// or every label but the name.
fn signature(labels: &Labels, matching: Option<&LabelModifier>) -> Vec<(String, String)> {
    match matching {
        Some(clause) => kept_labels(labels, clause),
        None => labels
            .pairs()
            .iter()
            .filter(|(n, _)| n != METRIC_NAME)
            .cloned()
            .collect(),
    }
}

fn describe(pairs: &[(String, String)]) -> String {
    let inner: Vec<String> = pairs.iter().map(|(n, v)| format!("{n}=\"{v}\"")).collect();
    format!("{{{}}}", inner.join(", "))
}

fn vector_vector(
    op: TokenId,
    expr: &BinaryExpr,
    lhs: Vec<Row>,
    rhs: Vec<Row>,
    grid: Grid,
    return_bool: bool,
) -> Result<Vec<Row>, QueryError> {
    let modifier = expr.modifier.as_ref();
    let matching = modifier.and_then(|m| m.matching.as_ref());
    let card = modifier
        .map(|m| m.card.clone())
        .unwrap_or(VectorMatchCardinality::OneToOne);
    // group_right swaps the sides: the "many" side is always `many` here.
    let (many, one, swapped, include) = match &card {
        VectorMatchCardinality::OneToMany(labels) => (rhs, lhs, true, labels.clone()),
        VectorMatchCardinality::ManyToOne(labels) => (lhs, rhs, false, labels.clone()),
        _ => (lhs, rhs, false, ParserLabels::new(Vec::new())),
    };
    let one_to_one = matches!(card, VectorMatchCardinality::OneToOne);
    // Signatures become small integers once, so that the per-step matching
    // below indexes arrays instead of hashing label lists.
    let one_sigs: Vec<Vec<(String, String)>> =
        one.iter().map(|r| signature(&r.labels, matching)).collect();
    let mut sig_ids: HashMap<&[(String, String)], usize> = HashMap::new();
    let one_group: Vec<usize> = one_sigs
        .iter()
        .map(|sig| {
            let next = sig_ids.len();
            *sig_ids.entry(sig.as_slice()).or_insert(next)
        })
        .collect();
    let many_group: Vec<Option<usize>> = many
        .iter()
        .map(|r| {
            sig_ids
                .get(signature(&r.labels, matching).as_slice())
                .copied()
        })
        .collect();
    let drop = drops_name(op, return_bool);
    // Output rows in (many index, one index) order: their labels do not
    // change from step to step.
    let mut out_index: HashMap<(usize, usize), usize> = HashMap::new();
    let mut out: Vec<((usize, usize), Row)> = Vec::new();
    // The "one" row of each group at the current step, and the step at
    // which a "one" row was last matched (one-to-one allows one match).
    let mut one_at: Vec<Option<usize>> = vec![None; sig_ids.len()];
    let mut matched_at: Vec<usize> = vec![usize::MAX; one.len()];
    for step in 0..grid.len() {
        one_at.iter_mut().for_each(|slot| *slot = None);
        for (i, row) in one.iter().enumerate() {
            if absent(row.values[step]) {
                continue;
            }
            let group = one_group[i];
            if let Some(first) = one_at[group] {
                // The "one" side must be unique per signature at each step.
                let side = if swapped { "left" } else { "right" };
                return Err(QueryError::Execution(format!(
                    "found duplicate series for the match group {} on the {side} hand-side of the operation: [{}, {}];many-to-many matching not allowed: matching labels must be unique on one side",
                    describe(&one_sigs[i]),
                    one[first].labels,
                    row.labels
                )));
            }
            one_at[group] = Some(i);
        }
        for (m, row) in many.iter().enumerate() {
            let v = row.values[step];
            if absent(v) {
                continue;
            }
            let Some(o) = many_group[m].and_then(|group| one_at[group]) else {
                continue;
            };
            if one_to_one {
                if matched_at[o] == step {
                    return Err(QueryError::Execution(
                        "multiple matches for labels: many-to-one matching must be explicit (group_left/group_right)"
                            .into(),
                    ));
                }
                matched_at[o] = step;
            }
            let w = one[o].values[step];
            let (l, r) = if swapped { (w, v) } else { (v, w) };
            let (value, keep) = apply(op, l, r, return_bool);
            if !keep {
                continue;
            }
            // A filtering comparison keeps the left-hand value.
            let value = if is_comparison(op) && !return_bool {
                l
            } else {
                value
            };
            let index = *out_index.entry((m, o)).or_insert_with(|| {
                out.push((
                    (m, o),
                    Row {
                        labels: result_labels(
                            &row.labels,
                            &one[o].labels,
                            one_to_one,
                            matching,
                            &include,
                        ),
                        values: vec![ABSENT; grid.len()],
                        drop_name: drop || row.drop_name,
                    },
                ));
                out.len() - 1
            });
            out[index].1.values[step] = value;
        }
    }
    out.sort_by_key(|(key, _)| *key);
    merge_rows(out.into_iter().map(|(_, row)| row).collect())
}

/// The labels of a matched pair's result, as Prometheus's `resultMetric`.
fn result_labels(
    many: &Labels,
    one: &Labels,
    one_to_one: bool,
    matching: Option<&LabelModifier>,
    include: &ParserLabels,
) -> Labels {
    // The name stays until the end of the query (delayed name removal).
    let mut pairs: Vec<(String, String)> = many.pairs().to_vec();
    if one_to_one {
        match matching {
            Some(LabelModifier::Include(names)) => {
                pairs.retain(|(n, _)| names.labels.contains(n));
            }
            Some(LabelModifier::Exclude(names)) => {
                pairs.retain(|(n, _)| !names.labels.contains(n));
            }
            None => {}
        }
    }
    for name in &include.labels {
        pairs.retain(|(n, _)| n != name);
        if let Some(value) = one.get(name).filter(|v| !v.is_empty()) {
            pairs.push((name.clone(), value.to_string()));
        }
    }
    pairs.sort();
    Labels::from_sorted(pairs)
}

/// The signatures of the rows with a value at `step`.
fn present_at<'s>(
    sigs: &'s [Vec<(String, String)>],
    rows: &[Row],
    step: usize,
) -> std::collections::HashSet<&'s [(String, String)]> {
    sigs.iter()
        .zip(rows)
        .filter(|(_, row)| !absent(row.values[step]))
        .map(|(sig, _)| sig.as_slice())
        .collect()
}

fn set_operation(
    op: TokenId,
    expr: &BinaryExpr,
    lhs: Vec<Row>,
    rhs: Vec<Row>,
    grid: Grid,
) -> Vec<Row> {
    let matching = expr.modifier.as_ref().and_then(|m| m.matching.as_ref());
    let rhs_sigs: Vec<Vec<(String, String)>> =
        rhs.iter().map(|r| signature(&r.labels, matching)).collect();
    let lhs_sigs: Vec<Vec<(String, String)>> =
        lhs.iter().map(|r| signature(&r.labels, matching)).collect();
    match op {
        T_LAND | T_LUNLESS => {
            let mut out = lhs;
            for step in 0..grid.len() {
                let right = present_at(&rhs_sigs, &rhs, step);
                for (row, sig) in out.iter_mut().zip(&lhs_sigs) {
                    let matched = right.contains(sig.as_slice());
                    if matched != (op == T_LAND) {
                        row.values[step] = ABSENT;
                    }
                }
            }
            out.retain(|row| row.values.iter().any(|v| !absent(*v)));
            out
        }
        _ => {
            // `or`: every lhs element, and the rhs elements whose signature
            // the lhs lacks at that step.
            let mut right = rhs;
            for step in 0..grid.len() {
                let left = present_at(&lhs_sigs, &lhs, step);
                for (row, sig) in right.iter_mut().zip(&rhs_sigs) {
                    if left.contains(sig.as_slice()) {
                        row.values[step] = ABSENT;
                    }
                }
            }
            let mut out = lhs;
            out.extend(
                right
                    .into_iter()
                    .filter(|row| row.values.iter().any(|v| !absent(*v))),
            );
            out
        }
    }
}
