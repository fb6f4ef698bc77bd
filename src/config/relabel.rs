//! Prometheus relabeling: the rules of `relabel_configs`,
//! `metric_relabel_configs` and `write_relabel_configs`, with the semantics of
//! Prometheus's `model/relabel/relabel.go`.
//!
//! This module owns a rule's YAML form and defaults ([`RelabelSpec`]), its
//! compiled form ([`RelabelConfig`], whose regex and `$` templates are compiled
//! once, when the configuration is loaded), the checks Prometheus makes when it
//! loads a rule ([`RelabelConfig::validate`]), and applying a list of rules to a
//! label set ([`relabel`]).
//!
//! Label names are checked with the legacy (ASCII) rules, `[a-zA-Z_][a-zA-Z0-9_]*`,
//! as Prometheus 2.x did and Prometheus 3 still does under
//! `metric_name_validation_scheme: legacy`; Prometheus 3's UTF-8 scheme would
//! also accept names such as `utf-8.label`.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use md5::{Digest, Md5};
use regex::{Captures, Regex};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::storage::matcher::{anchored_regex, MatchOp, Matcher, MatcherError};

/// The separator used when a rule does not name one.
pub const DEFAULT_SEPARATOR: &str = ";";
/// The pattern used when a rule has no `regex` key.
pub const DEFAULT_REGEX: &str = "(.*)";
/// The replacement used when a rule does not name one.
pub const DEFAULT_REPLACEMENT: &str = "$1";

/// What a rule does; written in lowercase in YAML, read case-insensitively.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Sets `target_label` to the expanded `replacement` when `regex` matches the
    /// joined source values.
    Replace,
    /// Drops the label set unless `regex` matches the joined source values.
    Keep,
    /// Drops the label set when `regex` matches the joined source values.
    Drop,
    /// Drops the label set unless `target_label`'s value equals the joined
    /// source values.
    KeepEqual,
    /// Drops the label set when `target_label`'s value equals the joined source
    /// values.
    DropEqual,
    /// Sets `target_label` to an MD5 hash of the joined source values, modulo
    /// `modulus`.
    HashMod,
    /// Copies each label whose name matches `regex` to the name `replacement`
    /// expands to.
    LabelMap,
    /// Removes every label whose name matches `regex`.
    LabelDrop,
    /// Removes every label whose name does not match `regex`.
    LabelKeep,
    /// Sets `target_label` to the joined source values in lower case.
    Lowercase,
    /// Sets `target_label` to the joined source values in upper case.
    Uppercase,
}

impl Action {
    /// The name as written in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Replace => "replace",
            Action::Keep => "keep",
            Action::Drop => "drop",
            Action::KeepEqual => "keepequal",
            Action::DropEqual => "dropequal",
            Action::HashMod => "hashmod",
            Action::LabelMap => "labelmap",
            Action::LabelDrop => "labeldrop",
            Action::LabelKeep => "labelkeep",
            Action::Lowercase => "lowercase",
            Action::Uppercase => "uppercase",
        }
    }

    /// Actions that write `target_label` and so require one.
    fn needs_target(self) -> bool {
        matches!(
            self,
            Action::Replace
                | Action::HashMod
                | Action::Lowercase
                | Action::Uppercase
                | Action::KeepEqual
                | Action::DropEqual
        )
    }

    /// Actions whose `target_label` is a plain name and whose `replacement` is unused.
    fn takes_plain_target_only(self) -> bool {
        matches!(
            self,
            Action::Lowercase | Action::Uppercase | Action::KeepEqual | Action::DropEqual
        )
    }
}

impl Serialize for Action {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Action {
    type Err = String;

    /// Reads an action name in any case (`Replace`, `KEEP`), as Prometheus does.
    fn from_str(s: &str) -> Result<Action, String> {
        let action = match s.to_lowercase().as_str() {
            "replace" => Action::Replace,
            "keep" => Action::Keep,
            "drop" => Action::Drop,
            "keepequal" => Action::KeepEqual,
            "dropequal" => Action::DropEqual,
            "hashmod" => Action::HashMod,
            "labelmap" => Action::LabelMap,
            "labeldrop" => Action::LabelDrop,
            "labelkeep" => Action::LabelKeep,
            "lowercase" => Action::Lowercase,
            "uppercase" => Action::Uppercase,
            _ => return Err(format!("unknown relabel action {s:?}")),
        };
        Ok(action)
    }
}

/// A relabeling rule as written in YAML, with Prometheus's field names and
/// defaults. [`Default`] gives a rule with every key absent.
///
/// A key given as YAML null takes Go's zero value rather than the default, as in
/// Prometheus: `separator:` is `""`, `regex:` is the empty pattern (which matches
/// only the empty string), and `action:` is refused.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct RelabelSpec {
    /// Labels whose values are joined with `separator`; an absent label
    /// contributes "". `None` when the key is absent or null, which
    /// `labeldrop`/`labelkeep` require (even an empty list is refused there).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source_labels: Option<Vec<String>>,
    /// Put between the source values; default `;`.
    #[serde(deserialize_with = "null_as_empty")]
    pub separator: String,
    /// The RE2 pattern, anchored at both ends. `None` when the key is absent,
    /// meaning [`DEFAULT_REGEX`]; only then does the rule count as having no
    /// regex for `keepequal`/`dropequal`.
    // Left out when absent: written as `regex: null` it would read back as
    // the empty pattern, not the default.
    #[serde(
        deserialize_with = "null_as_empty_pattern",
        skip_serializing_if = "Option::is_none"
    )]
    pub regex: Option<String>,
    /// The divisor of `hashmod`.
    #[serde(deserialize_with = "null_as_zero")]
    pub modulus: u64,
    /// The label written; for `replace` a `$` template of the regex's groups.
    #[serde(deserialize_with = "null_as_empty")]
    pub target_label: String,
    /// The `$` template of the value written by `replace` and of the new name
    /// written by `labelmap`; default `$1`.
    #[serde(deserialize_with = "null_as_empty")]
    pub replacement: String,
    /// Default `replace`.
    #[serde(deserialize_with = "action_field")]
    pub action: Action,
}

impl Default for RelabelSpec {
    fn default() -> RelabelSpec {
        RelabelSpec {
            source_labels: None,
            separator: DEFAULT_SEPARATOR.to_string(),
            regex: None,
            modulus: 0,
            target_label: String::new(),
            replacement: DEFAULT_REPLACEMENT.to_string(),
            action: Action::Replace,
        }
    }
}

fn null_as_empty<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    Ok(Option::<String>::deserialize(d)?.unwrap_or_default())
}

fn null_as_empty_pattern<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Some(null_as_empty(d)?))
}

fn null_as_zero<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(Option::<u64>::deserialize(d)?.unwrap_or_default())
}

fn action_field<'de, D: Deserializer<'de>>(d: D) -> Result<Action, D::Error> {
    // Prometheus reads a null action as the empty one and rejects it when it
    // validates; here it is rejected on reading, with the same words.
    match Option::<String>::deserialize(d)? {
        Some(name) => name.parse().map_err(serde::de::Error::custom),
        None => Err(serde::de::Error::custom("relabel action cannot be empty")),
    }
}

/// A relabeling rule ready to apply: its [`RelabelSpec`] with the regex and the
/// `$` templates compiled. Read from YAML directly (the regex is compiled while
/// reading, and a bad one fails the read), or built with [`RelabelConfig::new`].
/// Call [`RelabelConfig::validate`] after loading, as Prometheus does.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(try_from = "RelabelSpec", into = "RelabelSpec")]
pub struct RelabelConfig {
    spec: RelabelSpec,
    regex: CompiledRegex,
    target: Template,
    replacement: Template,
}

impl From<RelabelConfig> for RelabelSpec {
    fn from(config: RelabelConfig) -> RelabelSpec {
        config.spec
    }
}

impl TryFrom<RelabelSpec> for RelabelConfig {
    type Error = MatcherError;

    fn try_from(spec: RelabelSpec) -> Result<RelabelConfig, MatcherError> {
        RelabelConfig::new(spec)
    }
}

