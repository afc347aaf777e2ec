//! `probegate audit`: what the webhook would change in a live cluster, and the hazards
//! already running there. Read-only: it only ever gets and lists.
//!
//! Workloads are judged by the engine exactly as the webhook would judge them at admission
//! (cluster defaults and the namespace's annotations as layers, the namespace's Services as
//! evidence). Namespaces the shipped webhook configuration never sends (`scope.rs`) are not
//! judged, as `mutate` does not judge them; their pods are still checked for live hazards,
//! since a hazard there is as real as anywhere (kube-ovn runs in kube-system).

pub mod changes;
pub mod hazards;
pub mod list;
pub mod report;
pub mod startup;
pub mod suggest;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::{Event, Namespace, Pod, Service};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde::de::DeserializeOwned;

use crate::engine::ServiceEvidence;
use crate::engine::catalogue::Catalogue;
use crate::engine::{Kind, Object};
use crate::namespace_cache::policy_annotations;
use crate::scope;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use list::Progress;
use report::{Finding, Report, Summary};
use startup::{Budget, Controllers, Observed, Workload};
use suggest::Suggestion;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("cannot load the kubeconfig: {0}")]
    Config(String),
    #[error(
        "forbidden: missing permission to {verb} {resource} {place} (the read-only ClusterRole probegate-audit grants what audit reads); the API server said: {message}"
    )]
    Forbidden {
        verb: &'static str,
        resource: String,
        place: String,
        message: String,
    },
    #[error("unauthorized: the API server does not accept these credentials: {message}")]
    Unauthorized { message: String },
    #[error("cannot {verb} {resource} {place}: {reason}")]
    Request {
        verb: &'static str,
        resource: String,
        place: String,
        /// The error and its causes, outermost first ("client error (Connect): tcp
        /// connect error: Connection refused").
        reason: String,
    },
    #[error("namespace {0:?} not found")]
    NoSuchNamespace(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every namespace (`-A`).
    All,
    /// These namespaces; empty means the kubeconfig context's namespace.
    Namespaces(Vec<String>),
}

#[derive(Debug, Clone)]
pub struct Options {
    pub kubeconfig: Option<PathBuf>,
    pub context: Option<String>,
    pub scope: Scope,
    /// Applied to every namespace, under its own annotations, as `serve` applies them.
    pub namespace_annotations: BTreeMap<String, String>,
    pub stuck_after: SignedDuration,
    pub progress: bool,
    /// A user's catalogue over the built-in one (`--catalogue`); `None`: the built-in one.
    pub catalogue: Option<Arc<Catalogue>>,
}

/// Parses `--stuck-after`: `10m`, `90s`, `1h30m` (at least one second).
pub fn parse_duration(text: &str) -> Result<SignedDuration, String> {
    let duration: SignedDuration = text
        .trim()
        .parse()
        .map_err(|_| format!("expected a duration such as 10m, 90s or 1h30m, got {text:?}"))?;
    if duration < SignedDuration::from_secs(1) {
        return Err(format!("the duration must be at least 1s, got {text:?}"));
    }
    Ok(duration)
}

/// Connects like kubectl: `--kubeconfig`, else KUBECONFIG or ~/.kube/config, else the
/// in-cluster service account; `--context` picks the context.
/// Returns the client and the context's namespace (kubectl's default for `-n`).
async fn connect(options: &Options) -> Result<(Client, String), AuditError> {
    let config_options = KubeConfigOptions {
        context: options.context.clone(),
        ..KubeConfigOptions::default()
    };
    let config = match &options.kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .map_err(|e| AuditError::Config(format!("{}: {e}", path.display())))?;
            Config::from_custom_kubeconfig(kubeconfig, &config_options)
                .await
                .map_err(|e| AuditError::Config(format!("{}: {e}", path.display())))?
        }
        None if options.context.is_some() => Config::from_kubeconfig(&config_options)
            .await
            .map_err(|e| AuditError::Config(e.to_string()))?,
        None => Config::infer()
            .await
            .map_err(|e| AuditError::Config(e.to_string()))?,
    };
    let default_namespace = config.default_namespace.clone();
    let client = Client::try_from(config).map_err(|e| AuditError::Config(e.to_string()))?;
    Ok((client, default_namespace))
}

