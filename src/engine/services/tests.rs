use super::*;
use crate::engine::test_support::map as labels;
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::core::v1::ServiceSpec;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeMap;

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
    let pod = labels(&[("app", "web"), ("tier", "front")]);
    struct Case {
        name: &'static str,
        selector: Option<&'static [(&'static str, &'static str)]>,
        selects_the_pod: bool,
    }
    let cases = [
        Case {
            name: "one label the pod has",
            selector: Some(&[("app", "web")]),
            selects_the_pod: true,
        },
        Case {
            name: "every label the pod has",
            selector: Some(&[("app", "web"), ("tier", "front")]),
            selects_the_pod: true,
        },
        Case {
            name: "one label with another value",
            selector: Some(&[("app", "web"), ("tier", "back")]),
            selects_the_pod: false,
        },
        Case {
            name: "one label the pod lacks",
            selector: Some(&[("app", "web"), ("zone", "a")]),
            selects_the_pod: false,
        },
        Case {
            name: "another app",
            selector: Some(&[("app", "worker")]),
            selects_the_pod: false,
        },
        Case {
            name: "an empty selector selects nothing",
            selector: Some(&[]),
            selects_the_pod: false,
        },
        Case {
            name: "no selector selects nothing",
            selector: None,
            selects_the_pod: false,
        },
    ];
    for case in cases {
        let s = ServiceEvidence::from(service("s", case.selector));
        assert_eq!(
            selects(&s, Some(&pod)),
            case.selects_the_pod,
            "{}",
            case.name
        );
        assert!(
            !selects(&s, None),
            "{}: a pod without labels is selected",
            case.name
        );
    }
    let no_spec = ServiceEvidence::from(Service::default());
    assert!(!selects(&no_spec, Some(&pod)));
}

#[test]
fn selecting_services_are_ordered_by_name() {
    let pod = labels(&[("app", "web")]);
    let (b, a, other) = (
        ServiceEvidence::from(service("b", Some(&[("app", "web")]))),
        ServiceEvidence::from(service("a", Some(&[("app", "web")]))),
        ServiceEvidence::from(service("c", Some(&[("app", "db")]))),
    );
    let names: Vec<&str> = selecting(&[&b, &other, &a], None, Some(&pod))
        .into_iter()
        .map(name)
        .collect();
    assert_eq!(names, ["a", "b"]);
    // Another namespace's Service selects none of this namespace's pods.
    let mut elsewhere = service("a", Some(&[("app", "web")]));
    elsewhere.metadata.namespace = Some("other".into());
    let elsewhere = ServiceEvidence::from(elsewhere);
    struct Case {
        name: &'static str,
        pod_namespace: Option<&'static str>,
        selected: usize,
    }
    let cases = [
        Case {
            name: "a pod in another namespace",
            pod_namespace: Some("shop"),
            selected: 0,
        },
        Case {
            name: "a pod in the Service's namespace",
            pod_namespace: Some("other"),
            selected: 1,
        },
        Case {
            name: "a pod whose namespace is not known",
            pod_namespace: None,
            selected: 1,
        },
    ];
    for case in cases {
        assert_eq!(
            selecting(&[&elsewhere], case.pod_namespace, Some(&pod)).len(),
            case.selected,
            "{}",
            case.name
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
    let port = |name: Option<&str>, port: i32, target: Option<IntOrString>, protocol| ServicePort {
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
    let (a, b) = (ServiceEvidence::from(a), ServiceEvidence::from(b));
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
        labels_text(Some(&labels(&[("z", "1"), ("a", "2")]))),
        "a=2,z=1"
    );
    assert_eq!(labels_text(None), "none");
}

#[test]
fn evidence_keeps_only_what_the_rules_read() {
    use k8s_openapi::api::core::v1::ServicePort;
    let mut full = service("web", Some(&[("tier", "front"), ("app", "web")]));
    full.metadata.namespace = Some("shop".into());
    full.metadata.labels = Some(map(&[("team", "a")]));
    full.metadata.annotations = Some(map(&[
        ("probegate.io/readiness-gates", "example.com/lb"),
        ("kubectl.kubernetes.io/last-applied-configuration", "{...}"),
    ]));
    let spec = full.spec.as_mut().unwrap();
    spec.cluster_ip = Some("10.0.0.1".into());
    spec.ports = Some(vec![
        ServicePort {
            name: Some("dns".into()),
            port: 53,
            protocol: Some("UDP".into()),
            ..ServicePort::default()
        },
        ServicePort {
            port: 80,
            ..ServicePort::default()
        },
    ]);
    let evidence = ServiceEvidence::from(&full);
    assert_eq!(
        (evidence.namespace(), evidence.name()),
        (Some("shop"), "web")
    );
    assert_eq!(
        evidence.selector().collect::<Vec<_>>(),
        [("app", "web"), ("tier", "front")]
    );
    let ports: Vec<_> = evidence
        .ports()
        .map(|p| (p.name(), p.port(), p.target_port()))
        .collect();
    assert_eq!(ports, [(None, 80, IntOrString::Int(80))], "TCP only");
    assert_eq!(
        evidence.annotation("probegate.io/readiness-gates"),
        Some("example.com/lb")
    );
    assert_eq!(
        evidence.annotation("kubectl.kubernetes.io/last-applied-configuration"),
        None
    );
}

#[test]
fn same_names_in_several_namespaces_are_ordered_by_namespace() {
    let pod = labels(&[("app", "web")]);
    let in_namespace = |namespace: &str| {
        let mut s = service("web", Some(&[("app", "web")]));
        s.metadata.namespace = Some(namespace.into());
        ServiceEvidence::from(s)
    };
    let (b, a) = (in_namespace("b"), in_namespace("a"));
    for order in [[&b, &a], [&a, &b]] {
        let namespaces: Vec<_> = selecting(&order, None, Some(&pod))
            .into_iter()
            .map(ServiceEvidence::namespace)
            .collect();
        assert_eq!(namespaces, [Some("a"), Some("b")]);
    }
}

#[test]
fn every_string_reads_back_from_the_shared_buffer() {
    use k8s_openapi::api::core::v1::ServicePort;
    let mut full = service("wéb", Some(&[("app", "wéb"), ("a", "")]));
    full.metadata.annotations = Some(map(&[
        ("probegate.io/readiness-gates", "example.com/lb"),
        ("probegate.io/probes", "readiness"),
        ("probegate.io/zz", "ünïcode"),
    ]));
    full.spec.as_mut().unwrap().ports = Some(vec![ServicePort {
        name: Some("amqp".into()),
        port: 5672,
        target_port: Some(IntOrString::String("amqp-tls".into())),
        ..ServicePort::default()
    }]);
    let evidence = ServiceEvidence::from(&full);
    assert_eq!((evidence.namespace(), evidence.name()), (None, "wéb"));
    assert_eq!(
        evidence.selector().collect::<Vec<_>>(),
        [("a", ""), ("app", "wéb")]
    );
    let port = evidence.ports().next().unwrap();
    assert_eq!(
        (port.name(), port.port(), port.target_port()),
        (Some("amqp"), 5672, IntOrString::String("amqp-tls".into()))
    );
    for (key, value) in [
        ("probegate.io/probes", Some("readiness")),
        ("probegate.io/readiness-gates", Some("example.com/lb")),
        ("probegate.io/zz", Some("ünïcode")),
        ("probegate.io/other", None),
    ] {
        assert_eq!(evidence.annotation(key), value, "{key}");
    }
    let empty = ServiceEvidence::default();
    assert_eq!((empty.name(), empty.ports().count()), ("", 0));
    assert!(!empty.has_selector());
}
