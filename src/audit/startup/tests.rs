use super::*;
use crate::engine::test_support::object;
use crate::engine::{Context, mutate};
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStatus, PodCondition,
    PodStatus, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use k8s_openapi::jiff::SignedDuration;
use serde_json::{Value, json};

fn probe(initial_delay: Option<i32>, period: Option<i32>, failure_threshold: Option<i32>) -> Probe {
    Probe {
        tcp_socket: Some(TCPSocketAction {
            port: IntOrString::Int(8080),
            host: None,
        }),
        initial_delay_seconds: initial_delay,
        period_seconds: period,
        failure_threshold,
        ..Probe::default()
    }
}

#[test]
fn allowed_covers_every_probe_shape() {
    struct Case {
        name: &'static str,
        startup: Option<Probe>,
        liveness: Option<Probe>,
        /// (seconds, by); None: nothing kills a slow start.
        allowed: Option<(i64, ProbeKind)>,
    }
    let cases = [
        Case {
            name: "no probe that kills: nothing bounds the start",
            startup: None,
            liveness: None,
            allowed: None,
        },
        Case {
            name: "liveness alone, Kubernetes' defaults: 0 + 3 x 10",
            startup: None,
            liveness: Some(probe(None, None, None)),
            allowed: Some((30, ProbeKind::Liveness)),
        },
        Case {
            name: "liveness with an initial delay",
            startup: None,
            liveness: Some(probe(Some(5), Some(10), Some(3))),
            allowed: Some((35, ProbeKind::Liveness)),
        },
        Case {
            name: "a startup probe decides, whatever liveness allows",
            startup: Some(probe(None, Some(10), Some(30))),
            liveness: Some(probe(Some(600), Some(10), Some(3))),
            allowed: Some((300, ProbeKind::Startup)),
        },
        Case {
            name: "a startup probe alone, with a delay of its own",
            startup: Some(probe(Some(20), Some(5), Some(12))),
            liveness: None,
            allowed: Some((80, ProbeKind::Startup)),
        },
        Case {
            name: "values the API server would refuse are read as their minimum",
            startup: Some(probe(Some(-5), Some(0), Some(0))),
            liveness: None,
            allowed: Some((1, ProbeKind::Startup)),
        },
        Case {
            name: "the largest values do not overflow",
            startup: Some(probe(Some(i32::MAX), Some(i32::MAX), Some(i32::MAX))),
            liveness: None,
            allowed: Some((
                i64::from(i32::MAX) + i64::from(i32::MAX) * i64::from(i32::MAX),
                ProbeKind::Startup,
            )),
        },
    ];
    for case in cases {
        let got = allowed(case.startup.as_ref(), case.liveness.as_ref()).map(|a| (a.seconds, a.by));
        assert_eq!(got, case.allowed, "{}", case.name);
    }
}

fn now() -> Timestamp {
    "2026-06-01T12:00:00Z".parse().unwrap()
}

fn at(seconds_ago: i64) -> Time {
    Time(now() - SignedDuration::from_secs(seconds_ago))
}

struct Run {
    started: i64,
    /// The pod's containers ready, seconds ago (True); None: not ready.
    ready: Option<i64>,
    /// The last run: (started, finished) seconds ago.
    last: Option<(i64, i64)>,
}

fn container(
    name: &str,
    startup: Option<Probe>,
    liveness: Option<Probe>,
) -> k8s_openapi::api::core::v1::Container {
    k8s_openapi::api::core::v1::Container {
        name: name.into(),
        startup_probe: startup,
        liveness_probe: liveness,
        // What makes ready mean started.
        readiness_probe: Some(probe(None, None, None)),
        ..Default::default()
    }
}

fn pod_of(containers: Vec<k8s_openapi::api::core::v1::Container>, phase: &str, run: &Run) -> Pod {
    let statuses = containers
        .iter()
        .map(|c| ContainerStatus {
            name: c.name.clone(),
            state: Some(ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: Some(at(run.started)),
                }),
                ..ContainerState::default()
            }),
            last_state: run.last.map(|(started, finished)| ContainerState {
                terminated: Some(ContainerStateTerminated {
                    started_at: Some(at(started)),
                    finished_at: Some(at(finished)),
                    exit_code: 137,
                    ..ContainerStateTerminated::default()
                }),
                ..ContainerState::default()
            }),
            ..ContainerStatus::default()
        })
        .collect();
    Pod {
        metadata: ObjectMeta {
            name: Some("api-1".into()),
            namespace: Some("shop".into()),
            ..ObjectMeta::default()
        },
        spec: Some(k8s_openapi::api::core::v1::PodSpec {
            containers,
            ..Default::default()
        }),
        status: Some(PodStatus {
            phase: Some(phase.into()),
            conditions: Some(vec![PodCondition {
                type_: "ContainersReady".into(),
                status: if run.ready.is_some() { "True" } else { "False" }.into(),
                last_transition_time: Some(at(run.ready.unwrap_or(run.started))),
                ..PodCondition::default()
            }]),
            container_statuses: Some(statuses),
            ..PodStatus::default()
        }),
    }
}

