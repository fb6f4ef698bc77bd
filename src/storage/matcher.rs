//! Prometheus label matchers (`=`, `!=`, `=~`, `!~`) with the matching semantics
//! of Prometheus 3. This module owns reading a matcher's RE2 pattern, checking it,
//! translating it for the `regex` crate, and the shortcuts the index takes instead
//! of running a regex per label value: match-everything, match-non-empty, exact
//! value sets and literal prefixes.
//!
//! Semantics kept from Prometheus:
//! - a label a series does not carry is matched as the empty string, so `{foo=""}`
//!   selects series without `foo` and `{foo=~".*"}` selects every series;
//! - patterns are anchored at both ends and `.` matches a newline: Prometheus
//!   compiles `^(?s:` + pattern + `)$`;
//! - patterns are RE2 (Go `regexp/syntax`, Perl flavour). The `regex` crate reads
//!   a few RE2 patterns differently, so patterns are parsed here with Go's rules and
//!   re-emitted in a form the crate reads the same way: `\d`, `\s`, `\w` and `\b`
//!   are ASCII-only, `[`, `&`, `-` and `~` inside a class are plain characters, a
//!   `{` that does not start a valid count is a literal, `\Q…\E` quotes, octal
//!   escapes work, and `\<`, `(?x)`, `\u0041` are rejected as RE2 rejects them.

use std::collections::HashSet;
use std::fmt::{self, Write as _};

use regex::Regex;

/// How a [`Matcher`] compares a label value with its own value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    /// `=`: the value equals.
    Equal,
    /// `!=`: the value differs.
    NotEqual,
    /// `=~`: the whole value matches the pattern.
    Regex,
    /// `!~`: the whole value does not match the pattern.
    NotRegex,
}

impl MatchOp {
    /// The operator as written in PromQL.
    pub fn as_str(self) -> &'static str {
        match self {
            MatchOp::Equal => "=",
            MatchOp::NotEqual => "!=",
            MatchOp::Regex => "=~",
            MatchOp::NotRegex => "!~",
        }
    }
}

impl fmt::Display for MatchOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A matcher that could not be built; the message names the offending pattern,
/// e.g. `invalid regular expression "a(": missing closing ): `a(``.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatcherError(pub String);

impl fmt::Display for MatcherError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for MatcherError {}

/// One label matcher of a selector, such as `job=~"api|web"`.
///
/// The fields are public for reading; the compiled pattern is built from them by
/// [`Matcher::new`], so build a new matcher rather than changing them.
#[derive(Debug, Clone)]
pub struct Matcher {
    /// The label name.
    pub name: String,
    /// The comparison.
    pub op: MatchOp,
    /// The value compared with, or the pattern for `=~` and `!~`.
    pub value: String,
    /// The compiled pattern of `=~` and `!~`; `None` for `=` and `!=`.
    regex: Option<FastRegex>,
}

impl Matcher {
    /// Builds a matcher; fails when `op` is a regex operator and `value` is not a
    /// valid RE2 pattern.
    pub fn new(op: MatchOp, name: &str, value: &str) -> Result<Matcher, MatcherError> {
        let regex = match op {
            MatchOp::Regex | MatchOp::NotRegex => Some(FastRegex::new(value)?),
            MatchOp::Equal | MatchOp::NotEqual => None,
        };
        Ok(Matcher {
            name: name.to_string(),
            op,
            value: value.to_string(),
            regex,
        })
    }

    /// Whether a series whose label `name` has `value` matches; an absent label is
    /// passed as "" (Prometheus semantics: `{foo=""}` matches series without foo,
    /// `{foo!=""}` requires it, `{foo=~".*"}` matches absent).
    pub fn matches(&self, value: &str) -> bool {
        match self.op {
            MatchOp::Equal => value == self.value,
            MatchOp::NotEqual => value != self.value,
            MatchOp::Regex => self.regex_matches(value),
            MatchOp::NotRegex => !self.regex_matches(value),
        }
    }

    /// `matches("")`: whether the matcher selects series that lack the label.
    pub fn matches_empty(&self) -> bool {
        self.matches("")
    }

    /// For `=`, and for `=~` whose pattern only ever matches a finite set of
    /// literals (`a|b|c`, `(a|b)`, `a\.b`, `foo(bar|baz)`), the exact values that
    /// match, sorted and deduplicated, so the index can look them up instead of
    /// scanning. `None` otherwise, including for `!=` and `!~`. A `""` in the set
    /// stands for series without the label.
    pub fn set_matches(&self) -> Option<Vec<String>> {
        match (self.op, &self.regex) {
            (MatchOp::Equal, _) => Some(vec![self.value.clone()]),
            (MatchOp::Regex, Some(re)) => match &re.engine {
                Engine::Set(set) => Some(set.clone()),
                _ => None,
            },
            _ => None,
        }
    }

    /// A non-empty literal prefix every matching value starts with (`foo.*`,
    /// `foo(bar|baz)` → "foo"; `=` → the value itself), to skip values quickly;
    /// `None` when there is none, and always for `!=` and `!~`.
    pub fn literal_prefix(&self) -> Option<&str> {
        match (self.op, &self.regex) {
            (MatchOp::Equal, _) if !self.value.is_empty() => Some(&self.value),
            (MatchOp::Regex, Some(re)) => re.prefix.as_deref(),
            _ => None,
        }
    }

    fn regex_matches(&self, value: &str) -> bool {
        match &self.regex {
            Some(re) => re.is_match(value),
            // `new` compiles every regex matcher; this only happens if `op` was
            // changed afterwards, and then the value is the best guess we have.
            None => value == self.value,
        }
    }
}

/// Formats as PromQL: `name="value"`, `name!="v"`, `name=~"re"`, `name!~"re"`,
/// quoting the value (and a name that is not a legacy identifier, as Prometheus 3
/// does) with Go's `strconv.Quote` escaping.
impl fmt::Display for Matcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if should_quote_name(&self.name) {
            f.write_str(&go_quote(&self.name))?;
        } else {
            f.write_str(&self.name)?;
        }
        f.write_str(self.op.as_str())?;
        f.write_str(&go_quote(&self.value))
    }
}

/// Prometheus 3 quotes a matcher's name unless it matches `[a-zA-Z_][a-zA-Z0-9_]*`,
/// since UTF-8 label names must round-trip through PromQL.
fn should_quote_name(name: &str) -> bool {
    name.is_empty()
        || !name
            .chars()
            .enumerate()
            .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()))
}

/// Go's `strconv.Quote`, so that matchers print exactly as Prometheus prints them.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if c < ' ' || c == '\x7f' => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if go_is_print(c) => out.push(c),
            c if u32::from(c) < 0x10000 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => {
                let _ = write!(out, "\\U{:08x}", u32::from(c));
            }
        }
    }
    out.push('"');
    out
}

