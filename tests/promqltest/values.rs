//! The scalar syntax of test scripts, read as Prometheus reads it:
//! durations (`model.ParseDuration`: `5m`, `1h30m`, `10s53ms`, a bare `0`),
//! numbers (`strconv.ParseInt(s, 0, 64)`, then `strconv.ParseFloat`), and the
//! expanding value sequences of series lines (`1+2x3`, `5-1x2`, `7x2`, `_`,
//! `_x4`, `stale`, `Inf`, `-NaN`, `1.5e3`), as promtool's series notation.

use fleetmon::storage::labels::stale_nan;

/// One position of a value sequence: a sample value, or `None` for `_`
/// ("no sample at this step").
pub type SeqValue = Option<f64>;

/// Duration units in the order `model.ParseDuration` requires them, with
/// their length in milliseconds (a year is 365 days, as there).
const DURATION_UNITS: [(&str, i64); 7] = [
    ("y", 365 * 24 * 3_600_000),
    ("w", 7 * 24 * 3_600_000),
    ("d", 24 * 3_600_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// Parses a Prometheus duration into milliseconds. Like Prometheus, a plain
/// number other than `0` is refused: script times always carry a unit.
pub fn parse_duration(text: &str) -> Result<i64, String> {
    match text {
        "0" => return Ok(0),
        "" => return Err("empty duration string".into()),
        _ => {}
    }
    let invalid = || format!("not a valid duration string: {text:?}");
    let mut rest = text;
    let mut total: i64 = 0;
    let mut previous_unit: Option<usize> = None;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit_len = rest[digits..]
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len() - digits);
        if digits == 0 || unit_len == 0 {
            return Err(invalid());
        }
        let amount: i64 = rest[..digits].parse().map_err(|_| invalid())?;
        let unit = &rest[digits..digits + unit_len];
        let index = DURATION_UNITS
            .iter()
            .position(|(name, _)| *name == unit)
            .ok_or_else(|| format!("unknown unit {unit:?} in duration {text:?}"))?;
        // Units must go from the biggest to the smallest, each at most once.
        if previous_unit.is_some_and(|previous| index <= previous) {
            return Err(invalid());
        }
        previous_unit = Some(index);
        total = amount
            .checked_mul(DURATION_UNITS[index].1)
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(|| format!("duration out of range: {text:?}"))?;
        rest = &rest[digits + unit_len..];
    }
    Ok(total)
}

/// Parses a number as Prometheus's script and PromQL parsers do: as a Go
/// integer literal first (`0x1f`, `0o17`, `017` is octal, `1_000`), then as a
/// Go float (`1.5e3`, `.5`, `Inf`, `-Inf`, `NaN`, any case). Go's hexadecimal
/// floats (`0x1p-2`) are not read: no script uses them.
pub fn parse_number(text: &str) -> Result<f64, String> {
    parse_go_int(text)
        // Go converts the int64 to float64 the same way.
        .map(|int| int as f64)
        .or_else(|| parse_go_float(text))
        .ok_or_else(|| format!("error parsing number: {text:?}"))
}

/// `strconv.ParseInt(text, 0, 64)`.
fn parse_go_int(text: &str) -> Option<i64> {
    let (negative, unsigned) = split_sign(text);
    if !underscores_ok(unsigned) {
        return None;
    }
    let digits = unsigned.replace('_', "").to_ascii_lowercase();
    let (radix, body) = if let Some(body) = digits.strip_prefix("0x") {
        (16, body)
    } else if let Some(body) = digits.strip_prefix("0o") {
        (8, body)
    } else if let Some(body) = digits.strip_prefix("0b") {
        (2, body)
    } else if digits.len() > 1 && digits.starts_with('0') {
        (8, &digits[1..])
    } else {
        (10, digits.as_str())
    };
    if body.is_empty() || !body.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = i128::from_str_radix(body, radix).ok()?;
    i64::try_from(if negative { -magnitude } else { magnitude }).ok()
}

/// `strconv.ParseFloat(text, 64)` for decimal syntax: Rust and Go read
/// decimals, `inf`, `infinity` and `nan` (any case, signed) alike; Go also
/// allows digit-separating underscores.
fn parse_go_float(text: &str) -> Option<f64> {
    let (_, unsigned) = split_sign(text);
    if !underscores_ok(unsigned) {
        return None;
    }
    text.replace('_', "").parse().ok()
}

fn split_sign(text: &str) -> (bool, &str) {
    match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    }
}