impl RelabelConfig {
    /// Compiles a rule; fails when its regex is not a valid RE2 pattern.
    pub fn new(spec: RelabelSpec) -> Result<RelabelConfig, MatcherError> {
        let regex = CompiledRegex::new(spec.regex.as_deref().unwrap_or(DEFAULT_REGEX))?;
        let target = Template::compile(&spec.target_label, &regex.anchored)?;
        let replacement = Template::compile(&spec.replacement, &regex.anchored)?;
        Ok(RelabelConfig {
            spec,
            regex,
            target,
            replacement,
        })
    }

    /// The rule as written.
    pub fn spec(&self) -> &RelabelSpec {
        &self.spec
    }

    /// Prometheus's load-time checks of a rule (`Config.Validate`, plus the
    /// source label names its YAML reader checks), with its wording; the caller
    /// adds where the rule was written.
    pub fn validate(&self) -> Result<(), String> {
        let spec = &self.spec;
        let action = spec.action;
        let target = spec.target_label.as_str();
        for name in spec.source_labels.iter().flatten() {
            if !is_legacy_label_name(name) {
                return Err(format!("{name:?} is not a valid label name"));
            }
        }
        if action == Action::HashMod && spec.modulus == 0 {
            return Err("relabel configuration for hashmod requires non-zero modulus".to_string());
        }
        if action.needs_target() && target.is_empty() {
            return Err(format!(
                "relabel configuration for {action} action requires 'target_label' value"
            ));
        }
        let target_ok = match action {
            Action::Replace if target.contains('$') => is_legacy_target_template(target),
            Action::Replace | Action::HashMod => is_legacy_label_name(target),
            _ if action.takes_plain_target_only() => is_legacy_label_name(target),
            _ => true,
        };
        if !target_ok {
            return Err(format!(
                "{target:?} is invalid 'target_label' for {action} action"
            ));
        }
        if action.takes_plain_target_only() && spec.replacement != DEFAULT_REPLACEMENT {
            return Err(format!("'replacement' can not be set for {action} action"));
        }
        if action == Action::LabelMap && !is_legacy_target_template(&spec.replacement) {
            return Err(format!(
                "{:?} is invalid 'replacement' for {action} action",
                spec.replacement
            ));
        }
        let others_default = spec.modulus == 0
            && spec.separator == DEFAULT_SEPARATOR
            && spec.replacement == DEFAULT_REPLACEMENT;
        if matches!(action, Action::KeepEqual | Action::DropEqual)
            && (spec.regex.is_some() || !others_default)
        {
            return Err(format!(
                "{action} action requires only 'source_labels' and `target_label`, and no other fields"
            ));
        }
        if matches!(action, Action::LabelDrop | Action::LabelKeep)
            && (spec.source_labels.is_some() || !target.is_empty() || !others_default)
        {
            return Err(format!(
                "{action} action requires only 'regex', and no other fields"
            ));
        }
        Ok(())
    }

    /// Applies this rule; false when it drops the label set.
    fn apply(&self, labels: &mut Vec<(String, String)>, joined: &mut String) -> bool {
        let target = self.spec.target_label.as_str();
        match self.spec.action {
            Action::Keep => return self.regex.is_match(self.source_value(labels, joined)),
            Action::Drop => return !self.regex.is_match(self.source_value(labels, joined)),
            Action::KeepEqual => return get(labels, target) == self.source_value(labels, joined),
            Action::DropEqual => return get(labels, target) != self.source_value(labels, joined),
            Action::Replace => {
                if let Some((name, value)) = self.replacement_of(labels, joined) {
                    set(labels, name, value);
                }
            }
            Action::Lowercase => {
                let value = go_to_lower(self.source_value(labels, joined));
                set(labels, Cow::Borrowed(target), value);
            }
            Action::Uppercase => {
                let value = go_to_upper(self.source_value(labels, joined));
                set(labels, Cow::Borrowed(target), value);
            }
            Action::HashMod => {
                let digest = Md5::digest(self.source_value(labels, joined).as_bytes());
                // Prometheus reads the last 8 of the 16 digest bytes as a
                // big-endian integer; earlier versions did, and shards must not move.
                let hash = digest[8..]
                    .iter()
                    .fold(0u64, |acc, &byte| (acc << 8) | u64::from(byte));
                // `validate` rejects a zero modulus; an unvalidated rule does nothing
                // rather than divide by zero.
                if let Some(shard) = hash.checked_rem(self.spec.modulus) {
                    set(labels, Cow::Borrowed(target), shard.to_string());
                }
            }
            Action::LabelMap => self.label_map(labels),
            Action::LabelDrop => labels.retain(|(name, _)| !self.regex.is_match(name)),
            Action::LabelKeep => labels.retain(|(name, _)| self.regex.is_match(name)),
        }
        true
    }

    /// The source values joined by the separator. Borrowed from `labels` when
    /// there is at most one source label, so that `keep`/`drop` allocate
    /// nothing; otherwise written into `joined`, a buffer the rules of one call
    /// share.
    fn source_value<'a>(&self, labels: &'a [(String, String)], joined: &'a mut String) -> &'a str {
        match self.spec.source_labels.as_deref().unwrap_or_default() {
            [] => "",
            [only] => get(labels, only),
            names => {
                joined.clear();
                for (i, name) in names.iter().enumerate() {
                    if i > 0 {
                        joined.push_str(&self.spec.separator);
                    }
                    joined.push_str(get(labels, name));
                }
                joined
            }
        }
    }

    /// `replace`: the label to write and its value (empty to delete it), or
    /// `None` when the regex does not match or the target expands to an invalid
    /// name.
    fn replacement_of(
        &self,
        labels: &[(String, String)],
        joined: &mut String,
    ) -> Option<(Cow<'_, str>, String)> {
        let groups = self.regex.captures(self.source_value(labels, joined))?;
        let name = match self.target.literal() {
            Some(name) => Cow::Borrowed(name),
            None => Cow::Owned(self.target.expand(&groups)),
        };
        is_legacy_label_name(&name).then(|| (name, self.replacement.expand(&groups)))
    }

    /// `labelmap`. Every match reads the labels as they were before the rule,
    /// as Prometheus's builder does, and the new name is not checked, as in
    /// Prometheus (the caller's label-set validation catches a bad one). When two labels map to the same name the
    /// later one by name wins; Prometheus's winner depends on the order its
    /// builder was filled in (for targets, Go's map order).
    fn label_map(&self, labels: &mut Vec<(String, String)>) {
        let mut mapped = Vec::new();
        for (name, value) in labels.iter() {
            if !self.regex.is_match(name) {
                continue;
            }
            if let Some(groups) = self.regex.captures(name) {
                mapped.push((self.replacement.expand(&groups), value.clone()));
            }
        }
        for (name, value) in mapped {
            set(labels, Cow::Owned(name), value);
        }
    }
}

/// Applies `configs` in order to `labels`; returns false as soon as a rule drops
/// the label set, leaving `labels` as that rule found them.
///
/// `labels` should be sorted by name with unique names, as Prometheus's label
/// sets are; an unsorted set is sorted first. When at least one rule runs, labels
/// with empty values are removed (Prometheus treats them as absent) and the
/// result is sorted by name. With no rules, `labels` is not touched.
pub fn relabel(labels: &mut Vec<(String, String)>, configs: &[RelabelConfig]) -> bool {
    if configs.is_empty() {
        return true;
    }
    if !labels.is_sorted_by(|a, b| a.0 <= b.0) {
        labels.sort_by(|a, b| a.0.cmp(&b.0));
    }
    labels.retain(|(_, value)| !value.is_empty());
    let mut joined = String::new();
    configs
        .iter()
        .all(|config| config.apply(labels, &mut joined))
}

/// The value of label `name` in sorted `labels`, or "" when it is absent.
fn get<'a>(labels: &'a [(String, String)], name: &str) -> &'a str {
    match labels.binary_search_by(|(n, _)| n.as_str().cmp(name)) {
        Ok(i) => &labels[i].1,
        Err(_) => "",
    }
}