#[test]
fn observe_reads_each_run_from_the_status() {
    struct Case {
        name: &'static str,
        pod: Pod,
        /// The container's kill, seconds ago.
        kill: Option<(ProbeKind, i64)>,
        seen: Vec<Result<Start, Unmeasured>>,
    }
    // 35 s of liveness (5 + 3 x 10), 60 s of startup (6 x 10).
    let liveness = || Some(probe(Some(5), Some(10), Some(3)));
    let startup = || Some(probe(None, Some(10), Some(6)));
    let one =
        |startup: Option<Probe>, liveness: Option<Probe>| vec![container("api", startup, liveness)];
    let run = |started, ready, last| Run {
        started,
        ready,
        last,
    };
    let running = |containers, run: Run| pod_of(containers, "Running", &run);
    let killed = |seconds, period, by| {
        Ok(Start::Killed {
            seconds,
            period,
            by,
            kills: 2,
        })
    };
    let without_readiness = {
        let mut c = container("api", None, liveness());
        c.readiness_probe = None;
        vec![c]
    };
    let with_sidecar = {
        let mut p = running(one(None, liveness()), run(300, Some(270), None));
        p.spec.as_mut().unwrap().init_containers =
            Some(vec![k8s_openapi::api::core::v1::Container {
                name: "proxy".into(),
                restart_policy: Some("Always".into()),
                ..Default::default()
            }]);
        p
    };
    let cases = [
        Case {
            name: "running and ready: the time from its start to ready",
            pod: running(one(None, liveness()), run(300, Some(270), None)),
            kill: None,
            seen: vec![Ok(Start::Ready { seconds: 30 })],
        },
        Case {
            name: "ready in the same second it started",
            pod: running(one(None, liveness()), run(300, Some(300), None)),
            kill: None,
            seen: vec![Ok(Start::Ready { seconds: 0 })],
        },
        Case {
            name: "ready at the last moment its probes allowed, and a period",
            pod: running(one(None, liveness()), run(300, Some(255), None)),
            kill: None,
            seen: vec![Ok(Start::Ready { seconds: 45 })],
        },
        Case {
            name: "ready after the probes would have killed it: readiness changed later",
            pod: running(one(None, liveness()), run(86_400, Some(300), None)),
            kill: None,
            seen: vec![Err(Unmeasured::ReadyLater)],
        },
        Case {
            name: "behind a startup probe, ready after its budget: readiness changed later",
            pod: running(one(startup(), liveness()), run(300, Some(200), None)),
            kill: None,
            seen: vec![Err(Unmeasured::ReadyLater)],
        },
        Case {
            name: "no readiness or startup probe: ready the moment it runs, not measured",
            pod: running(without_readiness, run(300, Some(300), None)),
            kill: None,
            seen: vec![Err(Unmeasured::NothingGatesReady)],
        },
        Case {
            name: "no probe that kills: nothing bounds the start, not measured",
            pod: running(one(None, None), run(300, Some(230), None)),
            kill: None,
            seen: vec![Err(Unmeasured::Unbounded)],
        },
        Case {
            name: "never ready: not measured",
            pod: running(one(None, liveness()), run(300, None, None)),
            kill: None,
            seen: vec![Err(Unmeasured::NotReady)],
        },
        Case {
            name: "ready before it started: a restart the condition never showed, or skew",
            pod: running(one(None, liveness()), run(300, Some(400), None)),
            kill: None,
            seen: vec![Err(Unmeasured::ReadyBeforeStart)],
        },
        Case {
            name: "a pod that is not running: nothing of its current run",
            pod: pod_of(one(None, liveness()), "Pending", &run(300, Some(270), None)),
            kill: None,
            seen: vec![],
        },
        Case {
            name: "several containers: the condition does not say whose start it was",
            pod: running(
                vec![
                    container("api", None, liveness()),
                    container("proxy", None, None),
                ],
                run(300, Some(270), None),
            ),
            kill: None,
            seen: vec![
                Err(Unmeasured::SeveralContainers),
                Err(Unmeasured::SeveralContainers),
            ],
        },
        Case {
            name: "a sidecar (an init container that keeps running) counts as another container",
            pod: with_sidecar,
            kill: None,
            seen: vec![Err(Unmeasured::SeveralContainers)],
        },
        Case {
            name: "restarted after a startup probe kill: the killed run and the current one",
            pod: running(
                one(startup(), liveness()),
                run(100, Some(50), Some((170, 105))),
            ),
            kill: Some((ProbeKind::Startup, 108)),
            seen: vec![
                Ok(Start::Ready { seconds: 50 }),
                killed(62, 10, ProbeKind::Startup),
            ],
        },
        Case {
            name: "a kill at the run's very start",
            pod: running(
                one(startup(), liveness()),
                run(100, Some(50), Some((170, 105))),
            ),
            kill: Some((ProbeKind::Startup, 170)),
            seen: vec![
                Ok(Start::Ready { seconds: 50 }),
                killed(0, 10, ProbeKind::Startup),
            ],
        },
        Case {
            name: "a kill 5 s after the run's recorded end: the same run",
            pod: running(
                one(startup(), liveness()),
                run(90, Some(50), Some((170, 105))),
            ),
            kill: Some((ProbeKind::Startup, 100)),
            seen: vec![
                Ok(Start::Ready { seconds: 40 }),
                killed(70, 10, ProbeKind::Startup),
            ],
        },
        Case {
            name: "a kill 6 s after the run's end: not this run's",
            pod: running(
                one(startup(), liveness()),
                run(90, Some(50), Some((170, 105))),
            ),
            kill: Some((ProbeKind::Startup, 99)),
            seen: vec![Ok(Start::Ready { seconds: 40 })],
        },
        Case {
            name: "a kill before the run started: not this run's",
            pod: running(
                one(startup(), liveness()),
                run(90, Some(50), Some((170, 105))),
            ),
            kill: Some((ProbeKind::Startup, 171)),
            seen: vec![Ok(Start::Ready { seconds: 40 })],
        },
        Case {
            name: "a liveness kill at the first moment the probes allowed: during start-up",
            pod: running(one(None, liveness()), run(100, None, Some((150, 110)))),
            kill: Some((ProbeKind::Liveness, 113)),
            seen: vec![
                Err(Unmeasured::NotReady),
                killed(37, 10, ProbeKind::Liveness),
            ],
        },
        Case {
            name: "a liveness kill long after the start: the container had started",
            pod: running(one(None, liveness()), run(100, Some(90), Some((4000, 110)))),
            kill: Some((ProbeKind::Liveness, 113)),
            seen: vec![Ok(Start::Ready { seconds: 10 })],
        },
        Case {
            name: "a liveness kill behind a startup probe: the start had succeeded",
            pod: running(
                one(startup(), liveness()),
                run(100, Some(90), Some((150, 110))),
            ),
            kill: Some((ProbeKind::Liveness, 113)),
            seen: vec![Ok(Start::Ready { seconds: 10 })],
        },
        Case {
            name: "a last run without a kill (it crashed): not a start-up kill",
            pod: running(
                one(startup(), liveness()),
                run(100, Some(90), Some((150, 110))),
            ),
            kill: None,
            seen: vec![Ok(Start::Ready { seconds: 10 })],
        },
    ];
    for case in cases {
        let asked = std::cell::RefCell::new(Vec::new());
        let kill = |name: &str| {
            asked.borrow_mut().push(name.to_owned());
            case.kill.filter(|_| name == "api").map(|(by, ago)| Kill {
                by,
                at: at(ago).0,
                count: 2,
            })
        };
        let seen: Vec<Result<Start, Unmeasured>> = observe(&case.pod, kill)
            .into_iter()
            .map(|(_, outcome)| outcome)
            .collect();
        assert_eq!(seen, case.seen, "{}", case.name);
        let containers: Vec<String> = case
            .pod
            .spec
            .iter()
            .flat_map(|s| &s.containers)
            .map(|c| c.name.clone())
            .collect();
        assert_eq!(
            *asked.borrow(),
            containers,
            "{}: each container's kill asked for by its name",
            case.name
        );
    }
}

