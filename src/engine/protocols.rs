//! Rule: what protocol a container port speaks, as far as the object shows it.
//!
//! A probe in a protocol the port does not speak is an outage: `GET /ready` on a database's
//! wire port never succeeds. The evidence, strongest first: a selecting Service port's
//! `appProtocol`, the port's name under the `<protocol>[-<suffix>]` convention (Istio's
//! explicit protocol selection, <https://istio.io/latest/docs/ops/configuration/traffic-management/protocol-selection/>),
//! the catalogue's entry for the image, and last, weakly, a well-known port number.

use std::fmt;

/// A protocol a port may speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Http,
    Https,
    /// HTTP/2 without TLS (`h2c`, `http2`): an HTTP probe gets an answer.
    H2c,
    Grpc,
    /// Anything else, by its name in [`WIRE`]: raw TCP, TLS passthrough, a database's protocol.
    Wire(&'static str),
}

/// Protocols that are neither HTTP nor gRPC, by the names ports and `appProtocol` give them.
/// The list also bounds what a catalogue may name.
pub const WIRE: &[&str] = &[
    "tcp",
    "tls",
    "udp",
    "grpc-web",
    "postgresql",
    "mysql",
    "redis",
    "mongo",
    "amqp",
    "amqps",
    "kafka",
    "memcached",
    "cassandra",
    "zookeeper",
    "nats",
    "mqtt",
    "dns",
    "ldap",
    "ldaps",
    "smtp",
    "ssh",
    "etcd-peer",
    "gossip",
    "clickhouse",
    "elasticsearch-transport",
    "raft",
    "stomp",
    "sip",
    "rtmp",
    "xmpp",
    "ws",
    "wss",
];

impl Protocol {
    /// A protocol by the name a port, an `appProtocol` or a catalogue gives it.
    pub fn named(name: &str) -> Option<Protocol> {
        let name = name.strip_prefix("kubernetes.io/").unwrap_or(name);
        Some(match name {
            "http" | "http1" => Protocol::Http,
            "https" => Protocol::Https,
            "h2c" | "http2" => Protocol::H2c,
            "grpc" => Protocol::Grpc,
            // Aliases seen in port names for the same wire protocols.
            "postgres" | "pgsql" => Protocol::Wire("postgresql"),
            "mongodb" => Protocol::Wire("mongo"),
            _ => Protocol::Wire(WIRE.iter().copied().find(|w| *w == name)?),
        })
    }

    /// The protocol a port's name declares: the whole name, or its part before the first
    /// dash (`http-web`, `grpc-api`). Other names (`web`, `metrics`) declare nothing.
    pub fn of_port_name(name: &str) -> Option<Protocol> {
        // `grpc-web` is one protocol, not gRPC with a suffix.
        Protocol::named(name).or_else(|| Protocol::named(name.split_once('-')?.0))
    }

    /// Ports whose protocol is known not to be HTTP, weak evidence used only when nothing
    /// else is known: Linkerd's default opaque ports
    /// (<https://linkerd.io/2/features/protocol-detection/>: 25 and 587 SMTP, 3306 MySQL,
    /// 4444 Galera, 5432 PostgreSQL, 6379 Redis, 9300 Elasticsearch, 11211 Memcached).
    pub fn of_well_known_port(number: i32) -> Option<Protocol> {
        Some(Protocol::Wire(match number {
            25 | 587 => "smtp",
            3306 | 4444 => "mysql",
            5432 => "postgresql",
            6379 => "redis",
            9300 => "elasticsearch-transport",
            11211 => "memcached",
            _ => return None,
        }))
    }

    /// Whether an HTTP request gets an HTTP answer on this port.
    pub fn speaks_http(self) -> bool {
        matches!(self, Protocol::Http | Protocol::Https | Protocol::H2c)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Https => "https",
            Protocol::H2c => "h2c",
            Protocol::Grpc => "grpc",
            Protocol::Wire(name) => name,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a port's protocol was read: the record says it, so a user can see why a path was
/// not used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    AppProtocol,
    Name,
    Catalogue,
    WellKnownPort,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::AppProtocol => "appProtocol",
            Source::Name => "name",
            Source::Catalogue => "catalogue",
            Source::WellKnownPort => "number",
        }
    }
}

/// A port's protocol and where it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Known {
    pub protocol: Protocol,
    pub source: Source,
}

