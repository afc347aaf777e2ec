//! Values written as block-style YAML that kubectl, and YAML 1.2 readers, read back the same.

use serde_json::Value;

use super::resolve::{Resolved, float_syntax, resolve};

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
