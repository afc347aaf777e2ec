//! Start-up budgets from the cluster's own history: how long each workload's containers
//! took to start, from their pods' statuses and the kubelet's Events, against the time
//! their probes allow before the first kill. Pure: typed Pods, probes and the engine's
//! answer in, measurements, findings and suggestions out; the clock is never read.
//!
//! A start is measured from a container's `state.running.startedAt` to the pod's
//! `ContainersReady` condition turning True. That condition covers all of a pod's
//! containers, so only pods of one container are measured: in a pod of several, the
//! condition does not say which became ready last. A run the kubelet killed for a failed
//! startup probe, or for a failed liveness probe before the probes could have let it pass,
//! counts as a start that took at least as long as it ran.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::{ContainerStatus, Pod, Probe};
use k8s_openapi::jiff::Timestamp;
use serde::Serialize;

use super::report::{Finding, FindingType};
use crate::engine::catalogue::Catalogue;
use crate::engine::kinds::DEPLOYMENT_REVISION;
use crate::engine::object::{Container, Meta, Object};
use crate::engine::{Kind, Mutation, command_line, probes, record, serves};
use crate::policy::{INJECTED_ANNOTATION, Layer, ProbeKind, STARTUP_SECONDS, Settings};

/// Kubernetes' values for probe fields left unset: `periodSeconds` "Default to 10
/// seconds", `failureThreshold` "Defaults to 3" (API reference, `Probe`), and
/// `initialDelaySeconds` 0 (https://kubernetes.io/docs/tasks/configure-pod-container/configure-liveness-readiness-startup-probes/#configure-probes).
const DEFAULT_PERIOD_SECONDS: i64 = 10;
const DEFAULT_FAILURE_THRESHOLD: i64 = 3;

/// A start within this share of the allowed time is too close: the next slower one is a
/// restart loop.
const TOO_CLOSE_PERCENT: i64 = 20;

/// A suggested budget covers the slowest start seen plus half of it, and at least this.
const MIN_MARGIN_SECONDS: i64 = 30;

/// The time a container's probes allow before the first kill: a startup probe's, else
/// liveness's `initialDelaySeconds + failureThreshold x periodSeconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowed {
    pub seconds: i64,
    /// The probe that decides it: startup, else liveness.
    pub by: ProbeKind,
    pub initial_delay: i64,
    pub period: i64,
    pub failure_threshold: i64,
}

impl Allowed {
    /// `startupProbe: 0 + 30 x 10s = 300s`.
    fn describe(&self) -> String {
        format!(
            "{}: initialDelaySeconds {} + failureThreshold {} x periodSeconds {} = {}s",
            self.by.field(),
            self.initial_delay,
            self.failure_threshold,
            self.period,
            self.seconds
        )
    }
}

/// What `startup` and `liveness` allow; `None` when neither is set, so nothing kills a slow
/// start.
pub fn allowed(startup: Option<&Probe>, liveness: Option<&Probe>) -> Option<Allowed> {
    let (by, probe) = match (startup, liveness) {
        (Some(probe), _) => (ProbeKind::Startup, probe),
        (None, Some(probe)) => (ProbeKind::Liveness, probe),
        (None, None) => return None,
    };
    let initial_delay = probe.initial_delay_seconds.map_or(0, i64::from).max(0);
    let period = probe
        .period_seconds
        .map_or(DEFAULT_PERIOD_SECONDS, i64::from)
        .max(1);
    let failure_threshold = probe
        .failure_threshold
        .map_or(DEFAULT_FAILURE_THRESHOLD, i64::from)
        .max(1);
    Some(Allowed {
        seconds: initial_delay + failure_threshold * period,
        by,
        initial_delay,
        period,
        failure_threshold,
    })
}

/// Who wrote the probe that decides a container's budget, which decides how to change it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Origin {
    /// The workload's own probe.
    Workload,
    /// A probe probegate added when the workload was created (its `probegate.io/injected`
    /// record says so).
    Probegate,
    /// A probe the webhook would add to the next pods.
    WouldBeAdded,
}

