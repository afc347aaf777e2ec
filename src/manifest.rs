//! Reading Kubernetes manifests: files, directories and stdin; multi-document YAML and JSON.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// One document of the input, with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    pub origin: Origin,
    pub value: Value,
}

/// A file (or `-` for stdin), the 1-based position of a document in it, and the 1-based
/// line its content starts on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub source: String,
    pub position: usize,
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: document {}", self.source, self.position)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{path}: cannot read: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: no such file or directory")]
    Missing { path: String },
    #[error("{origin}: not valid {format}: {message}")]
    Syntax {
        origin: Origin,
        format: &'static str,
        message: String,
    },
    #[error("{origin}: expected an object (a mapping with apiVersion and kind), found {found}")]
    NotAnObject { origin: Origin, found: &'static str },
    #[error("{origin}: the object has no {field}")]
    MissingField { origin: Origin, field: &'static str },
}

/// Reads every path in order: `-` is stdin, a directory is read recursively in sorted order
/// (`*.yaml`, `*.yml`, `*.json`). Empty documents are skipped.
pub fn read_paths(paths: &[PathBuf], stdin: &mut dyn Read) -> Result<Vec<Document>, ManifestError> {
    let mut documents = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            let mut text = String::new();
            stdin
                .read_to_string(&mut text)
                .map_err(|source| ManifestError::Read {
                    path: "-".into(),
                    source,
                })?;
            documents.extend(parse("-", &text, Format::Yaml)?);
            continue;
        }
        for file in files_under(path)? {
            let source = file.display().to_string();
            let text = std::fs::read_to_string(&file).map_err(|error| ManifestError::Read {
                path: source.clone(),
                source: error,
            })?;
            let format = if has_extension(&file, &["json"]) {
                Format::Json
            } else {
                Format::Yaml
            };
            documents.extend(parse(&source, &text, format)?);
        }
    }
    Ok(documents)
}

fn has_extension(path: &Path, extensions: &[&str]) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| extensions.contains(&e))
}

fn files_under(path: &Path) -> Result<Vec<PathBuf>, ManifestError> {
    let read_error = |source| ManifestError::Read {
        path: path.display().to_string(),
        source,
    };
    let metadata = match std::fs::metadata(path) {
        Ok(metadata) => metadata,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ManifestError::Missing {
                path: path.display().to_string(),
            });
        }
        Err(e) => return Err(read_error(e)),
    };
    if !metadata.is_dir() {
        return Ok(vec![path.to_owned()]);
    }
    let mut files = Vec::new();
    let mut entries = std::fs::read_dir(path)
        .map_err(read_error)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<Vec<_>, _>>()
        .map_err(read_error)?;
    entries.sort();
    for entry in entries {
        // Do not follow linked directories: a link cycle would never end.
        let is_real_dir = std::fs::symlink_metadata(&entry).is_ok_and(|m| m.is_dir());
        if is_real_dir {
            files.extend(files_under(&entry)?);
        } else if entry.is_file() && has_extension(&entry, &["yaml", "yml", "json"]) {
            files.push(entry);
        }
    }
    Ok(files)
}

#[derive(Clone, Copy)]
enum Format {
    Yaml,
    Json,
}