/// The protocol of a port from the evidence at hand, strongest first.
pub fn of_port(
    app_protocol: Option<&str>,
    name: Option<&str>,
    catalogue: Option<Protocol>,
    number: i32,
) -> Option<Known> {
    let known = |protocol, source| Known { protocol, source };
    app_protocol
        .and_then(Protocol::named)
        .map(|p| known(p, Source::AppProtocol))
        .or_else(|| {
            name.and_then(Protocol::of_port_name)
                .map(|p| known(p, Source::Name))
        })
        .or_else(|| catalogue.map(|p| known(p, Source::Catalogue)))
        .or_else(|| Protocol::of_well_known_port(number).map(|p| known(p, Source::WellKnownPort)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_names() {
        struct Case {
            name: &'static str,
            port: &'static str,
            protocol: Option<Protocol>,
        }
        let cases = [
            Case {
                name: "a bare protocol",
                port: "http",
                protocol: Some(Protocol::Http),
            },
            Case {
                name: "a protocol with a suffix",
                port: "grpc-api",
                protocol: Some(Protocol::Grpc),
            },
            Case {
                name: "grpc-web is its own protocol",
                port: "grpc-web",
                protocol: Some(Protocol::Wire("grpc-web")),
            },
            Case {
                name: "http2 is h2c",
                port: "http2-edge",
                protocol: Some(Protocol::H2c),
            },
            Case {
                name: "a database by its name",
                port: "postgresql",
                protocol: Some(Protocol::Wire("postgresql")),
            },
            Case {
                name: "postgres is an alias",
                port: "postgres",
                protocol: Some(Protocol::Wire("postgresql")),
            },
            Case {
                name: "tcp with a suffix",
                port: "tcp-redis",
                protocol: Some(Protocol::Wire("tcp")),
            },
            Case {
                name: "a name that is no protocol",
                port: "web",
                protocol: None,
            },
            Case {
                name: "a protocol as a suffix declares nothing",
                port: "foo-http",
                protocol: None,
            },
            Case {
                name: "a protocol run into a word declares nothing",
                port: "httpforecast",
                protocol: None,
            },
            Case {
                name: "metrics is no protocol",
                port: "metrics",
                protocol: None,
            },
        ];
        for case in cases {
            assert_eq!(
                Protocol::of_port_name(case.port),
                case.protocol,
                "{}",
                case.name
            );
        }
    }

    #[test]
    fn evidence_order() {
        struct Case {
            name: &'static str,
            app_protocol: Option<&'static str>,
            port_name: Option<&'static str>,
            catalogue: Option<Protocol>,
            number: i32,
            known: Option<Known>,
        }
        let known = |protocol, source| Some(Known { protocol, source });
        let cases = [
            Case {
                name: "appProtocol beats the name",
                app_protocol: Some("kubernetes.io/h2c"),
                port_name: Some("http"),
                catalogue: None,
                number: 8080,
                known: known(Protocol::H2c, Source::AppProtocol),
            },
            Case {
                name: "an appProtocol probegate does not know falls to the name",
                app_protocol: Some("example.com/custom"),
                port_name: Some("grpc"),
                catalogue: None,
                number: 9000,
                known: known(Protocol::Grpc, Source::Name),
            },
            Case {
                name: "the name beats the catalogue",
                app_protocol: None,
                port_name: Some("https"),
                catalogue: Some(Protocol::Http),
                number: 8443,
                known: known(Protocol::Https, Source::Name),
            },
            Case {
                name: "the catalogue beats the number",
                app_protocol: None,
                port_name: Some("db"),
                catalogue: Some(Protocol::Wire("mysql")),
                number: 5432,
                known: known(Protocol::Wire("mysql"), Source::Catalogue),
            },
            Case {
                name: "a well-known number alone",
                app_protocol: None,
                port_name: None,
                catalogue: None,
                number: 6379,
                known: known(Protocol::Wire("redis"), Source::WellKnownPort),
            },
            Case {
                name: "nothing known",
                app_protocol: None,
                port_name: Some("web"),
                catalogue: None,
                number: 8080,
                known: None,
            },
        ];
        for case in cases {
            assert_eq!(
                of_port(
                    case.app_protocol,
                    case.port_name,
                    case.catalogue,
                    case.number
                ),
                case.known,
                "{}",
                case.name
            );
        }
    }

    #[test]
    fn which_protocols_answer_http() {
        for (protocol, http) in [
            (Protocol::Http, true),
            (Protocol::Https, true),
            (Protocol::H2c, true),
            (Protocol::Grpc, false),
            (Protocol::Wire("tls"), false),
            (Protocol::Wire("postgresql"), false),
        ] {
            assert_eq!(protocol.speaks_http(), http, "{protocol}");
        }
    }
}