/// What one container of a workload's template allows, and what probegate would give it.
#[derive(Debug, Clone, PartialEq)]
pub struct Budget {
    pub container: String,
    pub allowed: Option<Allowed>,
    pub origin: Origin,
    /// The budget probegate gives the container anyway: the catalogue's for its software,
    /// else `startup-seconds` from the cluster and namespace (not the workload's own).
    pub floor: i64,
    /// The container's own liveness probe, for a startup probe to be added beside it.
    pub liveness: Option<Probe>,
    /// Whether the webhook reads the workload's annotations (it never sees some namespaces).
    pub annotation_applies: bool,
}

/// Each container's budget in `workload`'s template: its own probes, else those in the
/// engine's answer (`mutation`, `None` where the webhook never sees the namespace).
/// `layers` are the cluster defaults and the namespace's annotations.
pub fn budgets(
    workload: &Object<'_>,
    mutation: Option<&Mutation>,
    layers: &[&BTreeMap<String, String>],
    catalogue: &Catalogue,
) -> Vec<Budget> {
    let Some(parts) = workload.pod_parts() else {
        return Vec::new();
    };
    let layers: Vec<&dyn Layer> = layers.iter().map(|l| *l as &dyn Layer).collect();
    let (settings, _) = Settings::resolve(&layers);
    let record = parts
        .pod_meta
        .and_then(|m| m.annotation(INJECTED_ANNOTATION))
        .unwrap_or_default();
    parts
        .spec
        .containers
        .iter()
        .map(|container| {
            let added = mutation
                .and_then(|m| {
                    m.plan
                        .probes
                        .iter()
                        .find(|c| c.container == container.name.as_str())
                })
                .map(|c| c.added.as_slice())
                .unwrap_or_default();
            let probe = |kind: ProbeKind| {
                probes::existing(container, kind)
                    .map(|p| (p, false))
                    .or_else(|| {
                        added
                            .iter()
                            .find(|(k, _)| *k == kind)
                            .map(|(_, p)| (p, true))
                    })
            };
            let (startup, liveness) = (probe(ProbeKind::Startup), probe(ProbeKind::Liveness));
            let allowed = allowed(startup.map(|p| p.0), liveness.map(|p| p.0));
            let deciding = startup.or(liveness);
            let origin = match (deciding, allowed) {
                (Some((_, true)), _) => Origin::WouldBeAdded,
                (Some(_), Some(a)) if record::added(record, container.name.as_str(), a.by) => {
                    Origin::Probegate
                }
                _ => Origin::Workload,
            };
            Budget {
                container: container.name.as_str().to_owned(),
                allowed,
                origin,
                floor: floor(container, &settings, catalogue),
                liveness: probes::existing(container, ProbeKind::Liveness).cloned(),
                annotation_applies: mutation.is_some(),
            }
        })
        .collect()
}

/// The start-up time probegate gives `container` without the workload's own say: the
/// catalogue's for its software where longer, as the probes rule gives it.
fn floor(container: &Container<'_>, settings: &Settings, catalogue: &Catalogue) -> i64 {
    let flags = command_line::flags(container);
    let software = serves::known(container, &flags, catalogue, false)
        .known
        .and_then(|k| k.startup_seconds);
    i64::from(software.map_or(settings.startup_seconds, |s| {
        s.max(settings.startup_seconds)
    }))
}

/// A ReplicaSet's Deployment, and the revision of it the ReplicaSet holds.
#[derive(Debug)]
struct Owned {
    deployment: String,
    revision: Option<String>,
}

/// The Deployments and ReplicaSets listed, for pods to be traced to the template that made
/// them.
#[derive(Debug, Default)]
pub struct Controllers {
    /// Each ReplicaSet, by namespace and name: the Deployment that controls it and the
    /// revision it holds; `None` for one no controller owns (a workload of its own).
    replica_sets: HashMap<(String, String), Option<Owned>>,
    /// Each Deployment's current revision.
    revisions: HashMap<(String, String), String>,
}