/// Go's `strconv.IsPrint` for a non-ASCII character: letters, marks, numbers,
/// punctuation and symbols print; separators, controls, format, private-use and
/// unassigned code points are escaped. Rust's `Debug` escaping draws the same line
/// (it escapes Zs, Zl, Zp, Cc, Cf, Cs, Co, Cn), except that it also escapes marks
/// when they start a string; the leading 'a' keeps them printable, as in Go.
fn go_is_print(c: char) -> bool {
    let mut buf = [0u8; 8];
    buf[0] = b'a';
    let len = 1 + c.encode_utf8(&mut buf[1..]).len();
    std::str::from_utf8(&buf[..len]).is_ok_and(|s| s.escape_debug().count() == 2)
}

/// A compiled `=~` pattern with its shortcuts.
#[derive(Debug, Clone)]
struct FastRegex {
    engine: Engine,
    /// Checked before running a regex, because most values a prefix rules out are
    /// rejected by one comparison.
    prefix: Option<String>,
}

/// How a pattern is evaluated; everything but `Regex` avoids the regex engine.
#[derive(Debug, Clone)]
enum Engine {
    /// `.*`: every value, including the empty one.
    Any,
    /// `.+`: every non-empty value.
    NonEmpty,
    /// A finite set of literals, sorted and deduplicated for binary search.
    Set(Vec<String>),
    /// Anything else: the anchored translation of the pattern.
    Regex(Regex),
}

impl FastRegex {
    fn new(pattern: &str) -> Result<FastRegex, MatcherError> {
        let invalid = |why: String| {
            MatcherError(format!(
                "invalid regular expression {}: {why}",
                go_quote(pattern)
            ))
        };
        let parsed = Parser::new(pattern).parse().map_err(invalid)?;

        // Inline flags can make literals case-insensitive or change what `.` and
        // `^` mean, so the shortcuts below only read flag-free patterns.
        let analysed = !parsed.has_flags;
        let top = unwrap_groups(&parsed.alts);
        let engine = if analysed && is_dot_repeat(top, &["*", "*?"]) {
            Engine::Any
        } else if analysed && is_dot_repeat(top, &["+", "+?"]) {
            Engine::NonEmpty
        } else if let Some(mut set) = analysed.then(|| alts_set(&parsed.alts)).flatten() {
            set.sort_unstable();
            set.dedup();
            Engine::Set(set)
        } else {
            Engine::Regex(compile_parsed(&parsed).map_err(invalid)?)
        };
        let prefix = match top {
            [only] if analysed => {
                let mut prefix = String::new();
                concat_prefix(only, &mut prefix);
                Some(prefix).filter(|p| !p.is_empty())
            }
            _ => None,
        };
        Ok(FastRegex { engine, prefix })
    }

    fn is_match(&self, value: &str) -> bool {
        match &self.engine {
            Engine::Any => true,
            Engine::NonEmpty => !value.is_empty(),
            Engine::Set(set) => set.binary_search_by(|s| s.as_str().cmp(value)).is_ok(),
            Engine::Regex(re) => {
                self.prefix.as_deref().is_none_or(|p| value.starts_with(p)) && re.is_match(value)
            }
        }
    }
}

/// Compiles an RE2 `pattern` the way Prometheus does for matchers and relabeling:
/// anchored at both ends, `.` matching a newline, capture groups numbered and
/// named as written (so `$1` and `${name}` expand as in Prometheus), except that a
/// name starting with a digit is dropped, as the crate cannot carry it.
pub fn anchored_regex(pattern: &str) -> Result<Regex, MatcherError> {
    let invalid = |why: String| {
        MatcherError(format!(
            "invalid regular expression {}: {why}",
            go_quote(pattern)
        ))
    };
    let parsed = Parser::new(pattern).parse().map_err(invalid)?;
    compile_parsed(&parsed).map_err(invalid)
}

fn compile_parsed(parsed: &Parsed) -> Result<Regex, String> {
    let mut translated = String::with_capacity(parsed.alts.len() * 8 + 8);
    translated.push_str("^(?s:");
    emit_alts(&parsed.alts, &mut translated);
    translated.push_str(")$");
    Regex::new(&translated).map_err(|e| regex_error_message(&e))
}

/// The kind of a `regex` crate error without its multi-line caret diagram, which
/// would show our translation rather than the user's pattern.
fn regex_error_message(e: &regex::Error) -> String {
    match e {
        regex::Error::Syntax(text) => text
            .lines()
            .rev()
            .find_map(|line| line.strip_prefix("error: "))
            .unwrap_or(text)
            .trim()
            .to_string(),
        other => other.to_string(),
    }
}

/// Go limits nesting to 1000; we stop at the `regex` crate's default nest limit
/// (250), which rejects deeper patterns anyway, and which keeps our recursion
/// shallow enough for small thread stacks.
const MAX_DEPTH: usize = 250;

/// Go's `regexp/syntax` bounds `{n,m}` counts at 1000.
const MAX_REPEAT: u32 = 1000;

/// A set is expanded from a concatenation such as `(a|b)(c|d)` only while it stays
/// this small (Go's `maxSetMatches`); a plain alternation is never limited.
const MAX_SET_PRODUCT: usize = 256;

/// The POSIX classes RE2 knows inside brackets, e.g. `[[:alpha:]]`.
const POSIX_CLASSES: [&str; 14] = [
    "alnum", "alpha", "ascii", "blank", "cntrl", "digit", "graph", "lower", "print", "punct",
    "space", "upper", "word", "xdigit",
];

/// The parsed form of a pattern: just enough structure to find the shortcuts and
/// to emit an equivalent pattern for the `regex` crate.
#[derive(Debug)]
enum Node {
    /// One character matched literally (case-sensitively unless a flag says so).
    Literal(char),
    /// `.`.
    Dot,
    /// A zero-width assertion, in `regex` crate syntax: `^`, `$`, `\A`, `\z`, or an
    /// ASCII word boundary.
    Assert(&'static str),
    /// A character class (bracketed, Perl or Unicode), in `regex` crate syntax.
    Class(String),
    /// A group; `transparent` when it changes no flags, so it groups and nothing else.
    Group {
        open: String,
        alts: Vec<Vec<Node>>,
        transparent: bool,
    },
    /// Inline flags such as `(?i)`, in effect to the end of the enclosing group.
    Flags(String),
    /// A repeated node; `op` is `*`, `+`, `?` or `{n,m}`, possibly followed by `?`.
    Repeat { sub: Box<Node>, op: String },
}

struct Parsed {
    alts: Vec<Vec<Node>>,
    has_flags: bool,
}

/// A recursive-descent reader of RE2's Perl syntax, after Go's `regexp/syntax`
/// parser. Errors use Go's wording.
struct Parser<'a> {
    pattern: &'a str,
    chars: Vec<char>,
    pos: usize,
    has_flags: bool,
    capture_names: HashSet<String>,
}

