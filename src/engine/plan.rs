//! What the rules decided for one object: the probes and gates to add, the pod annotations
//! to set, and what to say. `patch` writes it as JSON Patch; `record` summarises it.

use std::fmt;

use k8s_openapi::api::core::v1::Probe;

use super::protocols::{Protocol, Source};
use super::{Kind, Rule, Warning, WarningKind};
use crate::policy::ProbeKind;

/// What decided a container's probes; the record names it for each container.
#[derive(Debug, Clone, PartialEq)]
pub enum Evidence {
    /// The object's own `probegate.io/` port, path, handler or scheme.
    Workload,
    /// The catalogue's entry for the image.
    Catalogue(String),
    /// A health server the command line declares, by its flag.
    Flag(&'static str),
    /// A framework's probe endpoints its settings turn on.
    Convention(&'static str),
    /// The namespace's or the cluster's paths or handler.
    Namespace,
    /// A namespace's path or handler left unused: the port speaks another protocol.
    Protocol {
        port: String,
        protocol: Protocol,
        source: Source,
    },
    /// A namespace's path or handler left unused: the image is another publisher's
    /// software (one the catalogue knows others of), whose endpoints it does not describe.
    Publisher(String),
    /// The port alone: a tcpSocket check.
    Ports,
}

impl fmt::Display for Evidence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Evidence::Workload => f.write_str("workload"),
            Evidence::Catalogue(name) => {
                f.write_str("catalogue=")?;
                f.write_str(name)
            }
            Evidence::Flag(flag) => {
                f.write_str("flag=--")?;
                f.write_str(flag)
            }
            Evidence::Convention(name) => {
                f.write_str("convention=")?;
                f.write_str(name)
            }
            Evidence::Namespace => f.write_str("namespace"),
            Evidence::Protocol {
                port,
                protocol,
                source,
            } => write!(f, "port={protocol}({} {port})", source.as_str()),
            Evidence::Publisher(publisher) => write!(f, "publisher={publisher}"),
            Evidence::Ports => f.write_str("ports"),
        }
    }
}

/// The probes added to one container.
#[derive(Debug, Default, PartialEq)]
pub struct ContainerProbes {
    /// The container's index in the pod spec's `containers`.
    pub index: usize,
    pub container: String,
    /// In `ProbeKind::ALL` order, a startup probe that guards liveness last.
    pub added: Vec<(ProbeKind, Probe)>,
    /// The Service port that decided where the probes connect, if one did.
    pub port_from_service: Option<String>,
    pub evidence: Option<Evidence>,
}

#[derive(Debug, Default, PartialEq)]
pub struct Plan {
    /// Containers that get probes, in pod spec order.
    pub probes: Vec<ContainerProbes>,
    /// Containers whose liveness probe was held back as a repeat of readiness.
    pub liveness_held: Vec<String>,
    /// Containers whose readiness probe was held back as a repeat of their liveness.
    pub readiness_held: Vec<String>,
    /// Readiness gate condition types to add, in order.
    pub gates: Vec<String>,
    /// How many gates were held back because no Service selects the pods.
    pub gates_held: usize,
    /// Annotations to set on the Pod or pod template, in order.
    pub annotations: Vec<(String, String)>,
    pub warnings: Vec<Warning>,
}

/// The field of a pod spec a warning is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    /// A container, by its index in `containers`.
    Container(usize),
    /// One probe of a container.
    Probe(usize, ProbeKind),
    ReadinessGates,
}

impl At {
    /// The field's path in `kind`'s objects, written as the API server writes field paths
    /// in its errors (`spec.template.spec.containers[0].readinessProbe`).
    pub fn path(self, kind: Kind) -> String {
        let mut path: Vec<&str> = kind.base().to_vec();
        path.push("spec");
        let mut text = path.join(".");
        match self {
            At::Container(index) => text.push_str(&format!(".containers[{index}]")),
            At::Probe(index, probe) => {
                text.push_str(&format!(".containers[{index}].{}", probe.field()));
            }
            At::ReadinessGates => text.push_str(".readinessGates"),
        }
        text
    }
}

impl Plan {
    /// Warnings of one kind about no field in particular.
    pub fn warn(
        &mut self,
        rule: Rule,
        kind: WarningKind,
        messages: impl IntoIterator<Item = String>,
    ) {
        self.warn_at(rule, None, messages.into_iter().map(|m| (kind, m)));
    }

    pub fn warn_at(
        &mut self,
        rule: Rule,
        at: Option<At>,
        said: impl IntoIterator<Item = (WarningKind, String)>,
    ) {
        self.warnings
            .extend(said.into_iter().map(|(kind, message)| Warning {
                rule,
                kind,
                message,
                at,
            }));
    }

    /// Probes added, per kind in `ProbeKind::ALL` order.
    pub fn probes_added(&self) -> [usize; 3] {
        let mut counts = [0; 3];
        for (kind, _) in self.probes.iter().flat_map(|c| &c.added) {
            counts[*kind as usize] += 1;
        }
        counts
    }

    /// Whether anything is injected (bookkeeping annotations aside).
    pub fn injects(&self) -> bool {
        !self.probes.is_empty() || !self.gates.is_empty()
    }
}

#[cfg(test)]
mod at_tests {
    use super::*;

    #[test]
    fn paths_read_as_the_api_server_writes_them() {
        let cases = [
            (
                "deployment probe",
                Kind::Deployment,
                At::Probe(1, ProbeKind::Readiness),
                "spec.template.spec.containers[1].readinessProbe",
            ),
            (
                "pod container",
                Kind::Pod,
                At::Container(0),
                "spec.containers[0]",
            ),
            (
                "cronjob gates",
                Kind::CronJob,
                At::ReadinessGates,
                "spec.jobTemplate.spec.template.spec.readinessGates",
            ),
        ];
        for (name, kind, at, want) in cases {
            assert_eq!(at.path(kind), want, "{name}");
        }
    }
}