/// What is known about the namespaces in scope before workloads are judged.
struct Namespaces {
    /// `None` reads every namespace; otherwise these.
    names: Option<Vec<String>>,
    annotations: HashMap<String, BTreeMap<String, String>>,
    services: HashMap<String, Vec<ServiceEvidence>>,
}

impl Namespaces {
    /// A namespace's annotations and Services: what the webhook's cache would hold for it.
    fn evidence(&self, namespace: &str) -> (&BTreeMap<String, String>, Vec<&ServiceEvidence>) {
        static NONE: BTreeMap<String, String> = BTreeMap::new();
        let annotations = self.annotations.get(namespace).unwrap_or(&NONE);
        let services = self.services.get(namespace).into_iter().flatten().collect();
        (annotations, services)
    }

    /// The Api for each place a namespaced kind is read from.
    fn apis<K>(&self, client: &Client) -> Vec<(Option<String>, Api<K>)>
    where
        K: kube::Resource<DynamicType = (), Scope = NamespaceResourceScope>,
    {
        match &self.names {
            None => vec![(None, Api::all(client.clone()))],
            Some(names) => names
                .iter()
                .map(|ns| (Some(ns.clone()), Api::namespaced(client.clone(), ns)))
                .collect(),
        }
    }
}

/// The whole run: connect, read, judge, report.
pub async fn run(options: &Options) -> Result<Report, AuditError> {
    let (client, context_namespace) = connect(options).await?;
    let names = match &options.scope {
        Scope::All => None,
        Scope::Namespaces(names) if names.is_empty() => Some(vec![context_namespace]),
        Scope::Namespaces(names) => Some(names.clone()),
    };
    let audit = Audit {
        client,
        progress: Progress {
            enabled: options.progress,
        },
        defaults: options.namespace_annotations.clone(),
        catalogue: options
            .catalogue
            .clone()
            .unwrap_or_else(Catalogue::builtin_shared),
        stuck_after: options.stuck_after,
        now: Timestamp::now(),
    };
    let result = audit.run(names).await;
    audit.progress.clear();
    result
}

struct Audit {
    client: Client,
    progress: Progress,
    defaults: BTreeMap<String, String>,
    catalogue: Arc<Catalogue>,
    stuck_after: SignedDuration,
    now: Timestamp,
}

impl Audit {
    async fn run(&self, names: Option<Vec<String>>) -> Result<Report, AuditError> {
        let namespaces = self.namespaces(names).await?;
        let tallies = self.liveness_events(&namespaces).await?;

        let mut out = Out::default();
        self.judge::<Deployment>(&namespaces, Kind::Deployment, &mut out)
            .await?;
        self.judge::<StatefulSet>(&namespaces, Kind::StatefulSet, &mut out)
            .await?;
        self.judge::<DaemonSet>(&namespaces, Kind::DaemonSet, &mut out)
            .await?;
        self.judge::<ReplicaSet>(&namespaces, Kind::ReplicaSet, &mut out)
            .await?;
        self.judge::<Job>(&namespaces, Kind::Job, &mut out).await?;
        self.judge::<CronJob>(&namespaces, Kind::CronJob, &mut out)
            .await?;
        self.pods(&namespaces, tallies, &mut out).await?;

        let (startups, suggestions) = startups(&out.budgets, &mut out.observed, &mut out.findings);
        let listed = namespaces.names.unwrap_or_else(|| vec!["*".into()]);
        Ok(Report::new(listed, out.summary, out.findings).with_startups(startups, suggestions))
    }