impl Controllers {
    /// Notes a listed Deployment or ReplicaSet. A ReplicaSet another controller owns is
    /// left out: the audit does not know that controller's template.
    pub fn note(&mut self, kind: Kind, namespace: &str, meta: &Meta<'_>) {
        let key = (
            namespace.to_owned(),
            meta.name.as_deref().unwrap_or_default().to_owned(),
        );
        let revision = meta.annotation(DEPLOYMENT_REVISION).map(str::to_owned);
        match kind {
            Kind::Deployment => {
                if let Some(revision) = revision {
                    self.revisions.insert(key, revision);
                }
            }
            Kind::ReplicaSet => {
                let deployment = match meta.owners().find(|o| o.controller == Some(true)) {
                    None => None,
                    Some(owner) if owner.kind.as_str() == Kind::Deployment.name() => Some(Owned {
                        deployment: owner.name.as_str().to_owned(),
                        revision,
                    }),
                    Some(_) => return,
                };
                self.replica_sets.insert(key, deployment);
            }
            _ => {}
        }
    }

    /// The workload whose template made `pod`: its Deployment (through its ReplicaSet), its
    /// StatefulSet or DaemonSet, or the pod itself when no controller owns it; and whether
    /// it is of an older template (a ReplicaSet of an earlier Deployment revision). `None`
    /// for a pod of another controller (a Job's, a custom resource's).
    pub fn workload_of(&self, pod: &Pod) -> Option<(Workload, bool)> {
        let namespace = pod.metadata.namespace.clone().unwrap_or_default();
        let controller = pod
            .metadata
            .owner_references
            .iter()
            .flatten()
            .find(|o| o.controller == Some(true));
        let mut older = false;
        let (kind, name) = match controller {
            None => (Kind::Pod, pod.metadata.name.clone().unwrap_or_default()),
            Some(owner) if owner.kind == Kind::ReplicaSet.name() => {
                match self
                    .replica_sets
                    .get(&(namespace.clone(), owner.name.clone()))?
                {
                    Some(Owned {
                        deployment,
                        revision,
                    }) => {
                        let current = self.revisions.get(&(namespace.clone(), deployment.clone()));
                        older = matches!((revision, current), (Some(r), Some(c)) if r != c);
                        (Kind::Deployment, deployment.clone())
                    }
                    None => (Kind::ReplicaSet, owner.name.clone()),
                }
            }
            Some(owner) if owner.kind == Kind::StatefulSet.name() => {
                (Kind::StatefulSet, owner.name.clone())
            }
            Some(owner) if owner.kind == Kind::DaemonSet.name() => {
                (Kind::DaemonSet, owner.name.clone())
            }
            Some(_) => return None,
        };
        let workload = Workload {
            namespace,
            kind,
            name,
        };
        Some((workload, older))
    }
}

/// The kubelet's latest kill of a container for a failed probe, from its `Killing` Event
/// ("Container NAME failed liveness probe, will be restarted", or startup: kubelet
/// `pkg/kubelet/kuberuntime/kuberuntime_manager.go`, `computePodActions`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Kill {
    pub by: ProbeKind,
    /// The event's last time.
    pub at: Timestamp,
    /// How many kills the event counts.
    pub count: i64,
}

/// One run of one container, as its pod shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// Started, and the pod's containers were ready this many seconds later.
    Ready { seconds: i64 },
    /// Killed for a failed probe this many seconds after it started, before it could have
    /// passed: the start needs longer, at least until the probe's next attempt (`period`).
    Killed {
        seconds: i64,
        period: i64,
        by: ProbeKind,
        kills: i64,
    },
}

