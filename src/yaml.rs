//! YAML read and written the way kubectl and the API server see it.
//!
//! kubectl reads manifests with sigs.k8s.io/yaml, i.e. go-yaml v2: plain (unquoted) scalars
//! are resolved with YAML 1.1 rules (`yes`/`on`/`y` are booleans, `0644` is octal 420, `<<`
//! merges mappings). serde_yaml_ng follows YAML 1.2, so this module builds JSON values itself
//! from the events of `saphyr-parser`: a maintained, pure-Rust, YAML 1.2-conformant parser
//! with a plain event API that reports each scalar's style and tag, and no dependencies beyond
//! `arraydeque` and `thiserror` (which we already use).
//!
//! Choices where go-yaml v2 and JSON disagree, or where v2 is unsafe:
//! - Timestamps (`2001-12-14`) stay strings with their original text: go-yaml v2 resolves
//!   them as `!!timestamp` but hands the original text to `interface{}` targets.
//! - Floats with an integral value (`1e3`, `1.0`) become JSON integers, as Go's
//!   `json.Marshal` writes them; `.inf`/`.nan` are errors (JSON cannot hold them).
//! - Integers beyond `u64`: decimal ones become floats (as in go-yaml v2), hex/octal/binary
//!   ones stay strings. Values beyond `f64` stay strings (Go's ParseFloat fails on them).
//! - Merge keys: explicit keys always win over merged ones, whatever their order (go-yaml v2
//!   lets a later `<<` overwrite earlier keys; v3 and the YAML merge spec do not). Among
//!   merged mappings, earlier ones win.
//! - Duplicate keys: the later value wins, as in go-yaml v2's non-strict mode.
//! - Non-string keys become strings as sigs.k8s.io/yaml makes them (`1` -> "1", `true` ->
//!   "true", `1e6` -> "1e+06", `.inf` -> ".inf"); null, uint64, mapping and sequence keys
//!   are errors, as there.
//! - Tags `!!str`, `!!int`, `!!float`, `!!bool`, `!!null` are honoured (a mismatch is an
//!   error, as in go-yaml); any other tag on a scalar keeps its text as a string, as in
//!   go-yaml v2, except that `!!binary` is not base64-decoded; tags on collections are ignored.

use saphyr_parser::{Event, Parser, ScalarStyle};
use serde_json::{Map, Number, Value};
use std::collections::HashMap;

/// Most nodes one document may produce, counting every expansion of an alias.
const MAX_NODES: usize = 1_000_000;
/// Deepest nesting of mappings and sequences allowed in a document.
const MAX_DEPTH: usize = 256;

/// One document failed to load: `document` is its 1-based position in the stream.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct YamlError {
    pub document: usize,
    pub message: String,
}

/// Loads every document of a YAML stream as kubectl would (YAML 1.1 resolution of plain
/// scalars, merge keys, anchors/aliases), into JSON values. Empty documents become Value::Null.
pub fn load_all(text: &str) -> Result<Vec<Value>, YamlError> {
    let mut docs = Vec::new();
    let mut loader = Loader::default();
    for event in Parser::new_from_str(text) {
        let document = docs.len() + 1;
        let (event, span) = event.map_err(|e| YamlError {
            document,
            message: e.to_string(),
        })?;
        match event {
            Event::DocumentStart(_) => loader = Loader::default(),
            Event::DocumentEnd => docs.push(loader.root.take().unwrap_or(Value::Null)),
            event => loader.event(event).map_err(|message| YamlError {
                document,
                message: format!(
                    "{message} at line {} column {}",
                    span.start.line(),
                    span.start.col() + 1
                ),
            })?,
        }
    }
    Ok(docs)
}

#[derive(Default)]
struct Loader {
    stack: Vec<Open>,
    /// Anchor id -> (value, nodes in it, nesting height).
    anchors: HashMap<usize, (Value, usize, usize)>,
    nodes: usize,
    root: Option<Value>,
}