fn budget(allowed: Option<Allowed>, origin: Origin, floor: i64) -> Budget {
    Budget {
        container: "api".into(),
        allowed,
        origin,
        floor,
        liveness: Some(probe(Some(5), Some(10), Some(3))),
        annotation_applies: true,
    }
}

fn allowed_by(seconds: i64, by: ProbeKind, initial_delay: i64, period: i64) -> Option<Allowed> {
    Some(Allowed {
        seconds,
        by,
        initial_delay,
        period,
        failure_threshold: (seconds - initial_delay) / period,
    })
}

fn workload() -> Workload {
    Workload {
        namespace: "shop".into(),
        kind: Kind::Deployment,
        name: "api".into(),
    }
}

fn observed(ready: &[i64], killed: &[i64]) -> Observed {
    let mut observed = Observed::default();
    for (i, s) in ready.iter().enumerate() {
        observed.add(&format!("api-{i}"), Ok(Start::Ready { seconds: *s }));
    }
    for (i, s) in killed.iter().enumerate() {
        observed.add(
            &format!("api-k{i}"),
            Ok(Start::Killed {
                seconds: *s,
                period: 10,
                by: ProbeKind::Startup,
                kills: 3,
            }),
        );
    }
    observed
}

#[test]
fn the_margin_rounding_and_floor_of_a_suggestion() {
    struct Case {
        name: &'static str,
        budget: Budget,
        longest: i64,
        suggested: Option<i64>,
    }
    let liveness_35 = allowed_by(35, ProbeKind::Liveness, 5, 10);
    let cases = [
        Case {
            name: "slower than allowed: the slowest plus half, in whole periods, over the floor",
            budget: budget(liveness_35, Origin::Workload, 30),
            longest: 70,
            suggested: Some(110),
        },
        Case {
            name: "never below the budget probegate gives it anyway",
            budget: budget(liveness_35, Origin::Workload, 300),
            longest: 70,
            suggested: Some(300),
        },
        Case {
            name: "a fast start gets at least 30 s more",
            budget: budget(
                allowed_by(5, ProbeKind::Liveness, 0, 5),
                Origin::Workload,
                0,
            ),
            longest: 8,
            suggested: Some(40),
        },
        Case {
            name: "rounded up to the probe's period",
            budget: budget(
                allowed_by(60, ProbeKind::Startup, 0, 7),
                Origin::Workload,
                0,
            ),
            longest: 65,
            suggested: Some(98),
        },
        Case {
            name: "the default is plenty: no suggestion",
            budget: budget(
                allowed_by(300, ProbeKind::Startup, 0, 10),
                Origin::WouldBeAdded,
                300,
            ),
            longest: 3,
            suggested: None,
        },
        Case {
            name: "within the budget and close to what is needed: no suggestion",
            budget: budget(
                allowed_by(120, ProbeKind::Startup, 0, 10),
                Origin::Workload,
                60,
            ),
            longest: 70,
            suggested: None,
        },
        Case {
            name: "raised far above what is needed: brought down to the floor",
            budget: budget(
                allowed_by(600, ProbeKind::Startup, 0, 10),
                Origin::Workload,
                300,
            ),
            longest: 70,
            suggested: Some(300),
        },
        Case {
            name: "above what is needed, but not twice: no suggestion",
            budget: budget(
                allowed_by(500, ProbeKind::Startup, 0, 10),
                Origin::Workload,
                300,
            ),
            longest: 70,
            suggested: None,
        },
    ];
    for case in cases {
        let allowed = case.budget.allowed.unwrap();
        assert_eq!(
            suggested(&case.budget, &allowed, case.longest),
            case.suggested,
            "{}",
            case.name
        );
    }
}

