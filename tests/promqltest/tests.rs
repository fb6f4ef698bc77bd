//! Unit tests of the script reader and the comparison rules, against what
//! Prometheus's parser and `test.go` make of the same text.

use fleetmon::promql::{RangeSeries, Sample, Value};
use fleetmon::storage::labels::{stale_nan, STALE_NAN_BITS};
use fleetmon::storage::Labels;

use super::compare::{almost_equal, compare};
use super::runner::{run_script, Outcome};
use super::script::{parse_script, Command, Eval, ExpectedValue, Steps, TextMatch, Timing};
use super::series::split_series;
use super::values::{parse_duration, parse_number, parse_sequence};

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

fn only_eval(script: &str) -> Eval {
    match parse_script(script).pop() {
        Some(Command::Eval(eval)) => *eval,
        other => panic!("expected one eval, got {other:?}"),
    }
}

#[test]
fn durations_follow_model_parse_duration() {
    assert_eq!(parse_duration("0"), Ok(0));
    assert_eq!(parse_duration("50m"), Ok(3_000_000));
    assert_eq!(parse_duration("1h30m"), Ok(5_400_000));
    assert_eq!(parse_duration("10s53ms"), Ok(10_053));
    assert_eq!(parse_duration("1111111s"), Ok(1_111_111_000));
    assert_eq!(parse_duration("2w"), Ok(14 * 24 * 3_600_000));
    assert_eq!(parse_duration("1y"), Ok(365 * 24 * 3_600_000));
    for bad in ["", "10", "1.5m", "m", "30m1h", "5mm", "1x", "-1m", "1m1m"] {
        assert!(parse_duration(bad).is_err(), "{bad:?} must be refused");
    }
}

#[test]
fn numbers_follow_go_parse_int_then_parse_float() {
    assert_eq!(parse_number("42"), Ok(42.0));
    assert_eq!(parse_number("-1.5e3"), Ok(-1500.0));
    assert_eq!(parse_number(".5"), Ok(0.5));
    assert_eq!(parse_number("0x1F"), Ok(31.0));
    assert_eq!(
        parse_number("017"),
        Ok(15.0),
        "a leading 0 is octal, as in Go"
    );
    assert_eq!(parse_number("08"), Ok(8.0), "not octal: read as a float");
    assert_eq!(parse_number("1_000"), Ok(1000.0));
    assert_eq!(parse_number("+Inf"), Ok(f64::INFINITY));
    assert_eq!(parse_number("-inf"), Ok(f64::NEG_INFINITY));
    assert!(parse_number("NaN").is_ok_and(f64::is_nan));
    for bad in ["", "1__0", "_1", "1_", "{} 1", "foo", "1e"] {
        assert!(parse_number(bad).is_err(), "{bad:?} must be refused");
    }
}

#[test]
fn sequences_expand_like_promtool() {
    let values = |text: &str| parse_sequence(text).expect("a valid sequence");
    assert_eq!(
        values("0+10x3"),
        [Some(0.0), Some(10.0), Some(20.0), Some(30.0)]
    );
    assert_eq!(values("5-2x2"), [Some(5.0), Some(3.0), Some(1.0)]);
    assert_eq!(values("-1-1x1"), [Some(-1.0), Some(-2.0)]);
    assert_eq!(values("7x2"), [Some(7.0); 3]);
    assert_eq!(
        values("0x2"),
        [Some(0.0); 3],
        "no hexadecimal in series values"
    );
    assert_eq!(
        values("1 _ 2 _x2 3"),
        [Some(1.0), None, Some(2.0), None, None, Some(3.0)]
    );
    assert_eq!(values("1e3+1e2x1"), [Some(1000.0), Some(1100.0)]);
    assert_eq!(
        values("-Inf Inf inf"),
        [
            Some(f64::NEG_INFINITY),
            Some(f64::INFINITY),
            Some(f64::INFINITY)
        ]
    );
    assert_eq!(values("  1\t2 "), [Some(1.0), Some(2.0)]);
    assert!(values("").is_empty());
    let stale = values("1 stale");
    assert_eq!(stale[1].map(f64::to_bits), Some(STALE_NAN_BITS));
    let nan = values("NaN");
    assert!(nan[0].is_some_and(f64::is_nan) && nan[0].map(f64::to_bits) != Some(STALE_NAN_BITS));
    // Repeated addition, as Prometheus: 0.1 added thrice is not 0.3.
    assert_eq!(values("0+0.1x3")[3], Some(0.1 + 0.1 + 0.1));
    for bad in [
        "1+2", "-1+-1x1", "1x", "1xa", "stalex2", "Infx2", "1m", "foo", "1+x3",
    ] {
        assert!(parse_sequence(bad).is_err(), "{bad:?} must be refused");
    }
}

