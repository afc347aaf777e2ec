//! probegate's YAML loader against kubectl's reading of YAML (tests/yaml-oracle, built from
//! k8s.io/apimachinery and sigs.k8s.io/yaml): every YAML file of the project, a table of
//! named cases, and generated streams written in many styles. Where the oracle reads values,
//! probegate reads the same ones (documents kubectl skips, empty or null, are left out on
//! both sides); where it fails, probegate fails too, but for the cases of `STRICTER`. And
//! the oracle reads what `yaml::to_string` writes back to the value written.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::sync::{Mutex, OnceLock};

use probegate::yaml;
use proptest::prelude::*;
use serde_json::{Map, Value, json};

/// Inputs probegate refuses although kubectl reads them, by case name, and why (the module
/// doc of `src/yaml.rs` says more).
const STRICTER: &[(&str, &str)] = &[
    (
        "plain - before a flow indicator",
        "YAML 1.2 lets no plain scalar start with `-` followed by `,[]{}`, and saphyr-parser \
         follows it; go-yaml reads the string \"-\"",
    ),
    (
        "quoted continuation at its key's column in a block mapping",
        "saphyr-parser wants a quoted scalar's lines indented past its mapping, go-yaml does \
         not; not yet moved as flow lines are (yaml/flow.rs)",
    ),
];

/// kubectl's reading of one stream: the documents it keeps, and the error that stopped it.
#[derive(Debug, serde::Deserialize)]
struct Reading {
    docs: Vec<Value>,
    error: Option<String>,
}

/// One oracle process for the whole test binary: each question is a JSON string on a line,
/// each answer a line of JSON.
struct Oracle {
    _child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Oracle {
    fn read(&mut self, stream: &str) -> Reading {
        writeln!(self.stdin, "{}", Value::from(stream)).expect("oracle takes input");
        self.stdin.flush().expect("oracle takes input");
        let mut line = String::new();
        self.stdout.read_line(&mut line).expect("oracle answers");
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("oracle answered {line:?}: {e}"))
    }
}

fn oracle() -> std::sync::MutexGuard<'static, Oracle> {
    static ORACLE: OnceLock<Mutex<Oracle>> = OnceLock::new();
    let oracle = ORACLE.get_or_init(|| {
        let mut child = Command::new(common::yaml_oracle())
            .arg("-batch")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("the YAML oracle starts");
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Mutex::new(Oracle {
            _child: child,
            stdin,
            stdout,
        })
    });
    // A failed test panics holding the lock; the process is still good for the others.
    oracle.lock().unwrap_or_else(|e| e.into_inner())
}

/// Why probegate and kubectl disagree on `text`, if they do; the documents probegate read.
fn disagreement(text: &str) -> (Option<String>, Vec<Value>) {
    let kubectl = oracle().read(text);
    let ours = yaml::load_all(text);
    let why = match (&ours, &kubectl.error) {
        (Ok(docs), None) => {
            let kept: Vec<&Value> = docs.iter().filter(|d| !d.is_null()).collect();
            let theirs: Vec<&Value> = kubectl.docs.iter().collect();
            (kept != theirs).then(|| {
                format!(
                    "probegate read {}\n  kubectl read {}",
                    Value::from(docs.clone()),
                    Value::from(kubectl.docs.clone())
                )
            })
        }
        (Err(_), Some(_)) => None,
        (Ok(docs), Some(e)) => Some(format!(
            "probegate read {}\n  kubectl failed: {e}",
            Value::from(docs.clone())
        )),
        (Err(e), None) => Some(format!(
            "probegate failed in document {}: {e}\n  kubectl read {}",
            e.document,
            Value::from(kubectl.docs.clone())
        )),
    };
    (why, ours.unwrap_or_default())
}