/// A mapping or sequence whose end event has not come yet.
struct Open {
    anchor: usize,
    /// Node count before this collection started.
    start: usize,
    /// Nesting height so far (1 = holds only scalars).
    height: usize,
    /// `None` for a sequence.
    map: Option<MapFrame>,
    items: Vec<Value>,
}

#[derive(Default)]
struct MapFrame {
    map: Map<String, Value>,
    /// The key read, waiting for its value: `Some(None)` is a merge key `<<`.
    key: Option<Option<String>>,
    /// Mappings named by `<<`, in order, and where the first `<<` stood.
    merges: Vec<Map<String, Value>>,
    merge_at: usize,
}

impl Loader {
    fn event(&mut self, event: Event) -> Result<(), String> {
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                self.count(1)?;
                let tag = tag.map(|t| format!("{}{}", t.handle, t.suffix));
                let merge = match &tag {
                    None => style == ScalarStyle::Plain && text == "<<",
                    Some(t) => t == "tag:yaml.org,2002:merge",
                };
                let is_key =
                    matches!(self.stack.last(), Some(Open { map: Some(f), .. }) if f.key.is_none());
                let value = scalar(&text, style, tag.as_deref(), is_key)?;
                if anchor > 0 {
                    self.anchors.insert(anchor, (value.clone(), 1, 0));
                }
                self.complete(value, 0, merge)
            }
            Event::Alias(id) => {
                let Some((value, nodes, height)) = self.anchors.get(&id) else {
                    return Err(format!("unknown alias (anchor id {id})"));
                };
                let (nodes, height) = (*nodes, *height);
                if self.stack.len() + height > MAX_DEPTH {
                    return Err(format!("nesting deeper than {MAX_DEPTH} levels"));
                }
                let value = value.clone();
                self.count(nodes)?;
                self.complete(value, height, false)
            }
            Event::SequenceStart(anchor, _) => self.open(anchor, None),
            Event::MappingStart(anchor, _) => self.open(anchor, Some(MapFrame::default())),
            Event::SequenceEnd | Event::MappingEnd => {
                let Some(open) = self.stack.pop() else {
                    return Err("unbalanced end of collection".into());
                };
                let value = match open.map {
                    None => Value::Array(open.items),
                    Some(frame) => Value::Object(frame.finish()),
                };
                if open.anchor > 0 {
                    let entry = (value.clone(), self.nodes - open.start, open.height);
                    self.anchors.insert(open.anchor, entry);
                }
                self.complete(value, open.height, false)
            }
            _ => Ok(()),
        }
    }

    fn count(&mut self, nodes: usize) -> Result<(), String> {
        self.nodes = self.nodes.saturating_add(nodes);
        if self.nodes > MAX_NODES {
            return Err(format!(
                "document has more than {MAX_NODES} nodes once aliases are expanded"
            ));
        }
        Ok(())
    }

    fn open(&mut self, anchor: usize, map: Option<MapFrame>) -> Result<(), String> {
        if self.stack.len() >= MAX_DEPTH {
            return Err(format!("nesting deeper than {MAX_DEPTH} levels"));
        }
        let start = self.nodes;
        self.count(1)?;
        let items = Vec::new();
        self.stack.push(Open {
            anchor,
            start,
            height: 1,
            map,
            items,
        });
        Ok(())
    }

    /// Hands a finished node to the collection that holds it (or makes it the root).
    fn complete(&mut self, value: Value, height: usize, merge_key: bool) -> Result<(), String> {
        let Some(open) = self.stack.last_mut() else {
            self.root = Some(value);
            return Ok(());
        };
        open.height = open.height.max(height + 1);
        let Some(frame) = &mut open.map else {
            open.items.push(value);
            return Ok(());
        };
        match frame.key.take() {
            None if merge_key => frame.key = Some(None),
            None => frame.key = Some(Some(key_string(value)?)),
            Some(Some(name)) => _ = frame.map.insert(name, value),
            Some(None) => {
                if frame.merges.is_empty() {
                    frame.merge_at = frame.map.len();
                }
                let sources = match value {
                    Value::Array(list) => list,
                    single => vec![single],
                };
                for source in sources {
                    let Value::Object(m) = source else {
                        return Err("map merge requires a mapping or a list of mappings".into());
                    };
                    frame.merges.push(m);
                }
            }
        }
        Ok(())
    }
}