    /// Annotations and Services of the namespaces in scope.
    async fn namespaces(&self, names: Option<Vec<String>>) -> Result<Namespaces, AuditError> {
        let mut annotations = HashMap::new();
        let api: Api<Namespace> = Api::all(self.client.clone());
        match &names {
            None => {
                list::pages(&api, None, ListParams::default(), self.progress, |page| {
                    for ns in page {
                        let name = ns.metadata.name.clone().unwrap_or_default();
                        annotations.insert(name, policy_annotations(&ns.metadata));
                    }
                })
                .await?;
            }
            Some(names) => {
                for name in names {
                    let ns = api
                        .get_opt(name)
                        .await
                        .map_err(|source| list::error::<Namespace>("get", Some(name), source))?
                        .ok_or_else(|| AuditError::NoSuchNamespace(name.clone()))?;
                    annotations.insert(name.clone(), policy_annotations(&ns.metadata));
                }
            }
        }
        let mut namespaces = Namespaces {
            names,
            annotations,
            services: HashMap::new(),
        };
        let mut services: HashMap<String, Vec<ServiceEvidence>> = HashMap::new();
        self.each::<Service>(&namespaces, ListParams::default(), |service| {
            let ns = service.metadata.namespace.clone().unwrap_or_default();
            services
                .entry(ns)
                .or_default()
                .push(ServiceEvidence::from(service));
        })
        .await?;
        namespaces.services = services;
        Ok(namespaces)
    }

    /// Liveness failures and the restarts they caused, from the Events the API server
    /// still keeps (an hour by default: its --event-ttl).
    async fn liveness_events(
        &self,
        namespaces: &Namespaces,
    ) -> Result<hazards::Tallies, AuditError> {
        let mut tallies = hazards::Tallies::new();
        for reason in ["Unhealthy", "Killing"] {
            let params =
                ListParams::default().fields(&format!("involvedObject.kind=Pod,reason={reason}"));
            self.each::<Event>(namespaces, params, |event| {
                hazards::tally_event(&mut tallies, &event)
            })
            .await?;
        }
        Ok(tallies)
    }

    /// Every object of kind `K` in the namespaces in scope, page by page.
    async fn each<K>(
        &self,
        namespaces: &Namespaces,
        params: ListParams,
        mut visit: impl FnMut(K),
    ) -> Result<(), AuditError>
    where
        K: kube::Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + std::fmt::Debug,
    {
        for (place, api) in namespaces.apis::<K>(&self.client) {
            let params = params.clone();
            list::pages(&api, place.as_deref(), params, self.progress, |page| {
                page.into_iter().for_each(&mut visit)
            })
            .await?;
        }
        Ok(())
    }

    /// The engine's findings for one workload, or its count among the excluded; and its
    /// containers' start-up budgets, for its pods' starts to be measured against.
    fn judge_one(&self, workload: &Object<'_>, namespaces: &Namespaces, out: &mut Out) {
        let meta = workload.meta();
        let namespace = meta.namespace.as_deref().unwrap_or_default();
        out.controllers.note(workload.kind, namespace, meta);
        if !changes::is_judged(workload) {
            return;
        }
        let (namespace_layer, services) = namespaces.evidence(namespace);
        let layers = [&self.defaults, namespace_layer];
        let key = Workload {
            namespace: namespace.to_owned(),
            kind: workload.kind,
            name: meta.name.as_deref().unwrap_or_default().to_owned(),
        };
        let measured = !workload.is_batch();
        if scope::is_excluded(namespace) {
            *out.summary
                .excluded_namespaces
                .entry(namespace.to_owned())
                .or_default() += 1;
            if measured {
                let budgets = startup::budgets(workload, None, &layers, &self.catalogue);
                out.budgets.push((key, budgets));
            }
            return;
        }
        out.summary.workloads += 1;
        let mutation = changes::judge(workload, &layers, &services, &self.catalogue);
        out.findings.extend(changes::findings(workload, &mutation));
        if measured {
            let budgets = startup::budgets(workload, Some(&mutation), &layers, &self.catalogue);
            out.budgets.push((key, budgets));
        }
    }

    async fn judge<K>(
        &self,
        namespaces: &Namespaces,
        kind: Kind,
        out: &mut Out,
    ) -> Result<(), AuditError>
    where
        K: kube::Resource<DynamicType = (), Scope = NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + serde::Serialize
            + std::fmt::Debug,
    {
        self.each::<K>(namespaces, ListParams::default(), |object| {
            read_listed(kind, &object, |workload| {
                self.judge_one(workload, namespaces, out)
            })
        })
        .await?;
        Ok(())
    }