/// Why a running container's start was not measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Unmeasured {
    /// Its pod's containers are not ready (yet, or ever).
    NotReady,
    /// The containers became ready before this run started, by the status: clock skew, or a
    /// restart the conditions never showed.
    ReadyBeforeStart,
    /// The pod has several containers; its condition does not say which was last.
    SeveralContainers,
    /// No readiness or startup probe: ready the moment it runs, which says nothing.
    NothingGatesReady,
    /// No startup or liveness probe: nothing bounds the start, so a later readiness change
    /// cannot be told from it.
    Unbounded,
    /// Ready later than its probes would have let it live unstarted: readiness changed after
    /// the start.
    ReadyLater,
    /// A pod of a Deployment's older ReplicaSet: another template's.
    OlderRevision,
}

impl Unmeasured {
    fn describe(self) -> &'static str {
        match self {
            Unmeasured::NotReady => "not ready",
            Unmeasured::ReadyBeforeStart => {
                "ready before the run started (a restart the conditions did not show)"
            }
            Unmeasured::SeveralContainers => "several containers",
            Unmeasured::NothingGatesReady => "no readiness or startup probe",
            Unmeasured::Unbounded => "no startup or liveness probe bounds the start",
            Unmeasured::ReadyLater => "ready after its probes' budget (readiness changed later)",
            Unmeasured::OlderRevision => "a pod of an older ReplicaSet",
        }
    }
}

/// What a pod's status says of each container's starts: its current run and its last one.
/// `kill` gives the container's latest probe kill from the Events.
pub fn observe(
    pod: &Pod,
    kill: impl Fn(&str) -> Option<Kill>,
) -> Vec<(String, Result<Start, Unmeasured>)> {
    let (Some(spec), Some(status)) = (pod.spec.as_ref(), pod.status.as_ref()) else {
        return Vec::new();
    };
    // Sidecars (init containers that keep running) count in ContainersReady too.
    let sidecars = spec
        .init_containers
        .iter()
        .flatten()
        .any(|c| c.restart_policy.as_deref() == Some("Always"));
    let single = spec.containers.len() == 1 && !sidecars;
    let running = status.phase.as_deref() == Some("Running");
    let ready = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "ContainersReady" && c.status == "True")
        .and_then(|c| c.last_transition_time.as_ref())
        .map(|t| t.0);
    let mut seen = Vec::new();
    for container_status in status.container_statuses.iter().flatten() {
        let name = &container_status.name;
        let Some(container) = spec.containers.iter().find(|c| c.name == *name) else {
            continue;
        };
        let started = container_status
            .state
            .as_ref()
            .and_then(|s| s.running.as_ref())
            .and_then(|r| r.started_at.as_ref())
            .map(|t| t.0);
        let allowed = allowed(
            container.startup_probe.as_ref(),
            container.liveness_probe.as_ref(),
        );
        // Without a readiness or startup probe a container is ready as soon as it runs.
        let gated = container.readiness_probe.is_some() || container.startup_probe.is_some();
        if let Some(started) = started.filter(|_| running) {
            let outcome = match (ready, allowed) {
                _ if !single => Err(Unmeasured::SeveralContainers),
                _ if !gated => Err(Unmeasured::NothingGatesReady),
                (None, _) => Err(Unmeasured::NotReady),
                (Some(ready), _) if ready < started => Err(Unmeasured::ReadyBeforeStart),
                // Readiness may come and go for good; only probes that kill a slow start
                // bound how long a start can have been.
                (Some(_), None) => Err(Unmeasured::Unbounded),
                (Some(ready), Some(allowed)) => {
                    let seconds = ready.duration_since(started).as_secs();
                    // Later than the probes would have let it live unstarted: the
                    // condition changed after the start (a readiness flap), not at it.
                    if seconds > allowed.seconds + allowed.period {
                        Err(Unmeasured::ReadyLater)
                    } else {
                        Ok(Start::Ready { seconds })
                    }
                }
            };
            seen.push((name.clone(), outcome));
        }
        if let Some(start) = killed_run(container_status, kill(name), allowed) {
            seen.push((name.clone(), Ok(start)));
        }
    }
    seen
}

