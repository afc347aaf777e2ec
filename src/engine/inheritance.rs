//! A workload's own settings reach its pods: the pods are admitted with the template's
//! annotations only, so the workload's `probegate.io/` settings are copied into the template
//! and its pods are judged the same way.

use super::Context;
use super::object::PodParts;
use crate::policy::{self, Layer, Settings};

/// The annotations to copy into the pod template, given whether the workload's settings
/// inject at all.
pub fn for_pods(
    context: &Context<'_>,
    parts: &PodParts<'_, '_>,
    inject: bool,
) -> Vec<(String, String)> {
    let mut inherited = own_settings(parts);
    if !inject {
        // Disabled means unchanged, except that a workload's own opt-out must reach pods
        // that would otherwise be mutated.
        inherited.retain(|(key, _)| key == policy::INJECT);
        if !inherited.is_empty() && !pods_would_be_mutated(context, parts) {
            inherited.clear();
        }
    }
    inherited
}

/// Whether pods admitted with only the template's annotations would get injections.
fn pods_would_be_mutated(context: &Context<'_>, parts: &PodParts<'_, '_>) -> bool {
    let mut layers: Vec<&dyn Layer> = context.layers.iter().map(|l| *l as &dyn Layer).collect();
    layers.extend(
        parts
            .pod_meta
            .and_then(|m| m.annotations.as_ref())
            .map(|a| a as &dyn Layer),
    );
    Settings::resolve(&layers).0.inject
}

/// The workload's own `probegate.io/` settings that its pod template does not set.
fn own_settings(parts: &PodParts<'_, '_>) -> Vec<(String, String)> {
    let Some(workload) = parts.workload_meta.and_then(|m| m.annotations.as_ref()) else {
        return Vec::new();
    };
    let template = parts.pod_meta.and_then(|m| m.annotations.as_ref());
    workload
        .iter()
        // Only values that took effect: a bad one was ignored here and would be there.
        .filter(|(key, value)| policy::is_valid(key, value))
        .filter(|(key, _)| !template.is_some_and(|t| t.contains_key(*key)))
        .map(|(key, value)| (key.to_string(), value.to_string()))
        .collect()
}
