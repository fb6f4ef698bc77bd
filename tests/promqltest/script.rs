//! The promqltest script language (Prometheus `promql/promqltest`): a file
//! is read into [`Command`]s the way `test.go` reads it — lines trimmed,
//! `#` lines blanked, a command's body running to the next blank line.
//!
//! Commands: `load <interval>` (and `load_with_nhcb`), `clear`,
//! `eval instant at <t> <query>`, `eval range from <t> to <t> step <d> <query>`,
//! the deprecated `eval_fail` / `eval_warn` / `eval_info` / `eval_ordered` with
//! `expected_fail_message` / `expected_fail_regexp`, and inside an eval the
//! `expect fail|warn|info|no_warn|no_info|ordered [msg: …|regex: …]`,
//! `expect string "…"` and `expect range vector from … to … step …` lines,
//! then the expected series lines or a bare scalar.
//!
//! A command that cannot be read becomes [`Command::Invalid`] (Prometheus
//! would refuse the whole file): the runner reports it as a failure at its
//! line and goes on with the next command.

use regex::Regex;

use super::series::{split_series, LabelPairs, METRIC_NAME};
use super::values::{parse_duration, parse_number, parse_sequence, SeqValue};

/// One command of a script. Line numbers are 1-based.
#[derive(Debug)]
pub enum Command {
    /// Adds series to the store.
    Load(Load),
    /// Empties the store.
    Clear,
    /// Runs a query and checks its result.
    Eval(Box<Eval>),
    /// A command the runner could not read.
    Invalid {
        /// Where it starts or where reading failed.
        line: usize,
        /// Why.
        message: String,
    },
}

/// A `load` block.
#[derive(Debug)]
pub struct Load {
    /// Line of the `load` keyword.
    pub line: usize,
    /// Time between two values of a series line, ms (the first is at 0).
    pub interval_ms: i64,
    /// `load_with_nhcb`: Prometheus also converts the classic histogram
    /// series into native histograms with custom buckets.
    pub with_nhcb: bool,
    /// The float series, in file order.
    pub series: Vec<(LabelPairs, Vec<SeqValue>)>,
    /// Lines that could not be loaded as floats (native histogram values,
    /// `@st` start timestamps), for the runner to mark what depends on them.
    pub skipped: Vec<Skipped>,
}

/// A series line the float store cannot hold.
#[derive(Debug)]
pub struct Skipped {
    /// Its metric name, if it has one.
    pub metric: Option<String>,
    /// Which feature it needs.
    pub feature: &'static str,
}

/// What `{{…}}` values need.
pub const NATIVE_HISTOGRAMS: &str = "native histogram samples";
/// What an `@st` line needs.
pub const START_TIMESTAMPS: &str = "start timestamps (@st)";

/// An `eval` command.
#[derive(Debug)]
pub struct Eval {
    /// Line of the `eval` keyword.
    pub line: usize,
    /// The PromQL expression, as written.
    pub query: String,
    /// Instant or range, and when.
    pub timing: Timing,
    /// What must hold of the outcome.
    pub expect: Expectations,
}

/// When a query is evaluated.
#[derive(Debug, Clone, Copy)]
pub enum Timing {
    /// `eval instant at <time>`; `range_vector` is the window an
    /// `expect range vector` line gives the expected matrix's points (the
    /// query then runs at its end, as in Prometheus).
    Instant {
        /// Evaluation time, ms.
        time_ms: i64,
        /// From `expect range vector from … to … step …`.
        range_vector: Option<Steps>,
    },
    /// `eval range from … to … step …`.
    Range(Steps),
}

/// A time range with a step, ms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Steps {
    /// First step.
    pub start_ms: i64,
    /// Last possible step (inclusive).
    pub end_ms: i64,
    /// Distance between steps.
    pub step_ms: i64,
}

/// How a message (error or annotation) must look.
#[derive(Debug)]
pub enum TextMatch {
    /// `msg:` — exactly this text.
    Exact(String),
    /// `regex:` (or no match part, which Prometheus reads as `^.*$`) —
    /// unanchored match of this RE2 pattern.
    Pattern(Regex),
}