#[test]
fn series_lines_give_sorted_labels_and_values() {
    let (labels, values) =
        split_series(r#"http_requests{job="api", instance='0', group=`canary`} 0+10x10"#)
            .expect("valid");
    assert_eq!(
        labels,
        pairs(&[
            ("__name__", "http_requests"),
            ("group", "canary"),
            ("instance", "0"),
            ("job", "api")
        ])
    );
    assert_eq!(values.trim(), "0+10x10");

    let (labels, _) = split_series(r#"{job="a\"b\n", le="+Inf",} 1"#).expect("valid");
    assert_eq!(labels, pairs(&[("job", "a\"b\n"), ("le", "+Inf")]));

    let (labels, values) = split_series("{} 5").expect("valid");
    assert!(labels.is_empty());
    assert_eq!(values.trim(), "5");

    let (labels, _) = split_series(r#"{"my.metric", "a.b"="c"} 1"#).expect("valid");
    assert_eq!(labels, pairs(&[("__name__", "my.metric"), ("a.b", "c")]));

    let (labels, _) = split_series(r#"node:cpu:{a=""} 1"#).expect("valid");
    assert_eq!(
        labels,
        pairs(&[("__name__", "node:cpu:")]),
        "empty values dropped with a name"
    );

    for bad in [
        r#"foo{a="b" 1"#,
        r#"foo{a=b} 1"#,
        r#"foo{a} 1"#,
        r#"foo{a="b"}1"#,
        r#"foo{a="b} 1"#,
    ] {
        assert!(split_series(bad).is_err(), "{bad:?} must be refused");
    }
}

#[test]
fn loads_keep_floats_and_record_what_they_skip() {
    let commands = parse_script(
        r#"# comment
load 5m
  a{x="1"} 1 2
  h {{schema:0 sum:1 count:1}}x2
  c@st _ 1m
  c 1 2

load_with_nhcb 1m
  b_bucket{le="1"} 1

clear
"#,
    );
    let [Command::Load(first), Command::Load(second), Command::Clear] = &commands[..] else {
        panic!("expected load, load, clear: {commands:?}");
    };
    assert_eq!(
        (first.line, first.interval_ms, first.with_nhcb),
        (2, 300_000, false)
    );
    let names: Vec<&str> = first
        .series
        .iter()
        .map(|(labels, _)| labels[0].1.as_str())
        .collect();
    assert_eq!(names, ["a", "c"]);
    let skipped: Vec<(Option<&str>, &str)> = first
        .skipped
        .iter()
        .map(|s| (s.metric.as_deref(), s.feature))
        .collect();
    assert_eq!(
        skipped,
        [
            (Some("h"), "native histogram samples"),
            (Some("c"), "start timestamps (@st)")
        ]
    );
    assert!(second.with_nhcb);
    assert!(matches!(
        parse_script("load 5\n a 1\n")[..],
        [Command::Invalid { line: 1, .. }]
    ));
    assert!(matches!(
        parse_script("load 5m\n a 1+\n")[..],
        [Command::Invalid { line: 2, .. }]
    ));
}

#[test]
fn instant_evals_with_expectations() {
    let eval = only_eval(
        r#"eval instant at 50m sum by (group) (http_requests)
  expect ordered
  expect warn msg: PromQL warning: x
  expect no_info
  {group="a"} 1
  {group="b"} _
"#,
    );
    assert_eq!(eval.line, 1);
    assert_eq!(eval.query, "sum by (group) (http_requests)");
    assert!(matches!(
        eval.timing,
        Timing::Instant {
            time_ms: 3_000_000,
            range_vector: None
        }
    ));
    assert!(eval.expect.ordered && eval.expect.info.none && eval.expect.fail.is_none());
    assert!(
        matches!(&eval.expect.warn.expected[..], [TextMatch::Exact(m)] if m == "PromQL warning: x")
    );
    let ExpectedValue::Series(series) = &eval.expect.value else {
        panic!("expected series");
    };
    let positions: Vec<usize> = series.iter().map(|s| s.position).collect();
    assert_eq!(positions, [1, 2], "expect lines do not count as positions");
    assert_eq!(series[1].values, [None]);

    let scalar = only_eval("eval instant at 0 1 + 1\n  2\n");
    assert!(matches!(scalar.expect.value, ExpectedValue::Scalar(v) if v == 2.0));

    let string = only_eval("eval instant at 50m \"a\"\n  expect string \"a\\tb\"\n");
    assert_eq!(string.expect.string, "a\tb");
    assert!(string.expect.no_range_mode);

    let vector = only_eval(
        "eval instant at 1m foo[1m]\n  expect range vector from 10s to 1m step 10s\n  foo 1 2 3\n",
    );
    let steps = Steps {
        start_ms: 10_000,
        end_ms: 60_000,
        step_ms: 10_000,
    };
    assert!(
        matches!(vector.timing, Timing::Instant { time_ms, range_vector: Some(s) }
            if s == steps && time_ms == 60_000),
        "the eval runs at the range's end"
    );
}

#[test]
fn failure_expectations_old_and_new() {
    let old = only_eval("eval_fail instant at 0 foo\n  expected_fail_message some error\n");
    assert!(
        matches!(&old.expect.fail.as_deref(), Some([TextMatch::Exact(m)]) if m == "some error")
    );
    let new = only_eval("eval instant at 0 foo\n  expect fail regex: vector cannot .*\n");
    let Some([TextMatch::Pattern(pattern)]) = new.expect.fail.as_deref() else {
        panic!("expected one pattern");
    };
    assert!(pattern.is_match("x vector cannot contain"));
    let any = only_eval("eval instant at 0 foo\n  expect fail\n");
    assert!(matches!(&any.expect.fail.as_deref(), Some([m]) if m.matches("anything")));
    for bad in [
        "eval instant at 0 foo\n  expect fail\n  expect fail\n",
        "eval instant at 0 foo\n  expect warn\n  expect no_warn\n",
        "eval instant at 0 foo\n  expect sometimes\n",
        "eval instant at 0 foo\n  foo 1 2\n",
        "eval instant foo\n",
        "eval range from 10m to 0 step 1m foo\n",
        "eval_ordered range from 0 to 1m step 1m foo\n",
    ] {
        assert!(
            matches!(parse_script(bad)[..], [Command::Invalid { .. }]),
            "{bad:?} must be refused"
        );
    }
}

#[test]
fn range_evals_expand_expected_points() {
    let eval = only_eval(
        "eval_warn range from 0 to 2m step 1m rate(foo[5m])\n  {} 1 _ 3\n  foo{a=\"b\"} 1+1x2\n",
    );
    assert!(matches!(
        eval.timing,
        Timing::Range(Steps {
            start_ms: 0,
            end_ms: 120_000,
            step_ms: 60_000
        })
    ));
    assert!(eval.expect.warn.at_least_one);
    let window = match eval.timing {
        Timing::Range(steps) => Some(steps),
        Timing::Instant { .. } => None,
    };
    let series = |labels: &[(&str, &str)], points: Vec<(i64, f64)>| RangeSeries {
        labels: Labels::new(labels.iter().copied()).unwrap_or_default(),
        points,
    };
    let good = Value::Matrix(vec![
        series(&[], vec![(0, 1.0), (120_000, 3.0)]),
        series(
            &[("__name__", "foo"), ("a", "b")],
            vec![(0, 1.0), (60_000, 2.0), (120_000, 3.0)],
        ),
    ]);
    assert_eq!(compare(&eval.expect, window, &good), Ok(()));
    let shifted = Value::Matrix(vec![
        series(&[], vec![(0, 1.0), (60_000, 3.0)]),
        series(
            &[("__name__", "foo"), ("a", "b")],
            vec![(0, 1.0), (60_000, 2.0), (120_000, 3.0)],
        ),
    ]);
    assert!(compare(&eval.expect, window, &shifted).is_err());
}

#[test]
fn almost_equal_is_relative_and_tells_stale_from_nan() {
    assert!(almost_equal(1.0, 1.0 + 1e-7));
    assert!(!almost_equal(1.0, 1.0 + 1e-5));
    assert!(almost_equal(1e20, 1e20 * (1.0 + 1e-7)));
    assert!(almost_equal(f64::NAN, -f64::NAN));
    assert!(almost_equal(f64::INFINITY, f64::INFINITY));
    assert!(!almost_equal(f64::INFINITY, f64::NEG_INFINITY));
    assert!(
        !almost_equal(0.0, 1e-300),
        "near zero only a subnormal difference is equal"
    );
    assert!(almost_equal(stale_nan(), stale_nan()));
    assert!(!almost_equal(stale_nan(), f64::NAN));
}

#[test]
fn vectors_compare_as_sets_or_in_order() {
    let eval = only_eval("eval instant at 0 foo\n  expect ordered\n  {a=\"1\"} 1\n  {a=\"2\"} 2\n");
    let sample = |a: &str, v: f64| Sample {
        labels: Labels::new([("__name__", "x"), ("a", a)]).expect("valid labels"),
        t: 0,
        v,
    };
    // Labels without __name__ cannot be built through Labels::new, so the
    // expectations name the metric here.
    let named = only_eval("eval instant at 0 foo\n  x{a=\"1\"} 1\n  x{a=\"2\"} 2\n");
    let reversed = Value::Vector(vec![sample("2", 2.0), sample("1", 1.0)]);
    assert_eq!(compare(&named.expect, None, &reversed), Ok(()));
    assert!(compare(&named.expect, None, &Value::Vector(vec![sample("1", 1.0)])).is_err());
    assert!(compare(
        &named.expect,
        None,
        &Value::Vector(vec![sample("1", 1.0), sample("2", 2.5)])
    )
    .is_err());
    assert!(
        compare(&eval.expect, None, &reversed).is_err(),
        "unknown label sets"
    );
    let scalar = Value::Scalar { t: 0, v: 1.0 };
    assert!(compare(&named.expect, None, &scalar).is_err());
}

#[test]
fn runner_judges_evals_and_marks_unsupported() {
    // `info()` (experimental in Prometheus) stands for a function the engine
    // answers "unsupported:" to.
    let script = "load 1m\n  foo{a=\"1\"} 1+1x10\n  h {{count:1}}\n\n\
        eval instant at 5m foo\n  foo{a=\"1\"} 6\n\n\
        eval instant at 5m foo\n  foo{a=\"1\"} 7\n\n\
        eval instant at 5m h\n  {} 1\n\n\
        eval instant at 5m histogram_count(foo)\n\n\
        eval instant at 5m info(foo)\n  {a=\"1\"} 1\n\n\
        bogus\n";
    let outcomes: Vec<(usize, Outcome)> = run_script(script)
        .into_iter()
        .map(|r| (r.line, r.outcome))
        .collect();
    assert_eq!(outcomes[0], (5, Outcome::Passed));
    assert!(
        matches!(&outcomes[1], (8, Outcome::Failed(m)) if m.contains("expected 7")),
        "{outcomes:?}"
    );
    assert!(
        matches!(&outcomes[2], (11, Outcome::Unsupported(m)) if m.contains("reads h")),
        "{outcomes:?}"
    );
    assert!(matches!(&outcomes[3], (14, Outcome::Unsupported(m)) if m.contains("histogram_count")));
    assert!(matches!(&outcomes[4], (16, Outcome::Unsupported(m))
            if m.starts_with("engine: unsupported:")));
    assert!(matches!(&outcomes[5], (19, Outcome::Failed(m)) if m.starts_with("script:")));
}

#[test]
fn runner_checks_failure_and_annotation_expectations() {
    let script = "load 1m\n  foo 1\n  h {{count:1}}\n\n\
        eval_fail instant at 0 foo\n\n\
        eval instant at 0 info(foo)\n  expect fail\n\n\
        eval instant at 0 foo\n  expect warn\n  foo 1\n\n\
        eval instant at 0 foo\n  expect no_warn\n  expect no_info\n  foo 1\n\n\
        eval range from 0 to 1m step 1m foo\n  expect ordered\n  foo 1 1\n\n\
        eval instant at 0 {__name__=\"foo\"}\n\n\
        eval instant at 0 sum(rate({job=\"x\"}[1m]))\n";
    let outcomes: Vec<Outcome> = run_script(script).into_iter().map(|r| r.outcome).collect();
    assert!(
        matches!(&outcomes[0], Outcome::Failed(m) if m.contains("expected an error")),
        "{outcomes:?}"
    );
    assert!(
        matches!(&outcomes[1], Outcome::Unsupported(m) if m.starts_with("engine: unsupported:")),
        "an unsupported error is no expected failure"
    );
    assert!(
        matches!(&outcomes[2], Outcome::Failed(m) if m.contains("warn annotations")),
        "{outcomes:?}"
    );
    assert_eq!(outcomes[3], Outcome::Passed);
    assert!(
        matches!(&outcomes[4], Outcome::Failed(m) if m.contains("ordered")),
        "{outcomes:?}"
    );
    for unnamed in &outcomes[5..] {
        assert!(
            matches!(unnamed, Outcome::Unsupported(m) if m.contains("without a metric name")),
            "{outcomes:?}"
        );
    }
}
