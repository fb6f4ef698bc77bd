//! `/api/v1/parse_query`'s answer: a parsed PromQL expression as the JSON
//! tree Prometheus's UI draws (its tree view and explain pane). Every node
//! has a `type` and Prometheus's fields for that type, with Prometheus's
//! conventions: durations and `@` times in milliseconds, absent values as
//! `null`, absent lists as `[]`, a selector's metric name repeated as a
//! trailing `__name__` matcher, and `matching` only between two vectors.
//! Fields of syntax promql-parser does not have (duration expressions,
//! `anchored`/`smoothed` selectors) are `null`/`false`, as Prometheus shows
//! them for a query without that syntax. The one addition is `orMatchers`,
//! present only for promql-parser's `{a="1" or b="2"}` selectors, which
//! Prometheus cannot parse.

use std::time::{Duration, SystemTime};

use promql_parser::label::{Matcher, Matchers, METRIC_NAME};
use promql_parser::parser::value::ValueType;
use promql_parser::parser::{
    AggregateExpr, AtModifier, BinaryExpr, Call, Expr, LabelModifier, Offset, SubqueryExpr,
    VectorMatchCardinality, VectorSelector,
};
use serde_json::{json, Map, Value};

/// The tree of `expr`.
pub(super) fn tree(expr: &Expr) -> Value {
    match expr {
        Expr::Aggregate(aggregate) => aggregation(aggregate),
        // promql-parser folds unary `+` away; only `-` remains.
        Expr::Unary(unary) => json!({"type": "unaryExpr", "op": "-", "expr": tree(&unary.expr)}),
        Expr::Binary(binary) => binary_expr(binary),
        Expr::Paren(paren) => json!({"type": "parenExpr", "expr": tree(&paren.expr)}),
        Expr::Subquery(subquery) => subquery_expr(subquery),
        Expr::NumberLiteral(number) => json!({"type": "numberLiteral", "val": float(number.val)}),
        Expr::StringLiteral(string) => json!({"type": "stringLiteral", "val": string.val}),
        Expr::VectorSelector(selector) => {
            let mut node = selector_fields(selector);
            node.insert("type".into(), json!("vectorSelector"));
            Value::Object(node)
        }
        Expr::MatrixSelector(matrix) => {
            let mut node = selector_fields(&matrix.vs);
            node.insert("type".into(), json!("matrixSelector"));
            node.insert("range".into(), json!(millis(matrix.range)));
            node.insert("rangeExpr".into(), Value::Null);
            Value::Object(node)
        }
        Expr::Call(call) => call_expr(call),
        // Only library users build extensions; the parser never returns one.
        Expr::Extension(_) => Value::Null,
    }
}

fn aggregation(aggregate: &AggregateExpr) -> Value {
    let (grouping, without) = match &aggregate.modifier {
        Some(LabelModifier::Include(labels)) => (labels.labels.clone(), false),
        Some(LabelModifier::Exclude(labels)) => (labels.labels.clone(), true),
        None => (Vec::new(), false),
    };
    json!({
        "type": "aggregation",
        "op": aggregate.op.to_string(),
        "expr": tree(&aggregate.expr),
        "param": aggregate.param.as_deref().map_or(Value::Null, tree),
        "grouping": grouping,
        "without": without,
    })
}

fn binary_expr(binary: &BinaryExpr) -> Value {
    let modifier = binary.modifier.as_ref();
    // Prometheus keeps vector matching only when both sides are vectors;
    // set operators always match many-to-many.
    let vectors = binary.lhs.value_type() == ValueType::Vector
        && binary.rhs.value_type() == ValueType::Vector;
    let matching = if vectors {
        let card = modifier.map_or(&VectorMatchCardinality::OneToOne, |m| &m.card);
        let card = match card {
            VectorMatchCardinality::OneToOne if binary.op.is_set_operator() => "many-to-many",
            VectorMatchCardinality::OneToOne => "one-to-one",
            VectorMatchCardinality::ManyToOne(_) => "many-to-one",
            VectorMatchCardinality::OneToMany(_) => "one-to-many",
            VectorMatchCardinality::ManyToMany => "many-to-many",
        };
        let (labels, on) = match modifier.and_then(|m| m.matching.as_ref()) {
            Some(LabelModifier::Include(labels)) => (labels.labels.clone(), true),
            Some(LabelModifier::Exclude(labels)) => (labels.labels.clone(), false),
            None => (Vec::new(), false),
        };
        let include = modifier
            .and_then(|m| m.card.labels())
            .map(|l| l.labels.clone())
            .unwrap_or_default();
        let fill = modifier.map(|m| &m.fill_values);
        json!({
            "card": card,
            "labels": labels,
            "on": on,
            "include": include,
            "fillValues": {
                "lhs": fill.and_then(|f| f.lhs),
                "rhs": fill.and_then(|f| f.rhs),
            },
        })
    } else {
        Value::Null
    };
    json!({
        "type": "binaryExpr",
        "op": binary.op.to_string(),
        "lhs": tree(&binary.lhs),
        "rhs": tree(&binary.rhs),
        "matching": matching,
        "bool": modifier.is_some_and(|m| m.return_bool),
    })
}

