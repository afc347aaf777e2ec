//! Flags and environment variables of a container, as far as the manifest shows them.

use super::object::Container;

/// One `--flag` or `--flag=value` from a container's command and args.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flag<'a> {
    /// Lower case, no leading dashes, `_` read as `-`: `--Enable_Metrics` is `enable-metrics`.
    pub name: String,
    /// The token as written, for messages.
    pub written: &'a str,
    pub value: FlagValue<'a>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagValue<'a> {
    /// `--flag` followed by another flag or nothing.
    Bare,
    /// `--flag=value`.
    Inline(&'a str),
    /// `--flag value`: the next word, which may also be a positional argument.
    Next(&'a str),
}

impl<'a> Flag<'a> {
    /// The value given with `=` or as the next word.
    pub fn value(&self) -> Option<&'a str> {
        match self.value {
            FlagValue::Bare => None,
            FlagValue::Inline(v) | FlagValue::Next(v) => Some(v),
        }
    }

    /// The flag read as a boolean switch: bare means true, as with Go's flag packages.
    pub fn as_bool(&self) -> Option<bool> {
        match self.value {
            FlagValue::Bare => Some(true),
            FlagValue::Inline(v) => parse_bool(v),
            // A next word that is no boolean belongs to something else.
            FlagValue::Next(v) => Some(parse_bool(v).unwrap_or(true)),
        }
    }

    /// The flag and its value as written, for messages.
    pub fn describe(&self) -> String {
        match self.value {
            FlagValue::Next(v) => format!("{} {}", self.written, v),
            _ => self.written.to_owned(),
        }
    }
}

/// The words of a container's command and args. Elements are split on white space too,
/// so flags inside `sh -c "exec app --flag"` are seen.
fn words<'c>(container: &'c Container<'_>) -> impl Iterator<Item = &'c str> {
    container
        .command
        .iter()
        .chain(container.args.iter())
        .flatten()
        .flat_map(|element| element.split_whitespace())
        .map(|word| word.trim_matches(|c| c == '"' || c == '\''))
}

pub fn flags<'c>(container: &'c Container<'_>) -> Vec<Flag<'c>> {
    let words: Vec<&str> = words(container).collect();
    let mut flags = Vec::new();
    for (i, word) in words.iter().enumerate() {
        let Some(body) = word.strip_prefix("--").or_else(|| word.strip_prefix('-')) else {
            continue;
        };
        if body.is_empty() || body.starts_with('-') {
            continue;
        }
        let (name, value) = match body.split_once('=') {
            Some((name, value)) => (name, FlagValue::Inline(value)),
            None => match words.get(i + 1) {
                Some(next) if !next.starts_with('-') => (body, FlagValue::Next(next)),
                _ => (body, FlagValue::Bare),
            },
        };
        flags.push(Flag {
            name: normalize(name),
            written: word,
            value,
        });
    }
    flags
}

/// A flag's name as rules compare it: lower case, `_` read as `-`.
pub fn normalize(name: &str) -> String {
    name.to_ascii_lowercase().replace('_', "-")
}

/// Literal environment variables (`valueFrom` cannot be seen at admission).
pub fn env<'c>(container: &'c Container<'_>) -> impl Iterator<Item = (&'c str, &'c str)> {
    container
        .env
        .iter()
        .flatten()
        .filter_map(|var| var.value.as_deref().map(|value| (var.name.as_str(), value)))
}

pub fn parse_bool(value: &str) -> Option<bool> {
    match value.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" | "enabled" | "t" | "y" => Some(true),
        "false" | "0" | "no" | "off" | "disabled" | "f" | "n" => Some(false),
        _ => None,
    }
}

/// The port of a listen address: `:8081`, `0.0.0.0:8081`, `[::]:8081`, `8081`, or a URL
/// (`http://0.0.0.0:2381`, as etcd takes them). `0` (listener off) and anything unparsable
/// give `None`.
pub fn listen_port(address: &str) -> Option<u16> {
    let address = without_scheme(address);
    let port = match address.rsplit_once(':') {
        Some((_, port)) => port,
        None => address,
    };
    port.parse::<u16>().ok().filter(|p| *p != 0)
}

