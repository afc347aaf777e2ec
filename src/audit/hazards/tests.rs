use super::*;
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, ContainerStatus, EventSeries, ObjectReference, PodReadinessGate,
    PodSpec, PodStatus, Probe, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

fn at(minutes_ago: i64) -> Time {
    Time(now() - SignedDuration::from_mins(minutes_ago))
}

fn now() -> Timestamp {
    "2026-01-01T12:00:00Z".parse().unwrap()
}

fn cond(condition_type: &str, status: &str, minutes_ago: Option<i64>) -> PodCondition {
    PodCondition {
        type_: condition_type.into(),
        status: status.into(),
        last_transition_time: minutes_ago.map(at),
        ..PodCondition::default()
    }
}

fn pod(phase: &str, gates: &[&str], conditions: Vec<PodCondition>) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some("web-1".into()),
            namespace: Some("shop".into()),
            creation_timestamp: Some(at(120)),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "web".into(),
                ..Container::default()
            }],
            readiness_gates: Some(
                gates
                    .iter()
                    .map(|g| PodReadinessGate {
                        condition_type: g.to_string(),
                    })
                    .collect(),
            ),
            ..PodSpec::default()
        }),
        status: Some(PodStatus {
            phase: Some(phase.into()),
            conditions: Some(conditions),
            ..PodStatus::default()
        }),
    }
}

const GATE: &str = "target-health.elbv2.k8s.aws/web";

#[test]
fn stuck_readiness_gate_cases() {
    let ten = SignedDuration::from_mins(10);
    struct Case {
        name: &'static str,
        phase: &'static str,
        conditions: Vec<PodCondition>,
        stuck: bool,
    }
    let cases = [
        Case {
            name: "never set, ready an hour",
            phase: "Running",
            conditions: vec![cond("ContainersReady", "True", Some(60))],
            stuck: true,
        },
        Case {
            name: "never set, ready 5 minutes",
            phase: "Running",
            conditions: vec![cond("ContainersReady", "True", Some(5))],
            stuck: false,
        },
        Case {
            name: "False for an hour",
            phase: "Running",
            conditions: vec![
                cond("ContainersReady", "True", Some(60)),
                cond(GATE, "False", Some(60)),
            ],
            stuck: true,
        },
        Case {
            name: "False, but changed 2 minutes ago",
            phase: "Running",
            conditions: vec![
                cond("ContainersReady", "True", Some(60)),
                cond(GATE, "False", Some(2)),
            ],
            stuck: false,
        },
        Case {
            name: "True",
            phase: "Running",
            conditions: vec![
                cond("ContainersReady", "True", Some(60)),
                cond(GATE, "True", Some(50)),
            ],
            stuck: false,
        },
        Case {
            name: "containers not ready",
            phase: "Running",
            conditions: vec![cond("ContainersReady", "False", Some(60))],
            stuck: false,
        },
        Case {
            name: "no ContainersReady condition",
            phase: "Running",
            conditions: vec![],
            stuck: false,
        },
        Case {
            name: "pending",
            phase: "Pending",
            conditions: vec![cond("ContainersReady", "True", Some(60))],
            stuck: false,
        },
        Case {
            name: "no time on ContainersReady: from creation",
            phase: "Running",
            conditions: vec![cond("ContainersReady", "True", None)],
            stuck: true,
        },
    ];
    for case in cases {
        let name = case.name;
        let found = stuck_readiness_gates(&pod(case.phase, &[GATE], case.conditions), now(), ten);
        assert_eq!(found.len(), usize::from(case.stuck), "{name}: {found:?}");
        if case.stuck {
            assert_eq!(
                found[0].finding_type,
                FindingType::StuckReadinessGate,
                "{name}"
            );
            assert!(found[0].title.contains(GATE), "{name}: {}", found[0].title);
            assert_eq!(
                (found[0].kind.as_str(), found[0].name.as_str()),
                ("Pod", "web-1"),
                "{name}"
            );
        }
    }
    // No gates, nothing to be stuck on.
    let ungated = pod(
        "Running",
        &[],
        vec![cond("ContainersReady", "True", Some(60))],
    );
    assert!(stuck_readiness_gates(&ungated, now(), ten).is_empty());
}

#[test]
fn a_stuck_gate_says_how_long_and_why() {
    let mut false_gate = cond(GATE, "False", Some(30));
    false_gate.reason = Some("Failed".into());
    let p = pod(
        "Running",
        &[GATE],
        vec![cond("ContainersReady", "True", Some(90)), false_gate],
    );
    let found = stuck_readiness_gates(&p, now(), SignedDuration::from_mins(10));
    assert_eq!(
        found[0].title,
        format!("readiness gate {GATE} stuck for 30m")
    );
    // The table's few words leave the gate's name to the title.
    assert_eq!(
        (
            found[0].short_title.as_str(),
            found[0].short_action.as_str()
        ),
        (
            "readiness gate stuck for 30m",
            "check the gate's controller"
        )
    );
    assert!(
        found[0].message.contains("is False (Failed)"),
        "{}",
        found[0].message
    );
    assert!(
        found[0].message.contains("ready for 1h30m"),
        "{}",
        found[0].message
    );
}