/// Sets label `name` in sorted `labels`; an empty value deletes it, as
/// Prometheus's builder does.
fn set(labels: &mut Vec<(String, String)>, name: Cow<'_, str>, value: String) {
    match labels.binary_search_by(|(n, _)| n.as_str().cmp(&name)) {
        Ok(i) if value.is_empty() => {
            labels.remove(i);
        }
        Ok(i) => labels[i].1 = value,
        Err(_) if value.is_empty() => {}
        Err(i) => labels.insert(i, (name.into_owned(), value)),
    }
}

/// A rule's regex, compiled both ways it is used.
#[derive(Debug, Clone)]
struct CompiledRegex {
    /// Answers "does it match" with the matcher's shortcuts (literal sets,
    /// prefixes, `.*`), which `keep`, `drop`, `labeldrop` and `labelkeep` use
    /// per sample.
    matcher: Matcher,
    /// Gives the capture groups `replace` and `labelmap` expand.
    anchored: Regex,
    /// The pattern is the default `(.*)`: it matches anything, and its groups 0
    /// and 1 are the whole value, so most `replace` rules need no regex run.
    whole: bool,
}

impl CompiledRegex {
    fn new(pattern: &str) -> Result<CompiledRegex, MatcherError> {
        Ok(CompiledRegex {
            anchored: anchored_regex(pattern)?,
            matcher: Matcher::new(MatchOp::Regex, "", pattern)?,
            whole: pattern == DEFAULT_REGEX,
        })
    }

    fn is_match(&self, value: &str) -> bool {
        self.matcher.matches(value)
    }

    fn captures<'h>(&self, value: &'h str) -> Option<Groups<'h>> {
        if self.whole {
            Some(Groups::Whole(value))
        } else {
            self.anchored.captures(value).map(Groups::Captures)
        }
    }
}

/// The groups of one match.
enum Groups<'h> {
    /// A match of `(.*)`, whose groups 0 and 1 are the whole value.
    Whole(&'h str),
    Captures(Captures<'h>),
}

impl Groups<'_> {
    /// Group `i`'s text, or `None` when it did not take part in the match.
    fn get(&self, i: usize) -> Option<&str> {
        match self {
            Groups::Whole(value) => (i <= 1).then_some(*value),
            Groups::Captures(captures) => captures.get(i).map(|m| m.as_str()),
        }
    }
}

/// A `$` template (`target_label` or `replacement`) read with Go's
/// `Regexp.Expand` rules against one regex, so that expanding it per sample is
/// copying text and groups.
///
/// Go's rules differ from the `regex` crate's `Captures::expand`, which is why
/// this does not use it: a `$name` runs over Unicode letters, digits (category
/// Nd) and `_`, not just ASCII; `${…}` may only hold those characters (else the
/// `$` is literal text); a number with a leading zero (`$01`) or of 9 digits or
/// more is a name, not a group number.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Template {
    pieces: Vec<Piece>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(String),
    /// A group's text, or nothing when the group did not take part in the match.
    Group(usize),
}

/// The characters of a `$name` in Go: `unicode.IsLetter`, `unicode.IsDigit`, `_`.
static GROUP_NAME: LazyLock<Result<Regex, regex::Error>> =
    LazyLock::new(|| Regex::new(r"\A[\p{L}\p{Nd}_]+"));

/// Go stops reading a group number at this value and reads a name instead.
const MAX_GROUP_NUMBER: usize = 100_000_000;

impl Template {
    /// Reads `template` against `regex`'s groups; a reference to a group the regex
    /// does not have expands to nothing, so it is dropped here.
    fn compile(template: &str, regex: &Regex) -> Result<Template, MatcherError> {
        let name_chars = GROUP_NAME
            .as_ref()
            .map_err(|e| MatcherError(e.to_string()))?;
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut rest = template;
        while let Some(dollar) = rest.find('$') {
            text.push_str(&rest[..dollar]);
            rest = &rest[dollar + 1..];
            if let Some(after) = rest.strip_prefix('$') {
                text.push('$');
                rest = after;
                continue;
            }
            let Some((name, after)) = group_reference(rest, name_chars) else {
                // Not a reference: Go keeps the `$` as text and reads on after it.
                text.push('$');
                continue;
            };
            rest = after;
            let group = match group_number(name) {
                Some(number) => (number < regex.captures_len()).then_some(number),
                None => regex.capture_names().position(|n| n == Some(name)),
            };
            if let Some(group) = group {
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(Piece::Group(group));
            }
        }
        text.push_str(rest);
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(Template { pieces })
    }

    /// The expansion when it does not depend on the match.
    fn literal(&self) -> Option<&str> {
        match self.pieces.as_slice() {
            [] => Some(""),
            [Piece::Text(text)] => Some(text),
            _ => None,
        }
    }

    fn expand(&self, groups: &Groups<'_>) -> String {
        let mut out = String::new();
        for piece in &self.pieces {
            match piece {
                Piece::Text(text) => out.push_str(text),
                Piece::Group(i) => out.push_str(groups.get(*i).unwrap_or_default()),
            }
        }
        out
    }
}

/// After a `$`: the `name` or `{name}` it starts with and the text after it, or
/// `None` when there is no name or the brace is not closed.
fn group_reference<'t>(after_dollar: &'t str, name_chars: &Regex) -> Option<(&'t str, &'t str)> {
    let (braced, body) = match after_dollar.strip_prefix('{') {
        Some(body) => (true, body),
        None => (false, after_dollar),
    };
    let (name, rest) = body.split_at(name_chars.find(body)?.end());
    if braced {
        Some((name, rest.strip_prefix('}')?))
    } else {
        Some((name, rest))
    }
}

/// A reference's group number, or `None` when Go reads it as a name.
fn group_number(name: &str) -> Option<usize> {
    if name.len() > 1 && name.starts_with('0') {
        return None;
    }
    name.bytes().try_fold(0usize, |number, digit| {
        (digit.is_ascii_digit() && number < MAX_GROUP_NUMBER)
            .then(|| number * 10 + usize::from(digit - b'0'))
    })
}

/// A legacy label name: `[a-zA-Z_][a-zA-Z0-9_]*`.
fn is_legacy_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b == b'_' || b.is_ascii_alphabetic())
        && bytes.all(|b| b == b'_' || b.is_ascii_alphanumeric())
}

/// Whether `template` can expand to a legacy label name, by Prometheus's
/// `^(?:(?:[a-zA-Z_]|\$(?:\{\w+\}|\w+))+\w*)+$`: word characters and `$n`,
/// `${n}` references, not starting with a digit.
fn is_legacy_target_template(template: &str) -> bool {
    let is_word = |b: u8| b == b'_' || b.is_ascii_alphanumeric();
    let bytes = template.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' {
            let braced = bytes.get(i + 1) == Some(&b'{');
            let start = i + 1 + usize::from(braced);
            let end = start + bytes[start..].iter().take_while(|&&b| is_word(b)).count();
            if end == start || (braced && bytes.get(end) != Some(&b'}')) {
                return false;
            }
            i = end + usize::from(braced);
        } else if is_word(bytes[i]) && (i > 0 || !bytes[i].is_ascii_digit()) {
            i += 1;
        } else {
            return false;
        }
    }
    i > 0
}

/// Go's `strings.ToLower`: each character's simple lowercase mapping.
fn go_to_lower(value: &str) -> String {
    if value.is_ascii() {
        return value.to_ascii_lowercase();
    }
    // Only U+0130 (İ) lowercases to more than one character; its simple mapping,
    // which Go uses, is the first of them.
    value
        .chars()
        .map(|c| c.to_lowercase().next().unwrap_or(c))
        .collect()
}

/// Go's `strings.ToUpper`: each character's simple uppercase mapping.
fn go_to_upper(value: &str) -> String {
    if value.is_ascii() {
        return value.to_ascii_uppercase();
    }
    value.chars().map(simple_uppercase).collect()
}

