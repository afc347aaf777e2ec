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
//!
//! - Lines inside a flow collection may stand at or left of their key's column, as go-yaml
//!   allows and saphyr-parser does not: `yaml/flow.rs` moves them right, checked.
//! - Characters outside YAML's printable set are refused anywhere, comments included, as
//!   go-yaml's reader refuses them.
//! - Stricter than kubectl, on purpose or by saphyr-parser, each a named case of
//!   `STRICTER` in `tests/yaml_conformance.rs` (which compares this loader with kubectl's
//!   reading, `tests/yaml-oracle`): a plain `-` right before `,]}` in a flow (YAML 1.2
//!   forbids it; go-yaml reads "-"), and a quoted scalar's line at or left of its key's
//!   column in block context (saphyr-parser refuses it; not moved yet).
//!
//! Why not serde-saphyr (2.1.1, already in the build through kube): it was run against the
//! conformance table in `yaml/tests.rs` (`conformance_failures` takes the loader) with
//! `legacy_octal_numbers: true`, `duplicate_keys: LastWins`, `max_nodes: 1_000_000` and a
//! post-pass turning integral floats into integers, and failed 20 of the 89 cases. The ones
//! no post-pass can fix, because the information is gone by the time a `Value` comes out:
//! - Documents that are empty or null are dropped: `a: 1\n---\n---\n# only a comment\n---\nb:
//!   yes\n` gave 2 documents, not 4, and `~` gave none; so `document N` in our errors and in
//!   `mutate`'s output would no longer count documents as kubectl does.
//! - Errors say no document: `a: 1\n---\nb: 2\n---\nc: [1\n` failed as document 1 (line 5).
//! - Keys keep their spelling: `on: c`, `0x10: d`, `1e3: g` gave keys "on", "0x10", "1e3"
//!   where kubectl has "true", "16", "1000" (so `true: b` and `on: c` both survived), and
//!   `18446744073709551615: x` was accepted where kubectl refuses it. A post-pass cannot
//!   re-resolve them: it cannot tell `'y': f` from `y: f`.
//! - `yEs` gave `true` (it compares ignoring case; go-yaml v2 does not).
//! - `!custom 12` gave the number 12; `!!timestamp 2001-12-14` failed ("cannot deserialize
//!   tagged scalar into string"); `.3_0` stayed a string; `1e400` failed as non-finite.
//! - Nesting: with its budget's `max_depth` raised to 100 (our limit is 256), `- ` nested
//!   100,000 deep overflowed the 2 MiB stack of a test thread (debug build) instead of
//!   failing; at its default of 64 it refuses nesting this loader reads (up to 256).

use saphyr_parser::{Event, Parser, ScalarStyle};
use serde_json::{Map, Value};
use std::collections::HashMap;

mod flow;
mod resolve;
mod write;
use resolve::{key_string, scalar};
pub use write::to_string;

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
    Ok(load_documents(text)?
        .into_iter()
        .map(|(value, _)| value)
        .collect())
}

/// As `load_all`, each document with the 1-based line its content starts on (its first
/// node; for an empty document, where it ended): where a finding about it points.
pub fn load_documents(text: &str) -> Result<Vec<(Value, usize)>, YamlError> {
    match load(text, &[]) {
        Err(Failure {
            error,
            syntax: true,
        }) => {
            // saphyr-parser may refuse lines of a flow collection that go-yaml takes
            // (`yaml/flow.rs`): read again with them moved right, if every line moved is
            // inside a flow. Otherwise, or if that fails too, the first error stands.
            flow::reindent(text)
                .and_then(|moved| load(&moved.text, &moved.starts).ok())
                .ok_or(error)
        }
        loaded => loaded.map_err(|f| f.error),
    }
}

struct Failure {
    error: YamlError,
    /// The parser refused the text (rather than a value in it).
    syntax: bool,
}

