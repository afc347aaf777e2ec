//! Rule: health servers a container's command line or settings declare, by conventions
//! frameworks share, so a controller built on controller-runtime is probed on its health
//! server's `/readyz` whatever its image.
//!
//! Each convention names its source; a new one is a row below and a case in the tests.

use super::object::Container;

use super::command_line::{self, Flag};
use crate::policy::{ProbeKind, Scheme};

/// A health server a flag declares: where it listens is the flag's value.
#[derive(Debug, PartialEq, Eq)]
pub struct HealthServer {
    /// The flag, as `command_line::flags` names it.
    pub flag: &'static str,
    pub readiness: &'static str,
    pub liveness: &'static str,
    pub scheme: Scheme,
    /// Where the flag and its endpoints are documented.
    pub source: &'static str,
}

impl HealthServer {
    /// The path a probe of `kind` checks: startup guards liveness, so it checks the same.
    pub fn path(&self, kind: ProbeKind) -> &'static str {
        match kind {
            ProbeKind::Readiness => self.readiness,
            ProbeKind::Liveness | ProbeKind::Startup => self.liveness,
        }
    }
}

/// The flags, most common first; the first one a command line has decides.
pub const HEALTH_SERVERS: &[HealthServer] = &[
    // controller-runtime's manager (HealthProbeBindAddress) serves its readyz checks on
    // /readyz and its healthz checks on /healthz; kubebuilder's scaffold binds it with this flag.
    HealthServer {
        flag: "health-probe-bind-address",
        readiness: "/readyz",
        liveness: "/healthz",
        scheme: Scheme::Http,
        source: "https://github.com/actions/actions-runner-controller/pull/4459",
    },
    // Flux's controllers are controller-runtime managers (fluxcd/pkg/runtime/probes sets up
    // the same two checks) that name the flag this way (default :9440).
    HealthServer {
        flag: "health-addr",
        readiness: "/readyz",
        liveness: "/healthz",
        scheme: Scheme::Http,
        source: "https://pkg.go.dev/github.com/fluxcd/pkg/runtime/probes",
    },
    // Kubernetes-style API servers (kube-apiserver, aggregated API servers such as
    // metrics-server) serve /readyz and /livez on their secure port; /healthz is deprecated.
    HealthServer {
        flag: "secure-port",
        readiness: "/readyz",
        liveness: "/livez",
        scheme: Scheme::Https,
        source: "https://kubernetes.io/docs/reference/using-api/health-checks/",
    },
];

/// `--health-probe-bind-address, --health-addr, ...`, for messages.
pub fn flag_list() -> String {
    let flags: Vec<String> = HEALTH_SERVERS
        .iter()
        .map(|s| format!("--{}", s.flag))
        .collect();
    flags.join(", ")
}

/// The health server a container's flags declare, with the port it listens on, or why it
/// cannot be probed (`Err`: a message for the user).
pub fn health_server<'f>(
    container: &Container<'_>,
    flags: &'f [Flag<'f>],
) -> Option<Result<(&'static HealthServer, u16), String>> {
    HEALTH_SERVERS.iter().find_map(|server| {
        let flag = flags.iter().rfind(|flag| flag.name == server.flag)?;
        let address = flag.value()?;
        let port = command_line::listen_port(address)?;
        Some(if command_line::is_loopback(address) {
            Err(format!(
                "container {:?}: {} listens on loopback only, which the kubelet cannot reach; not probing it",
                container.name,
                flag.describe(),
            ))
        } else {
            Ok((server, port))
        })
    })
}

/// Spring Boot's actuator exposes Kubernetes probe groups when
/// `management.endpoint.health.probes.enabled` is true (and on its own when it detects
/// Kubernetes, which a manifest cannot show), on the management port if one is set, else
/// the server port (8080 by default):
/// <https://docs.spring.io/spring-boot/reference/actuator/endpoints.html#actuator.endpoints.kubernetes-probes>.
pub struct SpringBoot;