/// A character's simple uppercase mapping. Rust gives the full mapping, which
/// differs only where it is several characters long (`ß` → `SS`); the simple
/// mapping then keeps the character, except for Greek letters with iota
/// subscript, which map to their capital with prosgegrammeni.
fn simple_uppercase(c: char) -> char {
    let mut upper = c.to_uppercase();
    if let (Some(single), None) = (upper.next(), upper.next()) {
        return single;
    }
    let code = u32::from(c);
    let mapped = match code {
        0x1F80..=0x1F87 | 0x1F90..=0x1F97 | 0x1FA0..=0x1FA7 => code + 8,
        0x1FB3 | 0x1FC3 | 0x1FF3 => code + 9,
        _ => code,
    };
    char::from_u32(mapped).unwrap_or(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut labels: Vec<(String, String)> = pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        labels.sort();
        labels
    }

    fn configs(yaml: &str) -> Vec<RelabelConfig> {
        let configs: Vec<RelabelConfig> = serde_saphyr::from_str(yaml).unwrap();
        for config in &configs {
            config.validate().unwrap();
        }
        configs
    }

    fn config(yaml: &str) -> RelabelConfig {
        serde_saphyr::from_str(yaml).unwrap()
    }

    /// Runs `yaml`'s rules on `input`; `None` when they drop it.
    fn run(input: &[(&str, &str)], yaml: &str) -> Option<Vec<(String, String)>> {
        let mut out = labels(input);
        relabel(&mut out, &configs(yaml)).then_some(out)
    }

    /// The cases of Prometheus's `TestRelabel` (model/relabel/relabel_test.go),
    /// minus those that need UTF-8 label names (see `utf8_names_are_refused`).
    #[test]
    fn prometheus_cases() {
        type Case<'a> = (
            &'a [(&'a str, &'a str)],
            &'a str,
            Option<&'a [(&'a str, &'a str)]>,
        );
        let abc: &[(&str, &str)] = &[("a", "foo"), ("b", "bar"), ("c", "baz")];
        let ports: &[(&str, &str)] = &[
            ("__tmp_port", "1234"),
            ("__port1", "1234"),
            ("__port2", "5678"),
        ];
        let cases: &[Case] = &[
            (
                abc,
                "- {source_labels: [a], regex: f(.*), target_label: d, replacement: 'ch${1}-ch${1}'}",
                Some(&[("a", "foo"), ("b", "bar"), ("c", "baz"), ("d", "choo-choo")]),
            ),
            (
                abc,
                r#"
- source_labels: [a, b]
  regex: f(.*);(.*)r
  target_label: a
  replacement: b${1}${2}m
- source_labels: [c, a]
  regex: (b).*b(.*)ba(.*)
  target_label: d
  replacement: $1$2$2$3
"#,
                Some(&[("a", "boobam"), ("b", "bar"), ("c", "baz"), ("d", "boooom")]),
            ),
            (
                &[("a", "foo")],
                r#"
- {source_labels: [a], regex: .*o.*, action: drop}
- {source_labels: [a], regex: f(.*), target_label: d, replacement: ch$1-ch$1}
"#,
                None,
            ),
            (
                &[("a", "foo"), ("b", "bar")],
                "- {source_labels: [a], regex: .*o.*, action: drop}",
                None,
            ),
            (
                &[("a", "abc")],
                "- {source_labels: [a], regex: .*(b).*, target_label: d, replacement: $1}",
                Some(&[("a", "abc"), ("d", "b")]),
            ),
            (
                &[("a", "foo")],
                "- {source_labels: [a], regex: no-match, action: drop}",
                Some(&[("a", "foo")]),
            ),
            (
                &[("a", "foo")],
                "- {source_labels: [a], regex: f|o, action: drop}",
                Some(&[("a", "foo")]),
            ),
            (
                &[("a", "foo")],
                "- {source_labels: [a], regex: no-match, action: keep}",
                None,
            ),
            (
                &[("a", "foo")],
                "- {source_labels: [a], regex: f.*, action: keep}",
                Some(&[("a", "foo")]),
            ),
            // No replacement takes place when the regex does not match.
            (
                &[("a", "boo")],
                "- {source_labels: [a], regex: f, target_label: b, replacement: bar}",
                Some(&[("a", "boo")]),
            ),
            // A blank replacement deletes the label.
            (
                &[("a", "foo"), ("f", "baz")],
                "- {source_labels: [a], regex: (f).*, target_label: $1, replacement: $2}",
                Some(&[("a", "foo")]),
            ),
            (
                abc,
                "- {source_labels: [c], target_label: d, action: hashmod, modulus: 1000}",
                Some(&[("a", "foo"), ("b", "bar"), ("c", "baz"), ("d", "976")]),
            ),
            (
                &[("a", "foo\nbar")],
                "- {source_labels: [a], target_label: b, action: hashmod, modulus: 1000}",
                Some(&[("a", "foo\nbar"), ("b", "734")]),
            ),
            (
                &[("a", "foo"), ("b1", "bar"), ("b2", "baz")],
                "- {regex: (b.*), replacement: 'bar_${1}', action: labelmap}",
                Some(&[
                    ("a", "foo"),
                    ("b1", "bar"),
                    ("b2", "baz"),
                    ("bar_b1", "bar"),
                    ("bar_b2", "baz"),
                ]),
            ),
            (
                &[("a", "foo"), ("__meta_my_bar", "aaa"), ("__meta_my_baz", "bbb"), ("__meta_other", "ccc")],
                "- {regex: __meta_(my.*), replacement: '${1}', action: labelmap}",
                Some(&[
                    ("a", "foo"),
                    ("__meta_my_bar", "aaa"),
                    ("__meta_my_baz", "bbb"),
                    ("__meta_other", "ccc"),
                    ("my_bar", "aaa"),
                    ("my_baz", "bbb"),
                ]),
            ),
            (
                &[("a", "some-name-value")],
                "- {source_labels: [a], regex: 'some-([^-]+)-([^,]+)', replacement: '${2}', target_label: '${1}'}",
                Some(&[("a", "some-name-value"), ("name", "value")]),
            ),
            // A replacement naming a missing group is empty: nothing to delete.
            (
                &[("a", "some-name-value")],
                "- {source_labels: [a], regex: 'some-([^-]+)-([^,]+)', replacement: '${3}', target_label: '${1}'}",
                Some(&[("a", "some-name-value")]),
            ),
            // A target naming a missing group is empty, not a label name.
            (
                &[("a", "some-name-0")],
                r#"
- {source_labels: [a], regex: 'some-([^-]+)-([^,]+)', replacement: '${1}', target_label: '${3}'}
- {source_labels: [a], regex: 'some-([^-]+)-([^,]+)', replacement: '${1}', target_label: '${3}'}
- {source_labels: [a], regex: 'some-([^-]+)(-[^,]+)', replacement: '${1}', target_label: '${3}'}
"#,
                Some(&[("a", "some-name-0")]),
            ),
            (
                &[("__meta_sd_tags", "path:/secret,job:some-job,label:foo=bar")],
                r#"
- source_labels: [__meta_sd_tags]
  regex: "(?:.+,|^)path:(/[^,]+).*"
  replacement: "${1}"
  target_label: __metrics_path__
- source_labels: [__meta_sd_tags]
  regex: "(?:.+,|^)job:([^,]+).*"
  replacement: "${1}"
  target_label: job
- source_labels: [__meta_sd_tags]
  regex: "(?:.+,|^)label:([^=]+)=([^,]+).*"
  replacement: "${2}"
  target_label: "${1}"
"#,
                Some(&[
                    ("__meta_sd_tags", "path:/secret,job:some-job,label:foo=bar"),
                    ("__metrics_path__", "/secret"),
                    ("job", "some-job"),
                    ("foo", "bar"),
                ]),
            ),
            // prometheus/prometheus#12283: a label dropped and then set again.
            (
                &[
                    ("__meta_kubernetes_pod_container_port_name", "foo"),
                    ("__meta_kubernetes_pod_annotation_XXX_metrics_port", "9091"),
                ],
                r#"
- regex: ^__meta_kubernetes_pod_container_port_name$
  action: labeldrop
- source_labels: [__meta_kubernetes_pod_annotation_XXX_metrics_port]
  regex: (.+)
  replacement: metrics
  target_label: __meta_kubernetes_pod_container_port_name
- source_labels: [__meta_kubernetes_pod_container_port_name]
  regex: ^metrics$
  action: keep
"#,
                Some(&[
                    ("__meta_kubernetes_pod_annotation_XXX_metrics_port", "9091"),
                    ("__meta_kubernetes_pod_container_port_name", "metrics"),
                ]),
            ),
            (
                &[("a", "foo"), ("b1", "bar"), ("b2", "baz")],
                "- {regex: (b.*), action: labelkeep}",
                Some(&[("b1", "bar"), ("b2", "baz")]),
            ),
            (
                &[("a", "foo"), ("b1", "bar"), ("b2", "baz")],
                "- {regex: (b.*), action: labeldrop}",
                Some(&[("a", "foo")]),
            ),
            (
                &[("foo", "bAr123Foo")],
                r#"
- {source_labels: [foo], action: uppercase, target_label: foo_uppercase}
- {source_labels: [foo], action: lowercase, target_label: foo_lowercase}
"#,
                Some(&[
                    ("foo", "bAr123Foo"),
                    ("foo_lowercase", "bar123foo"),
                    ("foo_uppercase", "BAR123FOO"),
                ]),
            ),
            (
                ports,
                "- {source_labels: [__tmp_port], action: keepequal, target_label: __port1}",
                Some(ports),
            ),
            (
                ports,
                "- {source_labels: [__tmp_port], action: dropequal, target_label: __port1}",
                None,
            ),
            (
                ports,
                "- {source_labels: [__tmp_port], action: dropequal, target_label: __port2}",
                Some(ports),
            ),
            (
                ports,
                "- {source_labels: [__tmp_port], action: keepequal, target_label: __port2}",
                None,
            ),
            // `.` matches a newline; `${1}` of a regex without groups is empty.
            (
                &[("a", "line1\nline2"), ("b", "bar"), ("c", "baz")],
                "- {source_labels: [a], regex: line1.*line2, target_label: d, replacement: 'match${1}'}",
                Some(&[("a", "line1\nline2"), ("b", "bar"), ("c", "baz"), ("d", "match")]),
            ),
            // Named groups, in both syntaxes and both reference forms.
            (
                &[("a", "line1\nline2"), ("b", "bar"), ("c", "baz")],
                r#"
- source_labels: [a]
  regex: (line1).*(?<second>line2)
  target_label: label1_${1}
  replacement: val_${second}
- source_labels: [a]
  regex: (line1).*(?P<second>line2)
  target_label: label2_$1
  replacement: val_$second
"#,
                Some(&[
                    ("a", "line1\nline2"),
                    ("b", "bar"),
                    ("c", "baz"),
                    ("label1_line1", "val_line2"),
                    ("label2_line1", "val_line2"),
                ]),
            ),
            (
                &[("__name__", "http_requests_total")],
                "- {source_labels: [__name__], regex: .*_total$, target_label: __type__, replacement: counter}",
                Some(&[("__name__", "http_requests_total"), ("__type__", "counter")]),
            ),
            (
                &[("__name__", "disk_usage_bytes")],
                "- {source_labels: [__name__], regex: .*_bytes$, target_label: __unit__, replacement: bytes}",
                Some(&[("__name__", "disk_usage_bytes"), ("__unit__", "bytes")]),
            ),
        ];
        for (input, yaml, want) in cases {
            let got = run(input, yaml);
            assert_eq!(got, want.map(labels), "{yaml}");
        }
    }

    /// Prometheus's cases with UTF-8 label names pass only under its UTF-8
    /// scheme; with legacy names they are refused when loaded, and a target that
    /// expands to such a name is skipped.
    #[test]
    fn utf8_names_are_refused() {
        let refused = [
            (
                "{source_labels: [utf-8.label], regex: line1.*line2, target_label: d}",
                r#""utf-8.label" is not a valid label name"#,
            ),
            (
                "{source_labels: [a], target_label: utf-8.label}",
                r#""utf-8.label" is invalid 'target_label' for replace action"#,
            ),
            (
                "{source_labels: [a], target_label: 'utf-8.label${1}'}",
                r#""utf-8.label${1}" is invalid 'target_label' for replace action"#,
            ),
        ];
        for (yaml, want) in refused {
            assert_eq!(config(yaml).validate().unwrap_err(), want, "{yaml}");
        }
        let skipped = config("{source_labels: [a], regex: '(.*)', target_label: 'x${1}'}");
        let mut out = labels(&[("a", "-y")]);
        assert!(relabel(&mut out, &[skipped]));
        assert_eq!(out, labels(&[("a", "-y")]));
    }

    #[test]
    fn defaults_and_nulls_follow_prometheus() {
        let spec = config("{}").spec().clone();
        assert_eq!(spec, RelabelSpec::default());
        assert_eq!(spec.separator, ";");
        assert_eq!(spec.replacement, "$1");
        assert_eq!(spec.action, Action::Replace);
        assert_eq!(spec.regex, None);

        // A null key is Go's zero value, not the default.
        let spec = config("{source_labels: ~, separator: ~, regex: ~, modulus: ~, target_label: ~, replacement: ~}")
            .spec()
            .clone();
        assert_eq!(
            spec,
            RelabelSpec {
                separator: String::new(),
                regex: Some(String::new()),
                replacement: String::new(),
                ..RelabelSpec::default()
            }
        );
        // An empty regex matches only the empty value.
        let rule = config("{source_labels: [a], regex: '', action: keep}");
        let mut present = labels(&[("a", "x")]);
        assert!(!relabel(&mut present, std::slice::from_ref(&rule)));
        assert!(relabel(&mut labels(&[("b", "x")]), &[rule]));

        // Scalars of any look are strings, as in Go's YAML reader.
        let spec = config("{regex: 8080, replacement: 1.0, separator: true}")
            .spec()
            .clone();
        assert_eq!(spec.regex.as_deref(), Some("8080"));
        assert_eq!(spec.replacement, "1.0");
        assert_eq!(spec.separator, "true");
    }

    #[test]
    fn reading_rejects_what_prometheus_rejects() {
        let err = |yaml: &str| {
            serde_saphyr::from_str::<RelabelConfig>(yaml)
                .unwrap_err()
                .to_string()
        };
        assert!(err("{action: keep, sourcelabels: [a]}").contains("unknown field `sourcelabels`"));
        assert!(err("{action: nope}").contains(r#"unknown relabel action "nope""#));
        assert!(err("{action: ~}").contains("relabel action cannot be empty"));
        assert!(err("{regex: 'a('}")
            .contains(r#"invalid regular expression "a(": missing closing ): `a(`"#));
        assert!(serde_saphyr::from_str::<RelabelConfig>("{modulus: -1}").is_err());
        for (name, action) in [
            ("Replace", Action::Replace),
            ("KEEP", Action::Keep),
            ("LabelMap", Action::LabelMap),
            ("dropEqual", Action::DropEqual),
        ] {
            let yaml = format!("{{action: {name}}}");
            assert_eq!(config(&yaml).spec().action, action);
        }
        for action in [
            Action::Replace,
            Action::Keep,
            Action::Drop,
            Action::KeepEqual,
            Action::DropEqual,
            Action::HashMod,
            Action::LabelMap,
            Action::LabelDrop,
            Action::LabelKeep,
            Action::Lowercase,
            Action::Uppercase,
        ] {
            assert_eq!(action.to_string().parse::<Action>(), Ok(action));
        }
    }

    #[test]
    fn validation_errors() {
        let cases: &[(&str, &str)] = &[
            ("{action: hashmod, target_label: t}", "relabel configuration for hashmod requires non-zero modulus"),
            ("{action: hashmod, modulus: 2}", "relabel configuration for hashmod action requires 'target_label' value"),
            ("{action: hashmod, modulus: 2, target_label: '${1}'}", r#""${1}" is invalid 'target_label' for hashmod action"#),
            ("{action: replace}", "relabel configuration for replace action requires 'target_label' value"),
            ("{action: lowercase}", "relabel configuration for lowercase action requires 'target_label' value"),
            ("{action: uppercase}", "relabel configuration for uppercase action requires 'target_label' value"),
            ("{action: keepequal}", "relabel configuration for keepequal action requires 'target_label' value"),
            ("{action: dropequal}", "relabel configuration for dropequal action requires 'target_label' value"),
            ("{target_label: 1a}", r#""1a" is invalid 'target_label' for replace action"#),
            ("{target_label: '0${3}'}", r#""0${3}" is invalid 'target_label' for replace action"#),
            ("{target_label: '-${3}'}", r#""-${3}" is invalid 'target_label' for replace action"#),
            ("{target_label: 'a$$'}", r#""a$$" is invalid 'target_label' for replace action"#),
            ("{action: lowercase, target_label: '${3}'}", r#""${3}" is invalid 'target_label' for lowercase action"#),
            ("{action: keepequal, target_label: a.b}", r#""a.b" is invalid 'target_label' for keepequal action"#),
            ("{action: uppercase, target_label: t, replacement: x}", "'replacement' can not be set for uppercase action"),
            ("{action: dropequal, target_label: t, replacement: ''}", "'replacement' can not be set for dropequal action"),
            ("{action: labelmap, replacement: 'a-$1'}", r#""a-$1" is invalid 'replacement' for labelmap action"#),
            ("{action: labelmap, replacement: ''}", r#""" is invalid 'replacement' for labelmap action"#),
            ("{action: keepequal, target_label: t, regex: (.*)}", "keepequal action requires only 'source_labels' and `target_label`, and no other fields"),
            ("{action: dropequal, target_label: t, separator: ','}", "dropequal action requires only 'source_labels' and `target_label`, and no other fields"),
            ("{action: keepequal, target_label: t, modulus: 3}", "keepequal action requires only 'source_labels' and `target_label`, and no other fields"),
            ("{action: labeldrop, source_labels: []}", "labeldrop action requires only 'regex', and no other fields"),
            ("{action: labelkeep, target_label: t}", "labelkeep action requires only 'regex', and no other fields"),
            ("{action: labeldrop, separator: ''}", "labeldrop action requires only 'regex', and no other fields"),
            ("{action: labelkeep, replacement: $2}", "labelkeep action requires only 'regex', and no other fields"),
            ("{action: labeldrop, modulus: 1}", "labeldrop action requires only 'regex', and no other fields"),
            ("{source_labels: [a, 1b], target_label: t}", r#""1b" is not a valid label name"#),
        ];
        for &(yaml, want) in cases {
            assert_eq!(config(yaml).validate(), Err(want.to_string()), "{yaml}");
        }
        let valid = [
            "{target_label: '${3}', source_labels: [a], regex: 'some-([^-]+)-([^,]+)', replacement: '${1}'}",
            "{target_label: t}",
            "{action: labelmap, regex: '__meta_kubernetes_pod_label_(strimzi_io_.+)', replacement: $1}",
            "{action: labelmap, regex: '__meta_(.+)', replacement: '${1}'}",
            "{action: keepequal, target_label: t, source_labels: [a], separator: ;, replacement: $1}",
            "{action: labeldrop, regex: a, source_labels: ~}",
            "{action: hashmod, modulus: 1, target_label: t}",
            "{action: drop}",
            "{action: keep, source_labels: []}",
            "{action: lowercase, target_label: t}",
        ];
        for yaml in valid {
            assert_eq!(config(yaml).validate(), Ok(()), "{yaml}");
        }
    }

    /// Prometheus's `TestTargetLabelLegacyValidity`, and its regex as the
    /// reference for more strings.
    #[test]
    fn legacy_target_templates() {
        let cases = [
            ("-label", false),
            ("label", true),
            ("label${1}", true),
            ("${1}label", true),
            ("${1}", true),
            ("${", false),
            ("$", false),
            ("${}", false),
            ("foo${", false),
            ("$1", true),
            ("asd$2asd", true),
            ("-foo${1}bar-", false),
            ("bar.foo${1}bar", false),
            ("_${1}_", true),
            ("foo${bar}foo", true),
            ("", false),
            ("1${a}", false),
            ("$1}", false),
            ("${a}1", true),
        ];
        let reference =
            Regex::new(r"^(?:(?:[a-zA-Z_]|\$(?:\{[0-9A-Za-z_]+\}|[0-9A-Za-z_]+))+[0-9A-Za-z_]*)+$")
                .unwrap();
        for (template, want) in cases {
            assert_eq!(is_legacy_target_template(template), want, "{template:?}");
            assert_eq!(reference.is_match(template), want, "{template:?}");
        }
        let alphabet = ['a', '1', '_', '$', '{', '}', '-'];
        let mut checked = 0;
        for len in 0..=5u32 {
            for n in 0..alphabet.len().pow(len) {
                let template: String = (0..len)
                    .map(|i| alphabet[n / alphabet.len().pow(i) % alphabet.len()])
                    .collect();
                assert_eq!(
                    is_legacy_target_template(&template),
                    reference.is_match(&template),
                    "{template:?}"
                );
                checked += 1;
            }
        }
        assert!(checked > 19_000);
    }

    fn expand(pattern: &str, template: &str, value: &str) -> String {
        let regex = CompiledRegex::new(pattern).unwrap();
        let template = Template::compile(template, &regex.anchored).unwrap();
        template.expand(&regex.captures(value).unwrap())
    }

    /// Go's `Regexp.ExpandString` rules, where they differ from the crate's. The
    /// `(a)(b)` rows and the named-group rows without digits were checked
    /// against a running Prometheus 2.42 (target relabeling, file_sd).
    #[test]
    fn templates_expand_like_go() {
        let cases = [
            // (pattern, template, value, expansion)
            ("(a)(b)", "$1-${2}-$0", "ab", "a-b-ab"),
            ("(a)(b)", "$$1 $$ $", "ab", "$1 $ $"),
            ("(a)(b)", "$1b", "ab", ""), // the name `1b`, not group 1
            ("(a)(b)", "${1}b", "ab", "ab"),
            ("(a)(b)", "$01", "ab", ""), // a leading zero makes a name
            ("(a)(b)", "${01}", "ab", ""),
            ("(a)(b)", "$3", "ab", ""),
            ("(a)(b)", "$100000000", "ab", ""),
            ("(a)(b)", "${1", "ab", "${1"), // unclosed: the `$` is text
            ("(a)(b)", "${a-b}", "ab", "${a-b}"), // not a name: text
            ("(a)(b)", "$-$", "ab", "$-$"),
            ("(a)(b)", "$1é", "ab", ""), // Unicode letters continue a name
            ("(a)(b)", "${1}é", "ab", "aé"),
            ("(a)(b)", "$1²", "ab", "a²"), // `²` is a number, not a digit
            ("(a)(b)", "$1\u{0301}", "ab", "a\u{0301}"), // a mark ends a name
            ("(a)(b)", "$1Ⅻ", "ab", "aⅫ"), // a letter number ends it too
            ("(a)(b)", "$1٣", "ab", ""),   // an Arabic-Indic digit does not
            ("(a)(b)", "${1}٣", "ab", "a٣"),
            ("(a)(b)", "x$100000000y", "ab", "x"),
            ("(?P<x>a)(?<y_1>b)", "$x:${y_1}:$y_1x:$z", "ab", "a:b::"),
            ("(?P<x>a)|(?P<y>b)", "[$x][$y][$2]", "b", "[][b][b]"),
            ("(?P<x1>a)", "$x1|${x1}|$1", "a", "a|a|a"),
            ("(?P<1x>a)", "${1x}|$1", "a", "|a"), // digit-led names are lost
            ("(.*)", "$0:$1:$2:${name}", "v", "v:v::"),
            ("(.*)", "", "v", ""),
        ];
        for (pattern, template, value, want) in cases {
            assert_eq!(
                expand(pattern, template, value),
                want,
                "{pattern:?} {template:?} on {value:?}"
            );
        }
        // Unknown references are resolved when the rule is loaded.
        let regex = CompiledRegex::new("(a)").unwrap();
        let template = Template::compile("x$2${y}$1", &regex.anchored).unwrap();
        assert_eq!(
            template.pieces,
            [Piece::Text("x".to_string()), Piece::Group(1)]
        );
        assert_eq!(
            Template::compile("a$$b", &regex.anchored)
                .unwrap()
                .literal(),
            Some("a$b")
        );
    }

    /// The default `(.*)` skips the regex; the shortcut must agree with it.
    #[test]
    fn default_regex_shortcut_agrees_with_the_regex() {
        let shortcut = CompiledRegex::new(DEFAULT_REGEX).unwrap();
        assert!(shortcut.whole);
        for value in ["", "x", "a\nb", "é;ü"] {
            let full = shortcut.anchored.captures(value).unwrap();
            let fast = shortcut.captures(value).unwrap();
            for i in 0..3 {
                assert_eq!(
                    fast.get(i),
                    full.get(i).map(|m| m.as_str()),
                    "{value:?} {i}"
                );
            }
            assert!(shortcut.is_match(value));
        }
    }

    fn hashmod(value: &str, modulus: u64) -> u64 {
        let config = config(&format!(
            "{{source_labels: [a], target_label: h, action: hashmod, modulus: {modulus}}}"
        ));
        let mut out = labels(&[("a", value)]);
        assert!(relabel(&mut out, &[config]));
        get(&out, "h").parse().unwrap()
    }

    #[test]
    fn hashmod_takes_the_last_eight_digest_bytes() {
        // Literal results from Prometheus's relabel_test.go.
        assert_eq!(hashmod("baz", 1000), 976);
        assert_eq!(hashmod("foo\nbar", 1000), 734);
        // md5("baz") = 73feffa4b7f6bb68 e44cf984c85f6e88: the second half is used.
        let digest = Md5::digest(b"baz");
        assert_eq!(
            digest[..],
            [
                0x73, 0xfe, 0xff, 0xa4, 0xb7, 0xf6, 0xbb, 0x68, 0xe4, 0x4c, 0xf9, 0x84, 0xc8, 0x5f,
                0x6e, 0x88
            ]
        );
        assert_eq!(0xe44c_f984_c85f_6e88_u64 % 1000, 976);
        assert_ne!(0x73fe_ffa4_b7f6_bb68_u64 % 1000, 976);
        for (value, modulus) in [("", 1000), ("a;b", 7), ("10.132.183.40:80", 3)] {
            let digest = Md5::digest(value.as_bytes());
            let mut tail = [0u8; 8];
            tail.copy_from_slice(&digest[8..]);
            assert_eq!(hashmod(value, modulus), u64::from_be_bytes(tail) % modulus);
        }
        assert_eq!(hashmod("", 1000), 958);
        assert_eq!(hashmod("a;b", 7), 2);
        assert_eq!(hashmod("x", 1), 0);
        // Several sources are hashed joined with the separator.
        let mut out = labels(&[("a", "a"), ("b", "b")]);
        let rule =
            configs("- {source_labels: [a, b], target_label: h, action: hashmod, modulus: 7}");
        assert!(relabel(&mut out, &rule));
        assert_eq!(get(&out, "h"), "2");
    }

    /// Checked against a running Prometheus 2.42.
    #[test]
    fn case_mapping_is_gos_simple_mapping() {
        let cases = [
            ("ÀbÇ", "àbç", "ÀBÇ"),
            ("İ", "i", "İ"),                   // full lowercase would be "i\u{307}"
            ("ß", "ß", "ß"),                   // full uppercase would be "SS"
            ("ΣΑΣ σας", "σασ σας", "ΣΑΣ ΣΑΣ"), // no final-sigma rule
            ("ﬁ", "ﬁ", "ﬁ"),                   // full uppercase would be "FI"
            ("ᾳᾀ", "ᾳᾀ", "ᾼᾈ"),                // iota subscript: capital with prosgegrammeni
            ("ǅ", "ǆ", "Ǆ"),
            ("K", "k", "K"), // Kelvin sign
            ("ŉΐ", "ŉΐ", "ŉΐ"),
        ];
        for (value, lower, upper) in cases {
            assert_eq!(go_to_lower(value), lower, "{value:?}");
            assert_eq!(go_to_upper(value), upper, "{value:?}");
        }
        let rules = configs(
            "- {source_labels: [a], target_label: l, action: lowercase}\n- {source_labels: [a], target_label: u, action: uppercase}",
        );
        let mut out = labels(&[("a", "Straße"), ("l", "old"), ("u", "old")]);
        assert!(relabel(&mut out, &rules));
        assert_eq!(
            out,
            labels(&[("a", "Straße"), ("l", "straße"), ("u", "STRAßE")])
        );
        // An empty source deletes the target.
        let mut out = labels(&[("l", "old"), ("u", "old")]);
        assert!(relabel(&mut out, &rules));
        assert!(out.is_empty());
    }

    #[test]
    fn sources_join_with_the_separator_and_absent_labels_are_empty() {
        let kept = |yaml: &str, input: &[(&str, &str)]| run(input, yaml).is_some();
        let rule =
            "- {source_labels: [a, missing, b], separator: '|', regex: 'x\\|\\|y', action: keep}";
        assert!(kept(rule, &[("a", "x"), ("b", "y")]));
        assert!(!kept(rule, &[("a", "x"), ("b", "z")]));
        // The default separator, and an empty one.
        assert!(kept(
            "- {source_labels: [a, b], regex: 'x;y', action: keep}",
            &[("a", "x"), ("b", "y")]
        ));
        assert!(kept(
            "- {source_labels: [a, b], separator: '', regex: xy, action: keep}",
            &[("a", "x"), ("b", "y")]
        ));
        // No source labels: the value is empty.
        assert!(kept("- {regex: '', action: keep}", &[("a", "x")]));
        assert!(!kept("- {regex: '.+', action: keep}", &[("a", "x")]));
        // An absent label equals an empty target.
        assert!(kept(
            "- {source_labels: [missing], target_label: other, action: keepequal}",
            &[("a", "x")]
        ));
        // Later rules see earlier results.
        assert_eq!(
            run(&[("a", "x")], "- {source_labels: [a], target_label: b}\n- {source_labels: [a, b], target_label: c}"),
            Some(labels(&[("a", "x"), ("b", "x"), ("c", "x;x")]))
        );
    }

    #[test]
    fn replace_edges() {
        // A literal replacement with no source labels: the static-label idiom.
        assert_eq!(
            run(&[("a", "x")], "- {target_label: env, replacement: prod}"),
            Some(labels(&[("a", "x"), ("env", "prod")]))
        );
        // An existing label is overwritten, and an empty result deletes it.
        assert_eq!(
            run(
                &[("a", "x"), ("b", "y")],
                "- {source_labels: [a], target_label: b, replacement: '$1$1'}"
            ),
            Some(labels(&[("a", "x"), ("b", "xx")]))
        );
        assert_eq!(
            run(
                &[("a", ""), ("b", "y")],
                "- {source_labels: [a], target_label: b}"
            ),
            Some(labels(&[]))
        );
        // The regex must match the whole value.
        assert_eq!(
            run(
                &[("a", "xfoo")],
                "- {source_labels: [a], regex: foo, target_label: b, replacement: hit}"
            ),
            Some(labels(&[("a", "xfoo")]))
        );
        // A target that expands to an invalid name leaves everything alone.
        assert_eq!(
            run(
                &[("a", "1x")],
                "- {source_labels: [a], regex: '(.+)', target_label: '${1}', replacement: v}"
            ),
            Some(labels(&[("a", "1x")]))
        );
        // Go-style `$$` in the replacement.
        assert_eq!(
            run(
                &[("a", "5")],
                "- {source_labels: [a], target_label: price, replacement: '$$$1'}"
            ),
            Some(labels(&[("a", "5"), ("price", "$5")]))
        );
    }

    #[test]
    fn label_map_reads_the_labels_as_they_were() {
        // `a` becomes `b`, while `b` becomes `c` with b's old value.
        let rule = "- {regex: '(a|b)', replacement: '${1}_', action: labelmap}\n- {regex: 'a_', replacement: b, action: labelmap}\n- {regex: 'b_', replacement: c, action: labelmap}";
        assert_eq!(
            run(&[("a", "1"), ("b", "2")], rule),
            Some(labels(&[
                ("a", "1"),
                ("a_", "1"),
                ("b", "1"),
                ("b_", "2"),
                ("c", "2")
            ]))
        );
        // Two labels mapping to one name: the later by name wins.
        assert_eq!(
            run(
                &[("x_a", "1"), ("y_a", "2")],
                "- {regex: '[xy]_(.*)', action: labelmap}"
            ),
            Some(labels(&[("a", "2"), ("x_a", "1"), ("y_a", "2")]))
        );
        // A mapping onto an existing label overwrites it.
        assert_eq!(
            run(
                &[("__meta_job", "new"), ("job", "old")],
                "- {regex: '__meta_(.+)', action: labelmap}"
            ),
            Some(labels(&[("__meta_job", "new"), ("job", "new")]))
        );
    }

    #[test]
    fn output_is_sorted_and_empty_values_are_removed() {
        let mut out: Vec<(String, String)> = [("z", "1"), ("a", ""), ("m", "2")]
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect();
        assert!(relabel(
            &mut out,
            &configs("- {target_label: b, replacement: x}")
        ));
        assert_eq!(out, labels(&[("b", "x"), ("m", "2"), ("z", "1")]));
        // No rules: nothing is touched, not even the order.
        let mut untouched = vec![
            ("z".to_string(), String::new()),
            ("a".to_string(), "1".to_string()),
        ];
        let before = untouched.clone();
        assert!(relabel(&mut untouched, &[]));
        assert_eq!(untouched, before);
    }

    /// The configurations of Prometheus's `BenchmarkRelabel`.
    #[test]
    fn prometheus_benchmark_configs() {
        let example = r#"
            - source_labels: [job, __meta_dns_name]
              regex: "(.*)some-[regex]"
              target_label: job
              replacement: foo-${1}
              # action defaults to 'replace'
            - source_labels: [abc]
              target_label: cde
            - replacement: static
              target_label: abc
            - regex:
              replacement: static
              target_label: abc"#;
        assert_eq!(
            run(
                &[
                    ("__meta_dns_name", "example-some-x.com"),
                    ("abc", "def"),
                    ("job", "foo")
                ],
                example
            ),
            Some(labels(&[
                ("__meta_dns_name", "example-some-x.com"),
                ("abc", "static"),
                ("cde", "def"),
                ("job", "foo"),
            ]))
        );

        let static_pairs = r#"
        - replacement: wwwwww
          target_label: wwwwww
        - replacement: yyyyyyyyyyyy
          target_label: xxxxxxxxx
        - replacement: xxxxxxxxx
          target_label: yyyyyyyyyyyy
        - source_labels: ["something"]
          target_label: with_source_labels
          replacement: value
        - replacement: dropped
          target_label: ${0}
        - replacement: ${0}
          target_label: dropped"#;
        assert_eq!(
            run(&[("abcdefg01", "hijklmn1"), ("job", "foo")], static_pairs),
            Some(labels(&[
                ("abcdefg01", "hijklmn1"),
                ("job", "foo"),
                ("with_source_labels", "value"),
                ("wwwwww", "wwwwww"),
                ("xxxxxxxxx", "yyyyyyyyyyyy"),
                ("yyyyyyyyyyyy", "xxxxxxxxx"),
            ]))
        );

        let kubernetes = r#"
        - source_labels:
            - __meta_kubernetes_pod_container_port_name
          regex: .*-metrics
          action: keep
        - source_labels:
            - __meta_kubernetes_pod_label_name
          action: drop
          regex: ""
        - source_labels:
            - __meta_kubernetes_pod_phase
          regex: Succeeded|Failed
          action: drop
        - source_labels:
            - __meta_kubernetes_pod_annotation_prometheus_io_scrape
          regex: "false"
          action: drop
        - source_labels:
            - __meta_kubernetes_pod_annotation_prometheus_io_scheme
          target_label: __scheme__
          regex: (https?)
          replacement: $1
          action: replace
        - source_labels:
            - __meta_kubernetes_pod_annotation_prometheus_io_path
          target_label: __metrics_path__
          regex: (.+)
          replacement: $1
          action: replace
        - source_labels:
            - __address__
            - __meta_kubernetes_pod_annotation_prometheus_io_port
          target_label: __address__
          regex: (.+?)(\:\d+)?;(\d+)
          replacement: $1:$3
          action: replace
        - regex: __meta_kubernetes_pod_annotation_prometheus_io_param_(.+)
          replacement: __param_$1
          action: labelmap
        - regex: __meta_kubernetes_pod_label_prometheus_io_label_(.+)
          action: labelmap
        - regex: __meta_kubernetes_pod_annotation_prometheus_io_label_(.+)
          action: labelmap
        - source_labels:
            - __meta_kubernetes_namespace
            - __meta_kubernetes_pod_label_name
          separator: /
          target_label: job
          replacement: $1
          action: replace
        - source_labels:
          - __meta_kubernetes_namespace
          target_label: namespace
          action: replace
        - source_labels:
            - __meta_kubernetes_pod_name
          target_label: pod
          action: replace
        - source_labels:
            - __meta_kubernetes_pod_container_name
          target_label: container
          action: replace
        - source_labels:
            - __meta_kubernetes_pod_name
            - __meta_kubernetes_pod_container_name
            - __meta_kubernetes_pod_container_port_name
          separator: ':'
          target_label: instance
          action: replace
        - target_label: cluster
          replacement: dev-us-central-0
        - source_labels:
            - __meta_kubernetes_namespace
          regex: hosted-grafana
          action: drop
        - source_labels:
            - __address__
          target_label: __tmp_hash
          modulus: 3
          action: hashmod
        - source_labels:
            - __tmp_hash
          regex: ^0$
          action: keep
        - regex: __tmp_hash
          action: labeldrop"#;
        let pod: &[(&str, &str)] = &[
            ("__address__", "10.132.183.40:80"),
            ("__meta_kubernetes_namespace", "loki-boltdb-shipper"),
            ("__meta_kubernetes_pod_container_name", "promtail"),
            ("__meta_kubernetes_pod_container_port_name", "http-metrics"),
            (
                "__meta_kubernetes_pod_label_name",
                "promtail-loki-boltdb-shipper",
            ),
            (
                "__meta_kubernetes_pod_name",
                "promtail-loki-boltdb-shipper-jgtr7",
            ),
            ("__meta_kubernetes_pod_phase", "Running"),
            ("__scheme__", "http"),
            ("job", "kubernetes-pods"),
        ];
        // md5("10.132.183.40:80") % 3 is 1, so the shard-0 `keep` drops the target.
        assert_eq!(hashmod("10.132.183.40:80", 3), 1);
        assert_eq!(run(pod, kubernetes), None);
        // Without that `keep`, every other rule shows its effect.
        let mut rules = configs(kubernetes);
        rules.remove(rules.len() - 2);
        let mut out = labels(pod);
        assert!(relabel(&mut out, &rules));
        let mut want: Vec<(&str, &str)> = pod.to_vec();
        want.retain(|(n, _)| *n != "job");
        want.extend([
            ("job", "loki-boltdb-shipper/promtail-loki-boltdb-shipper"),
            ("namespace", "loki-boltdb-shipper"),
            ("pod", "promtail-loki-boltdb-shipper-jgtr7"),
            ("container", "promtail"),
            (
                "instance",
                "promtail-loki-boltdb-shipper-jgtr7:promtail:http-metrics",
            ),
            ("cluster", "dev-us-central-0"),
        ]);
        assert_eq!(out, labels(&want));
    }

    #[test]
    fn new_builds_from_a_spec() {
        let config = RelabelConfig::new(RelabelSpec {
            source_labels: Some(vec!["__name__".to_string()]),
            regex: Some("go_.*|process_.*".to_string()),
            action: Action::Drop,
            ..RelabelSpec::default()
        })
        .unwrap();
        assert_eq!(config.validate(), Ok(()));
        assert!(!relabel(
            &mut labels(&[("__name__", "go_goroutines")]),
            std::slice::from_ref(&config)
        ));
        assert!(relabel(&mut labels(&[("__name__", "up")]), &[config]));
        let err = RelabelConfig::new(RelabelSpec {
            regex: Some("(?P<n>a)(?P<n>b)".to_string()),
            ..RelabelSpec::default()
        })
        .unwrap_err();
        assert!(err.0.contains("duplicate capture group name"), "{err}");
    }
}