impl MapFrame {
    /// Adds merged keys the mapping does not define itself, where the first `<<` stood.
    fn finish(self) -> Map<String, Value> {
        let mut merged = Map::new();
        for (k, v) in self.merges.into_iter().flatten() {
            if !self.map.contains_key(&k) && !merged.contains_key(&k) {
                merged.insert(k, v);
            }
        }
        if merged.is_empty() {
            return self.map;
        }
        let mut explicit = self.map.into_iter();
        let mut out: Map<String, Value> = explicit.by_ref().take(self.merge_at).collect();
        out.extend(merged);
        out.extend(explicit);
        out
    }
}

fn key_string(key: Value) -> Result<String, String> {
    match key {
        Value::String(s) => Ok(s),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) if n.is_u64() && !n.is_i64() => {
            Err(format!("unsupported mapping key {n} (uint64)"))
        }
        Value::Number(n) => Ok(n.to_string()),
        Value::Null => Err("unsupported mapping key null".into()),
        _ => Err("a mapping or sequence cannot be a mapping key".into()),
    }
}

/// What a plain scalar means under go-yaml v2 (YAML 1.1) rules.
#[derive(Debug, PartialEq)]
enum Resolved {
    Null,
    Bool(bool),
    Int(Number),
    Float(f64),
    Str,
}

fn scalar(text: &str, style: ScalarStyle, tag: Option<&str>, key: bool) -> Result<Value, String> {
    let resolved = match tag.and_then(|t| t.strip_prefix("tag:yaml.org,2002:")) {
        None if tag.is_none() && style == ScalarStyle::Plain => resolve(text),
        Some(want @ ("int" | "float" | "bool" | "null")) => match (want, resolve(text)) {
            ("float", Resolved::Int(n)) => Resolved::Float(n.as_f64().unwrap_or(f64::NAN)),
            ("int", r @ Resolved::Int(_)) | ("float", r @ Resolved::Float(_)) => r,
            ("bool", r @ Resolved::Bool(_)) | ("null", r @ Resolved::Null) => r,
            _ => return Err(format!("cannot decode {text:?} as a !!{want}")),
        },
        _ => Resolved::Str,
    };
    Ok(match resolved {
        Resolved::Null => Value::Null,
        Resolved::Bool(b) => Value::Bool(b),
        Resolved::Int(n) => Value::Number(n),
        Resolved::Str => Value::String(text.to_owned()),
        Resolved::Float(f) if key => Value::String(float_key(f)),
        Resolved::Float(f) if !f.is_finite() => {
            return Err(format!(
                "{text:?} (infinity or NaN) cannot be represented in JSON"
            ));
        }
        Resolved::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e18 => Value::from(f as i64),
        Resolved::Float(f) => Number::from_f64(f).map_or(Value::Null, Value::Number),
    })
}

/// Resolves a plain scalar like go-yaml v2 (`resolve.go`).
fn resolve(s: &str) -> Resolved {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Resolved::Null,
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            return Resolved::Bool(true);
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Resolved::Bool(false);
        }
        ".nan" | ".NaN" | ".NAN" => return Resolved::Float(f64::NAN),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => {
            return Resolved::Float(f64::INFINITY);
        }
        "-.inf" | "-.Inf" | "-.INF" => return Resolved::Float(f64::NEG_INFINITY),
        _ => {}
    }
    let plain = match s.as_bytes()[0] {
        // Go's ParseFloat takes `_` between digits (`.5_0`); the other forms drop every `_`.
        b'.' if s
            .match_indices('_')
            .all(|(i, _)| digit_at(s, i - 1) && digit_at(s, i + 1)) =>
        {
            s.replace('_', "")
        }
        b'.' => return Resolved::Str,
        b'0'..=b'9' | b'+' | b'-' => s.replace('_', ""),
        _ => return Resolved::Str,
    };
    if let Some(n) = int(&plain) {
        return Resolved::Int(n);
    }
    match plain.parse::<f64>() {
        Ok(f) if float_syntax(&plain) && f.is_finite() => Resolved::Float(f),
        _ => Resolved::Str,
    }
}