/// The container's last run, if a probe kill ended it during start-up: a startup probe's
/// kill always is; a liveness kill is when no startup probe ran and it came within a period
/// of the first moment the probes could kill (`allowed`, the pod's own probes).
fn killed_run(
    status: &ContainerStatus,
    kill: Option<Kill>,
    allowed: Option<Allowed>,
) -> Option<Start> {
    let kill = kill?;
    let run = status.last_state.as_ref()?.terminated.as_ref()?;
    let started = run.started_at.as_ref()?.0;
    let finished = run.finished_at.as_ref()?.0;
    // Times are whole seconds, and the event and the status are written apart: a few
    // seconds' slack after the run's end.
    if kill.at < started || kill.at.duration_since(finished).as_secs() > 5 {
        return None;
    }
    let ran = kill.at.duration_since(started).as_secs();
    let during_startup = match kill.by {
        ProbeKind::Startup => true,
        _ => allowed.is_some_and(|a| a.by == ProbeKind::Liveness && ran <= a.seconds + a.period),
    };
    let period = allowed
        .filter(|a| a.by == kill.by)
        .map_or(DEFAULT_PERIOD_SECONDS, |a| a.period);
    during_startup.then_some(Start::Killed {
        seconds: ran,
        period,
        by: kill.by,
        kills: kill.count,
    })
}

/// Every start seen of one container of one workload.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Observed {
    /// (seconds, pod) of each measured start.
    ready: Vec<(i64, String)>,
    /// (seconds it ran, pod, probe, kills, the probe's period) of each run killed during
    /// start-up.
    killed: Vec<(i64, String, ProbeKind, i64, i64)>,
    unmeasured: BTreeMap<Unmeasured, usize>,
}

impl Observed {
    pub fn add(&mut self, pod: &str, outcome: Result<Start, Unmeasured>) {
        match outcome {
            Ok(Start::Ready { seconds }) => self.ready.push((seconds, pod.to_owned())),
            Ok(Start::Killed {
                seconds,
                period,
                by,
                kills,
            }) => self
                .killed
                .push((seconds, pod.to_owned(), by, kills, period)),
            Err(why) => *self.unmeasured.entry(why).or_default() += 1,
        }
    }

    /// The longest start seen, as a lower bound (a killed run needed longer than it ran, at
    /// least until its probe's next attempt), and the pod it came from.
    fn longest(&self) -> Option<(i64, &str)> {
        self.ready
            .iter()
            .map(|(s, pod)| (*s, pod.as_str()))
            .chain(
                self.killed
                    .iter()
                    .map(|(s, pod, _, _, period)| (s + period, pod.as_str())),
            )
            .max_by_key(|(s, _)| *s)
    }
}

/// The measurement of one workload's container, as the report prints it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Measurement {
    pub namespace: String,
    pub kind: String,
    pub name: String,
    pub container: String,
    /// Starts measured: from the container's start to its pod's containers being ready.
    pub starts: usize,
    /// The median start (the lower middle one of an even count), in seconds.
    pub median_seconds: Option<i64>,
    pub max_seconds: Option<i64>,
    /// Runs the kubelet killed for a failed probe during start-up.
    pub killed_during_startup: usize,
    /// Running containers whose start could not be measured, with why.
    pub not_measured: BTreeMap<String, usize>,
    /// The pods the numbers came from.
    pub pods: Vec<String>,
    /// What the probes allow before the first kill; `null` when nothing kills a slow start.
    pub allowed_seconds: Option<i64>,
    /// `startupProbe` or `livenessProbe`: the probe that allows it.
    pub allowed_by: Option<&'static str>,
    pub probes_from: Origin,
    /// A budget from what was seen, where it differs materially from the allowed one.
    pub suggested_seconds: Option<i64>,
}