impl SpringBoot {
    pub const NAME: &'static str = "spring-boot";
    pub const READINESS: &'static str = "/actuator/health/readiness";
    pub const LIVENESS: &'static str = "/actuator/health/liveness";
    const DEFAULT_PORT: u16 = 8080;
    /// The setting as a variable (relaxed binding) and as a command-line property.
    pub const PROBES_VARIABLE: &'static str = "MANAGEMENT_ENDPOINT_HEALTH_PROBES_ENABLED";
    const PROBES_FLAG: &'static str = "management.endpoint.health.probes.enabled";
    pub const PORT_VARIABLES: [&'static str; 2] = ["MANAGEMENT_SERVER_PORT", "SERVER_PORT"];
    const PORT_FLAGS: [&'static str; 2] = ["management.server.port", "server.port"];
    /// Settings that move the actuator's endpoints off `/actuator/health/...`.
    const PATH_VARIABLES: [&'static str; 2] = [
        "MANAGEMENT_ENDPOINTS_WEB_BASE_PATH",
        "SERVER_SERVLET_CONTEXT_PATH",
    ];
    const PATH_FLAGS: [&'static str; 2] = [
        "management.endpoints.web.base-path",
        "server.servlet.context-path",
    ];

    /// The port the probe groups are served on, when the manifest turns them on. The first
    /// setting present decides: a management port that does not read (`$(PORT)`, or `-1`,
    /// which turns the endpoints off) is no reason to probe the server port instead. A base
    /// path or context path moves the endpoints where this rule does not follow.
    pub fn port(container: &Container<'_>, flags: &[Flag<'_>]) -> Option<u16> {
        // The last of a repeated variable wins, as the kubelet sets them.
        let variable = |name: &str| {
            command_line::env(container)
                .filter(|(n, _)| *n == name)
                .last()
                .map(|(_, v)| v)
        };
        let flag = |name: &str| flags.iter().rfind(|f| f.name == name);
        let on = flag(Self::PROBES_FLAG)
            .and_then(Flag::as_bool)
            .or_else(|| variable(Self::PROBES_VARIABLE).and_then(command_line::parse_bool))?;
        let moved_paths = Self::PATH_VARIABLES
            .iter()
            .any(|v| variable(v).is_some_and(|p| !p.is_empty() && p != "/"))
            || Self::PATH_FLAGS.iter().any(|f| flag(f).is_some());
        if !on || moved_paths {
            return None;
        }
        let setting = Self::PORT_FLAGS
            .iter()
            .zip(Self::PORT_VARIABLES)
            .find_map(|(f, v)| flag(f).map(|f| f.value()).or_else(|| variable(v).map(Some)));
        match setting {
            None => Some(Self::DEFAULT_PORT),
            Some(value) => value.and_then(command_line::listen_port),
        }
    }

    /// Whether the Spring Boot rule reads the variable `name`.
    pub fn reads_variable(name: &str) -> bool {
        name == Self::PROBES_VARIABLE
            || Self::PORT_VARIABLES.contains(&name)
            || Self::PATH_VARIABLES.contains(&name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::object::Text;

    fn container(args: &[&str], env: &[(&str, &str)]) -> Container<'static> {
        Container {
            name: "app".into(),
            args: Some(args.iter().map(|s| Text::from(s.to_string())).collect()),
            env: crate::engine::test_support::variables(env),
            ..Container::default()
        }
    }

    #[test]
    fn health_flags() {
        struct Case {
            name: &'static str,
            args: &'static [&'static str],
            found: Option<Result<(&'static str, u16), ()>>,
        }
        let cases = [
            Case {
                name: "controller-runtime's flag",
                args: &["--health-probe-bind-address=:8081"],
                found: Some(Ok(("health-probe-bind-address", 8081))),
            },
            Case {
                name: "Flux's name for it, in two words",
                args: &["--health-addr", ":9440"],
                found: Some(Ok(("health-addr", 9440))),
            },
            Case {
                name: "a secure port is a Kubernetes-style API server",
                args: &["--secure-port=10250"],
                found: Some(Ok(("secure-port", 10250))),
            },
            Case {
                name: "a health server on loopback cannot be probed",
                args: &["--health-probe-bind-address=127.0.0.1:8081"],
                found: Some(Err(())),
            },
            Case {
                name: "0 turns the server off",
                args: &["--health-probe-bind-address=0"],
                found: None,
            },
            Case {
                name: "no such flag",
                args: &["--metrics-bind-address=:8080"],
                found: None,
            },
        ];
        for case in cases {
            let c = container(case.args, &[]);
            let flags = command_line::flags(&c);
            let found = health_server(&c, &flags)
                .map(|r| r.map(|(server, port)| (server.flag, port)).map_err(|_| ()));
            assert_eq!(found, case.found, "{}", case.name);
        }
    }

    #[test]
    fn every_health_server_names_a_source() {
        for server in HEALTH_SERVERS {
            assert!(server.source.starts_with("https://"), "{}", server.flag);
            assert!(server.readiness.starts_with('/') && server.liveness.starts_with('/'));
            assert_ne!(server.readiness, server.liveness, "{}", server.flag);
        }
    }

    #[test]
    fn spring_boot() {
        struct Case {
            name: &'static str,
            args: &'static [&'static str],
            env: &'static [(&'static str, &'static str)],
            port: Option<u16>,
        }
        let cases = [
            Case {
                name: "probes on by a variable, default port",
                args: &[],
                env: &[("MANAGEMENT_ENDPOINT_HEALTH_PROBES_ENABLED", "true")],
                port: Some(8080),
            },
            Case {
                name: "the management port wins over the server port",
                args: &[],
                env: &[
                    ("MANAGEMENT_ENDPOINT_HEALTH_PROBES_ENABLED", "true"),
                    ("SERVER_PORT", "8000"),
                    ("MANAGEMENT_SERVER_PORT", "9000"),
                ],
                port: Some(9000),
            },
            Case {
                name: "probes on by a command-line property",
                args: &[
                    "--management.endpoint.health.probes.enabled=true",
                    "--server.port=8081",
                ],
                env: &[],
                port: Some(8081),
            },
            Case {
                name: "probes turned off",
                args: &[],
                env: &[("MANAGEMENT_ENDPOINT_HEALTH_PROBES_ENABLED", "false")],
                port: None,
            },
            Case {
                name: "a management port that does not read is not the server port",
                args: &[],
                env: &[
                    ("MANAGEMENT_ENDPOINT_HEALTH_PROBES_ENABLED", "true"),
                    ("MANAGEMENT_SERVER_PORT", "$(MGMT_PORT)"),
                    ("SERVER_PORT", "8000"),
                ],
                port: None,
            },
            Case {
                name: "a moved base path is not followed",
                args: &[],
                env: &[
                    ("MANAGEMENT_ENDPOINT_HEALTH_PROBES_ENABLED", "true"),
                    ("MANAGEMENT_ENDPOINTS_WEB_BASE_PATH", "/manage"),
                ],
                port: None,
            },
            Case {
                name: "a context path is not followed",
                args: &["--server.servlet.context-path=/orders"],
                env: &[("MANAGEMENT_ENDPOINT_HEALTH_PROBES_ENABLED", "true")],
                port: None,
            },
            Case {
                name: "a port alone says nothing",
                args: &[],
                env: &[("SERVER_PORT", "8000")],
                port: None,
            },
        ];
        for case in cases {
            let c = container(case.args, case.env);
            let flags = command_line::flags(&c);
            assert_eq!(SpringBoot::port(&c, &flags), case.port, "{}", case.name);
        }
    }
}
