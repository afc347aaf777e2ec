//! Service evidence: which Services of the namespace select a pod.
//!
//! A Service selects a pod when its selector is non-empty and the pod carries every label
//! of it, as the endpoints controller decides. Several rules read this (readiness gates go
//! only to load balancer targets, metrics ports named by a Service), so it is decided once.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

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
pub fn targets<'a>(selecting: &[&'a Service]) -> Vec<Target<'a>> {
    selecting
        .iter()
        .flat_map(|service| {
            service
                .spec
                .iter()
                .flat_map(|spec| spec.ports.iter().flatten())
                .filter(|port| port.protocol.as_deref().is_none_or(|p| p == "TCP"))
                .map(|port| Target {
                    service: name(service),
                    name: port.name.as_deref(),
                    number: port.port,
                    port: port
                        .target_port
                        .clone()
                        .unwrap_or(IntOrString::Int(port.port)),
                })
        })
        .collect()
}

/// The Services that select a pod with `labels` in `namespace`, ordered by name so every
/// replica gives the same answer whatever order its cache holds them in. A Service selects
/// only pods of its own namespace.
pub fn selecting<'a>(
    services: &[&'a Service],
    namespace: Option<&str>,
    labels: Option<&BTreeMap<String, String>>,
) -> Vec<&'a Service> {
    let elsewhere = |service: &Service| matches!((service.metadata.namespace.as_deref(), namespace), (Some(a), Some(b)) if a != b);
    let mut selected: Vec<&Service> = services
        .iter()
        .copied()
        .filter(|service| !elsewhere(service) && selects(service, labels))
        .collect();
    selected.sort_by(|a, b| name(a).cmp(name(b)));
    selected
}

pub fn selects(service: &Service, labels: Option<&BTreeMap<String, String>>) -> bool {
    let Some(selector) = service.spec.as_ref().and_then(|s| s.selector.as_ref()) else {
        return false;
    };
    // An empty selector selects nothing for endpoints (its endpoints are managed by hand).
    !selector.is_empty()
        && labels.is_some_and(|labels| {
            selector
                .iter()
                .all(|(key, value)| labels.get(key) == Some(value))
        })
}

pub fn name(service: &Service) -> &str {
    service.metadata.name.as_deref().unwrap_or("")
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
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ServiceSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn service(name: &str, selector: Option<&[(&str, &str)]>) -> Service {
        Service {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            spec: Some(ServiceSpec {
                selector: selector.map(map),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        }
    }

    #[test]
    fn selection_follows_the_endpoints_controller() {
        let pod = map(&[("app", "web"), ("tier", "front")]);
        // (selector, selects the pod)
        type Selector<'a> = Option<&'a [(&'a str, &'a str)]>;
        let cases: &[(Selector, bool)] = &[
            (Some(&[("app", "web")]), true),
            (Some(&[("app", "web"), ("tier", "front")]), true),
            (Some(&[("app", "web"), ("tier", "back")]), false),
            (Some(&[("app", "web"), ("zone", "a")]), false),
            (Some(&[("app", "worker")]), false),
            (Some(&[]), false),
            (None, false),
        ];
        for (selector, expected) in cases {
            let s = service("s", *selector);
            assert_eq!(selects(&s, Some(&pod)), *expected, "{selector:?}");
            assert!(!selects(&s, None), "a pod without labels: {selector:?}");
        }
        let no_spec = Service::default();
        assert!(!selects(&no_spec, Some(&pod)));
    }

    #[test]
    fn selecting_services_are_ordered_by_name() {
        let pod = map(&[("app", "web")]);
        let (b, a, other) = (
            service("b", Some(&[("app", "web")])),
            service("a", Some(&[("app", "web")])),
            service("c", Some(&[("app", "db")])),
        );
        let names: Vec<&str> = selecting(&[&b, &other, &a], None, Some(&pod))
            .into_iter()
            .map(name)
            .collect();
        assert_eq!(names, ["a", "b"]);
        // Another namespace's Service selects none of this namespace's pods.
        let mut elsewhere = a.clone();
        elsewhere.metadata.namespace = Some("other".into());
        for (pod_namespace, selected) in [(Some("shop"), 0), (Some("other"), 1), (None, 1)] {
            assert_eq!(
                selecting(&[&elsewhere], pod_namespace, Some(&pod)).len(),
                selected,
                "{pod_namespace:?}"
            );
        }
    }

    #[test]
    fn targets_follow_service_then_port_order() {
        use k8s_openapi::api::core::v1::ServicePort;
        let with_ports = |name: &str, ports: Vec<ServicePort>| {
            let mut s = service(name, Some(&[("app", "web")]));
            s.spec.as_mut().unwrap().ports = Some(ports);
            s
        };
        let port =
            |name: Option<&str>, port: i32, target: Option<IntOrString>, protocol| ServicePort {
                name: name.map(str::to_owned),
                port,
                target_port: target,
                protocol,
                ..ServicePort::default()
            };
        let a = with_ports(
            "a",
            vec![
                port(Some("amqp"), 5672, None, None),
                port(Some("dns"), 53, None, Some("UDP".to_owned())),
                port(
                    Some("metrics"),
                    9419,
                    Some(IntOrString::String("prom".into())),
                    Some("TCP".to_owned()),
                ),
            ],
        );
        let b = with_ports(
            "b",
            vec![port(None, 80, Some(IntOrString::Int(8080)), None)],
        );
        let found = targets(&[&a, &b]);
        let summary: Vec<(String, bool)> = found
            .iter()
            .map(|t| (t.describe(), t.is_metrics()))
            .collect();
        assert_eq!(
            summary,
            [
                ("Service \"a\" port \"amqp\"".to_owned(), false),
                ("Service \"a\" port \"metrics\"".to_owned(), true),
                ("Service \"b\" port 80".to_owned(), false),
            ]
        );
        assert_eq!(
            found[0].port,
            IntOrString::Int(5672),
            "targetPort defaults to port"
        );
        assert_eq!(found[1].port, IntOrString::String("prom".into()));
    }

    #[test]
    fn labels_are_written_in_key_order() {
        assert_eq!(
            labels_text(Some(&map(&[("z", "1"), ("a", "2")]))),
            "a=2,z=1"
        );
        assert_eq!(labels_text(None), "none");
    }
}
