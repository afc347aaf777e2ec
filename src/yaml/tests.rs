use super::*;
use serde_json::json;

/// What a conformance case expects from the loader.
enum Want {
    /// The stream holds one document with this JSON value.
    Doc(Value),
    /// The stream holds these documents.
    Docs(Vec<Value>),
    /// Loading fails in this 1-based document, with a message holding each of these.
    Fails(usize, &'static [&'static str]),
}

struct Case {
    name: &'static str,
    yaml: String,
    want: Want,
}

fn case(name: &'static str, yaml: impl Into<String>, want: Want) -> Case {
    Case {
        name,
        yaml: yaml.into(),
        want,
    }
}

/// kubectl's reading of YAML (go-yaml v2 through sigs.k8s.io/yaml), and the limits that
/// keep a hostile manifest from exhausting the machine.
fn conformance_cases() -> Vec<Case> {
    use Want::{Doc, Docs, Fails};
    let mut laughs = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x]\n");
    for i in 1..10 {
        let refs = vec![format!("*a{}", i - 1); 9].join(", ");
        laughs.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    let anchors = "base: &b {p: 1, q: 2}\nother: &o {q: 3, r: 4}\n";
    let keys = "1: a\ntrue: b\non: c\n0x10: d\n1.5: e\n'y': f\n1e3: g\n1e6: h\n.inf: i\n";
    vec![
        case("legacy octal", "0644", Doc(v("420"))),
        case(
            "single-quoted octal stays text",
            "'0644'",
            Doc(v(r#""0644""#)),
        ),
        case(
            "double-quoted octal stays text",
            r#""0644""#,
            Doc(v(r#""0644""#)),
        ),
        case("0o octal", "0o17", Doc(v("15"))),
        case("hex", "0x1F", Doc(v("31"))),
        case("negative hex", "-0x1F", Doc(v("-31"))),
        case("binary", "0b101", Doc(v("5"))),
        case("underscores in an int", "1_000", Doc(v("1000"))),
        case("plus sign", "+1", Doc(v("1"))),
        case("leading zero, not octal", "09", Doc(v("9"))),
        case("zero", "0", Doc(v("0"))),
        case("negative zero", "-0", Doc(v("0"))),
        case(
            "u64 max",
            "18446744073709551615",
            Doc(v("18446744073709551615")),
        ),
        case("decimal beyond u64", "99999999999999999999", Doc(v("1e20"))),
        case(
            "i64 min",
            "-9223372036854775808",
            Doc(v("-9223372036854775808")),
        ),
        case(
            "hex beyond u64",
            "0xFFFFFFFFFFFFFFFFFF",
            Doc(v(r#""0xFFFFFFFFFFFFFFFFFF""#)),
        ),
        case("float", "1.5", Doc(v("1.5"))),
        case("float without a whole part", ".5", Doc(v("0.5"))),
        case("integral float with exponent", "-.5e1", Doc(v("-5"))),
        case("exponent without a point", "1e3", Doc(v("1000"))),
        case("trailing point", "1.", Doc(v("1"))),
        case("float beyond f64", "1e400", Doc(v(r#""1e400""#))),
        case("underscore between float digits", ".3_0", Doc(v("0.3"))),
        case("underscore after the point", "._5", Doc(v(r#""._5""#))),
        case("two points", "1.2.3", Doc(v(r#""1.2.3""#))),
        case("quantity", "100m", Doc(v(r#""100m""#))),
        case("sexagesimal stays text", "1:20", Doc(v(r#""1:20""#))),
        case("bare 0x", "0x", Doc(v(r#""0x""#))),
        case("sequence", "- x", Doc(v(r#"["x"]"#))),
        case("yes", "yes", Doc(v("true"))),
        case("quoted yes", r#""yes""#, Doc(v(r#""yes""#))),
        case("y", "y", Doc(v("true"))),
        case("Y", "Y", Doc(v("true"))),
        case("On", "On", Doc(v("true"))),
        case("ON", "ON", Doc(v("true"))),
        case("NO", "NO", Doc(v("false"))),
        case("n", "n", Doc(v("false"))),
        case("off", "off", Doc(v("false"))),
        case("True", "True", Doc(v("true"))),
        case("FALSE", "FALSE", Doc(v("false"))),
        case("mixed-case yes is text", "yEs", Doc(v(r#""yEs""#))),
        case("tilde", "~", Doc(v("null"))),
        case("Null", "Null", Doc(v("null"))),
        case("quoted null", "'null'", Doc(v(r#""null""#))),
        case("empty quoted", r#""""#, Doc(v(r#""""#))),
        case("quoted tilde", "'~'", Doc(v(r#""~""#))),
        case("date stays text", "2001-12-14", Doc(v(r#""2001-12-14""#))),
        case(
            "timestamp stays text",
            "2001-12-14t21:59:43.10-05:00",
            Doc(v(r#""2001-12-14t21:59:43.10-05:00""#)),
        ),
        case("literal block", "|\n  on\n", Doc(v(r#""on\n""#))),
        case("!!str", "!!str 0644", Doc(v(r#""0644""#))),
        case("!!int on a quoted octal", r#"!!int "0644""#, Doc(v("420"))),
        case("!!float on an int", "!!float 1", Doc(v("1"))),
        case("!!bool on quoted yes", "!!bool 'yes'", Doc(v("true"))),
        case("!!null on empty", "!!null ''", Doc(v("null"))),
        case("custom tag keeps text", "!custom 12", Doc(v(r#""12""#))),
        case(
            "!!timestamp keeps text",
            "!!timestamp 2001-12-14",
            Doc(v(r#""2001-12-14""#)),
        ),
        case("merge key alone is text", "<<", Doc(v(r#""<<""#))),
        case("mapping", "a: 1", Doc(v(r#"{"a": 1}"#))),
        case("flow sequence", "[on, 'on']", Doc(v(r#"[true, "on"]"#))),
        case(".inf", ".inf", Fails(1, &["line 1", ".inf"])),
        case("-.Inf", "-.Inf", Fails(1, &["line 1"])),
        case(".nan", ".nan", Fails(1, &["line 1"])),
        case("!!float .INF", "!!float .INF", Fails(1, &["line 1"])),
        case("!!int on text", "!!int abc", Fails(1, &["line 1"])),
        case("!!bool on 1", "!!bool 1", Fails(1, &["line 1"])),
        case("!!int on a float", "!!int 1.5", Fails(1, &["line 1"])),
        case(".inf as a value", "x: .inf", Fails(1, &["line 1", ".inf"])),
        case(
            "non-string keys become strings",
            keys,
            Doc(v(
                r#"{"1": "a", "true": "c", "16": "d", "1.5": "e", "y": "f", "1000": "g",
                "1e+06": "h", ".inf": "i"}"#,
            )),
        ),
        case(
            "uint64 key",
            "18446744073709551615: x",
            Fails(1, &["uint64"]),
        ),
        case("null key", "~: x", Fails(1, &["null"])),
        case(
            "sequence key",
            "? [a]\n: x",
            Fails(1, &["cannot be a mapping key"]),
        ),
        case(
            "duplicate key: later wins",
            "a: 1\na: 2\n",
            Doc(v(r#"{"a": 2}"#)),
        ),
        case(
            "merge: explicit keys win, earlier merges win",
            format!("{anchors}m:\n  p: 0\n  <<: [*b, *o]\n  w: 5\n"),
            Doc(v(r#"{"base": {"p": 1, "q": 2}, "other": {"q": 3, "r": 4},
                "m": {"p": 0, "q": 2, "r": 4, "w": 5}}"#)),
        ),
        case(
            "merge: a later explicit key wins",
            format!("{anchors}m:\n  <<: *b\n  p: 9\n"),
            Doc(v(r#"{"base": {"p": 1, "q": 2}, "other": {"q": 3, "r": 4},
                "m": {"q": 2, "p": 9}}"#)),
        ),
        case(
            "quoted << is an ordinary key",
            "<<: {a: 1}\n\"<<\": q\n",
            Doc(v(r#"{"a": 1, "<<": "q"}"#)),
        ),
        case(
            "merge of a scalar",
            "a:\n  <<: 1\n",
            Fails(1, &["map merge"]),
        ),
        case(
            "merge of a list with a scalar",
            "a:\n  <<: [{a: 1}, 2]\n",
            Fails(1, &["map merge"]),
        ),
        case(
            "aliases of collections and scalars",
            "a: &a [1, {k: &s v}]\nb: *a\nc: *s\n",
            Doc(v(
                r#"{"a": [1, {"k": "v"}], "b": [1, {"k": "v"}], "c": "v"}"#,
            )),
        ),
        case("unknown alias", "a: *nope\n", Fails(1, &["line 1"])),
        case("billion laughs", laughs, Fails(1, &["nodes"])),
        case(
            "deep block nesting",
            format!("{}x", "- ".repeat(100_000)),
            Fails(1, &["nesting"]),
        ),
        case(
            "nesting at the limit",
            format!("{}x", "- ".repeat(MAX_DEPTH)),
            Doc((0..MAX_DEPTH).fold(json!("x"), |inner, _| json!([inner]))),
        ),
        case(
            "deep flow nesting",
            format!("{}{}", "[".repeat(100_000), "]".repeat(100_000)),
            Fails(1, &[]),
        ),
        case(
            "aliases cannot smuggle depth",
            format!("a: &a {}{}\nb: [*a]\n", "[".repeat(255), "]".repeat(255)),
            Fails(1, &["nesting"]),
        ),
        case(
            "empty documents are kept as null",
            "a: 1\n---\n---\n# only a comment\n---\nb: yes\n...\n",
            Docs(vs(r#"[{"a": 1}, null, null, {"b": true}]"#)),
        ),
        case("empty stream", "", Docs(vs("[]"))),
        case("comment-only stream", "# nothing\n", Docs(vs("[]"))),
        case(
            "syntax error names its document and line",
            "a: 1\n---\nb: 2\n---\nc: [1\n",
            Fails(3, &["line 6"]),
        ),
        case(
            "flow closed at its key's column in a block sequence (issue 28)",
            "spec:\n  containers:\n    - name: a\n      args: [\n        \"-x\", \"1\",\n      ]\n      \
             env:\n        - name: A\n",
            Doc(v(
                r#"{"spec": {"containers": [{"name": "a", "args": ["-x", "1"],
                "env": [{"name": "A"}]}]}}"#,
            )),
        ),
        case(
            "flow lines left of their key, nested, with a trailing comma and comments",
            "a:\n  b: {p: [1, # one\n# own line\n2,\n],\nq: 'x\n y'}\n  c: 3\n",
            Doc(v(r#"{"a": {"b": {"p": [1, 2], "q": "x y"}, "c": 3}}"#)),
        ),
        case(
            "a block line left of its key is still refused, with the first error",
            "a:\n  b: [1,\n  2]\n c: 3\n",
            Fails(1, &["line 3"]),
        ),
        case(
            "a control character, even in a comment",
            "a: 1\n---\nb: 2 # \u{7}\n",
            Fails(2, &["control characters", "line 3"]),
        ),
        case(
            "value error names its document",
            "a: 1\n---\nx: .nan\n",
            Fails(2, &[]),
        ),
    ]
}

fn v(json: &str) -> Value {
    serde_json::from_str(json).unwrap()
}

fn vs(json: &str) -> Vec<Value> {
    serde_json::from_str(json).unwrap()
}

/// Runs every conformance case against `load`; one line for each case it fails.
fn conformance_failures(load: fn(&str) -> Result<Vec<Value>, YamlError>) -> Vec<String> {
    let mut failures = Vec::new();
    for Case { name, yaml, want } in conformance_cases() {
        let got = load(&yaml);
        let passed = match (&want, &got) {
            (Want::Doc(value), Ok(docs)) => docs == std::slice::from_ref(value),
            (Want::Docs(values), Ok(docs)) => docs == values,
            (Want::Fails(document, says), Err(e)) => {
                e.document == *document && says.iter().all(|s| e.message.contains(s))
            }
            _ => false,
        };
        if !passed {
            let shown: String = yaml.chars().take(60).collect();
            let got = match got {
                Ok(docs) => format!("{:.200}", Value::Array(docs).to_string()),
                Err(e) => format!("error in document {}: {:.200}", e.document, e.message),
            };
            failures.push(format!("{name}: {shown:?} gave {got}"));
        }
    }
    failures
}

#[test]
fn loads_yaml_as_kubectl_reads_it() {
    let failures = conformance_failures(load_all);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
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
        "null", "~", ".inf", "0x1F", "1e3", "+1", "True", ".5", "<<", "---", "...", "a:", "x #y",
        "100m", "8080", "0o17", "0b1", "1e400", "'", "=", "@x", "-1", "-Xmx1g", "%x", "{a}", "[a]",
        "*a", "&a", "!a", "|", ">", "?x", "a,b", "x\"", "x'",
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

#[test]
fn each_document_knows_the_line_its_content_starts_on() {
    struct Case {
        name: &'static str,
        text: &'static str,
        lines: &'static [usize],
    }
    let cases = [
        Case {
            name: "one document",
            text: "kind: Pod\n",
            lines: &[1],
        },
        Case {
            name: "comments and a marker before the content",
            text: "# a comment\n---\n\nkind: Pod\nmetadata: {}\n---\nkind: Service\n",
            lines: &[4, 7],
        },
        Case {
            name: "content on the marker's line",
            text: "--- {kind: Pod}\n--- {kind: Service}\n",
            lines: &[1, 2],
        },
        Case {
            name: "an empty document between two",
            text: "kind: A\n---\n---\nkind: B\n",
            lines: &[1, 3, 4],
        },
        Case {
            name: "a flow collection read again with its lines moved right keeps its lines",
            text: "a: 1\n---\nkind: Pod\nspec: {containers: [\n{name: x}]}\n",
            lines: &[1, 3],
        },
    ];
    for case in cases {
        let lines: Vec<usize> = load_documents(case.text)
            .unwrap_or_else(|e| panic!("{}: {e}", case.name))
            .into_iter()
            .map(|(_, line)| line)
            .collect();
        assert_eq!(lines, case.lines, "{}", case.name);
    }
}