/// How one container's budget should change, in the form its origin needs.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    /// `probegate.io/startup-seconds` on the pod template: the webhook sizes the startup
    /// probe it adds to the next pods.
    Annotation { seconds: i64 },
    /// The startup probe the template carries gets this many attempts; `annotation`, where
    /// probegate wrote that probe, keeps objects created from the manifest alike.
    FailureThreshold {
        failure_threshold: i32,
        annotation: Option<i64>,
    },
    /// A startup probe beside the container's own liveness probe, with its check.
    StartupProbe(Box<Probe>),
}

/// A change for one container.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerChange {
    pub container: String,
    pub seconds: i64,
    pub change: Change,
    /// One line: what was seen and allowed, for the suggestion's comment.
    pub why: String,
}

/// The workload a finding or measurement names.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Workload {
    pub namespace: String,
    pub kind: Kind,
    pub name: String,
}

/// What a container's budget and its observed starts come to.
#[derive(Debug, Clone, PartialEq)]
pub struct Assessment {
    pub measurement: Measurement,
    pub findings: Vec<Finding>,
    pub change: Option<ContainerChange>,
}

/// Judges one container's budget against its observed starts.
pub fn assess(workload: &Workload, budget: &Budget, observed: &Observed) -> Assessment {
    let mut seconds: Vec<i64> = observed.ready.iter().map(|(s, _)| *s).collect();
    seconds.sort_unstable();
    let mut pods: Vec<String> = observed
        .ready
        .iter()
        .map(|(_, p)| p.clone())
        .chain(observed.killed.iter().map(|(_, p, ..)| p.clone()))
        .collect();
    pods.sort();
    pods.dedup();
    let mut measurement = Measurement {
        namespace: workload.namespace.clone(),
        kind: workload.kind.name().to_owned(),
        name: workload.name.clone(),
        container: budget.container.clone(),
        starts: seconds.len(),
        median_seconds: seconds.get(seconds.len().saturating_sub(1) / 2).copied(),
        max_seconds: seconds.last().copied(),
        killed_during_startup: observed.killed.len(),
        not_measured: observed
            .unmeasured
            .iter()
            .map(|(why, n)| (why.describe().to_owned(), *n))
            .collect(),
        pods,
        allowed_seconds: budget.allowed.map(|a| a.seconds),
        allowed_by: budget.allowed.map(|a| a.by.field()),
        probes_from: budget.origin,
        suggested_seconds: None,
    };
    let mut assessment = Assessment {
        measurement: measurement.clone(),
        findings: Vec::new(),
        change: None,
    };
    let (Some(allowed), Some((longest, slowest_pod))) = (budget.allowed, observed.longest()) else {
        return assessment;
    };
    let evidence = evidence(&measurement, observed, &allowed, budget.origin);
    let blank = Finding {
        namespace: workload.namespace.clone(),
        kind: workload.kind.name().to_owned(),
        name: workload.name.clone(),
        container: Some(budget.container.clone()),
        finding_type: FindingType::StartupBudgetTooShort,
        rule: None,
        title: String::new(),
        message: String::new(),
        action: String::new(),
        evidence,
        short_title: String::new(),
        short_action: String::new(),
    };
    if too_short(&allowed, longest) {
        let seen = if observed.killed.is_empty() {
            format!("took up to {longest}s to start (pod {slowest_pod})")
        } else {
            format!(
                "was killed during start-up in {} pod(s), and needs more than {longest}s (pod {slowest_pod})",
                observed.killed.len()
            )
        };
        assessment.findings.push(Finding {
            title: format!(
                "start-up budget {}s is too short for starts of up to {longest}s",
                allowed.seconds
            ),
            message: format!(
                "container {:?} {seen}, and its {} allows {}s before the first kill: the next slow start is a restart loop",
                budget.container,
                allowed.by.field(),
                allowed.seconds
            ),
            action: "give it a longer start-up budget: `probegate audit --suggest` prints the change".into(),
            short_title: format!("start-up budget {}s too short", allowed.seconds),
            short_action: "lengthen it: audit --suggest".into(),
            ..blank.clone()
        });
    }
    let suggestion = suggested(budget, &allowed, longest)
        .and_then(|seconds| Some((seconds, change(budget, &allowed, seconds)?)));
    if let Some((seconds, change)) = suggestion {
        measurement.suggested_seconds = Some(seconds);
        assessment.measurement = measurement;
        let why = format!(
            "container {:?}: starts seen need up to {longest}s, {} allows {}s; suggested {seconds}s",
            budget.container,
            allowed.by.field(),
            allowed.seconds
        );
        assessment.findings.push(Finding {
            finding_type: FindingType::StartupBudgetSuggested,
            title: format!(
                "start-up budget {seconds}s suggested (now {}s)",
                allowed.seconds
            ),
            message: format!(
                "from the starts seen (up to {longest}s), container {:?} needs a start-up budget of {seconds}s: the slowest start plus half, at least {MIN_MARGIN_SECONDS}s more, in whole periods of {}s, never below the {}s probegate gives it anyway; its {} allows {}s",
                budget.container,
                allowed.period,
                budget.floor,
                allowed.by.field(),
                allowed.seconds
            ),
            action: describe_change(&change),
            short_title: format!("suggested start-up budget {seconds}s"),
            short_action: brief_change(&change),
            ..blank
        });
        assessment.change = Some(ContainerChange {
            container: budget.container.clone(),
            seconds,
            change,
            why,
        });
    }
    assessment
}