impl<'a> Parser<'a> {
    fn new(pattern: &'a str) -> Parser<'a> {
        Parser {
            pattern,
            chars: pattern.chars().collect(),
            pos: 0,
            has_flags: false,
            capture_names: HashSet::new(),
        }
    }

    fn parse(mut self) -> Result<Parsed, String> {
        let alts = self.parse_alternation(0)?;
        if self.pos < self.chars.len() {
            // An alternation only stops early at a `)` it did not open.
            return Err(format!("unexpected ): `{}`", self.pattern));
        }
        Ok(Parsed {
            alts,
            has_flags: self.has_flags,
        })
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn peek_at(&self, offset: usize) -> Option<char> {
        self.chars.get(self.pos + offset).copied()
    }

    fn bump(&mut self) -> Option<char> {
        let c = self.peek();
        if c.is_some() {
            self.pos += 1;
        }
        c
    }

    fn eat(&mut self, c: char) -> bool {
        let found = self.peek() == Some(c);
        if found {
            self.pos += 1;
        }
        found
    }

    fn text_since(&self, start: usize) -> String {
        self.chars[start..self.pos].iter().collect()
    }

    fn text_to_end(&self, start: usize) -> String {
        self.chars[start..].iter().collect()
    }

    fn parse_alternation(&mut self, depth: usize) -> Result<Vec<Vec<Node>>, String> {
        let mut alts = vec![self.parse_concat(depth)?];
        while self.eat('|') {
            alts.push(self.parse_concat(depth)?);
        }
        Ok(alts)
    }

    fn parse_concat(&mut self, depth: usize) -> Result<Vec<Node>, String> {
        let mut nodes = Vec::new();
        // The text of the repetition operator just read: RE2 rejects `a**`.
        let mut last_repeat: Option<String> = None;
        while let Some(c) = self.peek() {
            let start = self.pos;
            let is_repeat = match c {
                '|' | ')' => break,
                '*' | '+' | '?' => {
                    self.pos += 1;
                    true
                }
                '{' => self.parse_counted_repeat()?,
                _ => false,
            };
            if is_repeat {
                self.eat('?'); // non-greedy: the same values match
                let op = self.text_since(start);
                if let Some(previous) = &last_repeat {
                    return Err(format!(
                        "invalid nested repetition operator: `{previous}{op}`"
                    ));
                }
                match nodes.pop() {
                    Some(sub) if !matches!(sub, Node::Flags(_)) => nodes.push(Node::Repeat {
                        sub: Box::new(sub),
                        op: op.clone(),
                    }),
                    _ => return Err(format!("missing argument to repetition operator: `{op}`")),
                }
                last_repeat = Some(op);
                continue;
            }
            last_repeat = None;
            match c {
                '(' => {
                    if let Some(node) = self.parse_group(depth)? {
                        nodes.push(node);
                    }
                }
                '[' => nodes.push(Node::Class(self.parse_class()?)),
                '.' => {
                    self.pos += 1;
                    nodes.push(Node::Dot);
                }
                '^' => {
                    self.pos += 1;
                    nodes.push(Node::Assert("^"));
                }
                '$' => {
                    self.pos += 1;
                    nodes.push(Node::Assert("$"));
                }
                '\\' => self.parse_escape_atom(&mut nodes)?,
                // Includes a `{` that does not start a count: RE2 reads it literally.
                _ => {
                    self.pos += 1;
                    nodes.push(Node::Literal(c));
                }
            }
        }
        Ok(nodes)
    }

    /// At a `{`: reads `{n}`, `{n,}` or `{n,m}` and returns true, or returns false
    /// and consumes nothing when the brace does not start a count.
    fn parse_counted_repeat(&mut self) -> Result<bool, String> {
        let start = self.pos;
        let Some((min, max)) = self.parse_counts() else {
            self.pos = start;
            return Ok(false);
        };
        if min > MAX_REPEAT || max.is_some_and(|max| max > MAX_REPEAT || max < min) {
            return Err(format!(
                "invalid repeat count: `{}`",
                self.text_since(start)
            ));
        }
        Ok(true)
    }

    fn parse_counts(&mut self) -> Option<(u32, Option<u32>)> {
        self.pos += 1; // `{`
        let min = self.parse_count()?;
        let max = if self.eat(',') {
            if self.peek() == Some('}') {
                None
            } else {
                Some(self.parse_count()?)
            }
        } else {
            Some(min)
        };
        self.eat('}').then_some((min, max))
    }

    /// A decimal count; like Go, a leading zero makes the brace literal.
    fn parse_count(&mut self) -> Option<u32> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        let digits = &self.chars[start..self.pos];
        if digits.is_empty() || (digits.len() > 1 && digits[0] == '0') {
            return None;
        }
        // Saturating: any count this large is rejected as out of range anyway.
        Some(digits.iter().fold(0u32, |n, &d| {
            n.saturating_mul(10)
                .saturating_add(u32::from(d) - u32::from('0'))
        }))
    }

    /// At a `(`: a group, or `None` for `(?)`, which changes nothing.
    fn parse_group(&mut self, depth: usize) -> Result<Option<Node>, String> {
        if depth >= MAX_DEPTH {
            return Err("expression nests too deeply".to_string());
        }
        let start = self.pos;
        self.pos += 1;
        let (open, transparent) = if self.eat('?') {
            match self.parse_group_prefix(start)? {
                GroupPrefix::Flags(flags) if flags.is_empty() => return Ok(None),
                GroupPrefix::Flags(flags) => return Ok(Some(Node::Flags(flags))),
                GroupPrefix::Open { open, transparent } => (open, transparent),
            }
        } else {
            ("(".to_string(), true)
        };
        let alts = self.parse_alternation(depth + 1)?;
        if !self.eat(')') {
            return Err(format!("missing closing ): `{}`", self.pattern));
        }
        Ok(Some(Node::Group {
            open,
            alts,
            transparent,
        }))
    }

    /// After `(?`: a named capture, a flag group `(?i:`, or inline flags `(?i)`.
    fn parse_group_prefix(&mut self, start: usize) -> Result<GroupPrefix, String> {
        if self.peek() == Some('<') || (self.peek() == Some('P') && self.peek_at(1) == Some('<')) {
            self.eat('P');
            self.pos += 1; // `<`
            let name_start = self.pos;
            while self.peek().is_some_and(|c| c != '>') {
                self.pos += 1;
            }
            let name: String = self.chars[name_start..self.pos].iter().collect();
            if !self.eat('>')
                || name.is_empty()
                || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            {
                return Err(format!(
                    "invalid named capture: `{}`",
                    self.text_since(start)
                ));
            }
            if !self.capture_names.insert(name.clone()) {
                return Err(format!("duplicate capture group name: `{name}`"));
            }
            // Names are kept so that relabeling's `${name}` finds its group. The
            // crate rejects names that start with a digit, which RE2 allows
            // (`(?P<1x>…)`); those groups are emitted unnamed, which still numbers
            // them as RE2 does.
            let open = if name.starts_with(|c: char| c.is_ascii_digit()) {
                "(".to_string()
            } else {
                format!("(?P<{name}>")
            };
            return Ok(GroupPrefix::Open {
                open,
                transparent: true,
            });
        }
        // Flags: letters from `imsU`, optionally `-` and more letters to clear.
        let mut set = String::new();
        let mut clear = String::new();
        let mut negated = false;
        let mut saw_flag = false;
        loop {
            match self.bump() {
                Some(c @ ('i' | 'm' | 's' | 'U')) => {
                    let flags = if negated { &mut clear } else { &mut set };
                    if !flags.contains(c) {
                        flags.push(c);
                    }
                    saw_flag = true;
                }
                Some('-') if !negated => {
                    negated = true;
                    saw_flag = false;
                }
                Some(end @ (')' | ':')) if !negated || saw_flag => {
                    // Go applies the letters in order, so `(?i-i)` clears `i`; the
                    // crate rejects repeated letters, so emit each flag once.
                    set.retain(|c| !clear.contains(c));
                    let mut flags = set;
                    if !clear.is_empty() {
                        flags.push('-');
                        flags.push_str(&clear);
                    }
                    if flags.is_empty() {
                        return Ok(if end == ':' {
                            GroupPrefix::Open {
                                open: "(?:".to_string(),
                                transparent: true,
                            }
                        } else {
                            GroupPrefix::Flags(String::new())
                        });
                    }
                    self.has_flags = true;
                    return Ok(if end == ':' {
                        GroupPrefix::Open {
                            open: format!("(?{flags}:"),
                            transparent: false,
                        }
                    } else {
                        GroupPrefix::Flags(format!("(?{flags})"))
                    });
                }
                _ => {
                    return Err(format!(
                        "invalid or unsupported Perl syntax: `{}`",
                        self.text_since(start)
                    ))
                }
            }
        }
    }

    /// At a `\` outside a class: an assertion, `\Q…\E`, a class, or an escaped
    /// character.
    fn parse_escape_atom(&mut self, nodes: &mut Vec<Node>) -> Result<(), String> {
        let assertion = match self.peek_at(1) {
            Some('A') => Some("\\A"),
            Some('z') => Some("\\z"),
            // RE2's word boundary is ASCII; the crate's `\b` is Unicode.
            Some('b') => Some("(?-u:\\b)"),
            Some('B') => Some("(?-u:\\B)"),
            _ => None,
        };
        if let Some(assertion) = assertion {
            self.pos += 2;
            nodes.push(Node::Assert(assertion));
            return Ok(());
        }
        if let Some(class) = self.peek_at(1).and_then(perl_class) {
            self.pos += 2;
            nodes.push(Node::Class(class.to_string()));
            return Ok(());
        }
        match self.peek_at(1) {
            Some('C') => Err("invalid escape sequence: `\\C`".to_string()),
            Some('Q') => {
                // Everything up to `\E` (or the end) is literal text.
                self.pos += 2;
                while self.pos < self.chars.len() {
                    if self.peek() == Some('\\') && self.peek_at(1) == Some('E') {
                        self.pos += 2;
                        break;
                    }
                    nodes.push(Node::Literal(self.chars[self.pos]));
                    self.pos += 1;
                }
                Ok(())
            }
            Some('p' | 'P') => {
                nodes.push(Node::Class(self.parse_unicode_class()?));
                Ok(())
            }
            _ => {
                nodes.push(Node::Literal(self.parse_escape()?));
                Ok(())
            }
        }
    }

    /// At `\p` or `\P`: `\pL`, `\p{Greek}` or `\p{^Greek}`, emitted as `\p{…}` or
    /// `\P{…}` (the crate has no `^` form). Names are left for the crate to check.
    fn parse_unicode_class(&mut self) -> Result<String, String> {
        let start = self.pos;
        self.pos += 1; // `\`
        let mut negated = self.bump() == Some('P');
        let name: String = match self.bump() {
            Some('{') => {
                let name_start = self.pos;
                while self.peek().is_some_and(|c| c != '}') {
                    self.pos += 1;
                }
                let name = self.chars[name_start..self.pos].iter().collect();
                if !self.eat('}') {
                    return Err(format!(
                        "invalid character class range: `{}`",
                        self.text_since(start)
                    ));
                }
                name
            }
            Some(c) => c.to_string(),
            None => {
                return Err(format!(
                    "invalid character class range: `{}`",
                    self.text_since(start)
                ))
            }
        };
        let name = match name.strip_prefix('^') {
            Some(rest) => {
                negated = !negated;
                rest
            }
            None => &name,
        };
        Ok(format!("\\{}{{{name}}}", if negated { 'P' } else { 'p' }))
    }

    /// At a `\`: an escaped character (`\.`, `\n`, `\x41`, `\x{263a}`, `\101`).
    fn parse_escape(&mut self) -> Result<char, String> {
        let start = self.pos;
        self.pos += 1;
        let Some(c) = self.bump() else {
            return Err("trailing backslash at end of expression".to_string());
        };
        let invalid = |p: &Self| format!("invalid escape sequence: `{}`", p.text_since(start));
        // Any ASCII punctuation may be escaped to stand for itself.
        if c.is_ascii() && !c.is_ascii_alphanumeric() {
            return Ok(c);
        }
        let code = match c {
            // `\1` alone would be a backreference, which RE2 does not have.
            '1'..='7' if !self.peek().is_some_and(is_octal) => return Err(invalid(self)),
            '0'..='7' => {
                let mut code = octal_value(c);
                for _ in 0..2 {
                    match self.peek() {
                        Some(d) if is_octal(d) => {
                            code = code * 8 + octal_value(d);
                            self.pos += 1;
                        }
                        _ => break,
                    }
                }
                code
            }
            'x' if self.eat('{') => {
                let mut code = 0u32;
                let mut digits = 0;
                loop {
                    match self.bump() {
                        Some('}') if digits > 0 => break,
                        Some(d) if d.is_ascii_hexdigit() => {
                            code = code * 16 + d.to_digit(16).unwrap_or(0);
                            digits += 1;
                            if code > u32::from(char::MAX) {
                                return Err(invalid(self));
                            }
                        }
                        _ => return Err(invalid(self)),
                    }
                }
                code
            }
            'x' => {
                let high = self.bump().and_then(|d| d.to_digit(16));
                let low = self.bump().and_then(|d| d.to_digit(16));
                match (high, low) {
                    (Some(high), Some(low)) => high * 16 + low,
                    _ => return Err(invalid(self)),
                }
            }
            'a' => 0x07,
            'f' => 0x0c,
            'n' => 0x0a,
            'r' => 0x0d,
            't' => 0x09,
            'v' => 0x0b,
            _ => return Err(invalid(self)),
        };
        // Surrogates can never occur in a string, so Go's literal never matches;
        // rejecting them is simpler and no useful pattern is lost.
        char::from_u32(code).ok_or_else(|| invalid(self))
    }

    /// At a `[`: a bracketed class with RE2's reading, emitted with every
    /// character escaped as needed so the crate's class syntax (nested classes,
    /// `&&`, `--`, `~~`) cannot reinterpret it.
    fn parse_class(&mut self) -> Result<String, String> {
        let start = self.pos;
        self.pos += 1;
        let mut out = String::from("[");
        if self.eat('^') {
            out.push('^');
        }
        // A `]` right after `[` or `[^` is a member, not the end.
        let mut first = true;
        loop {
            match self.peek() {
                None => return Err(format!("missing closing ]: `{}`", self.text_to_end(start))),
                Some(']') if !first => {
                    self.pos += 1;
                    break;
                }
                _ => {}
            }
            first = false;
            if self.peek() == Some('[') && self.peek_at(1) == Some(':') {
                if let Some(class) = self.parse_posix_class()? {
                    out.push_str(&class);
                    continue;
                }
            }
            if self.peek() == Some('\\') {
                match self.peek_at(1) {
                    Some('p' | 'P') => {
                        out.push_str(&self.parse_unicode_class()?);
                        continue;
                    }
                    Some(c) => {
                        if let Some(class) = perl_class(c) {
                            self.pos += 2;
                            out.push_str(class);
                            continue;
                        }
                    }
                    None => {}
                }
            }
            let range_start = self.pos;
            let low = self.parse_class_char(start)?;
            let mut high = low;
            // `[a-]` is `a` and `-`.
            if self.peek() == Some('-') && self.peek_at(1).is_some_and(|c| c != ']') {
                self.pos += 1;
                high = self.parse_class_char(start)?;
                if high < low {
                    return Err(format!(
                        "invalid character class range: `{}`",
                        self.text_since(range_start)
                    ));
                }
            }
            push_escaped(&mut out, low);
            if high != low {
                out.push('-');
                push_escaped(&mut out, high);
            }
        }
        out.push(']');
        Ok(out)
    }

    fn parse_class_char(&mut self, class_start: usize) -> Result<char, String> {
        match self.peek() {
            None => Err(format!(
                "missing closing ]: `{}`",
                self.text_to_end(class_start)
            )),
            Some('\\') => self.parse_escape(),
            Some(c) => {
                self.pos += 1;
                Ok(c)
            }
        }
    }

    /// At `[:` inside a class: `[:alpha:]` or `[:^alpha:]`, or `None` when no `:]`
    /// follows (then the `[` is an ordinary member, as in Go).
    fn parse_posix_class(&mut self) -> Result<Option<String>, String> {
        let body = self.pos + 2;
        let Some(end) = (body..self.chars.len().saturating_sub(1))
            .find(|&i| self.chars[i] == ':' && self.chars[i + 1] == ']')
        else {
            return Ok(None);
        };
        let name: String = self.chars[body..end].iter().collect();
        if !POSIX_CLASSES.contains(&name.strip_prefix('^').unwrap_or(&name)) {
            return Err(format!("invalid character class range: `[:{name}:]`"));
        }
        self.pos = end + 2;
        Ok(Some(format!("[:{name}:]")))
    }
}

enum GroupPrefix {
    /// Inline flags, in crate syntax, or empty for `(?)`.
    Flags(String),
    /// A group opener in crate syntax.
    Open { open: String, transparent: bool },
}

/// RE2's Perl classes are ASCII-only, unlike the crate's Unicode ones; written as
/// nested classes so they work inside brackets too.
fn perl_class(c: char) -> Option<&'static str> {
    match c {
        'd' => Some("[0-9]"),
        'D' => Some("[^0-9]"),
        's' => Some("[\\t\\n\\f\\r ]"),
        'S' => Some("[^\\t\\n\\f\\r ]"),
        'w' => Some("[0-9A-Za-z_]"),
        'W' => Some("[^0-9A-Za-z_]"),
        _ => None,
    }
}