#[test]
fn assess_finds_and_suggests_from_what_was_seen() {
    struct Case {
        name: &'static str,
        budget: Budget,
        observed: Observed,
        types: Vec<FindingType>,
        change: Option<Change>,
    }
    let liveness_35 = allowed_by(35, ProbeKind::Liveness, 5, 10);
    let startup_60 = allowed_by(60, ProbeKind::Startup, 0, 10);
    let too_short = FindingType::StartupBudgetTooShort;
    let suggested = FindingType::StartupBudgetSuggested;
    let cases = [
        Case {
            name: "a fast app well inside the default: measured, nothing found",
            budget: budget(
                allowed_by(300, ProbeKind::Startup, 0, 10),
                Origin::WouldBeAdded,
                300,
            ),
            observed: observed(&[2, 3, 4], &[]),
            types: vec![],
            change: None,
        },
        Case {
            name: "a JVM whose own liveness allows less than its starts: a startup probe beside it",
            budget: budget(liveness_35, Origin::Workload, 300),
            observed: observed(&[62, 70, 48], &[]),
            types: vec![too_short, suggested],
            change: Some(Change::StartupProbe(Box::new(Probe {
                tcp_socket: Some(TCPSocketAction {
                    port: IntOrString::Int(8080),
                    host: None,
                }),
                period_seconds: Some(10),
                failure_threshold: Some(30),
                ..Probe::default()
            }))),
        },
        Case {
            name: "within 20% of the allowed time is too close",
            budget: budget(
                allowed_by(80, ProbeKind::Startup, 0, 10),
                Origin::Workload,
                60,
            ),
            observed: observed(&[70], &[]),
            types: vec![too_short, suggested],
            change: Some(Change::FailureThreshold {
                failure_threshold: 11,
                annotation: None,
            }),
        },
        Case {
            name: "more than 20% to spare: neither too short nor worth changing",
            budget: budget(
                allowed_by(90, ProbeKind::Startup, 0, 10),
                Origin::Workload,
                60,
            ),
            observed: observed(&[70], &[]),
            types: vec![],
            change: None,
        },
        Case {
            name: "far longer than needed, the workload's own startup probe: fewer tries",
            budget: budget(
                allowed_by(600, ProbeKind::Startup, 0, 10),
                Origin::Workload,
                60,
            ),
            observed: observed(&[40], &[]),
            types: vec![suggested],
            change: Some(Change::FailureThreshold {
                failure_threshold: 7,
                annotation: None,
            }),
        },
        Case {
            name: "far longer than needed, behind an initial delay longer than the suggestion: no change can",
            budget: budget(
                allowed_by(600, ProbeKind::Startup, 200, 10),
                Origin::Workload,
                60,
            ),
            observed: observed(&[40], &[]),
            types: vec![],
            change: None,
        },
        Case {
            name: "a liveness probe that waits far longer than needed: no startup probe is added to cut it",
            budget: budget(
                allowed_by(630, ProbeKind::Liveness, 600, 10),
                Origin::Workload,
                60,
            ),
            observed: observed(&[40], &[]),
            types: vec![],
            change: None,
        },
        Case {
            name: "killed during start-up under the webhook's startup probe: the annotation",
            budget: budget(startup_60, Origin::WouldBeAdded, 60),
            observed: observed(&[95], &[61]),
            types: vec![too_short, suggested],
            change: Some(Change::Annotation { seconds: 150 }),
        },
        Case {
            name: "kills alone are evidence: the run they cut short, and a period, sets the need",
            budget: budget(startup_60, Origin::WouldBeAdded, 60),
            observed: observed(&[], &[56, 50]),
            types: vec![too_short, suggested],
            change: Some(Change::Annotation { seconds: 100 }),
        },
        Case {
            name: "kills under an earlier, shorter budget: the current one covers them",
            budget: budget(
                allowed_by(150, ProbeKind::Startup, 0, 10),
                Origin::WouldBeAdded,
                60,
            ),
            observed: observed(&[95], &[56]),
            types: vec![],
            change: None,
        },
        Case {
            name: "probegate's own startup probe: its failureThreshold and the annotation",
            budget: budget(startup_60, Origin::Probegate, 60),
            observed: observed(&[95], &[]),
            types: vec![too_short, suggested],
            change: Some(Change::FailureThreshold {
                failure_threshold: 15,
                annotation: Some(150),
            }),
        },
        Case {
            name: "probegate's probe where the webhook never looks: no annotation",
            budget: Budget {
                annotation_applies: false,
                ..budget(startup_60, Origin::Probegate, 60)
            },
            observed: observed(&[95], &[]),
            types: vec![too_short, suggested],
            change: Some(Change::FailureThreshold {
                failure_threshold: 15,
                annotation: None,
            }),
        },
        Case {
            name: "an initial delay counts toward the budget",
            budget: budget(
                allowed_by(60, ProbeKind::Startup, 20, 10),
                Origin::Workload,
                60,
            ),
            observed: observed(&[95], &[]),
            types: vec![too_short, suggested],
            change: Some(Change::FailureThreshold {
                failure_threshold: 13,
                annotation: None,
            }),
        },
        Case {
            name: "nothing kills a slow start: measured, nothing found",
            budget: budget(None, Origin::Workload, 300),
            observed: observed(&[700], &[]),
            types: vec![],
            change: None,
        },
        Case {
            name: "nothing measured: nothing found",
            budget: budget(liveness_35, Origin::Workload, 300),
            observed: Observed::default(),
            types: vec![],
            change: None,
        },
    ];
    for case in cases {
        let assessment = assess(&workload(), &case.budget, &case.observed);
        let types: Vec<FindingType> = assessment.findings.iter().map(|f| f.finding_type).collect();
        assert_eq!(types, case.types, "{}", case.name);
        assert_eq!(
            assessment.change.as_ref().map(|c| &c.change),
            case.change.as_ref(),
            "{}",
            case.name
        );
        for finding in &assessment.findings {
            assert_eq!(finding.kind, "Deployment", "{}", case.name);
            assert_eq!(finding.container.as_deref(), Some("api"), "{}", case.name);
            assert!(
                finding.evidence.iter().any(|e| e.starts_with("allowed: ")),
                "{}: {:?}",
                case.name,
                finding.evidence
            );
        }
    }
}

