use super::*;
use crate::engine::object::Gate;
use k8s_openapi::api::core::v1::{Service, ServiceSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use std::collections::BTreeMap;

fn spec(gates: &[&str]) -> PodSpec<'static> {
    PodSpec {
        readiness_gates: (!gates.is_empty()).then(|| {
            gates
                .iter()
                .map(|g| Gate {
                    condition_type: g.to_string().into(),
                })
                .collect()
        }),
        ..PodSpec::default()
    }
}

fn settings(gates: &[&str]) -> Settings {
    Settings {
        readiness_gates: gates.iter().map(|s| s.to_string()).collect(),
        ..Settings::default()
    }
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// A Service selecting `app=<app>`, with `probegate.io/readiness-gates` when `gates` is set.
fn service(name: &str, app: &str, gates: Option<&str>) -> ServiceEvidence {
    ServiceEvidence::from(Service {
        metadata: ObjectMeta {
            name: Some(name.into()),
            annotations: gates.map(|g| map(&[(READINESS_GATES, g)])),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(map(&[("app", app)])),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    })
}

const AWS_GATE: &str = "target-health.elbv2.k8s.aws/k8s-default-web-1a2b3c4d5e";

/// Plans for a pod labelled `app=web` among `services`.
fn plan_among(
    present: &[&str],
    configured: &[&str],
    set_by_object: bool,
    batch: bool,
    services: &[ServiceEvidence],
) -> GatePlan {
    let labels = crate::engine::test_support::map(&[("app", "web")]);
    let all: Vec<&ServiceEvidence> = services.iter().collect();
    let selecting = services::selecting(&all, None, Some(&labels));
    plan(
        &spec(present),
        &settings(configured),
        &Evidence {
            labels: Some(&labels),
            services: &all,
            selecting: &selecting,
            set_by_object,
            batch,
        },
    )
}

#[test]
fn adds_missing_gates_once_in_order() {
    let web = [service("web", "web", None)];
    struct Case<'a> {
        name: &'static str,
        present: &'a [&'a str],
        configured: &'a [&'a str],
        added: &'a [&'a str],
    }
    let cases = [
        Case {
            name: "nothing configured, nothing added",
            present: &[],
            configured: &[],
            added: &[],
        },
        Case {
            name: "a configured gate the pod lacks is added",
            present: &[],
            configured: &[AWS_GATE],
            added: &[AWS_GATE],
        },
        Case {
            name: "a configured gate the pod has is not added again",
            present: &[AWS_GATE],
            configured: &[AWS_GATE],
            added: &[],
        },
        Case {
            name: "only the missing gates, in the configured order",
            present: &["example.com/ready"],
            configured: &[AWS_GATE, "example.com/ready", "b"],
            added: &[AWS_GATE, "b"],
        },
        Case {
            name: "a gate configured twice is added once",
            present: &[],
            configured: &["a", "a"],
            added: &["a"],
        },
    ];
    for case in cases {
        let p = plan_among(case.present, case.configured, false, false, &web);
        assert_eq!(p.added, case.added, "{}", case.name);
        assert!(p.warnings.is_empty(), "{}: {:?}", case.name, p.warnings);
        assert_eq!(p.held, 0, "{}", case.name);
    }
}

#[test]
fn gates_go_where_a_load_balancer_will_set_them() {
    let selecting = service("web", "web", None);
    let other = service("db", "db", None);
    let annotated = service("web-lb", "web", Some("example.com/lb"));
    let annotated_elsewhere = service("db-lb", "db", Some("example.com/db"));
    struct Case<'a> {
        name: &'static str,
        services: Vec<ServiceEvidence>,
        set_by_object: bool,
        batch: bool,
        added: Vec<&'a str>,
        held: usize,
    }
    let cases = [
        // Namespace gates: only where a Service selects the pods.
        Case {
            name: "a Service selects the pods: the namespace's gate is added",
            services: vec![selecting.clone()],
            set_by_object: false,
            batch: false,
            added: vec![AWS_GATE],
            held: 0,
        },
        Case {
            name: "only a Service that selects other pods: the namespace's gate is held",
            services: vec![other.clone()],
            set_by_object: false,
            batch: false,
            added: vec![],
            held: 1,
        },
        Case {
            name: "no Service: the namespace's gate is held",
            services: vec![],
            set_by_object: false,
            batch: false,
            added: vec![],
            held: 1,
        },
        // The workload's own gate: always, even for batch pods.
        Case {
            name: "the workload's own gate, without a Service",
            services: vec![],
            set_by_object: true,
            batch: false,
            added: vec![AWS_GATE],
            held: 0,
        },
        Case {
            name: "the workload's own gate on a batch pod",
            services: vec![],
            set_by_object: true,
            batch: true,
            added: vec![AWS_GATE],
            held: 0,
        },
        // Batch pods: no namespace or Service gates, and nothing to warn about.
        Case {
            name: "a batch pod a Service selects",
            services: vec![selecting.clone()],
            set_by_object: false,
            batch: true,
            added: vec![],
            held: 0,
        },
        Case {
            name: "a batch pod without a Service",
            services: vec![],
            set_by_object: false,
            batch: true,
            added: vec![],
            held: 0,
        },
        Case {
            name: "a batch pod an annotated Service selects",
            services: vec![annotated.clone()],
            set_by_object: false,
            batch: true,
            added: vec![],
            held: 0,
        },
        // A Service's own gates go to the pods it selects, after the namespace's.
        Case {
            name: "an annotated Service's gates after the namespace's, not another's",
            services: vec![annotated.clone(), annotated_elsewhere.clone()],
            set_by_object: false,
            batch: false,
            added: vec![AWS_GATE, "example.com/lb"],
            held: 0,
        },
        Case {
            name: "an annotated Service's gates after the workload's own",
            services: vec![annotated.clone()],
            set_by_object: true,
            batch: false,
            added: vec![AWS_GATE, "example.com/lb"],
            held: 0,
        },
    ];
    for case in cases {
        let p = plan_among(
            &[],
            &[AWS_GATE],
            case.set_by_object,
            case.batch,
            &case.services,
        );
        assert_eq!(p.added, case.added, "{}", case.name);
        assert_eq!(p.held, case.held, "{}", case.name);
        assert_eq!(
            p.warnings.len(),
            case.held,
            "{}: {:?}",
            case.name,
            p.warnings
        );
    }
}

