//! Rule: what a container is known to serve, before any probe is chosen: its image's
//! catalogue entry, else a health server its command line declares, else a framework's
//! probe endpoints its settings turn on. `None` leaves the choice to settings and ports.

use super::object::{Container, Text};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::catalogue::{Catalogue, Check, ContainerFacts, Entry};
use super::command_line::{self, Flag};
use super::conventions::{self, SpringBoot};
use super::plan::Evidence;
use super::ports;
use crate::policy::Scheme;

/// The checks a container's software answers, and what says so.
#[derive(Debug, Clone, PartialEq)]
pub struct Known {
    pub evidence: Evidence,
    pub readiness: Check,
    /// The software's own liveness check, where it has one distinct from readiness.
    pub liveness: Option<Check>,
    /// A port to check liveness on when the software has no liveness check of its own:
    /// that its listener still accepts.
    pub listener: Option<IntOrString>,
    pub startup_seconds: Option<i32>,
    /// How long one check may take, where the software's check is slow.
    pub timeout_seconds: Option<i32>,
}

/// What decided, or why nothing did.
pub struct Finding {
    pub known: Option<Known>,
    /// One line per step, for `mutate --explain`; kept only when asked for, so a review
    /// builds none of them.
    pub steps: Steps,
}

#[derive(Default)]
pub struct Steps(Option<Vec<String>>);

impl Steps {
    fn push(&mut self, step: impl FnOnce() -> String) {
        if let Some(steps) = &mut self.0 {
            steps.push(step());
        }
    }

    pub fn into_lines(self) -> Vec<String> {
        self.0.unwrap_or_default()
    }
}