    /// Bare pods are judged like workloads; every pod is checked for live hazards.
    async fn pods(
        &self,
        namespaces: &Namespaces,
        mut tallies: hazards::Tallies,
        out: &mut Out,
    ) -> Result<(), AuditError> {
        self.each::<Pod>(namespaces, ListParams::default(), |pod| {
            out.summary.pods += 1;
            let namespace = pod.metadata.namespace.as_deref().unwrap_or_default();
            let (namespace_layer, services) = namespaces.evidence(namespace);
            let layers = [&self.defaults, namespace_layer];
            out.findings.extend(hazards::stuck_readiness_gates(
                &pod,
                self.now,
                self.stuck_after,
            ));
            // Before the liveness rule takes the pod's tallies.
            observe_starts(&pod, &tallies, &out.controllers, &mut out.observed);
            out.findings
                .extend(hazards::liveness_restarts(&pod, &mut tallies));
            read_listed(Kind::Pod, &pod, |object| {
                let found = hazards::metrics_coupled_probes(&pod, object, &layers, &services);
                out.findings.extend(found);
                self.judge_one(object, namespaces, out);
            });
        })
        .await?;
        Ok(())
    }
}

/// Calls `judge` with a listed object as the engine reads every object: read from the
/// object's JSON, once, whatever uses it.
fn read_listed<K: serde::Serialize>(kind: Kind, listed: &K, judge: impl FnOnce(&Object<'_>)) {
    let value = match serde_json::to_value(listed) {
        Ok(value) => value,
        Err(error) => {
            tracing::error!(kind = kind.name(), %error, "listed object does not serialize; not judged");
            return;
        }
    };
    match Object::read(kind, &value) {
        Ok(object) => judge(&object),
        Err(error) => {
            tracing::error!(kind = kind.name(), %error, "listed object does not read; not judged")
        }
    }
}

/// What the run found so far.
#[derive(Default)]
struct Out {
    summary: Summary,
    findings: Vec<Finding>,
    /// Each judged workload's containers' budgets, in the order listed.
    budgets: Vec<(Workload, Vec<Budget>)>,
    /// The Deployments and ReplicaSets seen, for pods to be traced to their template.
    controllers: Controllers,
    /// Each workload container's starts, from its pods.
    observed: HashMap<(Workload, String), Observed>,
}

/// Adds `pod`'s container starts to its workload's, matching the kills in `tallies`.
fn observe_starts(
    pod: &Pod,
    tallies: &hazards::Tallies,
    controllers: &Controllers,
    observed: &mut HashMap<(Workload, String), Observed>,
) {
    let Some((workload, older)) = controllers.workload_of(pod) else {
        return;
    };
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    if older {
        for container in pod.spec.iter().flat_map(|s| &s.containers) {
            observed
                .entry((workload.clone(), container.name.clone()))
                .or_default()
                .add(name, Err(startup::Unmeasured::OlderRevision));
        }
        return;
    }
    let kill = |container: &str| {
        let key = (
            workload.namespace.clone(),
            name.to_owned(),
            container.to_owned(),
        );
        tallies.get(&key).and_then(|t| t.last_kill)
    };
    for (container, outcome) in startup::observe(pod, kill) {
        observed
            .entry((workload.clone(), container))
            .or_default()
            .add(name, outcome);
    }
}

/// Each workload container's starts judged against its budget: the measurements, with
/// their findings added to `findings`, and the suggestions per workload.
fn startups(
    budgets: &[(Workload, Vec<Budget>)],
    observed: &mut HashMap<(Workload, String), Observed>,
    findings: &mut Vec<Finding>,
) -> (Vec<startup::Measurement>, Vec<Suggestion>) {
    let mut measurements = Vec::new();
    let mut suggestions = Vec::new();
    for (workload, containers) in budgets {
        let mut changes = Vec::new();
        for budget in containers {
            let key = (workload.clone(), budget.container.clone());
            let Some(seen) = observed.remove(&key) else {
                continue;
            };
            let assessment = startup::assess(workload, budget, &seen);
            measurements.push(assessment.measurement);
            findings.extend(assessment.findings);
            changes.extend(assessment.change);
        }
        if !changes.is_empty() {
            let annotation_at_least = startup::annotation_at_least(containers, &changes);
            suggestions.push(Suggestion {
                workload: workload.clone(),
                changes,
                annotation_at_least,
            });
        }
    }
    (measurements, suggestions)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::ProbeKind;
    use startup::{Allowed, Origin, Start};

    #[test]
    fn starts_meet_their_workloads_budgets() {
        let workload = |name: &str| Workload {
            namespace: "shop".into(),
            kind: Kind::Deployment,
            name: name.into(),
        };
        let budget = |container: &str, seconds: i64| Budget {
            container: container.into(),
            allowed: Some(Allowed {
                seconds,
                by: ProbeKind::Startup,
                initial_delay: 0,
                period: 10,
                failure_threshold: seconds / 10,
            }),
            origin: Origin::WouldBeAdded,
            // As the webhook gives them: no budget of a workload's own.
            floor: seconds,
            liveness: None,
            annotation_applies: true,
        };
        let budgets = vec![
            (
                workload("slow"),
                vec![budget("app", 60), budget("nats", 900)],
            ),
            (workload("fast"), vec![budget("app", 300)]),
            (workload("unseen"), vec![budget("app", 300)]),
        ];
        let mut observed: HashMap<(Workload, String), Observed> = HashMap::new();
        let mut saw = |name: &str, container: &str, seconds: i64| {
            observed
                .entry((workload(name), container.into()))
                .or_default()
                .add(&format!("{name}-1"), Ok(Start::Ready { seconds }));
        };
        saw("slow", "app", 58);
        saw("slow", "nats", 20);
        saw("fast", "app", 2);
        // Starts of a workload the audit did not judge (a Job's) have no budget to meet.
        saw("batch", "app", 400);
        let mut findings = Vec::new();
        let (measurements, suggestions) = startups(&budgets, &mut observed, &mut findings);
        let measured: Vec<(&str, &str)> = measurements
            .iter()
            .map(|m| (m.name.as_str(), m.container.as_str()))
            .collect();
        assert_eq!(
            measured,
            [("slow", "app"), ("slow", "nats"), ("fast", "app")]
        );
        let found: Vec<(&str, report::FindingType)> = findings
            .iter()
            .map(|f| (f.name.as_str(), f.finding_type))
            .collect();
        assert_eq!(
            found,
            [
                ("slow", report::FindingType::StartupBudgetTooShort),
                ("slow", report::FindingType::StartupBudgetSuggested),
            ]
        );
        assert_eq!(suggestions.len(), 1);
        assert_eq!(suggestions[0].workload, workload("slow"));
        // The nats container's 900 s stays whole under the one annotation.
        assert_eq!(suggestions[0].annotation_at_least, 900);
        assert_eq!(
            observed.len(),
            1,
            "only the unjudged workload's starts are left"
        );
    }

    #[test]
    fn stuck_after_durations() {
        struct Case {
            name: &'static str,
            text: &'static str,
            /// The duration in seconds; None: an error.
            seconds: Option<i64>,
        }
        let cases = [
            Case {
                name: "minutes",
                text: "10m",
                seconds: Some(600),
            },
            Case {
                name: "seconds",
                text: "90s",
                seconds: Some(90),
            },
            Case {
                name: "hours and minutes",
                text: "1h30m",
                seconds: Some(5400),
            },
            Case {
                name: "hours and minutes with a space",
                text: "1h 30m",
                seconds: Some(5400),
            },
            Case {
                name: "a number without a unit",
                text: "5",
                seconds: None,
            },
            Case {
                name: "zero",
                text: "0s",
                seconds: None,
            },
            Case {
                name: "not a duration",
                text: "soon",
                seconds: None,
            },
        ];
        for case in cases {
            assert_eq!(
                parse_duration(case.text).ok().map(|d| d.as_secs()),
                case.seconds,
                "{}",
                case.name
            );
        }
    }
}