/// The longest startup budget the webhook gives a container of `budgets` that `changes`
/// leave alone: a `startup-seconds` annotation for the others must not cut it.
pub fn annotation_at_least(budgets: &[Budget], changes: &[ContainerChange]) -> i64 {
    budgets
        .iter()
        .filter(|b| matches!(b.origin, Origin::WouldBeAdded | Origin::Probegate))
        .filter(|b| !changes.iter().any(|c| c.container == b.container))
        .filter_map(|b| b.allowed.filter(|a| a.by == ProbeKind::Startup))
        .map(|a| a.seconds)
        .max()
        .unwrap_or(0)
}

/// Whether a start of `longest` seconds is longer than `allowed`, or within 20% of it.
fn too_short(allowed: &Allowed, longest: i64) -> bool {
    allowed.seconds < longest * (100 + TOO_CLOSE_PERCENT) / 100
}

/// The budget to suggest from the longest start seen, where it differs materially from the
/// allowed one: where that is too short, or at least twice the suggestion.
pub fn suggested(budget: &Budget, allowed: &Allowed, longest: i64) -> Option<i64> {
    let margin = (longest / 2).max(MIN_MARGIN_SECONDS);
    let needed = round_up(longest + margin, allowed.period);
    let seconds = needed.max(round_up(budget.floor, allowed.period));
    (too_short(allowed, longest) || allowed.seconds >= 2 * seconds).then_some(seconds)
}

fn round_up(seconds: i64, period: i64) -> i64 {
    (seconds + period - 1) / period * period
}

/// The change that gives `budget`'s container `seconds` of start-up; `None` where none
/// can: a startup probe whose own initial delay is longer, or a shorter budget that would
/// take a startup probe added before a liveness probe that waits longer.
fn change(budget: &Budget, allowed: &Allowed, seconds: i64) -> Option<Change> {
    match (budget.origin, allowed.by) {
        (Origin::WouldBeAdded, _) => Some(Change::Annotation { seconds }),
        (origin, ProbeKind::Startup) => {
            (seconds > allowed.initial_delay).then(|| Change::FailureThreshold {
                failure_threshold: probes::attempts_covering(
                    seconds - allowed.initial_delay,
                    allowed.period,
                ),
                annotation: (origin == Origin::Probegate && budget.annotation_applies)
                    .then_some(seconds),
            })
        }
        // The container's own liveness probe, with no startup probe before it: one with the
        // same check holds it off for the start-up (Kubernetes' advice for slow starts,
        // https://kubernetes.io/docs/tasks/configure-pod-container/configure-liveness-readiness-startup-probes/#define-startup-probes).
        // Only to lengthen the budget: a shorter one would cut what liveness now waits.
        (_, _) if seconds > allowed.seconds => {
            let liveness = budget.liveness.clone().unwrap_or_default();
            Some(Change::StartupProbe(Box::new(Probe {
                exec: liveness.exec,
                grpc: liveness.grpc,
                http_get: liveness.http_get,
                tcp_socket: liveness.tcp_socket,
                timeout_seconds: liveness.timeout_seconds,
                period_seconds: Some(i32::try_from(allowed.period).unwrap_or(i32::MAX)),
                failure_threshold: Some(probes::attempts_covering(seconds, allowed.period)),
                ..Probe::default()
            })))
        }
        (_, _) => None,
    }
}