#[test]
fn the_table_says_each_finding_and_change_in_a_few_words() {
    struct Case {
        name: &'static str,
        budget: Budget,
        observed: Observed,
        /// (short title, short action) of each finding.
        short: Vec<(&'static str, &'static str)>,
    }
    let startup_60 = allowed_by(60, ProbeKind::Startup, 0, 10);
    let cases = [
        Case {
            name: "the webhook's probe: the annotation",
            budget: budget(startup_60, Origin::WouldBeAdded, 60),
            observed: observed(&[95], &[61]),
            short: vec![
                (
                    "start-up budget 60s too short",
                    "lengthen it: audit --suggest",
                ),
                (
                    "suggested start-up budget 150s",
                    "set probegate.io/startup-seconds: \"150\"",
                ),
            ],
        },
        Case {
            name: "the workload's startup probe: its failureThreshold",
            budget: budget(
                allowed_by(600, ProbeKind::Startup, 0, 10),
                Origin::Workload,
                60,
            ),
            observed: observed(&[40], &[]),
            short: vec![("suggested start-up budget 70s", "set failureThreshold: 7")],
        },
        Case {
            name: "probegate's probe, added at creation: its threshold and the annotation",
            budget: budget(startup_60, Origin::Probegate, 60),
            observed: observed(&[95], &[61]),
            short: vec![
                (
                    "start-up budget 60s too short",
                    "lengthen it: audit --suggest",
                ),
                (
                    "suggested start-up budget 150s",
                    "failureThreshold 15, startup-seconds 150",
                ),
            ],
        },
        Case {
            name: "liveness alone: a startup probe beside it",
            budget: budget(
                allowed_by(35, ProbeKind::Liveness, 5, 10),
                Origin::Workload,
                300,
            ),
            observed: observed(&[62, 70, 48], &[]),
            short: vec![
                (
                    "start-up budget 35s too short",
                    "lengthen it: audit --suggest",
                ),
                ("suggested start-up budget 300s", "add a startupProbe"),
            ],
        },
    ];
    for case in cases {
        let assessment = assess(&workload(), &case.budget, &case.observed);
        let short: Vec<(&str, &str)> = assessment
            .findings
            .iter()
            .map(|f| (f.short_title.as_str(), f.short_action.as_str()))
            .collect();
        assert_eq!(short, case.short, "{}", case.name);
    }
}

