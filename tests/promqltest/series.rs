//! Series lines, `metric{label="value", …} <values>`, as the PromQL parser
//! reads a series description: the metric name is an identifier, the label
//! set may be empty or absent, names may be quoted (Prometheus 3 UTF-8 names,
//! a quoted name alone being the metric name), values are quoted with `"`,
//! `'` or `` ` `` and Go escapes. With a metric name, labels with an empty
//! value are dropped (as Prometheus's label builder does); without one the
//! set is kept as written.

/// A label set, sorted by name: the shape results are compared in.
pub type LabelPairs = Vec<(String, String)>;

/// The label holding the metric name.
pub const METRIC_NAME: &str = "__name__";

/// Splits a series line into its label set and the (unparsed) values text.
pub fn split_series(line: &str) -> Result<(LabelPairs, &str), String> {
    let line = line.trim_start();
    let name_len = identifier_len(line);
    let (name, rest) = line.split_at(name_len);
    let (mut pairs, values) = match rest.strip_prefix('{') {
        Some(inside) => parse_label_set(inside)?,
        None => (Vec::new(), rest),
    };
    if !values.is_empty() && !values.starts_with(char::is_whitespace) {
        return Err(format!("unexpected {values:?} after the series' labels"));
    }
    if !name.is_empty() {
        pairs.retain(|(n, v)| n != METRIC_NAME && !v.is_empty());
        pairs.push((METRIC_NAME.to_string(), name.to_string()));
    }
    // Stable, as Go's sort of a label slice keeps duplicates in place.
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    Ok((pairs, values))
}

/// Formats a label set the way Prometheus prints series in test failures.
pub fn format_labels(pairs: &[(String, String)]) -> String {
    let name = pairs
        .iter()
        .find(|(n, _)| n == METRIC_NAME)
        .map_or("", |(_, v)| v.as_str());
    let rest: Vec<String> = pairs
        .iter()
        .filter(|(n, _)| n != METRIC_NAME)
        .map(|(n, v)| format!("{n}={v:?}"))
        .collect();
    format!("{name}{{{}}}", rest.join(", "))
}

/// The length of the metric-name identifier (`[a-zA-Z_:][a-zA-Z0-9_:]*`) at
/// the start of `text`, 0 if there is none.
pub fn identifier_len(text: &str) -> usize {
    let first_ok = text
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':');
    if !first_ok {
        return 0;
    }
    text.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
        .unwrap_or(text.len())
}

/// Parses `a="x", "b.c"='y', "name"}` (the opening brace already read) and
/// returns the pairs and what follows the closing brace.
fn parse_label_set(mut rest: &str) -> Result<(LabelPairs, &str), String> {
    let mut pairs = Vec::new();
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix('}') {
            return Ok((pairs, after));
        }
        let (pair, after) = parse_label(rest)?;
        pairs.push(pair);
        rest = after.trim_start();
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else if !rest.starts_with('}') {
            return Err(format!("expected \",\" or \"}}\" in label set at {rest:?}"));
        }
    }
}

/// One `name="value"`, or a quoted metric name alone.
fn parse_label(text: &str) -> Result<((String, String), &str), String> {
    let (name, quoted_name, rest) = match identifier_len(text) {
        0 => {
            let (name, rest) = read_quoted(text)?;
            (name, true, rest)
        }
        len => (text[..len].to_string(), false, &text[len..]),
    };
    let rest = rest.trim_start();
    match rest.strip_prefix('=') {
        Some(after) => {
            let (value, rest) = read_quoted(after.trim_start())?;
            Ok(((name, value), rest))
        }
        None if quoted_name => Ok(((METRIC_NAME.to_string(), name), rest)),
        None => Err(format!("expected \"=\" after label name {name:?}")),
    }
}

/// Reads a quoted string at the start of `text` and unquotes it as Go does:
/// raw between backquotes, escapes between `"` or `'`.
pub fn read_quoted(text: &str) -> Result<(String, &str), String> {
    let quote = text
        .chars()
        .next()
        .filter(|c| matches!(c, '"' | '\'' | '`'))
        .ok_or_else(|| format!("expected a quoted string at {text:?}"))?;
    let body = &text[1..];
    if quote == '`' {
        let end = body
            .find('`')
            .ok_or_else(|| format!("unterminated raw string {text:?}"))?;
        return Ok((body[..end].to_string(), &body[end + 1..]));
    }
    let mut value = String::new();
    let mut chars = body.char_indices();
    while let Some((index, c)) = chars.next() {
        match c {
            '\\' => value.push(unescape(&mut chars)?),
            c if c == quote => return Ok((value, &body[index + 1..])),
            '\n' => break,
            c => value.push(c),
        }
    }
    Err(format!("unterminated quoted string {text:?}"))
}

/// One Go escape sequence after its backslash. Byte escapes (`\xff`, `\377`)
/// must denote ASCII: a Rust string cannot hold a lone non-UTF-8 byte.
fn unescape(chars: &mut std::str::CharIndices<'_>) -> Result<char, String> {
    let mut next = || {
        chars
            .next()
            .map(|(_, c)| c)
            .ok_or_else(|| "unterminated escape sequence".to_string())
    };
    let (mut code, radix, width) = match next()? {
        'a' => return Ok('\u{7}'),
        'b' => return Ok('\u{8}'),
        'f' => return Ok('\u{c}'),
        'n' => return Ok('\n'),
        'r' => return Ok('\r'),
        't' => return Ok('\t'),
        'v' => return Ok('\u{b}'),
        c @ ('\\' | '\'' | '"') => return Ok(c),
        'x' => (String::new(), 16, 2),
        'u' => (String::new(), 16, 4),
        'U' => (String::new(), 16, 8),
        c @ '0'..='7' => (c.to_string(), 8, 3),
        c => return Err(format!("unknown escape sequence \\{c}")),
    };
    while code.len() < width {
        code.push(next()?);
    }
    let value = u32::from_str_radix(&code, radix)
        .map_err(|_| format!("invalid escape sequence digits {code:?}"))?;
    let byte_escape = radix == 8 || width == 2;
    if byte_escape && value > 0x7f {
        return Err(format!("byte escape {code:?} is not ASCII"));
    }
    char::from_u32(value).ok_or_else(|| format!("invalid code point in escape {code:?}"))
}