fn digit_at(s: &str, i: usize) -> bool {
    s.as_bytes().get(i).is_some_and(u8::is_ascii_digit)
}

/// A float key as sigs.k8s.io/yaml writes it: Go's `FormatFloat(f, 'g', -1, 32)`.
fn float_key(f: f64) -> String {
    let short = f as f32;
    if short.is_nan() || short.is_infinite() {
        let name = if short.is_nan() {
            ".nan"
        } else if f > 0.0 {
            ".inf"
        } else {
            "-.inf"
        };
        return name.into();
    }
    let sci = format!("{short:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    match exp.parse::<i32>() {
        Ok(exp) if !(-4..6).contains(&exp) => {
            format!(
                "{mantissa}e{}{:02}",
                if exp < 0 { '-' } else { '+' },
                exp.abs()
            )
        }
        _ => short.to_string(),
    }
}

/// Go's `strconv.ParseInt(s, 0, 64)`, then `ParseUint`: sign, then 0x/0o/0b/0 prefixes.
fn int(s: &str) -> Option<Number> {
    let (negative, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (radix, digits) = match body.get(..2).map(str::to_ascii_lowercase).as_deref() {
        Some("0x") => (16, &body[2..]),
        Some("0o") => (8, &body[2..]),
        Some("0b") => (2, &body[2..]),
        Some(_) if body.starts_with('0') => (8, &body[1..]),
        _ => (10, body),
    };
    if !digits.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return None;
    }
    let magnitude = u64::from_str_radix(digits, radix).ok()?;
    if negative {
        0i64.checked_sub_unsigned(magnitude).map(Number::from)
    } else {
        Some(Number::from(magnitude))
    }
}

/// go-yaml's `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`.
fn float_syntax(s: &str) -> bool {
    fn unsigned(t: &str) -> &str {
        t.strip_prefix(['+', '-']).unwrap_or(t)
    }
    let digits = |t: &str| t.bytes().all(|b| b.is_ascii_digit());
    let (mantissa, exponent) = match unsigned(s).split_once(['e', 'E']) {
        Some((m, e)) => (m, Some(unsigned(e))),
        None => (unsigned(s), None),
    };
    let (whole, fraction) = match mantissa.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (mantissa, None),
    };
    digits(whole)
        && fraction.is_none_or(digits)
        && (!whole.is_empty() || fraction.is_some_and(|f| !f.is_empty()))
        && exponent.is_none_or(|e| !e.is_empty() && digits(e))
}

/// Writes one JSON value as block-style YAML that kubectl reads back to the same value.
pub fn to_string(value: &Value) -> String {
    let mut out = String::new();
    write_node(&mut out, value, 0, false);
    out
}

fn is_block(value: &Value) -> bool {
    matches!(value, Value::Object(m) if !m.is_empty())
        || matches!(value, Value::Array(a) if !a.is_empty())
}