fn coupled_pod(phase: &str, metrics_flag: &str, annotations: &[(&str, &str)]) -> Pod {
    let mut p = pod(phase, &[], vec![]);
    p.metadata.annotations = Some(
        annotations
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    p.spec.as_mut().unwrap().containers = vec![Container {
        name: "controller".into(),
        args: Some(vec!["--metrics-addr=:10660".into(), metrics_flag.into()]),
        ports: Some(vec![ContainerPort {
            name: Some("metrics".into()),
            container_port: 10660,
            ..ContainerPort::default()
        }]),
        readiness_probe: Some(Probe {
            tcp_socket: Some(TCPSocketAction {
                port: IntOrString::Int(10660),
                host: None,
            }),
            ..Probe::default()
        }),
        ..Container::default()
    }];
    p.status.as_mut().unwrap().container_statuses = Some(vec![ContainerStatus {
        name: "controller".into(),
        ready: false,
        restart_count: 4,
        ..ContainerStatus::default()
    }]);
    p
}

#[test]
fn metrics_coupled_probe_cases() {
    let none = BTreeMap::new();
    let off = BTreeMap::from([(
        "probegate.io/metrics-coupling".to_string(),
        "off".to_string(),
    )]);
    struct Case<'a> {
        name: &'static str,
        pod: Pod,
        namespace: &'a BTreeMap<String, String>,
        findings: usize,
    }
    let cases = [
        Case {
            name: "metrics off, probe on the metrics port",
            pod: coupled_pod("Running", "--enable-metrics=false", &[]),
            namespace: &none,
            findings: 1,
        },
        Case {
            name: "metrics on",
            pod: coupled_pod("Running", "--enable-metrics=true", &[]),
            namespace: &none,
            findings: 0,
        },
        Case {
            name: "not running",
            pod: coupled_pod("Pending", "--enable-metrics=false", &[]),
            namespace: &none,
            findings: 0,
        },
        Case {
            name: "namespace turned the rule off",
            pod: coupled_pod("Running", "--enable-metrics=false", &[]),
            namespace: &off,
            findings: 0,
        },
        Case {
            name: "pod turned the rule off",
            pod: coupled_pod(
                "Running",
                "--enable-metrics=false",
                &[("probegate.io/metrics-coupling", "off")],
            ),
            namespace: &none,
            findings: 0,
        },
    ];
    for case in cases {
        let name = case.name;
        let value = serde_json::to_value(&case.pod).unwrap();
        let object = crate::engine::Object::read(crate::engine::Kind::Pod, &value).unwrap();
        let found = metrics_coupled_probes(&case.pod, &object, &[case.namespace], &[]);
        assert_eq!(found.len(), case.findings, "{name}: {found:?}");
        if case.findings > 0 {
            assert_eq!(found[0].container.as_deref(), Some("controller"), "{name}");
            assert_eq!(
                found[0].title, "running with its readinessProbe on a metrics-only port",
                "{name}"
            );
            assert_eq!(
                (
                    found[0].short_title.as_str(),
                    found[0].short_action.as_str()
                ),
                (
                    "readinessProbe fails: metrics off",
                    "give health a port of its own"
                ),
                "{name}"
            );
            assert!(
                found[0].message.contains("--enable-metrics=false"),
                "{name}: {}",
                found[0].message
            );
            assert!(
                found[0]
                    .evidence
                    .contains(&"ready: false, restarts: 4".to_string()),
                "{name}: {:?}",
                found[0].evidence
            );
        }
    }
}

fn event(
    reason: &str,
    message: &str,
    container: &str,
    count: Option<i32>,
    series: Option<i32>,
) -> Event {
    Event {
        metadata: ObjectMeta {
            namespace: Some("shop".into()),
            ..ObjectMeta::default()
        },
        involved_object: ObjectReference {
            kind: Some("Pod".into()),
            name: Some("web-1".into()),
            namespace: Some("shop".into()),
            field_path: Some(format!("spec.containers{{{container}}}")),
            ..ObjectReference::default()
        },
        reason: Some(reason.into()),
        message: Some(message.into()),
        count,
        series: series.map(|count| EventSeries {
            count: Some(count),
            ..EventSeries::default()
        }),
        ..Event::default()
    }
}