/// Go's `underscoreOK`: an underscore may only stand between two digits, or
/// between a base prefix and a digit.
fn underscores_ok(unsigned: &str) -> bool {
    #[derive(PartialEq)]
    enum Saw {
        Start,
        Digit,
        Underscore,
        Other,
    }
    let bytes = unsigned.as_bytes();
    let prefixed = bytes.len() >= 2
        && bytes[0] == b'0'
        && matches!(bytes[1].to_ascii_lowercase(), b'b' | b'o' | b'x');
    let hex = prefixed && bytes[1].eq_ignore_ascii_case(&b'x');
    let (mut saw, body) = if prefixed {
        (Saw::Digit, &bytes[2..])
    } else {
        (Saw::Start, bytes)
    };
    for &byte in body {
        if byte.is_ascii_digit() || (hex && byte.is_ascii_hexdigit()) {
            saw = Saw::Digit;
        } else if byte == b'_' {
            if saw != Saw::Digit {
                return false;
            }
            saw = Saw::Underscore;
        } else if saw == Saw::Underscore {
            return false;
        } else {
            saw = Saw::Other;
        }
    }
    saw != Saw::Underscore
}

/// Expands the values part of a series line (native histograms excluded:
/// callers look for `{{` first).
pub fn parse_sequence(text: &str) -> Result<Vec<SeqValue>, String> {
    let mut values = Vec::new();
    for item in text.split_whitespace() {
        values.extend(parse_item(item)?);
    }
    Ok(values)
}

/// One whitespace-free item: `_`, `_xN`, `stale`, `v`, `vxN` (N+1 copies),
/// `a+bxN` / `a-bxN` (N+1 values from `a`, adding ±b each step — by repeated
/// addition, as Prometheus does, so rounding matches too).
fn parse_item(item: &str) -> Result<Vec<SeqValue>, String> {
    if item == "_" {
        return Ok(vec![None]);
    }
    if let Some(count) = item.strip_prefix("_x") {
        return Ok(vec![None; parse_count(count)?]);
    }
    if item == "stale" {
        return Ok(vec![Some(stale_nan())]);
    }
    let (start, rest) = split_signed_number(item)?;
    if rest.is_empty() {
        return Ok(vec![Some(start)]);
    }
    if let Some(count) = rest.strip_prefix('x') {
        return Ok(vec![Some(start); parse_count(count)? + 1]);
    }
    if !rest.starts_with(['+', '-']) {
        return Err(format!("invalid series item {item:?}"));
    }
    let (delta, rest) = split_signed_number(rest)?;
    let count = rest
        .strip_prefix('x')
        .ok_or_else(|| format!("missing repetition in series item {item:?}"))?;
    let mut value = start;
    let values = (0..=parse_count(count)?)
        .map(|_| {
            let current = value;
            value += delta;
            Some(current)
        })
        .collect();
    Ok(values)
}

/// A repetition count: a plain decimal, as `strconv.ParseUint(s, 10, 64)`.
fn parse_count(text: &str) -> Result<usize, String> {
    if !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("invalid repetition in series values: {text:?}"));
    }
    text.parse()
        .map_err(|e| format!("invalid repetition in series values: {text:?}: {e}"))
}

/// Reads an optionally signed number from the start of `text`, returning it
/// and the rest.
fn split_signed_number(text: &str) -> Result<(f64, &str), String> {
    let (negative, unsigned) = split_sign(text);
    let (value, rest) = split_number(unsigned)?;
    Ok((if negative { -value } else { value }, rest))
}

/// Reads an unsigned number from the start of `text` the way the PromQL
/// lexer does in series descriptions: `Inf`/`NaN` as words (so `Infx3` is an
/// error there too), otherwise digits, `.`, `_` and an exponent, which only
/// `x` (the repetition) or a non-alphanumeric may follow. No hexadecimal: the
/// lexer refuses it in series descriptions.
fn split_number(text: &str) -> Result<(f64, &str), String> {
    if text.starts_with(|c: char| c.is_ascii_alphabetic()) {
        let end = text
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(text.len());
        let word = &text[..end];
        if word.eq_ignore_ascii_case("inf") || word.eq_ignore_ascii_case("nan") {
            return Ok((parse_number(word)?, &text[end..]));
        }
        return Err(format!(
            "unexpected {word:?} in series values, want a number or \"stale\""
        ));
    }
    let bytes = text.as_bytes();
    let mut end = 0;
    while let Some(&byte) = bytes.get(end) {
        match byte {
            b'0'..=b'9' | b'.' | b'_' => end += 1,
            b'e' | b'E' => {
                end += 1;
                if matches!(bytes.get(end), Some(b'+' | b'-')) {
                    end += 1;
                }
            }
            _ => break,
        }
    }
    let (number, rest) = text.split_at(end);
    if number.is_empty() || rest.starts_with(|c: char| c.is_ascii_alphanumeric() && c != 'x') {
        return Err(format!("bad number syntax: {text:?}"));
    }
    Ok((parse_number(number)?, rest))
}