#[test]
fn service_gates_are_ordered_by_service_name_and_deduplicated() {
    let services = [
        service("b", "web", Some("example.com/b,example.com/shared")),
        service("a", "web", Some("example.com/a, example.com/shared")),
    ];
    let p = plan_among(&["example.com/a"], &[], false, false, &services);
    assert_eq!(p.added, ["example.com/shared", "example.com/b"]);
    assert!(p.warnings.is_empty());
}

#[test]
fn a_held_gate_is_explained_once() {
    let services: Vec<ServiceEvidence> = (0..7)
        .map(|i| service(&format!("svc-{i}"), "db", None))
        .collect();
    let p = plan_among(&[], &[AWS_GATE, "example.com/x"], false, false, &services);
    assert_eq!(p.held, 2);
    assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
    let (kind, w) = &p.warnings[0];
    assert_eq!(*kind, WarningKind::GateHeld);
    for part in [
        &format!("readiness gate {AWS_GATE:?}, \"example.com/x\" from the namespace's"),
        "no Service selects these pods (labels app=web; Services here: svc-0, svc-1, svc-2, svc-3, svc-4 and 2 more)",
        "set probegate.io/readiness-gates on the workload",
        "probegate.io/readiness-gates: none on the workload",
    ] {
        assert!(w.contains(part), "{part:?} not in {w}");
    }
    let alone = plan_among(&[], &[AWS_GATE], false, false, &[]);
    assert!(
        alone.warnings[0]
            .1
            .contains("there are no Services in this namespace"),
        "{:?}",
        alone.warnings[0]
    );
    // A gate the pod already has is not held back, and not warned about.
    let present = plan_among(&[AWS_GATE], &[AWS_GATE], false, false, &[]);
    assert_eq!((present.held, present.warnings.len()), (0, 0));
}

#[test]
fn invalid_condition_types_are_skipped_with_a_warning() {
    let web = [
        service("web", "web", Some("Bad Gate,example.com/ok")),
        service("web-2", "web", Some("example.com/x, none")),
    ];
    let p = plan_among(
        &[],
        &["Good", "bad gate", "UPPER.example.com/x", "ok/"],
        true,
        false,
        &web,
    );
    assert_eq!(p.added, ["Good", "example.com/ok"]);
    assert_eq!(p.warnings.len(), 5, "{:?}", p.warnings);
    let kinds: Vec<WarningKind> = p.warnings.iter().map(|(kind, _)| *kind).collect();
    assert_eq!(
        kinds,
        [
            WarningKind::GateInvalid,
            WarningKind::GateInvalid,
            WarningKind::GateInvalid,
            WarningKind::GateInvalid,
            WarningKind::AnnotationIgnored,
        ]
    );
    let messages: Vec<&String> = p.warnings.iter().map(|(_, m)| m).collect();
    assert!(
        messages[4].starts_with(
            "ignoring Service \"web-2\"'s probegate.io/readiness-gates=\"example.com/x, none\": none means no gates"
        ),
        "{}",
        messages[4]
    );
    assert!(
        messages[0]
            .starts_with("skipping readiness gate \"bad gate\" from probegate.io/readiness-gates"),
        "{}",
        messages[0]
    );
    assert!(
        messages[3].starts_with(
            "skipping readiness gate \"Bad Gate\" from Service \"web\"'s probegate.io/readiness-gates"
        ),
        "{}",
        messages[3]
    );
    // A batch pod takes none of the namespace's gates, so their spelling is not its concern.
    let batch = plan_among(&[], &["bad gate"], false, true, &web);
    assert_eq!(batch, GatePlan::default());
}

#[test]
fn qualified_names() {
    for good in [
        AWS_GATE,
        "a",
        "A_b.c-D",
        "example.com/Ready",
        "x/y",
        &"a".repeat(63),
    ] {
        assert_eq!(check_qualified_name(good), Ok(()), "{good}");
    }
    for bad in [
        "",
        "/x",
        "x/",
        "-a",
        "a-",
        "a b",
        "a/b/c",
        "Example.com/x",
        "a..b/x",
        &"a".repeat(64),
        "é",
    ] {
        assert!(check_qualified_name(bad).is_err(), "{bad}");
    }
}
