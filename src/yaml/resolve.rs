//! Plain scalars resolved by YAML 1.1 rules, as go-yaml v2 resolves them, and keys made
//! strings as sigs.k8s.io/yaml makes them.

use saphyr_parser::ScalarStyle;
use serde_json::{Number, Value};

pub(super) fn key_string(key: Value) -> Result<String, String> {
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
pub(super) enum Resolved {
    Null,
    Bool(bool),
    Int(Number),
    Float(f64),
    Str,
}

pub(super) fn scalar(
    text: &str,
    style: ScalarStyle,
    tag: Option<&str>,
    key: bool,
) -> Result<Value, String> {
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
pub(super) fn resolve(s: &str) -> Resolved {
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
pub(super) fn float_syntax(s: &str) -> bool {
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