impl TextMatch {
    /// Whether `text` satisfies this expectation.
    pub fn matches(&self, text: &str) -> bool {
        match self {
            TextMatch::Exact(expected) => expected == text,
            TextMatch::Pattern(pattern) => pattern.is_match(text),
        }
    }
}

impl std::fmt::Display for TextMatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TextMatch::Exact(text) => write!(f, "message {text:?}"),
            TextMatch::Pattern(pattern) => write!(f, "pattern {:?}", pattern.as_str()),
        }
    }
}

/// Expectations about one annotation kind (warnings or infos).
#[derive(Debug, Default)]
pub struct AnnotationRules {
    /// `eval_warn` / `eval_info`: at least one.
    pub at_least_one: bool,
    /// `expect warn …` lines: each must match an annotation, and every
    /// annotation must match one of them.
    pub expected: Vec<TextMatch>,
    /// `expect no_warn` / `expect no_info`.
    pub none: bool,
}

/// The expected result value.
#[derive(Debug)]
pub enum ExpectedValue {
    /// Series lines (none at all means "empty result").
    Series(Vec<ExpectedSeries>),
    /// A bare number line: a scalar result.
    Scalar(f64),
}

/// One expected series line.
#[derive(Debug)]
pub struct ExpectedSeries {
    /// Labels, `__name__` included when the line names a metric.
    pub labels: LabelPairs,
    /// Values; an instant vector uses only the first.
    pub values: Vec<SeqValue>,
    /// 1-based position among the series lines, for `expect ordered`.
    pub position: usize,
}

/// Everything an eval asserts.
#[derive(Debug)]
pub struct Expectations {
    /// The query must fail; every matcher must accept the error message
    /// (`expect fail` without a match part accepts anything).
    pub fail: Option<Vec<TextMatch>>,
    /// The vector's order must be the lines' order.
    pub ordered: bool,
    /// Warning annotations.
    pub warn: AnnotationRules,
    /// Info annotations.
    pub info: AnnotationRules,
    /// The result.
    pub value: ExpectedValue,
    /// `expect string "…"` (Prometheus compares a string result with "" when absent).
    pub string: String,
    /// `expect string` or `expect range vector`: the result cannot be checked
    /// again as a range query.
    pub no_range_mode: bool,
    /// An expected line holds native histogram values (`{{…}}`).
    pub native_histograms: bool,
}

/// Reads a whole script.
pub fn parse_script(text: &str) -> Vec<Command> {
    let lines: Vec<&str> = text
        .split('\n')
        .map(|line| {
            let line = line.trim();
            if line.starts_with('#') {
                ""
            } else {
                line
            }
        })
        .collect();
    let mut commands = Vec::new();
    let mut index = 0;
    while index < lines.len() {
        if lines[index].is_empty() {
            index += 1;
            continue;
        }
        let (command, next) = parse_command(&lines, index);
        commands.push(command);
        index = next;
    }
    commands
}

/// Reads the command at `lines[start]`; returns it and the index of the line
/// after it. An unreadable command is skipped up to the next blank line.
fn parse_command(lines: &[&str], start: usize) -> (Command, usize) {
    let keyword = lines[start]
        .split([' ', '\t'])
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    let parsed = if keyword == "clear" {
        Ok((Command::Clear, start + 1))
    } else if keyword.starts_with("load") {
        parse_load(lines, start).map(|(load, next)| (Command::Load(load), next))
    } else if keyword.starts_with("eval") {
        parse_eval(lines, start).map(|(eval, next)| (Command::Eval(Box::new(eval)), next))
    } else {
        Err((start, format!("invalid command {:?}", lines[start])))
    };
    parsed.unwrap_or_else(|(line, message)| {
        let next = (start..lines.len())
            .find(|&i| lines[i].is_empty())
            .unwrap_or(lines.len());
        let line = line + 1;
        (Command::Invalid { line, message }, next)
    })
}

/// An error at a 0-based line index.
type LineError = (usize, String);

