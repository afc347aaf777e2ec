//! What the shipped webhook configuration sends probegate, so that `mutate` answers only
//! what the cluster would.

/// Namespaces the shipped MutatingWebhookConfiguration never matches: the control plane's,
/// and probegate's own (a webhook that mutates its own pods can block its own start). The
/// manifests and the chart's default list the same; `tests/install.rs` holds them to it.
pub const EXCLUDED_NAMESPACES: [&str; 2] = ["kube-system", "probegate"];

pub fn is_excluded(namespace: &str) -> bool {
    EXCLUDED_NAMESPACES.contains(&namespace)
}