fn describe_change(change: &Change) -> String {
    match change {
        Change::Annotation { seconds } => format!(
            "set {STARTUP_SECONDS}: \"{seconds}\" on the pod template (`probegate audit --suggest` prints the patch)"
        ),
        Change::FailureThreshold {
            failure_threshold,
            annotation,
        } => {
            let also = annotation.map_or_else(String::new, |s| {
                format!(", and {STARTUP_SECONDS}: \"{s}\" on the pod template")
            });
            format!(
                "set the startupProbe's failureThreshold to {failure_threshold}{also} (`probegate audit --suggest` prints the patch)"
            )
        }
        Change::StartupProbe(probe) => format!(
            "add a startupProbe with the liveness check, failureThreshold {} (`probegate audit --suggest` prints the patch)",
            probe.failure_threshold.unwrap_or_default()
        ),
    }
}

/// The change in a few words, for the table (`describe_change` says where the patch is).
fn brief_change(change: &Change) -> String {
    match change {
        Change::Annotation { seconds } => format!("set {STARTUP_SECONDS}: \"{seconds}\""),
        Change::FailureThreshold {
            failure_threshold,
            annotation: None,
        } => format!("set failureThreshold: {failure_threshold}"),
        Change::FailureThreshold {
            failure_threshold,
            annotation: Some(seconds),
        } => format!("failureThreshold {failure_threshold}, startup-seconds {seconds}"),
        Change::StartupProbe(_) => "add a startupProbe".into(),
    }
}

/// The facts behind a finding: what was measured and allowed, one per entry.
fn evidence(
    measurement: &Measurement,
    observed: &Observed,
    allowed: &Allowed,
    origin: Origin,
) -> Vec<String> {
    let mut evidence = Vec::new();
    if let (Some(median), Some(max)) = (measurement.median_seconds, measurement.max_seconds) {
        let slowest = observed
            .ready
            .iter()
            .find(|(s, _)| *s == max)
            .map_or("", |(_, pod)| pod.as_str());
        evidence.push(format!(
            "{} start(s) measured: median {median}s, max {max}s (pod {slowest})",
            measurement.starts
        ));
    }
    for (seconds, pod, by, kills, _) in &observed.killed {
        // A startup probe only runs until the start; a liveness kill is taken for one by
        // its timing alone, and says so.
        let how = match by {
            ProbeKind::Startup => "before it was ready",
            _ => "at the first moment its probes could kill, so taken as before it was ready",
        };
        evidence.push(format!(
            "pod {pod}: killed for a failed {} probe {seconds}s after it started, {how} ({kills} kill(s) recorded)",
            by.as_str()
        ));
    }
    let from = match origin {
        Origin::Workload => "the workload's own",
        Origin::Probegate => "added by probegate",
        Origin::WouldBeAdded => "as the webhook would add it",
    };
    evidence.push(format!("allowed: {} ({from})", allowed.describe()));
    for (why, count) in &measurement.not_measured {
        evidence.push(format!("not measured: {count} ({why})"));
    }
    evidence
}

#[cfg(test)]
mod tests;