/// Parses one file's text into its non-empty documents.
fn parse(source: &str, text: &str, format: Format) -> Result<Vec<Document>, ManifestError> {
    // Editors on Windows start files with a byte order mark; kubectl reads past it.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let origin = |position, line| Origin {
        source: source.to_owned(),
        position,
        line,
    };
    let values: Vec<(Value, usize)> = match format {
        Format::Json => {
            let value = serde_json::from_str(text).map_err(|e| ManifestError::Syntax {
                origin: origin(1, e.line()),
                format: "JSON",
                message: e.to_string(),
            })?;
            // The line of the value's first character.
            let blank = text.len() - text.trim_start().len();
            vec![(value, 1 + text[..blank].matches('\n').count())]
        }
        // As kubectl reads it: YAML 1.1 scalars (`0644` is octal, `yes` is true), merge keys.
        Format::Yaml => crate::yaml::load_documents(text).map_err(|e| ManifestError::Syntax {
            origin: origin(e.document, 1),
            format: "YAML",
            message: e.message,
        })?,
    };
    let mut documents = Vec::new();
    for (index, (value, line)) in values.into_iter().enumerate() {
        let origin = origin(index + 1, line);
        match &value {
            Value::Null => continue,
            Value::Object(map) => {
                for field in ["apiVersion", "kind"] {
                    if !map.get(field).is_some_and(Value::is_string) {
                        return Err(ManifestError::MissingField { origin, field });
                    }
                }
            }
            other => {
                return Err(ManifestError::NotAnObject {
                    origin,
                    found: type_name(other),
                });
            }
        }
        documents.push(Document { origin, value });
    }
    Ok(documents)
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Result<Vec<Document>, ManifestError> {
        parse("in.yaml", text, Format::Yaml)
    }

    #[test]
    fn reads_multi_document_yaml_and_skips_empty_documents() {
        let docs = yaml("---\napiVersion: v1\nkind: Namespace\n---\n# only a comment\n---\napiVersion: v1\nkind: Pod\n").unwrap();
        let positions: Vec<usize> = docs.iter().map(|d| d.origin.position).collect();
        assert_eq!(positions, [1, 3]);
        assert_eq!(docs[1].value["kind"], "Pod");
        assert_eq!(docs[1].origin.to_string(), "in.yaml: document 3");
    }

    #[test]
    fn reads_past_a_byte_order_mark() {
        let docs = yaml("\u{feff}apiVersion: v1\nkind: Pod\n").unwrap();
        assert_eq!(docs[0].value["kind"], "Pod");
        let docs = parse(
            "in.json",
            "\u{feff}{\"apiVersion\": \"v1\", \"kind\": \"Pod\"}",
            Format::Json,
        )
        .unwrap();
        assert_eq!(docs[0].value["kind"], "Pod");
    }

    #[test]
    fn keeps_key_order_and_plain_scalars() {
        let docs = yaml("kind: Pod\napiVersion: v1\nmetadata:\n  name: p\n  annotations:\n    a: \"on\"\n    b: yes\n").unwrap();
        let keys: Vec<&String> = docs[0].value.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["kind", "apiVersion", "metadata"]);
        assert_eq!(docs[0].value["metadata"]["annotations"]["a"], "on");
    }

    #[test]
    fn bad_documents_name_file_and_position() {
        struct Case {
            name: &'static str,
            text: &'static str,
            /// How the error message starts.
            error: &'static str,
        }
        let cases = [
            Case {
                name: "YAML that does not parse, in the second document",
                text: "apiVersion: v1\nkind: Pod\n---\nkind: [unclosed\n",
                error: "in.yaml: document 2: not valid YAML",
            },
            Case {
                name: "a list where an object belongs",
                text: "apiVersion: v1\nkind: Pod\n---\n- a\n- b\n",
                error: "in.yaml: document 2: expected an object (a mapping with apiVersion and kind), found a list",
            },
            Case {
                name: "a string where an object belongs",
                text: "just a string\n",
                error: "in.yaml: document 1: expected an object (a mapping with apiVersion and kind), found a string",
            },
            Case {
                name: "an object without kind",
                text: "apiVersion: v1\nmetadata: {}\n",
                error: "in.yaml: document 1: the object has no kind",
            },
            Case {
                name: "an object without apiVersion",
                text: "kind: Pod\n",
                error: "in.yaml: document 1: the object has no apiVersion",
            },
            Case {
                name: "a kind that is not a string",
                text: "apiVersion: v1\nkind: 3\n",
                error: "in.yaml: document 1: the object has no kind",
            },
            Case {
                name: "an alias that refers to itself",
                text: "a: &x [*x]\n",
                error: "in.yaml: document 1: not valid YAML",
            },
        ];
        for case in cases {
            let error = yaml(case.text).unwrap_err().to_string();
            assert!(error.starts_with(case.error), "{}: {error}", case.name);
        }
        let error = parse("in.json", "{\"kind\": ", Format::Json)
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("in.json: document 1: not valid JSON"),
            "{error}"
        );
    }

    #[test]
    fn reads_directories_recursively_in_sorted_order_and_stdin() {
        let dir = std::env::temp_dir().join(format!("probegate-manifest-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("b/nested")).unwrap();
        let write = |name: &str, kind: &str| {
            std::fs::write(dir.join(name), format!("apiVersion: v1\nkind: {kind}\n")).unwrap();
        };
        write("b/nested/z.yml", "Z");
        write("a.yaml", "A");
        write("b/c.json", "ignored");
        std::fs::write(dir.join("b/c.json"), r#"{"apiVersion": "v1", "kind": "C"}"#).unwrap();
        write("notes.txt", "Ignored");
        let mut stdin = "apiVersion: v1\nkind: S\n".as_bytes();
        let docs = read_paths(&[dir.clone(), PathBuf::from("-")], &mut stdin).unwrap();
        let kinds: Vec<&str> = docs
            .iter()
            .map(|d| d.value["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["A", "C", "Z", "S"]);
        assert_eq!(docs[3].origin.source, "-");

        let missing = read_paths(&[dir.join("nope.yaml")], &mut "".as_bytes()).unwrap_err();
        assert!(
            missing
                .to_string()
                .ends_with("nope.yaml: no such file or directory"),
            "{missing}"
        );
        std::fs::write(dir.join("bad.yaml"), [0xff, 0xfe, b'\n']).unwrap();
        let unreadable = read_paths(&[dir.join("bad.yaml")], &mut "".as_bytes()).unwrap_err();
        assert!(
            unreadable.to_string().contains("bad.yaml: cannot read"),
            "{unreadable}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