/// The body of a command: the non-blank lines after its first line.
fn body<'l, 'a>(lines: &'l [&'a str], start: usize) -> impl Iterator<Item = (usize, &'a str)> + 'l {
    lines[start + 1..]
        .iter()
        .take_while(|line| !line.is_empty())
        .enumerate()
        .map(move |(offset, line)| (start + 1 + offset, *line))
}

fn parse_load(lines: &[&str], start: usize) -> Result<(Load, usize), LineError> {
    let error = |message: String| (start, message);
    let mut words = lines[start].splitn(2, [' ', '\t']);
    let keyword = words.next().unwrap_or_default();
    let with_nhcb = match keyword {
        "load" => false,
        "load_with_nhcb" => true,
        _ => return Err(error(format!("invalid load command {keyword:?}"))),
    };
    let interval = words.next().unwrap_or_default().trim();
    let interval_ms = parse_duration(interval)
        .map_err(|e| error(format!("invalid step definition {interval:?}: {e}")))?;
    let mut load = Load {
        line: start + 1,
        interval_ms,
        with_nhcb,
        series: Vec::new(),
        skipped: Vec::new(),
    };
    let mut next = start + 1;
    for (index, line) in body(lines, start) {
        read_load_line(&mut load, line).map_err(|e| (index, e))?;
        next = index + 1;
    }
    Ok((load, next))
}

/// One line of a load body: a float series, a native histogram series or
/// an `@st` start-timestamp line (the last two are recorded as skipped).
fn read_load_line(load: &mut Load, line: &str) -> Result<(), String> {
    let first_word = line.split_whitespace().next().unwrap_or_default();
    let (metric_text, feature) = match first_word.strip_suffix("@st") {
        Some(metric) => (metric, Some(START_TIMESTAMPS)),
        None => (line, None),
    };
    let (labels, values) = split_series(metric_text)?;
    let feature = feature.or_else(|| values.contains("{{").then_some(NATIVE_HISTOGRAMS));
    if let Some(feature) = feature {
        let metric = labels
            .iter()
            .find(|(name, _)| name == METRIC_NAME)
            .map(|(_, value)| value.clone());
        load.skipped.push(Skipped { metric, feature });
        return Ok(());
    }
    let values = parse_sequence(values)?;
    load.series.push((labels, values));
    Ok(())
}

/// The deprecated `eval_*` suffixes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OldModifier {
    None,
    Fail,
    Warn,
    Info,
    Ordered,
}

fn parse_eval(lines: &[&str], start: usize) -> Result<(Eval, usize), LineError> {
    let error = |message: String| (start, message);
    let (keyword, rest) = next_word(lines[start]);
    let modifier = match keyword {
        "eval" => OldModifier::None,
        "eval_fail" => OldModifier::Fail,
        "eval_warn" => OldModifier::Warn,
        "eval_info" => OldModifier::Info,
        "eval_ordered" => OldModifier::Ordered,
        _ => return Err(error(format!("invalid eval command {keyword:?}"))),
    };
    let (timing, query) = parse_eval_header(rest, modifier).map_err(error)?;
    let mut eval = Eval {
        line: start + 1,
        query: query.to_string(),
        timing,
        expect: Expectations {
            fail: (modifier == OldModifier::Fail).then(Vec::new),
            ordered: modifier == OldModifier::Ordered,
            warn: AnnotationRules {
                at_least_one: modifier == OldModifier::Warn,
                ..AnnotationRules::default()
            },
            info: AnnotationRules {
                at_least_one: modifier == OldModifier::Info,
                ..AnnotationRules::default()
            },
            value: ExpectedValue::Series(Vec::new()),
            string: String::new(),
            no_range_mode: false,
            native_histograms: false,
        },
    };
    let mut state = BodyState {
        old_fail: modifier == OldModifier::Fail,
        position: 1,
    };
    let mut next = start + 1;
    for (index, line) in body(lines, start) {
        next = index + 1;
        let done = read_eval_line(&mut eval, &mut state, line).map_err(|e| (index, e))?;
        if done {
            break;
        }
    }
    Ok((eval, next))
}

/// What reading an eval body carries from line to line.
struct BodyState {
    /// `eval_fail`: the deprecated `expected_fail_*` lines are read.
    old_fail: bool,
    /// Position the next series line gets: as in `test.go`, every body line
    /// but `expect <kind>` lines counts.
    position: usize,
}