/// Writes `value` and a final newline. Collections are written in block style at column
/// `indent`; `inline`: the first line is already indented (after `- ` or an explicit `: `).
fn write_node(out: &mut String, value: &Value, indent: usize, inline: bool) {
    let pad = |out: &mut String, i: usize| {
        if i > 0 || !inline {
            out.push_str(&" ".repeat(indent));
        }
    };
    match value {
        Value::Object(map) if !map.is_empty() => {
            for (i, (key, v)) in map.iter().enumerate() {
                pad(out, i);
                // Implicit keys are limited to 1024 characters as written (escapes count):
                // longer ones become an explicit `? key`.
                let mut written = String::new();
                write_str(&mut written, key);
                let explicit = written.len() > 1000;
                if explicit {
                    out.push_str("? ");
                    out.push_str(&written);
                    out.push('\n');
                    pad(out, 1);
                } else {
                    out.push_str(&written);
                }
                out.push(':');
                if !explicit && is_block(v) {
                    out.push('\n');
                    // Like kubectl, a list under a key is not indented further.
                    write_node(out, v, indent + if v.is_object() { 2 } else { 0 }, false);
                } else {
                    write_item(out, v, indent);
                }
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (i, v) in items.iter().enumerate() {
                pad(out, i);
                out.push('-');
                write_item(out, v, indent);
            }
        }
        Value::String(s) => {
            write_str(out, s);
            out.push('\n');
        }
        // Numbers, booleans, null, and empty collections as `{}` / `[]`.
        other => {
            out.push_str(&other.to_string());
            out.push('\n');
        }
    }
}

/// Writes a value right after an indicator (`-`, `key:`) standing at column `indent`.
fn write_item(out: &mut String, value: &Value, indent: usize) {
    out.push(' ');
    write_node(out, value, indent + 2, true);
}

fn write_str(out: &mut String, s: &str) {
    if plain_ok(s) {
        out.push_str(s);
        return;
    }
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if needs_escape(c) => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Characters YAML must not see raw (non-printable, or line breaks in YAML 1.1).
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{feff}' | '\u{fffe}' | '\u{ffff}'
        )
}

