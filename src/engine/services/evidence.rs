//! `ServiceEvidence`'s storage: every string of the Service in one buffer, the fields spans
//! of it, so a cached Service costs a few allocations instead of one per string (a cluster
//! cache holds tens of thousands; see docs/benchmarks/scale.md, "Cluster mode at scale").

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Service, ServicePort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use crate::policy::PREFIX;

/// What the rules read of a Service: its place, selector, TCP ports and `probegate.io/`
/// annotations. Fields are private so the storage can change without touching the rules.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ServiceEvidence {
    /// Every string below, one after another.
    text: Box<str>,
    namespace: Option<Span>,
    name: Span,
    /// In key order; empty when the Service has no selector.
    selector: Box<[(Span, Span)]>,
    /// TCP ports only, in the order the Service lists them.
    ports: Box<[Port]>,
    /// `probegate.io/` annotations only, in key order.
    annotations: Box<[(Span, Span)]>,
}

/// Where a string lies in `text`. Objects are at most a few MiB, so `u32` holds any offset.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
struct Span {
    start: u32,
    len: u32,
}

#[derive(Debug, Clone, PartialEq)]
struct Port {
    name: Option<Span>,
    /// `appProtocol`: the protocol the port speaks, as the Service states it.
    app_protocol: Option<Span>,
    port: i32,
    /// `targetPort`, which defaults to `port`.
    target: Result<i32, Span>,
}

/// A TCP port of a Service, as read from its evidence.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServicePortEvidence<'a> {
    name: Option<&'a str>,
    app_protocol: Option<&'a str>,
    port: i32,
    target: Result<i32, &'a str>,
}

impl<'a> ServicePortEvidence<'a> {
    pub fn name(&self) -> Option<&'a str> {
        self.name
    }

    pub fn port(&self) -> i32 {
        self.port
    }

    pub fn app_protocol(&self) -> Option<&'a str> {
        self.app_protocol
    }

    /// `targetPort`, which defaults to `port`: a number or a container port's name.
    pub fn target_port(&self) -> IntOrString {
        match self.target {
            Ok(number) => IntOrString::Int(number),
            Err(name) => IntOrString::String(name.to_owned()),
        }
    }
}

/// Appends strings to the buffer and says where each went.
#[derive(Default)]
struct Text(String);

impl Text {
    fn push(&mut self, s: &str) -> Span {
        let start = self.0.len() as u32;
        self.0.push_str(s);
        Span {
            start,
            len: s.len() as u32,
        }
    }

    fn pairs<'a>(
        &mut self,
        pairs: impl Iterator<Item = (&'a String, &'a String)>,
    ) -> Box<[(Span, Span)]> {
        pairs.map(|(k, v)| (self.push(k), self.push(v))).collect()
    }
}

impl ServiceEvidence {
    /// The evidence from the parts of a Service the rules read: its metadata, selector and
    /// ports. Whatever form the Service was read in, this is the one place it is made.
    pub fn from_parts(
        meta: &ObjectMeta,
        selector: Option<&BTreeMap<String, String>>,
        ports: Option<&[ServicePort]>,
    ) -> ServiceEvidence {
        let mut text = Text::default();
        let namespace = meta.namespace.as_deref().map(|ns| text.push(ns));
        let name = text.push(meta.name.as_deref().unwrap_or_default());
        let selector = text.pairs(selector.into_iter().flatten());
        let ports = ports
            .into_iter()
            .flatten()
            .filter(|port| port.protocol.as_deref().is_none_or(|p| p == "TCP"))
            .map(|port| Port {
                name: port.name.as_deref().map(|name| text.push(name)),
                app_protocol: port.app_protocol.as_deref().map(|p| text.push(p)),
                port: port.port,
                target: match &port.target_port {
                    None => Ok(port.port),
                    Some(IntOrString::Int(number)) => Ok(*number),
                    Some(IntOrString::String(name)) => Err(text.push(name)),
                },
            })
            .collect();
        let annotations = meta.annotations.iter().flatten();
        let annotations = text.pairs(annotations.filter(|(k, _)| k.starts_with(PREFIX)));
        ServiceEvidence {
            text: text.0.into_boxed_str(),
            namespace,
            name,
            selector,
            ports,
            annotations,
        }
    }
}

impl From<&Service> for ServiceEvidence {
    fn from(service: &Service) -> ServiceEvidence {
        let spec = service.spec.as_ref();
        ServiceEvidence::from_parts(
            &service.metadata,
            spec.and_then(|s| s.selector.as_ref()),
            spec.and_then(|s| s.ports.as_deref()),
        )
    }
}

impl From<Service> for ServiceEvidence {
    fn from(service: Service) -> ServiceEvidence {
        ServiceEvidence::from(&service)
    }
}

impl ServiceEvidence {
    fn text(&self, span: Span) -> &str {
        let start = span.start as usize;
        self.text
            .get(start..start + span.len as usize)
            .unwrap_or_default()
    }

    pub fn namespace(&self) -> Option<&str> {
        self.namespace.map(|span| self.text(span))
    }

    pub fn name(&self) -> &str {
        self.text(self.name)
    }

    /// The selector's labels, in key order.
    pub fn selector(&self) -> impl Iterator<Item = (&str, &str)> {
        self.selector
            .iter()
            .map(|(k, v)| (self.text(*k), self.text(*v)))
    }

    pub fn has_selector(&self) -> bool {
        !self.selector.is_empty()
    }

    /// The TCP ports, in the order the Service lists them.
    pub fn ports(&self) -> impl Iterator<Item = ServicePortEvidence<'_>> {
        self.ports.iter().map(|port| ServicePortEvidence {
            name: port.name.map(|span| self.text(span)),
            app_protocol: port.app_protocol.map(|span| self.text(span)),
            port: port.port,
            target: port.target.map_err(|span| self.text(span)),
        })
    }

    /// A `probegate.io/` annotation's value; other annotations are not kept.
    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations
            .binary_search_by(|(k, _)| self.text(*k).cmp(key))
            .ok()
            .map(|at| self.text(self.annotations[at].1))
    }
}