#[test]
fn the_measurement_names_its_numbers_and_pods() {
    let mut seen = observed(&[62, 70, 48, 50], &[61]);
    seen.add("api-9", Err(Unmeasured::NotReady));
    let assessment = assess(
        &workload(),
        &budget(
            allowed_by(35, ProbeKind::Liveness, 5, 10),
            Origin::Workload,
            300,
        ),
        &seen,
    );
    let m = &assessment.measurement;
    assert_eq!(m.starts, 4);
    assert_eq!(
        m.median_seconds,
        Some(50),
        "the lower middle of an even count"
    );
    assert_eq!(m.max_seconds, Some(70));
    assert_eq!(m.killed_during_startup, 1);
    assert_eq!(m.pods, ["api-0", "api-1", "api-2", "api-3", "api-k0"]);
    assert_eq!(m.not_measured.get("not ready"), Some(&1));
    assert_eq!(
        (m.allowed_seconds, m.allowed_by),
        (Some(35), Some("livenessProbe"))
    );
    assert_eq!(m.suggested_seconds, Some(300));
    let too_short = &assessment.findings[0];
    assert!(
        too_short.message.contains("allows 35s"),
        "{}",
        too_short.message
    );
    assert!(
        too_short
            .evidence
            .contains(&"4 start(s) measured: median 50s, max 70s (pod api-1)".to_owned()),
        "{:?}",
        too_short.evidence
    );
    assert!(
        too_short
            .evidence
            .iter()
            .any(|e| e.contains("pod api-k0: killed for a failed startup probe 61s")),
        "{:?}",
        too_short.evidence
    );
}

fn deployment(annotations: Value, container: Value) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "api", "namespace": "shop"},
        "spec": {"selector": {"matchLabels": {"app": "api"}},
            "template": {"metadata": {"labels": {"app": "api"}, "annotations": annotations},
                "spec": {"containers": [container]}}}})
}