/// `instant at <t> <query>` or `range from <t> to <t> step <d> <query>`.
fn parse_eval_header(text: &str, modifier: OldModifier) -> Result<(Timing, &str), String> {
    let (kind, rest) = next_word(text);
    let (timing, query) = match kind {
        "instant" => parse_instant_header(rest)?,
        // `eval_ordered` exists for instant evals only.
        "range" if modifier != OldModifier::Ordered => {
            let (steps, query) = parse_steps(rest)?;
            (Timing::Range(steps), query)
        }
        _ => return Err(format!("invalid evaluation command {text:?}")),
    };
    if query.is_empty() {
        return Err(format!("missing query in {text:?}"));
    }
    Ok((timing, query))
}

/// `at <t> <query>`.
fn parse_instant_header(text: &str) -> Result<(Timing, &str), String> {
    let (at, rest) = next_word(text);
    let (time, query) = next_word(rest);
    if at != "at" {
        return Err(format!("want `instant at <time> <query>`, got {text:?}"));
    }
    let time_ms =
        parse_duration(time).map_err(|e| format!("invalid timestamp definition {time:?}: {e}"))?;
    let timing = Timing::Instant {
        time_ms,
        range_vector: None,
    };
    Ok((timing, query))
}

/// `from <t> to <t> step <d> [rest]`: the steps and the rest.
fn parse_steps(text: &str) -> Result<(Steps, &str), String> {
    let (from_kw, rest) = next_word(text);
    let (from, rest) = next_word(rest);
    let (to_kw, rest) = next_word(rest);
    let (to, rest) = next_word(rest);
    let (step_kw, rest) = next_word(rest);
    let (step, rest) = next_word(rest);
    if (from_kw, to_kw, step_kw) != ("from", "to", "step") {
        return Err(format!("want `from <t> to <t> step <d>`, got {text:?}"));
    }
    let start_ms = parse_duration(from)
        .map_err(|e| format!("invalid start timestamp definition {from:?}: {e}"))?;
    let end_ms =
        parse_duration(to).map_err(|e| format!("invalid end timestamp definition {to:?}: {e}"))?;
    let step_ms =
        parse_duration(step).map_err(|e| format!("invalid step definition {step:?}: {e}"))?;
    if end_ms < start_ms {
        return Err(format!(
            "end timestamp ({to}) is before start timestamp ({from})"
        ));
    }
    Ok((
        Steps {
            start_ms,
            end_ms,
            step_ms,
        },
        rest,
    ))
}

/// Splits off the first space- or tab-separated word.
fn next_word(text: &str) -> (&str, &str) {
    let text = text.trim_start_matches([' ', '\t']);
    match text.find([' ', '\t']) {
        Some(end) => (&text[..end], text[end..].trim_start_matches([' ', '\t'])),
        None => (text, ""),
    }
}

/// One line of an eval body, in `test.go`'s order of checks. Returns true
/// when the line ends the body (`expected_fail_*` and a scalar do, there).
fn read_eval_line(eval: &mut Eval, state: &mut BodyState, line: &str) -> Result<bool, String> {
    let expect = &mut eval.expect;
    if line.split(' ').next() == Some("expect")
        && !line.starts_with("expect range vector")
        && !line.starts_with("expect string")
    {
        read_expect(expect, line)?;
        return Ok(false);
    }
    let position = state.position;
    state.position += 1;
    if let (true, Some(fail)) = (state.old_fail, expect.fail.as_mut()) {
        if let Some(message) = line.strip_prefix("expected_fail_message") {
            fail.push(TextMatch::Exact(message.trim().to_string()));
            return Ok(true);
        }
        if let Some(pattern) = line.strip_prefix("expected_fail_regexp") {
            fail.push(TextMatch::Pattern(compile(pattern.trim())?));
            return Ok(true);
        }
    }
    if let Some(rest) = line.strip_prefix("expect range vector") {
        read_range_vector(eval, rest)?;
        return Ok(false);
    }
    if line.starts_with("expect string") {
        expect.string = parse_expect_string(line)?;
        expect.no_range_mode = true;
        return Ok(false);
    }
    if let Ok(value) = parse_number(line) {
        expect.value = ExpectedValue::Scalar(value);
        return Ok(true);
    }
    read_expected_series(eval, line, position)?;
    Ok(false)
}