/// A listen address only the pod itself can reach: the kubelet probes the pod IP.
pub fn is_loopback(address: &str) -> bool {
    let address = without_scheme(address);
    let host = address.rsplit_once(':').map_or("", |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host == "::1" || host.starts_with("127.")
}

/// `http://host:port/` as `host:port`; also Traefik's `:9000/tcp` as `:9000`.
fn without_scheme(address: &str) -> &str {
    let rest = address.split_once("://").map_or(address, |(_, rest)| rest);
    rest.split_once('/')
        .map_or(rest, |(authority, _)| authority)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::object::{Text, Variable};

    fn container(command: &[&str], args: &[&str]) -> Container<'static> {
        Container {
            name: "c".into(),
            command: Some(command.iter().map(|s| Text::from(s.to_string())).collect()),
            args: Some(args.iter().map(|s| Text::from(s.to_string())).collect()),
            ..Container::default()
        }
    }

    #[test]
    fn reads_flag_forms() {
        let c = container(
            &["/manager", "--Enable_Metrics=false"],
            &[
                "-v",
                "2",
                "--disable-metrics",
                "--metrics-port",
                "10660",
                "positional",
                "-x=1",
                "--",
                "--x",
            ],
        );
        let got: Vec<(String, FlagValue)> =
            flags(&c).into_iter().map(|f| (f.name, f.value)).collect();
        assert_eq!(
            got,
            [
                ("enable-metrics".to_string(), FlagValue::Inline("false")),
                ("v".to_string(), FlagValue::Next("2")),
                ("disable-metrics".to_string(), FlagValue::Bare),
                ("metrics-port".to_string(), FlagValue::Next("10660")),
                ("x".to_string(), FlagValue::Inline("1")),
                ("x".to_string(), FlagValue::Bare),
            ]
        );
    }

    #[test]
    fn sees_flags_inside_shell_scripts() {
        let c = container(
            &["/bin/sh", "-c"],
            &["exec /app --enable-metrics=false --port 80"],
        );
        let names: Vec<String> = flags(&c).into_iter().map(|f| f.name).collect();
        assert_eq!(names, ["c", "enable-metrics", "port"]);
    }

    #[test]
    fn boolean_flags() {
        struct Case {
            name: &'static str,
            args: &'static [&'static str],
            value: Option<bool>,
        }
        let cases = [
            Case {
                name: "a flag without a value is true",
                args: &["--m"],
                value: Some(true),
            },
            Case {
                name: "=false",
                args: &["--m=false"],
                value: Some(false),
            },
            Case {
                name: "=OFF in capitals",
                args: &["--m=OFF"],
                value: Some(false),
            },
            Case {
                name: "a value that is no boolean",
                args: &["--m=maybe"],
                value: None,
            },
            Case {
                name: "false in the next argument",
                args: &["--m", "false"],
                value: Some(false),
            },
            Case {
                name: "No in the next argument",
                args: &["--m", "No"],
                value: Some(false),
            },
            Case {
                name: "a positional argument after the flag is not its value",
                args: &["--m", "positional"],
                value: Some(true),
            },
        ];
        for case in cases {
            let c = container(&[], case.args);
            assert_eq!(flags(&c)[0].as_bool(), case.value, "{}", case.name);
        }
    }

    #[test]
    fn describes_two_word_flags_in_full() {
        let c = container(&[], &["--enable-metrics", "false"]);
        assert_eq!(flags(&c)[0].describe(), "--enable-metrics false");
        let c = container(&[], &["--enable-metrics=false"]);
        assert_eq!(flags(&c)[0].describe(), "--enable-metrics=false");
    }

    #[test]
    fn listen_ports() {
        struct Case {
            name: &'static str,
            address: &'static str,
            port: Option<u16>,
        }
        let cases = [
            Case {
                name: "a port after a colon",
                address: ":8081",
                port: Some(8081),
            },
            Case {
                name: "all IPv4 addresses",
                address: "0.0.0.0:8081",
                port: Some(8081),
            },
            Case {
                name: "all IPv6 addresses, bracketed",
                address: "[::]:9440",
                port: Some(9440),
            },
            Case {
                name: "a bare port",
                address: "8080",
                port: Some(8080),
            },
            Case {
                name: "0 switches the server off",
                address: "0",
                port: None,
            },
            Case {
                name: "port 0 is no port",
                address: ":0",
                port: None,
            },
            Case {
                name: "a named service port is not resolved",
                address: "localhost:http",
                port: None,
            },
            Case {
                name: "a URL, as etcd takes them",
                address: "http://0.0.0.0:2381",
                port: Some(2381),
            },
            Case {
                name: "a URL with a path",
                address: "https://[::]:8443/metrics",
                port: Some(8443),
            },
            Case {
                name: "an empty address",
                address: "",
                port: None,
            },
            Case {
                name: "a port out of range",
                address: ":70000",
                port: None,
            },
        ];
        for case in cases {
            assert_eq!(listen_port(case.address), case.port, "{}", case.name);
        }
    }

    #[test]
    fn loopback_addresses() {
        for address in [
            "127.0.0.1:8081",
            "localhost:8081",
            "[::1]:8081",
            "127.1.2.3:1",
            "http://127.0.0.1:2381",
        ] {
            assert!(is_loopback(address), "{address}");
        }
        for address in [":8081", "0.0.0.0:8081", "[::]:8081", "8081", "10.0.0.1:80"] {
            assert!(!is_loopback(address), "{address}");
        }
    }

    #[test]
    fn only_literal_env_values_are_read() {
        let c = Container {
            name: "c".into(),
            env: Some(vec![
                Variable {
                    name: "A".into(),
                    value: Some("1".into()),
                },
                Variable {
                    name: "B".into(),
                    value: None,
                },
            ]),
            ..Container::default()
        };
        assert_eq!(env(&c).collect::<Vec<_>>(), [("A", "1")]);
    }
}