/// Whether `s` can be written unquoted and read back as the same string by YAML 1.1
/// (go-yaml v2) and YAML 1.2 readers alike. Errs towards quoting.
fn plain_ok(s: &str) -> bool {
    let Some(first) = s.chars().next() else {
        return false;
    };
    let start_ok = match first {
        // `100m`, `1Gi`: fine; anything number- or date-like is quoted.
        '0'..='9' => {
            s.bytes().all(|b| b.is_ascii_alphanumeric())
                && !float_syntax(s)
                && !s.get(1..2).is_some_and(|c| "xXoObB".contains(c))
        }
        // `-Xmx1g`, `--flag=x`: fine; `-`, `- x`, `-1`, `---`, `-.inf` are not.
        '-' => {
            let rest = s.trim_start_matches('-');
            s.len() - rest.len() <= 2 && rest.starts_with(|c: char| c.is_ascii_alphabetic())
        }
        _ => !"?:,[]{}#&*!|>'\"%@`.+<=".contains(first),
    };
    start_ok
        && s.trim() == s
        && !s.chars().any(needs_escape)
        && !s.contains(": ")
        && !s.contains(" #")
        && !s.ends_with(':')
        && resolve(s) == Resolved::Str
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn one(text: &str) -> Value {
        let docs = load_all(text).unwrap_or_else(|e| panic!("{text:?}: {e}"));
        assert_eq!(docs.len(), 1, "{text:?}");
        docs.into_iter().next().unwrap()
    }

    fn err(text: &str) -> YamlError {
        load_all(text).expect_err(text)
    }

    /// `yaml => json` cases, separated by ` ; `.
    const RESOLUTION: &str = r#"
        0644 => 420 ; '0644' => "0644" ; "0644" => "0644" ; 0o17 => 15 ; 0x1F => 31
        -0x1F => -31 ; 0b101 => 5 ; 1_000 => 1000 ; +1 => 1 ; 09 => 9 ; 0 => 0 ; -0 => 0
        18446744073709551615 => 18446744073709551615 ; 99999999999999999999 => 1e20
        -9223372036854775808 => -9223372036854775808 ; 0xFFFFFFFFFFFFFFFFFF => "0xFFFFFFFFFFFFFFFFFF"
        1.5 => 1.5 ; .5 => 0.5 ; -.5e1 => -5 ; 1e3 => 1000 ; 1. => 1 ; 1e400 => "1e400"
        .3_0 => 0.3 ; ._5 => "._5" ; 1.2.3 => "1.2.3" ; 100m => "100m" ; 1:20 => "1:20" ; 0x => "0x" ; - x => ["x"]
        yes => true ; "yes" => "yes" ; y => true ; Y => true ; On => true ; ON => true
        NO => false ; n => false ; off => false ; True => true ; FALSE => false ; yEs => "yEs"
        ~ => null ; Null => null ; 'null' => "null" ; "" => "" ; '~' => "~"
        2001-12-14 => "2001-12-14" ; 2001-12-14t21:59:43.10-05:00 => "2001-12-14t21:59:43.10-05:00"
        !!str 0644 => "0644" ; !!int "0644" => 420 ; !!float 1 => 1 ; !!bool 'yes' => true
        !!null '' => null ; !custom 12 => "12" ; !!timestamp 2001-12-14 => "2001-12-14"
        <<  => "<<" ; a: 1 => {"a": 1} ; [on, 'on'] => [true, "on"]
    "#;

    #[test]
    fn resolves_scalars_like_go_yaml_v2() {
        for case in RESOLUTION.lines().flat_map(|l| l.split(" ; ")) {
            let Some((yaml, want)) = case.trim().split_once(" => ") else {
                continue;
            };
            let want: Value = serde_json::from_str(want).unwrap();
            assert_eq!(one(yaml), want, "{yaml:?}");
        }
        assert_eq!(one("|\n  on\n"), json!("on\n"));
        for text in ".inf;-.Inf;.nan;!!float .INF;!!int abc;!!bool 1;!!int 1.5".split(';') {
            let e = err(text);
            assert_eq!(e.document, 1);
            assert!(e.message.contains("line 1"), "{text:?}: {e}");
        }
        assert!(err("x: .inf").message.contains(".inf"));
    }

    #[test]
    fn non_string_keys_become_strings() {
        let v = one("1: a\ntrue: b\non: c\n0x10: d\n1.5: e\n'y': f\n1e3: g\n1e6: h\n.inf: i\n");
        let want = json!({"1": "a", "true": "c", "16": "d", "1.5": "e", "y": "f", "1000": "g",
            "1e+06": "h", ".inf": "i"});
        assert_eq!(v, want);
        assert!(err("18446744073709551615: x").message.contains("uint64"));
        assert!(err("~: x").message.contains("null"));
        assert!(
            err("? [a]\n: x")
                .message
                .contains("cannot be a mapping key")
        );
        assert_eq!(one("a: 1\na: 2\n"), json!({"a": 2}));
    }

    #[test]
    fn merge_keys_and_aliases() {
        let base = "base: &b {p: 1, q: 2}\nother: &o {q: 3, r: 4}\n";
        let v = one(&format!("{base}m:\n  p: 0\n  <<: [*b, *o]\n  w: 5\n"));
        assert_eq!(v["m"], json!({"p": 0, "q": 2, "r": 4, "w": 5}));
        let v = one(&format!("{base}m:\n  <<: *b\n  p: 9\n"));
        assert_eq!(v["m"], json!({"q": 2, "p": 9}));
        assert_eq!(one("<<: {a: 1}\n\"<<\": q\n"), json!({"a": 1, "<<": "q"}));
        assert!(err("a:\n  <<: 1\n").message.contains("map merge"));
        assert!(err("a:\n  <<: [{a: 1}, 2]\n").message.contains("map merge"));
        let v = one("a: &a [1, {k: &s v}]\nb: *a\nc: *s\n");
        assert_eq!(
            v,
            json!({"a": [1, {"k": "v"}], "b": [1, {"k": "v"}], "c": "v"})
        );
        assert!(err("a: *nope\n").message.contains("line 1"));
    }

    #[test]
    fn refuses_billion_laughs_and_deep_nesting() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let refs = vec![format!("*a{}", i - 1); 9].join(", ");
            text.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        assert!(err(&text).message.contains("nodes"), "{}", err(&text));
        let deep = format!("{}x", "- ".repeat(100_000));
        assert!(err(&deep).message.contains("nesting"));
        assert!(load_all(&format!("{}x", "- ".repeat(MAX_DEPTH))).is_ok());
        // saphyr-parser itself stops flow nesting at 255 levels.
        assert!(load_all(&format!("{}{}", "[".repeat(100_000), "]".repeat(100_000))).is_err());
        // Aliases cannot smuggle depth past the limit either.
        let nested = format!("a: &a {}{}\nb: [*a]\n", "[".repeat(255), "]".repeat(255));
        assert!(err(&nested).message.contains("nesting"));
    }

    #[test]
    fn multi_document_streams() {
        let docs = load_all("a: 1\n---\n---\n# only a comment\n---\nb: yes\n...\n").unwrap();
        assert_eq!(
            docs,
            [
                json!({"a": 1}),
                json!(null),
                json!(null),
                json!({"b": true})
            ]
        );
        assert_eq!(load_all("").unwrap(), Vec::<Value>::new());
        assert_eq!(load_all("# nothing\n").unwrap(), Vec::<Value>::new());
        let e = err("a: 1\n---\nb: 2\n---\nc: [1\n");
        assert_eq!(e.document, 3);
        assert!(e.message.contains("line 6"), "{e}");
        assert_eq!(err("a: 1\n---\nx: .nan\n").document, 2);
    }

    #[test]
    fn writes_block_yaml_like_kubectl() {
        let v = json!({"spec": {"containers": [{"name": "a", "ports": [{"containerPort": 80}],
            "args": ["-Xmx1g", "on"]}], "empty": {}, "none": [], "cpu": "100m"}});
        let want = "spec:\n  containers:\n  - name: a\n    ports:\n    - containerPort: 80\n    \
            args:\n    - -Xmx1g\n    - \"on\"\n  empty: {}\n  none: []\n  cpu: 100m\n";
        assert_eq!(to_string(&v), want);
        assert_eq!(to_string(&json!("x")), "x\n");
        assert_eq!(to_string(&json!([[1, 2], []])), "- - 1\n  - 2\n- []\n");
    }

    #[test]
    fn round_trips() {
        let strings = [
            "on", "y", "n", "NO", "0644", "1_000", "-", "- x", "a: b", "#x", "", " x", "x ", "ü",
            "null", "~", ".inf", "0x1F", "1e3", "+1", "True", ".5", "<<", "---", "...", "a:",
            "x #y", "100m", "8080", "0o17", "0b1", "1e400", "'", "=", "@x", "-1", "-Xmx1g", "%x",
            "{a}", "[a]", "*a", "&a", "!a", "|", ">", "?x", "a,b", "x\"", "x'",
        ];
        let odd = [
            "2001-12-14",
            "line\nbreak",
            "tab\t",
            "\u{85}",
            "\u{2028}",
            "\u{7f}",
            "\\",
        ];
        let mut values: Vec<Value> = strings.iter().chain(&odd).map(|s| json!(s)).collect();
        values.extend(strings.iter().chain(&odd).map(|s| json!({ *s: s })));
        values.extend([
            json!(null),
            json!(true),
            json!(-7),
            json!(u64::MAX),
            json!(1.5),
        ]);
        values.extend([json!(-2.5e-7), json!({}), json!([]), json!([{}, [], [[]]])]);
        values.push(json!({"a": {"b": [{"c": [], "d": {}}, [[{"e": "f"}]], {}, null]}}));
        values.push(json!([{"a": 1, "b": [1, 2]}, [{"x": "yes"}]]));
        values.push(json!({ "k".repeat(2000): {"a": [1]}, "z": "k".repeat(2000) }));
        // Short, but over 1024 characters once escaped (the yaml fuzz target found it).
        values.push(json!({ "\u{c}".repeat(200): {"a": [1]}, "b": 1 }));
        for v in values {
            let text = to_string(&v);
            assert!(text.ends_with('\n'));
            let back = load_all(&text).unwrap_or_else(|e| panic!("{text}: {e}"));
            assert_eq!(back, [v], "{text}");
        }
    }
}