/// Why kubectl does not read `value` back from what `yaml::to_string` writes, if it does not.
fn written_wrong(value: &Value) -> Option<String> {
    let text = yaml::to_string(value);
    let back = oracle().read(&text);
    let want: Vec<Value> = if value.is_null() {
        vec![]
    } else {
        vec![value.clone()]
    };
    (back.error.is_some() || back.docs != want).then(|| {
        format!(
            "wrote {value}\n  as {text:?}\n  kubectl read {:?} {:?}",
            back.docs, back.error
        )
    })
}

/// Checks each named input both ways; panics listing every failure.
fn check_all(cases: impl IntoIterator<Item = (String, String)>) {
    let mut failures = Vec::new();
    let mut seen = 0;
    for (name, text) in cases {
        seen += 1;
        let (why, docs) = disagreement(&text);
        let stricter = STRICTER.iter().any(|(n, _)| *n == name);
        match why {
            Some(why) if !stricter => failures.push(format!("{name}: {why}")),
            None if stricter => failures.push(format!("{name}: listed in STRICTER, but agrees")),
            _ => {}
        }
        for doc in &docs {
            if let Some(why) = written_wrong(doc) {
                failures.push(format!("{name}, written back: {why}"));
            }
        }
    }
    assert!(seen > 0);
    assert!(
        failures.is_empty(),
        "{} of {seen} disagree:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Every YAML file the project holds: manifests, examples, the catalogue, the chart's values
/// and rendering, golden inputs and outputs, and the fuzz targets' YAML seeds (files without
/// an extension).
fn project_yaml() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for dir in [
        "manifests",
        "examples",
        "charts/probegate",
        "tests/golden",
        "catalogue",
    ] {
        walk(&root.join(dir), &mut files);
    }
    files.retain(|p| {
        matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
            // Go templates, not YAML: the chart is read as helm renders it, elsewhere.
            && !p.components().any(|c| c.as_os_str() == "templates")
    });
    walk(&root.join("fuzz/regressions/yaml"), &mut files);
    files.sort();
    assert!(files.len() > 40, "project YAML missing: {files:?}");
    let mut cases: Vec<(String, String)> = files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap();
            let name = p.strip_prefix(root).unwrap().display().to_string();
            (name, text)
        })
        .collect();
    cases.push((
        "helm template charts/probegate".into(),
        common::helm_template(&[]),
    ));
    cases
}

fn walk(dir: &Path, files: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, files);
        } else {
            files.push(path);
        }
    }
}

#[test]
fn project_yaml_reads_as_kubectl_reads_it() {
    check_all(project_yaml());
}

/// Hand-written cases: what the generator below may not reach, and the issues' examples.
fn named_cases() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "issue 28: flow sequence closed at its key's column in a block sequence",
            "apiVersion: v1\nkind: Pod\nmetadata:\n  name: x\nspec:\n  containers:\n    - name: a\n      image: b\n      args: [\n        \"-x\", \"1\",\n        \"-y\", \"2\",\n      ]\n      env:\n        - name: A\n          value: b\n",
        ),
        (
            "flow sequence closed left of its key",
            "a:\n  b:\n    c: [1,\n  2\n]\n    d: 3\n",
        ),
        (
            "flow mapping items at column 0 inside a nested mapping",
            "a:\n  b: {p: 1,\nq: [2,\n3], r: 4}\n  c: 5\n",
        ),
        (
            "flow sequence in an indentless sequence",
            "a:\n- [1,\n2]\n- b\n",
        ),
        (
            "comment lines inside a flow collection at column 0",
            "a:\n  b: [1, # one\n# between\n  2]\n",
        ),
        (
            "double-quoted continuation left of its key in a flow",
            "a:\n  b: [\"x\ny\"]\n",
        ),
        (
            "single-quoted continuation left of its key in a flow",
            "a:\n  b: {k: 'x\n  y'}\n",
        ),
        (
            "plain continuation left of its key in a flow",
            "a:\n  b: [x\ny, z]\n",
        ),
        ("flow at the top level closed at column 0", "a: [\n1\n]\n"),
        ("plain - before a flow indicator", "a: [-, x]\n"),
        (
            "quoted continuation at its key's column in a block mapping",
            "-\n \"a\": \"x\n y\"\n",
        ),
        ("document marker inside a flow", "a: [1,\n---\n2]\n"),
        (
            "flow collection as the top of a later document",
            "a: 1\n---\n{b: [\n1]}\n",
        ),
    ]
}