/// Loads `text`; each of `flow_lines` (char indices of line starts) must lie inside a flow
/// collection, as the parser's events show.
fn load(text: &str, flow_lines: &[usize]) -> Result<Vec<(Value, usize)>, Failure> {
    let mut docs = Vec::new();
    let mut loader = Loader::default();
    // Where the current document's first node starts; reindented lines keep their lines.
    let mut first_line: Option<usize> = None;
    let unprintable = first_unprintable(text);
    // Of the open collections, whether each is a flow: saphyr-parser gives a flow's start
    // event the span of its bracket (and anchor, tag), a block's an empty one.
    let mut flows: Vec<bool> = Vec::new();
    let chars: Option<Vec<char>> = (!flow_lines.is_empty()).then(|| text.chars().collect());
    let mut flow_lines = flow_lines.iter().peekable();
    let fail = |document, message, syntax| Failure {
        error: YamlError { document, message },
        syntax,
    };
    for event in Parser::new_from_str(text) {
        let document = docs.len() + 1;
        let (event, span) = event.map_err(|e| fail(document, e.to_string(), true))?;
        let at = span.start.index();
        if let Some(bad) = unprintable.as_ref().filter(|bad| bad.index < at) {
            return Err(fail(document, bad.message(), false));
        }
        // A flow's end event may stand at a trailing comma: the flow reaches its bracket.
        let flow_end =
            matches!(event, Event::SequenceEnd | Event::MappingEnd) && flows.last() == Some(&true);
        let reach = match &chars {
            Some(chars) if flow_end => closing_bracket(chars, at),
            _ => at,
        };
        while flow_lines.next_if(|&&line| line <= reach).is_some() {
            if !flows.contains(&true) {
                return Err(fail(
                    document,
                    "a moved line is not in a flow".into(),
                    false,
                ));
            }
        }
        if matches!(
            event,
            Event::Scalar(..)
                | Event::SequenceStart(..)
                | Event::MappingStart(..)
                | Event::Alias(..)
        ) {
            first_line.get_or_insert(span.start.line());
        }
        match &event {
            Event::SequenceStart(..) | Event::MappingStart(..) => {
                flows.push(span.end.index() > at);
            }
            Event::SequenceEnd | Event::MappingEnd => _ = flows.pop(),
            _ => {}
        }
        match event {
            Event::DocumentStart(_) => {
                loader = Loader::default();
                first_line = None;
            }
            Event::DocumentEnd => docs.push((
                loader.root.take().unwrap_or(Value::Null),
                first_line.take().unwrap_or(span.start.line()),
            )),
            event => loader.event(event).map_err(|message| {
                let message = format!(
                    "{message} at line {} column {}",
                    span.start.line(),
                    span.start.col() + 1
                );
                fail(document, message, false)
            })?,
        }
    }
    if let Some(bad) = unprintable {
        return Err(fail(docs.len().max(1), bad.message(), false));
    }
    if flow_lines.next().is_some() {
        return Err(fail(
            docs.len(),
            "a moved line is not in a flow".into(),
            false,
        ));
    }
    Ok(docs)
}

/// Where the bracket that ends a flow stands, from its end event's start `at`: past commas,
/// white space and comments (`at` itself if anything else comes first).
fn closing_bracket(chars: &[char], at: usize) -> usize {
    let mut i = at;
    while let Some(&c) = chars.get(i) {
        match c {
            ']' | '}' => return i,
            ' ' | '\t' | '\r' | '\n' | ',' => i += 1,
            '#' => {
                while chars.get(i).is_some_and(|&c| c != '\n') {
                    i += 1;
                }
            }
            _ => break,
        }
    }
    at
}

/// A character YAML does not allow in a stream.
struct Unprintable {
    /// Char index, as the parser counts.
    index: usize,
    c: char,
    line: usize,
    column: usize,
}

impl Unprintable {
    fn message(&self) -> String {
        format!(
            "control characters are not allowed (U+{:04X}) at line {} column {}",
            u32::from(self.c),
            self.line,
            self.column
        )
    }
}

/// The first character outside YAML's printable set (YAML 1.2 §5.1, which go-yaml's reader
/// enforces, also in comments): C0 controls but tab and line breaks, DEL, C1 but NEL,
/// U+FFFE and U+FFFF.
fn first_unprintable(text: &str) -> Option<Unprintable> {
    let (mut line, mut column) = (1, 1);
    for (index, c) in text.chars().enumerate() {
        let printable = matches!(c, '\t' | '\n' | '\r' | ' '..='~' | '\u{85}')
            || matches!(c, '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..);
        if !printable {
            return Some(Unprintable {
                index,
                c,
                line,
                column,
            });
        }
        if c == '\n' {
            (line, column) = (line + 1, 1);
        } else {
            column += 1;
        }
    }
    None
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

#[cfg(test)]
mod tests;