#[test]
fn liveness_restart_cases() {
    let failed =
        "Liveness probe failed: Get \"http://10.0.0.5:8080/healthz\": context deadline exceeded";
    let killed = "Container web failed liveness probe, will be restarted";
    struct Case {
        name: &'static str,
        events: Vec<Event>,
        finding: bool,
        kills: u32,
    }
    let cases = [
        Case {
            name: "failures and a kill",
            events: vec![
                event("Unhealthy", failed, "web", Some(3), None),
                event("Killing", killed, "web", Some(1), None),
            ],
            finding: true,
            kills: 1,
        },
        Case {
            name: "kills counted by series",
            events: vec![event("Killing", killed, "web", None, Some(4))],
            finding: true,
            kills: 4,
        },
        Case {
            name: "failures the threshold absorbed",
            events: vec![event("Unhealthy", failed, "web", Some(2), None)],
            finding: false,
            kills: 0,
        },
        Case {
            name: "readiness failures are not liveness",
            events: vec![event(
                "Unhealthy",
                "Readiness probe failed: 503",
                "web",
                Some(9),
                None,
            )],
            finding: false,
            kills: 0,
        },
        Case {
            name: "a kill for another reason",
            events: vec![event(
                "Killing",
                "Stopping container web",
                "web",
                Some(1),
                None,
            )],
            finding: false,
            kills: 0,
        },
        Case {
            name: "another container",
            events: vec![event("Killing", killed, "sidecar", Some(1), None)],
            finding: false,
            kills: 0,
        },
    ];
    for case in cases {
        let (name, kills) = (case.name, case.kills);
        let mut tallies = Tallies::new();
        for e in &case.events {
            tally_event(&mut tallies, e);
        }
        let mut p = pod("Running", &[], vec![]);
        p.status.as_mut().unwrap().container_statuses = Some(vec![ContainerStatus {
            name: "web".into(),
            restart_count: 7,
            ..ContainerStatus::default()
        }]);
        let found = liveness_restarts(&p, &mut tallies);
        assert_eq!(found.len(), usize::from(case.finding), "{name}: {found:?}");
        if case.finding {
            assert_eq!(found[0].container.as_deref(), Some("web"), "{name}");
            assert!(
                found[0]
                    .title
                    .starts_with(&format!("restarted {kills} time(s)")),
                "{name}: {}",
                found[0].title
            );
            assert_eq!(
                (
                    found[0].short_title.as_str(),
                    found[0].short_action.as_str()
                ),
                (
                    format!("restarted {kills} time(s) by liveness").as_str(),
                    "check the liveness probe"
                ),
                "{name}"
            );
            assert!(
                found[0].evidence.contains(&"restartCount: 7".to_string()),
                "{name}"
            );
        }
    }
}

#[test]
fn human_durations() {
    struct Case {
        name: &'static str,
        seconds: i64,
        text: &'static str,
    }
    let cases = [
        Case {
            name: "under a minute: seconds",
            seconds: 40,
            text: "40s",
        },
        Case {
            name: "under an hour: minutes",
            seconds: 720,
            text: "12m",
        },
        Case {
            name: "a whole hour",
            seconds: 3600,
            text: "1h",
        },
        Case {
            name: "hours and minutes",
            seconds: 3900,
            text: "1h5m",
        },
    ];
    for case in cases {
        assert_eq!(
            human(SignedDuration::from_secs(case.seconds)),
            case.text,
            "{}",
            case.name
        );
    }
}

#[test]
fn the_latest_probe_kill_is_kept_for_the_start_up_measurement() {
    let liveness = "Container web failed liveness probe, will be restarted";
    let startup = "Container web failed startup probe, will be restarted";
    let timed = |message: &str, minutes_ago: i64, count: i32| {
        let mut e = event("Killing", message, "web", Some(count), None);
        e.last_timestamp = Some(at(minutes_ago));
        e
    };
    struct Case {
        name: &'static str,
        events: Vec<Event>,
        /// (probe, minutes ago, count); None: no kill kept.
        last_kill: Option<(ProbeKind, i64, i64)>,
        liveness_kills: i64,
    }
    let cases = [
        Case {
            name: "a startup probe kill: kept, and not a liveness restart",
            events: vec![timed(startup, 3, 4)],
            last_kill: Some((ProbeKind::Startup, 3, 4)),
            liveness_kills: 0,
        },
        Case {
            name: "the later of two kills",
            events: vec![timed(liveness, 1, 2), timed(startup, 9, 5)],
            last_kill: Some((ProbeKind::Liveness, 1, 2)),
            liveness_kills: 2,
        },
        Case {
            name: "the later of two kills, listed the other way round",
            events: vec![timed(startup, 9, 5), timed(liveness, 1, 2)],
            last_kill: Some((ProbeKind::Liveness, 1, 2)),
            liveness_kills: 2,
        },
        Case {
            name: "a kill with no time cannot be matched with a run",
            events: vec![event("Killing", startup, "web", Some(1), None)],
            last_kill: None,
            liveness_kills: 0,
        },
    ];
    for case in cases {
        let mut tallies = Tallies::new();
        for e in &case.events {
            tally_event(&mut tallies, e);
        }
        let tally = &tallies[&("shop".to_owned(), "web-1".to_owned(), "web".to_owned())];
        let kept = tally
            .last_kill
            .map(|k| (k.by, now().duration_since(k.at).as_mins(), k.count));
        assert_eq!(kept, case.last_kill, "{}", case.name);
        assert_eq!(tally.kills, case.liveness_kills, "{}", case.name);
    }
}