#[test]
fn named_cases_read_as_kubectl_reads_them() {
    check_all(
        named_cases()
            .into_iter()
            .map(|(n, t)| (n.to_string(), t.to_string())),
    );
}

/// Choices for the writer, from proptest; when they run out, the plainest choice is made
/// (so shrinking the tape simplifies the text).
struct Tape<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Tape<'_> {
    fn pick(&mut self, n: usize) -> usize {
        let b = self.bytes.get(self.at).copied().unwrap_or(0);
        self.at += 1;
        usize::from(b) % n
    }

    fn chance(&mut self, in_four: usize) -> bool {
        self.pick(4) < in_four
    }
}

/// Writes values as YAML in the styles people write by hand: block and flow, any indentation
/// step, flows spread over lines with items and brackets at, left or right of their key's
/// column, comments inside flows, quoting styles, anchors, aliases and merges.
struct Writer<'a> {
    out: String,
    tape: Tape<'a>,
    anchors: usize,
}

const STRINGS: &[&str] = &[
    "a",
    "on",
    "yes",
    "0644",
    "1e3",
    "-x",
    "x y",
    "a#b",
    "",
    "null",
    "~",
    "don't",
    "q\"",
    "1.5",
    "100m",
    "x: y",
    "two words here",
    "-",
    "@at",
    "line\nbreak",
];