#[test]
fn budgets_are_the_probes_the_pods_get() {
    struct Case {
        name: &'static str,
        workload: Value,
        namespace: &'static [(&'static str, &'static str)],
        /// Whether the webhook sees the namespace.
        sent: bool,
        allowed: Option<(i64, ProbeKind)>,
        origin: Origin,
        floor: i64,
    }
    let web = json!({"name": "api", "image": "example.com/api:1", "ports": [{"name": "http", "containerPort": 8080}]});
    let own_liveness = json!({"name": "api", "image": "example.com/api:1",
        "livenessProbe": {"httpGet": {"path": "/health", "port": 8080}, "initialDelaySeconds": 5}});
    let cases = [
        Case {
            name: "no probes, a port alone: readiness only (liveness would repeat it), nothing bounds the start",
            workload: deployment(json!({}), web.clone()),
            namespace: &[],
            sent: true,
            allowed: None,
            origin: Origin::Workload,
            floor: 300,
        },
        Case {
            name: "a startup probe asked for: the one the webhook adds",
            workload: deployment(json!({}), web.clone()),
            namespace: &[("probegate.io/probes", "liveness,readiness,startup")],
            sent: true,
            allowed: Some((300, ProbeKind::Startup)),
            origin: Origin::WouldBeAdded,
            floor: 300,
        },
        Case {
            name: "the workload's startup-seconds sizes it; the floor stays the namespace's",
            workload: deployment(json!({"probegate.io/startup-seconds": "600"}), web.clone()),
            namespace: &[
                ("probegate.io/startup-seconds", "120"),
                ("probegate.io/probes", "liveness,readiness,startup"),
            ],
            sent: true,
            allowed: Some((600, ProbeKind::Startup)),
            origin: Origin::WouldBeAdded,
            floor: 120,
        },
        Case {
            name: "its own liveness probe: the workload's",
            workload: deployment(json!({}), own_liveness.clone()),
            namespace: &[],
            sent: true,
            allowed: Some((35, ProbeKind::Liveness)),
            origin: Origin::Workload,
            floor: 300,
        },
        Case {
            name: "a startup probe probegate's record names: probegate's",
            workload: deployment(
                json!({"probegate.io/injected": "api=liveness,readiness,startup"}),
                json!({"name": "api", "image": "example.com/api:1",
                    "startupProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 10, "failureThreshold": 30},
                    "livenessProbe": {"tcpSocket": {"port": 8080}}}),
            ),
            namespace: &[],
            sent: true,
            allowed: Some((300, ProbeKind::Startup)),
            origin: Origin::Probegate,
            floor: 300,
        },
        Case {
            name: "well-known software: the catalogue's budget is the floor",
            workload: deployment(json!({}), json!({"name": "api", "image": "nats:2.10"})),
            namespace: &[],
            sent: true,
            allowed: Some((900, ProbeKind::Startup)),
            origin: Origin::WouldBeAdded,
            floor: 900,
        },
        Case {
            name: "a namespace the webhook never sees: the workload's own probes only",
            workload: deployment(json!({}), web.clone()),
            namespace: &[],
            sent: false,
            allowed: None,
            origin: Origin::Workload,
            floor: 300,
        },
    ];
    for case in cases {
        let workload = object(case.workload);
        let layer: BTreeMap<String, String> = case
            .namespace
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let layers = [&layer];
        let catalogue = Catalogue::builtin();
        let mutation = mutate(
            &workload,
            &Context {
                layers: &layers,
                ..Context::default()
            },
        );
        let got = budgets(
            &workload,
            case.sent.then_some(&mutation),
            &layers,
            catalogue,
        );
        assert_eq!(got.len(), 1, "{}", case.name);
        let b = &got[0];
        assert_eq!(
            b.allowed.map(|a| (a.seconds, a.by)),
            case.allowed,
            "{}",
            case.name
        );
        assert_eq!(b.origin, case.origin, "{}", case.name);
        assert_eq!(b.floor, case.floor, "{}", case.name);
        assert_eq!(b.annotation_applies, case.sent, "{}", case.name);
    }
}

fn owned_by(kind: &str, name: &str) -> Pod {
    Pod {
        metadata: ObjectMeta {
            name: Some("p".into()),
            namespace: Some("shop".into()),
            owner_references: Some(vec![OwnerReference {
                api_version: "apps/v1".into(),
                kind: kind.into(),
                name: name.into(),
                controller: Some(true),
                ..OwnerReference::default()
            }]),
            ..ObjectMeta::default()
        },
        ..Pod::default()
    }
}