fn is_octal(c: char) -> bool {
    ('0'..='7').contains(&c)
}

fn octal_value(c: char) -> u32 {
    u32::from(c) - u32::from('0')
}

fn push_escaped(out: &mut String, c: char) {
    let mut buf = [0u8; 4];
    out.push_str(&regex::escape(c.encode_utf8(&mut buf)));
}

fn emit_alts(alts: &[Vec<Node>], out: &mut String) {
    for (i, alt) in alts.iter().enumerate() {
        if i > 0 {
            out.push('|');
        }
        for node in alt {
            emit(node, out);
        }
    }
}

fn emit(node: &Node, out: &mut String) {
    match node {
        Node::Literal(c) => push_escaped(out, *c),
        Node::Dot => out.push('.'),
        Node::Assert(text) => out.push_str(text),
        Node::Class(text) | Node::Flags(text) => out.push_str(text),
        Node::Group { open, alts, .. } => {
            out.push_str(open);
            emit_alts(alts, out);
            out.push(')');
        }
        Node::Repeat { sub, op } => {
            emit(sub, out);
            out.push_str(op);
        }
    }
}

/// Strips groups that wrap the whole pattern and only group: `((a|b))` → `a|b`.
fn unwrap_groups(mut alts: &[Vec<Node>]) -> &[Vec<Node>] {
    while let [only] = alts {
        match only.as_slice() {
            [Node::Group {
                alts: inner,
                transparent: true,
                ..
            }] => alts = inner,
            _ => break,
        }
    }
    alts
}