impl Writer<'_> {
    fn spaces(&mut self, n: usize) {
        self.out.extend(std::iter::repeat_n(' ', n));
    }

    /// A column near `col`: left of it, at it, or right of it.
    fn near(&mut self, col: usize) -> usize {
        match self.tape.pick(5) {
            0 => col + 2,
            1 => col,
            2 => col.saturating_sub(1),
            3 => 0,
            _ => col + 1,
        }
    }

    fn string(&mut self, s: &str, col: usize, in_flow: bool) {
        // A plain `-` in a flow is in STRICTER.
        let plain_ok = !(s.is_empty() || s.contains('\n') || in_flow && s == "-");
        match self.tape.pick(3) {
            0 if plain_ok => {
                // A plain scalar over two lines, the second near `col`.
                match s.split_once(' ') {
                    Some((a, b)) if self.tape.chance(1) => {
                        self.out.push_str(a);
                        self.out.push('\n');
                        let c = self.near(col + 1);
                        self.spaces(c);
                        self.out.push_str(b);
                    }
                    _ => self.out.push_str(s),
                }
            }
            1 if !s.contains('\n') => {
                self.out.push('\'');
                self.out.push_str(&s.replace('\'', "''"));
                self.out.push('\'');
            }
            _ => {
                let escaped = s.replace('\\', "\\\\").replace('"', "\\\"");
                let escaped = escaped.replace('\n', "\\n");
                self.out.push('"');
                match escaped.split_once(' ') {
                    // The line break folds to the space it replaces.
                    Some((a, b)) if self.tape.chance(1) => {
                        self.out.push_str(a);
                        self.out.push('\n');
                        let c = if in_flow { self.near(col + 1) } else { col + 1 };
                        self.spaces(c);
                        self.out.push_str(b);
                    }
                    _ => self.out.push_str(&escaped),
                }
                self.out.push('"');
            }
        }
    }

    fn scalar(&mut self, v: &Value, col: usize, in_flow: bool) {
        match v {
            Value::Null => {
                let s = ["null", "~", "Null"][self.tape.pick(3)];
                self.out.push_str(s);
            }
            Value::Bool(b) => {
                let words = if *b {
                    ["true", "yes", "on", "True"]
                } else {
                    ["false", "no", "off", "FALSE"]
                };
                self.out.push_str(words[self.tape.pick(4)]);
            }
            Value::Number(n) => match n.as_u64() {
                Some(u) if self.tape.chance(1) => self.out.push_str(&format!("0x{u:x}")),
                _ => self.out.push_str(&n.to_string()),
            },
            Value::String(s) => self.string(s, col, in_flow),
            _ => unreachable!("collections are written elsewhere"),
        }
    }

    fn key(&mut self, k: &str) {
        match self.tape.pick(4) {
            0 => {
                self.out.push('"');
                self.out.push_str(k);
                self.out.push('"');
            }
            _ => self.out.push_str(k),
        }
    }

    fn anchor(&mut self) {
        if self.tape.pick(8) == 0 {
            self.anchors += 1;
            self.out.push_str(&format!("&a{} ", self.anchors));
        }
    }

    /// A merge of an earlier mapping's anchor, as the first entry: `<<: *aN`.
    fn merge(&mut self) -> bool {
        if self.anchors == 0 || self.tape.pick(6) != 0 {
            return false;
        }
        let n = self.tape.pick(self.anchors) + 1;
        self.out.push_str(&format!("<<: *a{n}"));
        true
    }

    /// A node in flow context; `col` is the column of the key or entry that holds it.
    fn flow(&mut self, v: &Value, col: usize) {
        let (open, close, entries): (char, char, Vec<(Option<&str>, &Value)>) = match v {
            Value::Array(a) => ('[', ']', a.iter().map(|x| (None, x)).collect()),
            Value::Object(m) => (
                '{',
                '}',
                m.iter().map(|(k, x)| (Some(k.as_str()), x)).collect(),
            ),
            _ => return self.scalar(v, col, true),
        };
        if v.is_object() {
            self.anchor();
        }
        self.out.push(open);
        // 0: on one line; 1: an entry a line; 2: entries wrapped after the first.
        let layout = self.tape.pick(3);
        let item_col = self.near(col + 2);
        for (i, (key, x)) in entries.iter().enumerate() {
            if layout == 1 || (layout == 2 && i > 0) {
                if self.tape.pick(6) == 0 {
                    self.out.push_str(" # note");
                }
                self.out.push('\n');
                self.spaces(item_col);
            } else if i > 0 {
                self.out.push(' ');
            }
            if i == 0 && key.is_some() && self.merge() {
                self.out.push_str(", ");
            }
            if let Some(k) = key {
                self.key(k);
                self.out.push_str(": ");
            }
            self.flow(x, item_col);
            if i + 1 < entries.len() || self.tape.pick(4) == 0 {
                self.out.push(',');
            }
        }
        if layout != 0 {
            if self.tape.pick(6) == 0 {
                self.out.push_str(" # last");
            }
            self.out.push('\n');
            let c = self.near(col);
            self.spaces(c);
        }
        self.out.push(close);
    }

    /// A node after `key:` or `- ` at column `col`: block collections start on the next
    /// line, indented by a step of 1 to 4 (sequences under a key also not at all).
    fn value(&mut self, v: &Value, col: usize) {
        let block = match v {
            Value::Array(a) => !a.is_empty() && self.tape.pick(3) > 0,
            Value::Object(m) => !m.is_empty() && self.tape.pick(3) > 0,
            _ => false,
        };
        if !block {
            self.out.push(' ');
            if !v.is_array() && !v.is_object() {
                // Quoted lines at the key's column in block context are in STRICTER.
                return self.scalar(v, col, false);
            }
            return self.flow(v, col);
        }
        let step = 1 + self.tape.pick(4);
        let child = if v.is_array() && self.tape.chance(1) {
            col
        } else {
            col + step
        };
        if v.is_object() && self.tape.pick(8) == 0 {
            self.anchors += 1;
            self.out.push_str(&format!(" &a{}", self.anchors));
        }
        self.out.push('\n');
        self.spaces(child);
        self.block(v, child);
    }

    /// A block collection whose first line is already indented to `col`.
    fn block(&mut self, v: &Value, col: usize) {
        match v {
            Value::Object(m) if !m.is_empty() => {
                let mut first = true;
                if self.merge() {
                    first = false;
                }
                for (k, x) in m {
                    if !first {
                        self.out.push('\n');
                        self.spaces(col);
                    }
                    first = false;
                    self.key(k);
                    self.out.push(':');
                    self.value(x, col);
                }
            }
            Value::Array(a) if !a.is_empty() => {
                for (i, x) in a.iter().enumerate() {
                    if i > 0 {
                        self.out.push('\n');
                        self.spaces(col);
                    }
                    self.out.push('-');
                    match x {
                        // A compact collection: `- a: 1` / `- - 1`, content after 1-3 spaces.
                        Value::Object(m) if !m.is_empty() && self.tape.chance(2) => {
                            let gap = 1 + self.tape.pick(3);
                            self.spaces(gap);
                            self.block(x, col + 1 + gap);
                        }
                        Value::Array(s) if !s.is_empty() && self.tape.chance(1) => {
                            self.out.push(' ');
                            self.block(x, col + 2);
                        }
                        _ => self.value(x, col),
                    }
                }
            }
            _ => self.flow(v, col),
        }
    }

    /// A stream of documents, with the markers people write.
    fn stream(&mut self, docs: &[Value]) {
        for (i, doc) in docs.iter().enumerate() {
            let flow = self.tape.pick(3) == 0;
            // kubectl reads a stream that starts with `{` as JSON first (GuessJSONStream),
            // and a YAML flow mapping there may fail as JSON: not what this test is about.
            let json_like = i == 0 && doc.as_object().is_some_and(|m| flow || m.is_empty());
            match self.tape.pick(4) {
                0 if i == 0 && !json_like => {}
                0 | 1 => self.out.push_str("---\n"),
                2 => self.out.push_str("--- # next\n"),
                _ => self.out.push_str("# a comment\n---\n"),
            }
            if flow {
                self.flow(doc, 0);
            } else {
                self.block(doc, 0);
            }
            self.out.push('\n');
            if self.tape.pick(6) == 0 {
                self.out.push_str("...\n");
            }
        }
    }
}

