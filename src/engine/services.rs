//! Service evidence: which Services of the namespace select a pod.
//!
//! A Service selects a pod when its selector is non-empty and the pod carries every label
//! of it, as the endpoints controller decides. Several rules read this (readiness gates go
//! only to load balancer targets, metrics ports named by a Service), so it is decided once.
//!
//! Rules read a [`ServiceEvidence`], not a k8s-openapi `Service`: it keeps only what they
//! read, so a cache of tens of thousands of Services stays small, and typed objects stay at
//! the edges (cache, audit, offline input) that convert them with `From<&Service>`.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::object::Map;

mod evidence;
pub use evidence::{ServiceEvidence, ServicePortEvidence};

/// A TCP port a selecting Service sends traffic to.
#[derive(Debug, Clone, PartialEq)]
pub struct Target<'a> {
    pub service: &'a str,
    /// The Service port's name, if it has one, and number.
    pub name: Option<&'a str>,
    pub number: i32,
    /// The pod's port: `targetPort`, which defaults to the Service's `port`.
    pub port: IntOrString,
    /// The Service port's `appProtocol`.
    pub app_protocol: Option<&'a str>,
}

impl Target<'_> {
    /// A Service port named for metrics carries scrapes, not the application's traffic.
    pub fn is_metrics(&self) -> bool {
        self.name.is_some_and(|name| name.contains("metrics"))
    }

    /// `Service "web" port "http"`, for messages.
    pub fn describe(&self) -> String {
        match self.name {
            Some(name) => format!("Service {:?} port {name:?}", self.service),
            None => format!("Service {:?} port {}", self.service, self.number),
        }
    }
}

/// The TCP ports the `selecting` Services target, Service by Service (by name), each in the
/// order the Service lists them: the order every choice among them follows.
pub fn targets<'a>(selecting: &[&'a ServiceEvidence]) -> Vec<Target<'a>> {
    selecting
        .iter()
        .flat_map(|service| {
            service.ports().map(|port| Target {
                service: service.name(),
                name: port.name(),
                number: port.port(),
                port: port.target_port(),
                app_protocol: port.app_protocol(),
            })
        })
        .collect()
}

/// The Services that select a pod with `labels` in `namespace`, ordered by name (then
/// namespace, for callers that mix namespaces) so every replica gives the same answer
/// whatever order its cache holds them in. A Service selects only pods of its own namespace.
pub fn selecting<'a>(
    services: &[&'a ServiceEvidence],
    namespace: Option<&str>,
    labels: Option<&Map<'_>>,
) -> Vec<&'a ServiceEvidence> {
    let elsewhere = |service: &ServiceEvidence| matches!((service.namespace(), namespace), (Some(a), Some(b)) if a != b);
    let mut selected: Vec<&ServiceEvidence> = services
        .iter()
        .copied()
        .filter(|service| !elsewhere(service) && selects(service, labels))
        .collect();
    selected.sort_by(|a, b| (a.name(), a.namespace()).cmp(&(b.name(), b.namespace())));
    selected
}

pub fn selects(service: &ServiceEvidence, labels: Option<&Map<'_>>) -> bool {
    // An empty selector selects nothing for endpoints (its endpoints are managed by hand).
    service.has_selector()
        && labels.is_some_and(|labels| {
            service
                .selector()
                .all(|(key, value)| labels.get(key).is_some_and(|v| v == value))
        })
}

pub fn name(service: &ServiceEvidence) -> &str {
    service.name()
}

/// `a=1,b=2`, for messages.
pub fn labels_text(labels: Option<&Map<'_>>) -> String {
    let pairs: Vec<String> = labels
        .into_iter()
        .flatten()
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    if pairs.is_empty() {
        "none".into()
    } else {
        pairs.join(",")
    }
}

#[cfg(test)]
mod tests;