/// Whether the pattern is exactly `.` repeated by one of `ops`.
fn is_dot_repeat(alts: &[Vec<Node>], ops: &[&str]) -> bool {
    match alts {
        [only] => match only.as_slice() {
            [Node::Repeat { sub, op }] => matches!(**sub, Node::Dot) && ops.contains(&op.as_str()),
            _ => false,
        },
        _ => false,
    }
}

/// Every string an alternation matches, when that is a finite set of literals.
fn alts_set(alts: &[Vec<Node>]) -> Option<Vec<String>> {
    let mut set = Vec::new();
    for alt in alts {
        set.extend(concat_set(alt)?);
    }
    Some(set)
}

fn concat_set(nodes: &[Node]) -> Option<Vec<String>> {
    let mut set = vec![String::new()];
    for node in nodes {
        match node {
            Node::Literal(c) => set.iter_mut().for_each(|s| s.push(*c)),
            Node::Group {
                alts,
                transparent: true,
                ..
            } => {
                let tails = alts_set(alts)?;
                if set.len() > 1
                    && tails.len() > 1
                    && set.len().saturating_mul(tails.len()) > MAX_SET_PRODUCT
                {
                    return None;
                }
                set = set
                    .iter()
                    .flat_map(|head| tails.iter().map(move |tail| format!("{head}{tail}")))
                    .collect();
            }
            _ => return None,
        }
    }
    Some(set)
}