#[test]
fn a_pod_is_traced_to_the_workload_whose_template_made_it() {
    let mut controllers = Controllers::default();
    let revision = |r: Option<&str>| r.map(|r| json!({"deployment.kubernetes.io/revision": r}));
    let meta = |kind: &str, owner: Option<(&str, &str)>, name: &str, r: Option<&str>| {
        let owners = owner.map(|(kind, owner)| {
            json!([{"apiVersion": "apps/v1", "kind": kind, "name": owner, "uid": "u", "controller": true}])
        });
        object(json!({"apiVersion": "apps/v1", "kind": kind,
            "metadata": {"name": name, "namespace": "shop", "ownerReferences": owners,
                "annotations": revision(r)},
            "spec": {"selector": {}, "template": {"spec": {"containers": []}}}}))
    };
    for (kind, owner, name, r) in [
        ("Deployment", None, "web", Some("3")),
        (
            "ReplicaSet",
            Some(("Deployment", "web")),
            "web-5d8f",
            Some("3"),
        ),
        (
            "ReplicaSet",
            Some(("Deployment", "web")),
            "web-4c2a",
            Some("2"),
        ),
        (
            "ReplicaSet",
            Some(("Deployment", "api")),
            "api-1b2c",
            Some("7"),
        ),
        ("ReplicaSet", None, "alone", None),
        ("ReplicaSet", Some(("Rollout", "canary")), "canary-77", None),
    ] {
        let listed = meta(kind, owner, name, r);
        controllers.note(listed.kind, "shop", listed.meta());
    }
    let workload = |kind, name: &str, older: bool| {
        Some((
            Workload {
                namespace: "shop".into(),
                kind,
                name: name.into(),
            },
            older,
        ))
    };
    let bare = Pod {
        metadata: ObjectMeta {
            name: Some("bare".into()),
            namespace: Some("shop".into()),
            ..ObjectMeta::default()
        },
        ..Pod::default()
    };
    let cases = [
        (
            "a Deployment's current ReplicaSet: the Deployment",
            owned_by("ReplicaSet", "web-5d8f"),
            workload(Kind::Deployment, "web", false),
        ),
        (
            "a Deployment's older ReplicaSet: the Deployment, of an older template",
            owned_by("ReplicaSet", "web-4c2a"),
            workload(Kind::Deployment, "web", true),
        ),
        (
            "a revision with nothing to compare it with: taken as current",
            owned_by("ReplicaSet", "api-1b2c"),
            workload(Kind::Deployment, "api", false),
        ),
        (
            "a ReplicaSet of its own",
            owned_by("ReplicaSet", "alone"),
            workload(Kind::ReplicaSet, "alone", false),
        ),
        (
            "a ReplicaSet another controller owns: unknown",
            owned_by("ReplicaSet", "canary-77"),
            None,
        ),
        (
            "a ReplicaSet not listed: unknown",
            owned_by("ReplicaSet", "gone-1"),
            None,
        ),
        (
            "a StatefulSet",
            owned_by("StatefulSet", "db"),
            workload(Kind::StatefulSet, "db", false),
        ),
        (
            "a DaemonSet",
            owned_by("DaemonSet", "agent"),
            workload(Kind::DaemonSet, "agent", false),
        ),
        (
            "a Job's pod: batch, not measured",
            owned_by("Job", "migrate"),
            None,
        ),
        (
            "a bare pod: itself",
            bare,
            workload(Kind::Pod, "bare", false),
        ),
    ];
    for (name, pod, expected) in cases {
        assert_eq!(controllers.workload_of(&pod), expected, "{name}");
    }
}

#[test]
fn one_annotation_never_cuts_another_containers_budget() {
    let named = |container: &str, allowed, origin| Budget {
        container: container.into(),
        ..budget(allowed, origin, 60)
    };
    let budgets = [
        named(
            "app",
            allowed_by(60, ProbeKind::Startup, 0, 10),
            Origin::WouldBeAdded,
        ),
        named(
            "nats",
            allowed_by(900, ProbeKind::Startup, 0, 10),
            Origin::WouldBeAdded,
        ),
        named(
            "agent",
            allowed_by(400, ProbeKind::Startup, 0, 10),
            Origin::Probegate,
        ),
        named(
            "own",
            allowed_by(1200, ProbeKind::Startup, 0, 10),
            Origin::Workload,
        ),
        named(
            "live",
            allowed_by(2000, ProbeKind::Liveness, 0, 10),
            Origin::WouldBeAdded,
        ),
    ];
    let change = |container: &str| ContainerChange {
        container: container.into(),
        seconds: 150,
        change: Change::Annotation { seconds: 150 },
        why: String::new(),
    };
    // The catalogue's 900 s for nats stays; the workload's own probe and a liveness
    // budget are not the annotation's to size.
    assert_eq!(annotation_at_least(&budgets, &[change("app")]), 900);
    assert_eq!(
        annotation_at_least(&budgets, &[change("app"), change("nats")]),
        400
    );
    assert_eq!(annotation_at_least(&budgets[..1], &[change("app")]), 0);
}