fn render(docs: &[Value], tape: &[u8]) -> String {
    let mut w = Writer {
        out: String::new(),
        tape: Tape { bytes: tape, at: 0 },
        anchors: 0,
    };
    w.stream(docs);
    w.out
}

fn values() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        (0u64..300).prop_map(Value::from),
        (-50i64..0).prop_map(Value::from),
        prop::sample::select(STRINGS).prop_map(Value::from),
    ];
    let keys = prop::sample::select(&["a", "b", "name", "on", "1", "y", "x y", "k8s"][..]);
    leaf.prop_recursive(4, 24, 4, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::vec((keys.clone(), inner), 0..4).prop_map(|entries| {
                let map: Map<String, Value> = entries
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v))
                    .collect();
                Value::Object(map)
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn generated_yaml_reads_as_kubectl_reads_it(
        docs in prop::collection::vec(values(), 1..3),
        tape in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let text = render(&docs, &tape);
        let (why, _) = disagreement(&text);
        prop_assert!(why.is_none(), "{text:?}\n  {}", why.unwrap_or_default());
    }

    #[test]
    fn kubectl_reads_back_what_probegate_writes(value in values()) {
        let why = written_wrong(&value);
        prop_assert!(why.is_none(), "{}", why.unwrap_or_default());
    }
}

#[test]
fn the_writer_reaches_flows_at_and_left_of_their_key() {
    // The generator must produce the shape, or the property above proves little.
    let doc = json!({"spec": {"containers": [{"args": ["-x", "1"], "env": {"A": "b"}}]}});
    let found = (0u8..=255).any(|seed| {
        let tape: Vec<u8> = (0..64u8)
            .map(|i| seed.wrapping_mul(31).wrapping_add(i.wrapping_mul(7)))
            .collect();
        let text = render(std::slice::from_ref(&doc), &tape);
        text.lines().any(|l| l.trim_start().starts_with(']'))
    });
    assert!(found);
}