fn call_expr(call: &Call) -> Value {
    let func = &call.func;
    let arg_types: Vec<String> = func.arg_types.iter().map(ValueType::to_string).collect();
    json!({
        "type": "call",
        "func": {
            "name": func.name,
            "argTypes": arg_types,
            "variadic": func.variadic,
            "returnType": func.return_type.to_string(),
        },
        "args": call.args.args.iter().map(|arg| tree(arg)).collect::<Vec<_>>(),
    })
}

fn subquery_expr(subquery: &SubqueryExpr) -> Value {
    let (timestamp, start_or_end) = at(subquery.at.as_ref());
    json!({
        "type": "subquery",
        "expr": tree(&subquery.expr),
        "range": millis(subquery.range),
        "rangeExpr": null,
        "offset": offset(subquery.offset.as_ref()),
        "offsetExpr": null,
        "step": subquery.step.map_or(0, millis),
        "stepExpr": null,
        "timestamp": timestamp,
        "startOrEnd": start_or_end,
    })
}

/// The fields vector and matrix selectors share.
fn selector_fields(selector: &VectorSelector) -> Map<String, Value> {
    let (timestamp, start_or_end) = at(selector.at.as_ref());
    let mut node = Map::new();
    node.insert("name".into(), json!(selector.name.as_deref().unwrap_or("")));
    node.insert("matchers".into(), matchers(selector));
    if !selector.matchers.or_matchers.is_empty() {
        node.insert("orMatchers".into(), or_matchers(&selector.matchers));
    }
    node.insert("offset".into(), json!(offset(selector.offset.as_ref())));
    node.insert("offsetExpr".into(), Value::Null);
    node.insert("timestamp".into(), timestamp);
    node.insert("startOrEnd".into(), start_or_end);
    node.insert("anchored".into(), json!(false));
    node.insert("smoothed".into(), json!(false));
    node
}

fn matcher(m: &Matcher) -> Value {
    json!({"type": m.op.to_string(), "name": m.name, "value": m.value})
}

/// The selector's matchers; a name written outside the braces becomes a
/// trailing `__name__` matcher, as Prometheus's parser adds it.
fn matchers(selector: &VectorSelector) -> Value {
    let mut list: Vec<Value> = selector.matchers.matchers.iter().map(matcher).collect();
    if let Some(name) = &selector.name {
        list.push(json!({"type": "=", "name": METRIC_NAME, "value": name}));
    }
    Value::Array(list)
}

fn or_matchers(matchers: &Matchers) -> Value {
    matchers
        .or_matchers
        .iter()
        .map(|group| group.iter().map(matcher).collect::<Vec<_>>())
        .collect()
}

fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

fn offset(offset: Option<&Offset>) -> i64 {
    match offset {
        Some(Offset::Pos(d)) => millis(*d),
        Some(Offset::Neg(d)) => -millis(*d),
        None => 0,
    }
}

/// `timestamp` (ms) and `startOrEnd` of an `@` modifier.
fn at(modifier: Option<&AtModifier>) -> (Value, Value) {
    match modifier {
        Some(AtModifier::Start) => (Value::Null, json!("start")),
        Some(AtModifier::End) => (Value::Null, json!("end")),
        Some(AtModifier::At(time)) => {
            let ms = match time.duration_since(SystemTime::UNIX_EPOCH) {
                Ok(after) => millis(after),
                Err(before) => -millis(before.duration()),
            };
            (json!(ms), Value::Null)
        }
        None => (Value::Null, Value::Null),
    }
}

