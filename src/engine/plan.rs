//! What the rules decided for one object: the probes and gates to add, the pod annotations
//! to set, and what to say. `patch` writes it as JSON Patch; `record` summarises it.

use k8s_openapi::api::core::v1::Probe;

use super::{Rule, Warning};
use crate::policy::ProbeKind;

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

impl Plan {
    pub fn warn(&mut self, rule: Rule, messages: impl IntoIterator<Item = String>) {
        self.warnings.extend(
            messages
                .into_iter()
                .map(|message| Warning { rule, message }),
        );
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