/// `expect range vector from <t> to <t> step <d>` (the prefix already cut).
fn read_range_vector(eval: &mut Eval, rest: &str) -> Result<(), String> {
    let Timing::Instant {
        time_ms,
        range_vector,
    } = &mut eval.timing
    else {
        return Err("expect range vector is only valid for an instant eval".into());
    };
    let (steps, trailing) = parse_steps(rest)?;
    if !trailing.is_empty() {
        return Err(format!("unexpected {trailing:?} after expect range vector"));
    }
    *time_ms = steps.end_ms;
    *range_vector = Some(steps);
    eval.expect.no_range_mode = true;
    Ok(())
}

/// `expect string "…"` / `` expect string `…` ``.
fn parse_expect_string(line: &str) -> Result<String, String> {
    let quoted = line
        .strip_prefix("expect string ")
        .filter(|rest| !rest.is_empty())
        .ok_or("expected string literal not valid - a quoted string literal is required")?;
    match super::series::read_quoted(quoted) {
        Ok((value, "")) => Ok(value),
        _ => Err(format!(
            "expected string literal {quoted:?} is not correctly quoted"
        )),
    }
}

/// `expect <fail|warn|info|no_warn|no_info|ordered> [msg: …|regex: …]`.
fn read_expect(expect: &mut Expectations, line: &str) -> Result<(), String> {
    let (_, rest) = next_word(line);
    let (kind, rest) = next_word(rest);
    let matcher = parse_text_match(rest)?;
    match kind {
        "fail" => {
            let fail = expect.fail.get_or_insert_with(Vec::new);
            if !fail.is_empty() {
                return Err(
                    "invalid expect lines, multiple expect fail lines are not allowed".into(),
                );
            }
            fail.push(matcher);
        }
        "ordered" => expect.ordered = true,
        "warn" => expect.warn.expected.push(matcher),
        "info" => expect.info.expected.push(matcher),
        "no_warn" => expect.warn.none = true,
        "no_info" => expect.info.none = true,
        _ => return Err(format!("invalid expect statement {line:?}")),
    }
    if !expect.warn.expected.is_empty() && expect.warn.none {
        return Err("invalid expect lines, warn and no_warn cannot be used together".into());
    }
    if !expect.info.expected.is_empty() && expect.info.none {
        return Err("invalid expect lines, info and no_info cannot be used together".into());
    }
    Ok(())
}

/// The optional `msg: text` / `regex: pattern` part; none matches anything.
fn parse_text_match(text: &str) -> Result<TextMatch, String> {
    if text.is_empty() {
        return Ok(TextMatch::Pattern(compile(".*")?));
    }
    if let Some(message) = text.strip_prefix("msg:") {
        return Ok(TextMatch::Exact(message.trim().to_string()));
    }
    if let Some(pattern) = text.strip_prefix("regex:") {
        return Ok(TextMatch::Pattern(compile(pattern.trim())?));
    }
    Err(format!(
        "invalid expect statement part {text:?}, want `msg: …` or `regex: …`"
    ))
}

fn compile(pattern: &str) -> Result<Regex, String> {
    Regex::new(pattern).map_err(|e| format!("invalid regex {pattern:?}: {e}"))
}

/// An expected series line.
fn read_expected_series(eval: &mut Eval, line: &str, position: usize) -> Result<(), String> {
    let (labels, values) = split_series(line)?;
    let expect = &mut eval.expect;
    if values.contains("{{") {
        expect.native_histograms = true;
        return Ok(());
    }
    let values = parse_sequence(values)?;
    let single_valued = matches!(
        eval.timing,
        Timing::Instant {
            range_vector: None,
            ..
        }
    );
    if values.len() > 1 && single_valued {
        return Err("multiple values in an instant eval need `expect range vector`".into());
    }
    let ExpectedValue::Series(series) = &mut expect.value else {
        return Err("series line after a scalar".into());
    };
    // Prometheus keys expectations by label set: a repeated set replaces the earlier line.
    series.retain(|s| s.labels != labels);
    series.push(ExpectedSeries {
        labels,
        values,
        position,
    });
    Ok(())
}
