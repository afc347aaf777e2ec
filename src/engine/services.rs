//! Service evidence: which Services of the namespace select a pod.
//!
//! A Service selects a pod when its selector is non-empty and the pod carries every label
//! of it, as the endpoints controller decides. Several rules read this (readiness gates go
//! only to load balancer targets, metrics ports named by a Service), so it is decided once.
//!
//! Rules read a [`ServiceEvidence`], not a k8s-openapi `Service`: it keeps only what they
//! read, so a cache of tens of thousands of Services stays small, and typed objects stay at
//! the edges (cache, audit, offline input) that convert them with `From<&Service>`.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::policy::PREFIX;

/// What the rules read of a Service: its place, selector, TCP ports and `probegate.io/`
/// annotations. Fields are private so the storage can change without touching the rules.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServiceEvidence {
    namespace: Option<Box<str>>,
    name: Box<str>,
    /// In key order; empty when the Service has no selector.
    selector: Box<[(Box<str>, Box<str>)]>,
    /// TCP ports only, in the order the Service lists them.
    ports: Box<[ServicePortEvidence]>,
    /// `probegate.io/` annotations only, in key order.
    annotations: Box<[(Box<str>, Box<str>)]>,
}

/// A TCP port of a Service.
#[derive(Debug, Clone, PartialEq)]
pub struct ServicePortEvidence {
    name: Option<Box<str>>,
    port: i32,
    /// `targetPort`, which defaults to `port`.
    target: IntOrString,
}

impl ServicePortEvidence {
    pub fn name(&self) -> Option<&str> {
        self.name.as_deref()
    }

    pub fn port(&self) -> i32 {
        self.port
    }

    pub fn target_port(&self) -> &IntOrString {
        &self.target
    }
}

fn boxed_pairs<'a>(
    pairs: impl Iterator<Item = (&'a String, &'a String)>,
) -> Box<[(Box<str>, Box<str>)]> {
    pairs
        .map(|(k, v)| (k.as_str().into(), v.as_str().into()))
        .collect()
}

impl From<&Service> for ServiceEvidence {
    fn from(service: &Service) -> ServiceEvidence {
        let spec = service.spec.as_ref();
        let ports = spec
            .and_then(|spec| spec.ports.as_ref())
            .into_iter()
            .flatten()
            .filter(|port| port.protocol.as_deref().is_none_or(|p| p == "TCP"))
            .map(|port| ServicePortEvidence {
                name: port.name.as_deref().map(Box::from),
                port: port.port,
                target: port
                    .target_port
                    .clone()
                    .unwrap_or(IntOrString::Int(port.port)),
            })
            .collect();
        let annotations = service.metadata.annotations.iter().flatten();
        ServiceEvidence {
            namespace: service.metadata.namespace.as_deref().map(Box::from),
            name: service.metadata.name.as_deref().unwrap_or("").into(),
            selector: boxed_pairs(spec.and_then(|s| s.selector.as_ref()).into_iter().flatten()),
            ports,
            annotations: boxed_pairs(annotations.filter(|(k, _)| k.starts_with(PREFIX))),
        }
    }
}

impl From<Service> for ServiceEvidence {
    fn from(service: Service) -> ServiceEvidence {
        ServiceEvidence::from(&service)
    }
}

impl ServiceEvidence {
    pub fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The selector's labels, in key order.
    pub fn selector(&self) -> impl Iterator<Item = (&str, &str)> {
        self.selector.iter().map(|(k, v)| (&**k, &**v))
    }

    /// The TCP ports, in the order the Service lists them.
    pub fn ports(&self) -> &[ServicePortEvidence] {
        &self.ports
    }

    /// A `probegate.io/` annotation's value; other annotations are not kept.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations
            .binary_search_by(|(k, _)| (**k).cmp(key))
            .ok()
            .map(|at| &*self.annotations[at].1)
    }
}

/// A TCP port a selecting Service sends traffic to.
#[derive(Debug, Clone, PartialEq)]
pub struct Target<'a> {
    pub service: &'a str,
    /// The Service port's name, if it has one, and number.
    pub name: Option<&'a str>,
    pub number: i32,
    /// The pod's port: `targetPort`, which defaults to the Service's `port`.
    pub port: IntOrString,
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
            service.ports().iter().map(|port| Target {
                service: service.name(),
                name: port.name(),
                number: port.port(),
                port: port.target_port().clone(),
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
    labels: Option<&BTreeMap<String, String>>,
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

pub fn selects(service: &ServiceEvidence, labels: Option<&BTreeMap<String, String>>) -> bool {
    // An empty selector selects nothing for endpoints (its endpoints are managed by hand).
    !service.selector.is_empty()
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
pub fn labels_text(labels: Option<&BTreeMap<String, String>>) -> String {
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