/// What `container` is known to serve, most specific evidence first; with `explain`, each
/// step of the way too.
pub fn known(
    container: &Container<'_>,
    flags: &[Flag<'_>],
    catalogue: &Catalogue,
    explain: bool,
) -> Finding {
    let mut finding = Finding {
        known: None,
        steps: Steps(explain.then(Vec::new)),
    };
    let image = container.image.as_deref().unwrap_or_default();
    let facts = ContainerFacts { flags, container };
    match catalogue.find(image, &facts) {
        Some(entry) => match from_entry(entry, container, flags) {
            Ok(known) => {
                finding.steps.push(|| {
                    format!(
                        "image {image:?} matches catalogue entry {:?} ({})",
                        entry.name, entry.source
                    )
                });
                finding.known = Some(known);
                return finding;
            }
            Err(why) => finding.steps.push(|| {
                format!(
                    "image {image:?} matches catalogue entry {:?}, which does not apply: {why}",
                    entry.name
                )
            }),
        },
        None => finding
            .steps
            .push(|| format!("image {image:?} matches no catalogue entry")),
    }
    match conventions::health_server(container, flags) {
        Some(Ok((server, port))) => {
            let port = declared(container, port.into());
            finding.steps.push(|| {
                format!(
                    "--{} declares a health server on port {} ({})",
                    server.flag,
                    ports::text(&port),
                    server.source
                )
            });
            finding.known = Some(Known::http(
                Evidence::Flag(server.flag),
                &port,
                [server.readiness, server.liveness],
                server.scheme,
            ));
            return finding;
        }
        // The port choice that follows says so in a warning.
        Some(Err(why)) => finding.steps.push(|| why),
        None => finding
            .steps
            .push(|| format!("no health server flag ({})", conventions::flag_list())),
    }
    if let Some(port) = SpringBoot::port(container, flags) {
        let port = declared(container, port.into());
        finding.steps.push(|| {
            format!(
                "Spring Boot's probe groups are on, served on port {}",
                ports::text(&port)
            )
        });
        finding.known = Some(Known::http(
            Evidence::Convention(SpringBoot::NAME),
            &port,
            [SpringBoot::READINESS, SpringBoot::LIVENESS],
            Scheme::Http,
        ));
        return finding;
    }
    finding.steps.push(|| {
        format!(
            "no framework probe settings ({} unset)",
            SpringBoot::PROBES_VARIABLE
        )
    });
    finding
}

/// The entry's checks for this container: ports moved by the flags its command line sets,
/// and named as the container names them. `Err` says why the entry does not apply: a
/// moving flag that names a loopback or unreadable address (the probe would land where
/// nothing the kubelet reaches listens), or a container that runs a script of its own
/// (a backup job in a database image) and does not declare the port the entry probes.
fn from_entry(
    entry: &Entry,
    container: &Container<'_>,
    flags: &[Flag<'_>],
) -> Result<Known, String> {
    let moved = |number: i32| -> Result<i32, String> {
        let Some(spec) = entry.ports.iter().find(|spec| spec.port == number) else {
            return Ok(number);
        };
        let Some(flag) = flags.iter().rfind(|f| spec.flags.contains(&f.name)) else {
            return Ok(number);
        };
        // etcd takes a list of URLs, of which the first the kubelet can reach is the one
        // to probe.
        let address = flag.value().map(|value| {
            let mut addresses = value.split(',').map(str::trim);
            let first = addresses.clone().next().unwrap_or(value);
            addresses
                .find(|a| !command_line::is_loopback(a))
                .unwrap_or(first)
        });
        match address {
            Some(address) if command_line::is_loopback(address) => Err(format!(
                "{} listens on loopback only, which the kubelet cannot reach",
                flag.describe()
            )),
            Some(address) => command_line::listen_port(address)
                .map(i32::from)
                .ok_or_else(|| format!("{} names no port probegate can read", flag.describe())),
            None => Err(format!(
                "{} has no value probegate can read",
                flag.describe()
            )),
        }
    };
    let own_script = entry.when.command.is_none() && runs_a_script_of_its_own(container);
    let number = |n: i32| -> Result<i32, String> {
        let n = moved(n)?;
        if own_script && !ports::declares(container, &IntOrString::Int(n)) {
            return Err(format!(
                "the container runs a command of its own and does not declare port {n}, which the entry checks"
            ));
        }
        Ok(n)
    };
    let port = |port: &IntOrString| -> Result<IntOrString, String> {
        match port {
            IntOrString::Int(n) => Ok(declared(container, number(*n)?)),
            IntOrString::String(name) => {
                if ports::declares(container, port) {
                    Ok(port.clone())
                } else {
                    Err(format!("the container declares no port named {name:?}"))
                }
            }
        }
    };
    let check = |check: &Check| -> Result<Check, String> {
        Ok(match check {
            Check::Http {
                port: p,
                path,
                scheme,
            } => Check::Http {
                port: port(p)?,
                path: path.clone(),
                scheme: *scheme,
            },
            Check::Tcp { port: p } => Check::Tcp { port: port(p)? },
            Check::Grpc { port, service } => Check::Grpc {
                port: number(*port)?,
                service: service.clone(),
            },
            Check::Exec { command } => Check::Exec {
                command: command.clone(),
            },
        })
    };
    let readiness = check(&entry.readiness)?;
    let liveness = entry.liveness.as_ref().map(check).transpose()?;
    // Where the software has no liveness check of its own, the listener it serves on still
    // tells a dead process from a busy one.
    let listener = match &readiness {
        Check::Http { port, .. } | Check::Tcp { port } => Some(port.clone()),
        Check::Grpc { port, .. } => Some(declared(container, *port)),
        Check::Exec { .. } => match entry.ports.first() {
            Some(p) => Some(declared(container, number(p.port)?)),
            None => None,
        },
    };
    Ok(Known {
        evidence: Evidence::Catalogue(entry.name.clone()),
        readiness,
        liveness,
        listener,
        startup_seconds: entry.startup_seconds,
        timeout_seconds: entry.timeout_seconds,
    })
}

/// Whether the container replaces the image's program: a `command`, or args that start a
/// shell.
fn runs_a_script_of_its_own(container: &Container<'_>) -> bool {
    const SHELLS: [&str; 4] = ["sh", "bash", "ash", "dash"];
    let shell = |word: &Text<'_>| {
        let program = word.rsplit('/').next().unwrap_or(word);
        SHELLS.contains(&program)
    };
    container.command.as_ref().is_some_and(|c| !c.is_empty())
        || container
            .args
            .as_ref()
            .and_then(|args| args.first())
            .is_some_and(shell)
}

/// A port by the name the container gives it, else by number.
fn declared(container: &Container<'_>, number: i32) -> IntOrString {
    container
        .ports
        .iter()
        .flatten()
        .find(|p| p.container_port == number)
        .and_then(|p| p.name.clone())
        .map_or(IntOrString::Int(number), |name| {
            IntOrString::String(name.to_string())
        })
}

impl Known {
    /// A health server's readiness and liveness paths, on one port.
    fn http(evidence: Evidence, port: &IntOrString, paths: [&str; 2], scheme: Scheme) -> Known {
        let check = |path: &str| Check::Http {
            port: port.clone(),
            path: path.to_owned(),
            scheme,
        };
        Known {
            evidence,
            readiness: check(paths[0]),
            liveness: Some(check(paths[1])),
            listener: None,
            startup_seconds: None,
            timeout_seconds: None,
        }
    }
}

#[cfg(test)]
mod tests;