/// A number in its shortest fixed-point form, never in exponent form
/// (`0.5`, `1000000` for `1e6`), with Prometheus's `+Inf`/`-Inf`/`NaN`.
fn float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        v.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(query: &str) -> Value {
        tree(&promql_parser::parser::parse(query).unwrap_or_else(|e| panic!("{query}: {e}")))
    }

    #[test]
    fn selectors_have_prometheus_fields() {
        let node = parsed(r#"up{job="node",mode!~"idle|iowait"} offset 5m @ 1700000000"#);
        assert_eq!(
            node,
            json!({
                "type": "vectorSelector",
                "name": "up",
                "matchers": [
                    {"type": "=", "name": "job", "value": "node"},
                    {"type": "!~", "name": "mode", "value": "idle|iowait"},
                    {"type": "=", "name": "__name__", "value": "up"},
                ],
                "offset": 300_000,
                "offsetExpr": null,
                "timestamp": 1_700_000_000_000_i64,
                "startOrEnd": null,
                "anchored": false,
                "smoothed": false,
            })
        );
        let node = parsed("rate(http_requests_total[5m] offset -1m @ end())");
        let matrix = &node["args"][0];
        assert_eq!(matrix["type"], "matrixSelector");
        assert_eq!(matrix["range"], 300_000);
        assert_eq!(matrix["offset"], -60_000);
        assert_eq!(matrix["startOrEnd"], "end");
        assert_eq!(matrix["timestamp"], Value::Null);
        assert_eq!(
            node["func"],
            json!({"name": "rate", "argTypes": ["matrix"], "variadic": 0, "returnType": "vector"})
        );
        // A name inside the braces is a matcher like any other.
        let node = parsed(r#"{__name__="up"}"#);
        assert_eq!(node["name"], "");
        assert_eq!(node["matchers"].as_array().map(Vec::len), Some(1));
    }

    #[test]
    fn operators_aggregations_and_literals() {
        let node = parsed(r#"sum without (cpu) (a) / on (job) group_left (team) b"#);
        assert_eq!(node["type"], "binaryExpr");
        assert_eq!(node["op"], "/");
        assert_eq!(node["bool"], false);
        assert_eq!(
            node["matching"],
            json!({"card": "many-to-one", "labels": ["job"], "on": true, "include": ["team"],
                   "fillValues": {"lhs": null, "rhs": null}})
        );
        assert_eq!(
            node["lhs"],
            json!({"type": "aggregation", "op": "sum", "param": null, "grouping": ["cpu"],
                   "without": true, "expr": parsed("a")})
        );
        // Set operators match many-to-many; nothing matches against a scalar.
        assert_eq!(parsed("a and b")["matching"]["card"], "many-to-many");
        assert_eq!(parsed("a + b")["matching"]["card"], "one-to-one");
        assert_eq!(parsed("a > bool 1")["matching"], Value::Null);
        assert_eq!(parsed("a > bool 1")["bool"], true);
        let top = parsed("topk(3, x)");
        assert_eq!(top["param"], json!({"type": "numberLiteral", "val": "3"}));
        assert_eq!(top["grouping"], json!([]));
        assert_eq!(parsed("0.5")["val"], "0.5");
        assert_eq!(parsed("1e6")["val"], "1000000");
        assert_eq!(parsed("Inf")["val"], "+Inf");
        assert_eq!(
            parsed(r#""hi""#),
            json!({"type": "stringLiteral", "val": "hi"})
        );
        assert_eq!(parsed("-(a)")["type"], "unaryExpr");
        assert_eq!(parsed("-(a)")["expr"]["type"], "parenExpr");
    }

    #[test]
    fn subqueries_and_variadic_calls() {
        let node = parsed("max_over_time(rate(x[1m])[10m:30s] @ start())");
        let subquery = &node["args"][0];
        assert_eq!(subquery["type"], "subquery");
        assert_eq!(subquery["range"], 600_000);
        assert_eq!(subquery["step"], 30_000);
        assert_eq!(subquery["startOrEnd"], "start");
        assert_eq!(subquery["expr"]["func"]["name"], "rate");
        assert_eq!(parsed("x[5m:]")["step"], 0);
        let round = parsed("round(x)");
        assert_eq!(round["func"]["variadic"], 1);
        assert_eq!(round["func"]["argTypes"], json!(["vector", "scalar"]));
        assert_eq!(round["args"].as_array().map(Vec::len), Some(1));
    }
}