/// Appends the literal text every match of `nodes` starts with; returns whether
/// all of `nodes` was literal, so that a caller may continue past it.
fn concat_prefix(nodes: &[Node], prefix: &mut String) -> bool {
    for node in nodes {
        match node {
            Node::Literal(c) => prefix.push(*c),
            // Nothing literal came before, so this asserts the start, which the
            // anchoring asserts anyway.
            Node::Assert("^" | "\\A") if prefix.is_empty() => {}
            Node::Group {
                alts,
                transparent: true,
                ..
            } if alts.len() == 1 => {
                if !concat_prefix(&alts[0], prefix) {
                    return false;
                }
            }
            _ => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    fn m(op: MatchOp, value: &str) -> Matcher {
        Matcher::new(op, "l", value).unwrap()
    }

    fn re(pattern: &str) -> Matcher {
        m(MatchOp::Regex, pattern)
    }

    /// The reference: Prometheus's anchoring applied to the crate directly.
    fn reference(pattern: &str) -> Regex {
        Regex::new(&format!("^(?s:{pattern})$")).unwrap()
    }

    #[test]
    fn regex_is_anchored_and_dot_matches_newline() {
        let cases: &[(&str, &str, bool)] = &[
            ("b", "abc", false),
            ("b", "b", true),
            ("abc", "xabcx", false),
            ("abc", "abc", true),
            ("a|b", "ab", false),
            ("a.c", "a\nc", true),
            ("a.c", "abc", true),
            (".*", "line1\nline2", true),
            ("foo.*", "foo\nbar", true),
            ("foo.*", "xfoo", false),
            (".*foo", "foox", false),
            ("a$", "a\n", false),
            ("^a", "a", true),
            ("a|^b", "b", true),
        ];
        for &(pattern, value, want) in cases {
            assert_eq!(re(pattern).matches(value), want, "{pattern:?} on {value:?}");
            assert_eq!(
                m(MatchOp::NotRegex, pattern).matches(value),
                !want,
                "!~{pattern:?} on {value:?}"
            );
        }
    }

    #[test]
    fn anchored_regex_keeps_group_names_and_numbers() {
        let anchored = anchored_regex("(?P<first>a)(b)(?<third>c(?:d)(?P<1x>e))(f)").unwrap();
        // RE2 numbers groups by their opening parenthesis, named or not; a name
        // the crate cannot carry leaves its group unnamed but still counted.
        let names: Vec<Option<&str>> = anchored.capture_names().collect();
        assert_eq!(
            names,
            [None, Some("first"), None, Some("third"), None, None]
        );
        let caps = anchored.captures("abcdef").unwrap();
        assert_eq!(&caps["first"], "a");
        assert_eq!(&caps[2], "b");
        assert_eq!(&caps["third"], "cde");
        assert_eq!(&caps[4], "e");
        assert_eq!(&caps[5], "f");
        // Names do not change what a matcher accepts.
        let named = re("(?P<n>a|b)c");
        assert!(named.matches("ac") && named.matches("bc"));
        assert!(!named.matches("abc") && !named.matches("c"));
    }

    #[test]
    fn empty_value_stands_for_an_absent_label() {
        let cases: &[(MatchOp, &str, bool)] = &[
            (MatchOp::Equal, "", true),
            (MatchOp::Equal, "x", false),
            (MatchOp::NotEqual, "", false),
            (MatchOp::NotEqual, "x", true),
            (MatchOp::Regex, ".*", true),
            (MatchOp::Regex, ".+", false),
            (MatchOp::Regex, "", true),
            (MatchOp::Regex, "x|", true),
            (MatchOp::Regex, "x", false),
            (MatchOp::Regex, "x?", true),
            (MatchOp::NotRegex, ".*", false),
            (MatchOp::NotRegex, ".+", true),
            (MatchOp::NotRegex, "", false),
            (MatchOp::NotRegex, "x", true),
        ];
        for &(op, value, want) in cases {
            assert_eq!(m(op, value).matches_empty(), want, "{op}{value:?}");
        }
        // `{foo!=""}` requires the label, `{foo=""}` forbids it.
        assert!(m(MatchOp::NotEqual, "").matches("a"));
        assert!(!m(MatchOp::Equal, "").matches("a"));
        assert!(!re("").matches("a"));
        assert!(m(MatchOp::NotRegex, "").matches("a"));
    }

    #[test]
    fn equality_is_exact() {
        assert!(m(MatchOp::Equal, "a.b").matches("a.b"));
        assert!(!m(MatchOp::Equal, "a.b").matches("axb"));
        assert!(!m(MatchOp::Equal, "a").matches("A"));
        assert!(m(MatchOp::NotEqual, "a").matches("A"));
        // Not a pattern: no error for regex syntax.
        assert!(m(MatchOp::Equal, "a(").matches("a("));
    }

    #[test]
    fn not_regex_negates() {
        let cases: &[(&str, &str, bool)] = &[
            ("a|b", "a", false),
            ("a|b", "c", true),
            ("a.*", "abc", false),
            ("a.*", "ba", true),
            ("[0-9]+", "123", false),
            ("[0-9]+", "12a", true),
            ("(?i)abc", "ABC", false),
        ];
        for &(pattern, value, want) in cases {
            assert_eq!(
                m(MatchOp::NotRegex, pattern).matches(value),
                want,
                "!~{pattern:?} on {value:?}"
            );
        }
    }

    fn set(op: MatchOp, pattern: &str) -> Option<Vec<String>> {
        m(op, pattern).set_matches()
    }

    fn strings(values: &[&str]) -> Option<Vec<String>> {
        Some(values.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn set_matches_of_literal_alternations() {
        let cases: &[(&str, &[&str])] = &[
            ("a|b|c", &["a", "b", "c"]),
            ("(a|b)", &["a", "b"]),
            ("(?:a|b)", &["a", "b"]),
            ("((a|b))", &["a", "b"]),
            ("(?P<x>a|b)", &["a", "b"]),
            ("a\\.b|c", &["a.b", "c"]),
            ("c|b|a|b", &["a", "b", "c"]),
            ("foo", &["foo"]),
            ("", &[""]),
            ("a|", &["", "a"]),
            ("foo(bar|baz)", &["foobar", "foobaz"]),
            ("(a|b)(c|d)", &["ac", "ad", "bc", "bd"]),
            ("\\Qa.b\\E|c", &["a.b", "c"]),
            ("a\\|b", &["a|b"]),
            ("\\x41|\\101", &["A"]),
        ];
        for &(pattern, want) in cases {
            assert_eq!(set(MatchOp::Regex, pattern), strings(want), "{pattern:?}");
        }
        assert_eq!(set(MatchOp::Equal, "a.*"), strings(&["a.*"]));
        assert_eq!(set(MatchOp::Equal, ""), strings(&[""]));
    }

    #[test]
    fn set_matches_is_none_when_the_set_is_not_a_plain_literal_one() {
        for pattern in [
            "a.*|b", "[ab]", "a+", "a?", ".*", ".+", "a|b.", "(?i)a|b", "(?i:a)|b", "a\\d", "a$",
            "\\ba", "(?s)a", "^foo",
        ] {
            assert_eq!(set(MatchOp::Regex, pattern), None, "{pattern:?}");
        }
        assert_eq!(set(MatchOp::NotRegex, "a|b"), None);
        assert_eq!(set(MatchOp::NotEqual, "a"), None);
        // A cross product beyond the limit falls back to the regex.
        let big = "(a|b|c|d|e|f|g|h|i|j|k|l|m|n|o|p|q)(a|b|c|d|e|f|g|h|i|j|k|l|m|n|o|p|q)";
        assert_eq!(set(MatchOp::Regex, big), None);
        assert!(re(big).matches("qa"));
        assert!(!re(big).matches("qz"));
        // A long plain alternation is not limited.
        let many: Vec<String> = (0..1000).map(|i| format!("host{i}")).collect();
        assert_eq!(
            set(MatchOp::Regex, &many.join("|")).map(|s| s.len()),
            Some(1000)
        );
    }

    #[test]
    fn literal_prefix() {
        let cases: &[(&str, Option<&str>)] = &[
            ("foo.*", Some("foo")),
            ("foo(bar|baz)", Some("foo")),
            ("foo", Some("foo")),
            ("fooo?", Some("foo")),
            ("foo+", Some("fo")),
            ("^foo.*", Some("foo")),
            ("(foo)bar.*", Some("foobar")),
            ("(?:fo)(o)\\..*", Some("foo.")),
            ("a\\.b[0-9]", Some("a.b")),
            (".*foo", None),
            ("foo|bar", None),
            ("[f]oo", None),
            ("(?i)foo", None),
            ("", None),
            (".*", None),
            ("f*oo", None),
        ];
        for &(pattern, want) in cases {
            assert_eq!(re(pattern).literal_prefix(), want, "{pattern:?}");
        }
        assert_eq!(m(MatchOp::Equal, "foo").literal_prefix(), Some("foo"));
        assert_eq!(m(MatchOp::Equal, "").literal_prefix(), None);
        assert_eq!(m(MatchOp::NotEqual, "foo").literal_prefix(), None);
        assert_eq!(m(MatchOp::NotRegex, "foo.*").literal_prefix(), None);
    }

    #[test]
    fn invalid_patterns_name_the_pattern() {
        let cases: &[(&str, &str)] = &[
            ("a(", "missing closing ): `a(`"),
            ("a)", "unexpected ): `a)`"),
            ("[a", "missing closing ]: `[a`"),
            ("*a", "missing argument to repetition operator: `*`"),
            ("a|+", "missing argument to repetition operator: `+`"),
            ("a**", "invalid nested repetition operator: `**`"),
            ("a*?+", "invalid nested repetition operator: `*?+`"),
            ("a{2}{3}", "invalid nested repetition operator: `{2}{3}`"),
            ("a{1001}", "invalid repeat count: `{1001}`"),
            ("a{3,2}", "invalid repeat count: `{3,2}`"),
            ("\\1", "invalid escape sequence: `\\1`"),
            ("\\q", "invalid escape sequence: `\\q`"),
            ("\\u0041", "invalid escape sequence: `\\u`"),
            ("\\C", "invalid escape sequence: `\\C`"),
            ("\\x{110000}", "invalid escape sequence: `\\x{110000`"),
            ("\\xZ1", "invalid escape sequence: `\\xZ1`"),
            ("a\\", "trailing backslash at end of expression"),
            ("[z-a]", "invalid character class range: `z-a`"),
            ("[[:foo:]]", "invalid character class range: `[:foo:]`"),
            ("(?x)a", "invalid or unsupported Perl syntax: `(?x`"),
            ("(?i-)a", "invalid or unsupported Perl syntax: `(?i-)`"),
            ("(?P=n)", "invalid or unsupported Perl syntax: `(?P`"),
            ("(?P<n>a)(?P<n>b)", "duplicate capture group name: `n`"),
            ("(?P<>a)", "invalid named capture: `(?P<>`"),
            // Left to the regex crate; its message loses the caret diagram.
            ("\\p{NoSuchScript}", "Unicode property not found"),
        ];
        for &(pattern, why) in cases {
            for op in [MatchOp::Regex, MatchOp::NotRegex] {
                let err = Matcher::new(op, "l", pattern).unwrap_err();
                assert_eq!(
                    err.to_string(),
                    format!("invalid regular expression {}: {why}", go_quote(pattern)),
                    "{pattern:?}"
                );
            }
        }
        let err = Matcher::new(MatchOp::Regex, "l", "a\"(").unwrap_err();
        assert_eq!(
            err.0,
            "invalid regular expression \"a\\\"(\": missing closing ): `a\"(`"
        );
        let too_deep = format!("{}a{}", "(".repeat(300), ")".repeat(300));
        assert!(Matcher::new(MatchOp::Regex, "l", &too_deep).is_err());
        let err: Box<dyn std::error::Error> = Box::new(err);
        assert!(!err.to_string().contains('\n'));
    }

    #[test]
    fn re2_syntax_is_read_as_re2() {
        let cases: &[(&str, &str, bool)] = &[
            // Perl classes and word boundaries are ASCII in RE2.
            ("\\d", "7", true),
            ("\\d", "\u{663}", false),
            ("[\\d]", "\u{663}", false),
            ("\\D", "\u{663}", true),
            ("\\w+", "abc_1", true),
            ("\\w", "é", false),
            ("[^\\W]", "é", false),
            ("\\s", " ", true),
            ("\\s", "\u{a0}", false),
            ("\\s", "\x0b", false),
            ("\\S", "\x0b", true),
            (".\\b.", "éa", true),
            (".\\B.", "éa", false),
            // Unicode classes stay Unicode.
            ("\\pL", "é", true),
            ("\\p{Greek}", "α", true),
            ("\\p{^Greek}", "α", false),
            ("\\P{^Greek}", "α", true),
            ("[\\p{Greek}x]", "x", true),
            // Class contents RE2 reads literally and the crate would not.
            ("[a&&b]", "&", true),
            ("[a~~b]", "~", true),
            ("[[]", "[", true),
            ("[[a]]", "a]", true),
            ("[]a]", "]", true),
            ("[^]a]", "]", false),
            ("[a-]", "-", true),
            ("[+--]", ",", true),
            ("[[:alpha:]]", "x", true),
            ("[[:^alpha:]]", "x", false),
            ("[[:a]", ":", true),
            // Braces that are not counts are literal.
            ("a{", "a{", true),
            ("{", "{", true),
            ("a{,2}", "a{,2}", true),
            ("a{01}", "a{01}", true),
            ("a{2}", "aa", true),
            ("a{2,}", "aaaa", true),
            ("a{1,2}", "aaa", false),
            ("x}", "x}", true),
            // Escapes.
            ("\\<a\\>", "<a>", true),
            ("\\_", "_", true),
            ("\\101\\x42\\x{43}", "ABC", true),
            ("\\0", "\0", true),
            ("\\t\\n\\f\\r\\v\\a", "\t\n\x0c\r\x0b\x07", true),
            ("\\Qa.b*\\E+", "a.b**", true),
            ("\\Qa.b", "a.b", true),
            ("\\Q\\E", "", true),
            // Flags.
            ("(?i)abc", "AbC", true),
            ("(?i:a)b", "AB", false),
            ("(?i-i)a", "A", false),
            ("(?-s:.)", "\n", false),
            ("(?m)^a$", "a", true),
            ("(?U)a+", "aa", true),
            ("(?)a", "a", true),
            ("(?P<1x>a)", "a", true),
            ("(?<n>a)", "a", true),
            ("a#b", "a#b", true),
            ("a b", "a b", true),
        ];
        for &(pattern, value, want) in cases {
            assert_eq!(re(pattern).matches(value), want, "{pattern:?} on {value:?}");
        }
    }

    #[test]
    fn display_quotes_like_go() {
        let cases: &[(MatchOp, &str, &str, &str)] = &[
            (MatchOp::Equal, "job", "api", r#"job="api""#),
            (MatchOp::NotEqual, "job", "", r#"job!="""#),
            (MatchOp::Regex, "job", "a\\.b|c", r#"job=~"a\\.b|c""#),
            (MatchOp::NotRegex, "job", "a.*", r#"job!~"a.*""#),
            (MatchOp::Equal, "l", "say \"hi\"", r#"l="say \"hi\"""#),
            (MatchOp::Equal, "l", "a\nb\tc\rd", r#"l="a\nb\tc\rd""#),
            (
                MatchOp::Equal,
                "l",
                "\x07\x08\x0c\x0b\0\x1f\x7f",
                r#"l="\a\b\f\v\x00\x1f\x7f""#,
            ),
            (MatchOp::Equal, "l", "'é日😀", r#"l="'é日😀""#),
            (MatchOp::Equal, "l", "e\u{301}", "l=\"e\u{301}\""),
            (
                MatchOp::Equal,
                "l",
                "\u{85}\u{a0}\u{200b}\u{2028}",
                r#"l="\u0085\u00a0\u200b\u2028""#,
            ),
            (
                MatchOp::Equal,
                "l",
                "\u{e0001}\u{10ffff}",
                r#"l="\U000e0001\U0010ffff""#,
            ),
            (MatchOp::Equal, "_a1", "x", r#"_a1="x""#),
            (MatchOp::Equal, "1a", "x", r#""1a"="x""#),
            (MatchOp::Equal, "foo.bar", "x", r#""foo.bar"="x""#),
            (MatchOp::Equal, "", "x", r#"""="x""#),
        ];
        for &(op, name, value, want) in cases {
            assert_eq!(Matcher::new(op, name, value).unwrap().to_string(), want);
        }
    }

    #[test]
    fn fast_paths_are_taken() {
        assert!(matches!(re(".*").regex.unwrap().engine, Engine::Any));
        assert!(matches!(re("(.*?)").regex.unwrap().engine, Engine::Any));
        assert!(matches!(re(".+").regex.unwrap().engine, Engine::NonEmpty));
        assert!(matches!(re("a|b").regex.unwrap().engine, Engine::Set(_)));
        assert!(matches!(
            re("(?s).*").regex.unwrap().engine,
            Engine::Regex(_)
        ));
        assert!(matches!(re("a.*").regex.unwrap().engine, Engine::Regex(_)));
    }

    /// A random pattern built from pieces that mean the same to RE2 and to the
    /// crate on ASCII input, so the crate itself is the reference.
    fn random_pattern(rng: &mut StdRng) -> String {
        const ATOMS: &[&str] = &[
            "a", "b", "ab", "x1", ".", "\\.", "[ab]", "[^a]", "\\d", "\\w", "(a|b)", "(a|)",
            "(?:ab|b)", "()", ".*", ".+", "a*", "b?", "x+", "a{2}", "(a.)", "(x|x1)", "^", "$",
            "(.*)", "(?i)a",
        ];
        let alternatives = rng.gen_range(1..=3);
        let mut pattern = String::new();
        for i in 0..alternatives {
            if i > 0 {
                pattern.push('|');
            }
            for _ in 0..rng.gen_range(0..=3) {
                pattern.push_str(ATOMS[rng.gen_range(0..ATOMS.len())]);
            }
        }
        if rng.gen_bool(0.2) {
            pattern = format!("({pattern})");
        }
        pattern
    }

    fn random_value(rng: &mut StdRng) -> String {
        const CHARS: &[char] = &['a', 'b', 'x', '1', '.', '\n', 'A'];
        (0..rng.gen_range(0..=5))
            .map(|_| CHARS[rng.gen_range(0..CHARS.len())])
            .collect()
    }

    #[test]
    fn property_fast_paths_agree_with_the_anchored_regex() {
        let mut rng = StdRng::seed_from_u64(0x5eed);
        let (mut sets, mut prefixes, mut shortcuts, mut positives) = (0, 0, 0, 0);
        for _ in 0..1500 {
            let pattern = random_pattern(&mut rng);
            let reference = reference(&pattern);
            let matcher = re(&pattern);
            let negated = m(MatchOp::NotRegex, &pattern);
            let set = matcher.set_matches();
            let prefix = matcher.literal_prefix().map(str::to_string);
            sets += usize::from(set.is_some());
            prefixes += usize::from(prefix.is_some());
            shortcuts += usize::from(matches!(
                matcher.regex.as_ref().map(|r| &r.engine),
                Some(Engine::Any | Engine::NonEmpty)
            ));
            let mut values: Vec<String> = (0..60).map(|_| random_value(&mut rng)).collect();
            values.extend(set.iter().flatten().cloned());
            values.extend(
                prefix
                    .iter()
                    .map(|p| format!("{p}{}", random_value(&mut rng))),
            );
            for value in &values {
                let want = reference.is_match(value);
                positives += usize::from(want);
                assert_eq!(matcher.matches(value), want, "{pattern:?} on {value:?}");
                assert_eq!(negated.matches(value), !want, "!~{pattern:?} on {value:?}");
                if let Some(set) = &set {
                    assert_eq!(set.contains(value), want, "set of {pattern:?} on {value:?}");
                }
                if let (Some(prefix), true) = (&prefix, want) {
                    assert!(
                        value.starts_with(prefix.as_str()),
                        "prefix {prefix:?} of {pattern:?} on {value:?}"
                    );
                }
            }
        }
        // The generator must reach every shortcut, or the test proves little.
        assert!(
            sets > 100 && prefixes > 50 && shortcuts > 10 && positives > 5000,
            "{sets} {prefixes} {shortcuts} {positives}"
        );
    }
}
