//! `probegate mutate`: the webhook's answer for every object of a set of manifests.
//!
//! Namespace documents in the input stand for the cluster's namespaces and Service
//! documents for its Services, so the output is what the webhook would do with them.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::Service;
use serde_json::{Value, json};

use crate::engine::catalogue::Catalogue;
use crate::engine::kinds::split_api_version;
use crate::engine::{self, At, Context, ServiceEvidence};
use crate::engine::{DecodeError, Kind, Object};
use crate::findings::{Check, Finding, ObjectRef};
use crate::manifest::{Document, ManifestError, Origin};
use crate::sarif;
use crate::scope;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum OutputFormat {
    /// The manifests, mutated, as multi-document YAML.
    #[default]
    Yaml,
    /// The manifests, mutated, as JSON (a `List` when there are several).
    Json,
    /// One JSON Patch per mutated object, one per line.
    Patch,
    /// The findings as SARIF 2.1.0, for code scanning; exit codes as with `--check`.
    Sarif,
}

#[derive(Debug, Default)]
pub struct Options {
    pub format: OutputFormat,
    /// Exit 1 when anything would be injected, warned or refused.
    pub check: bool,
    /// Mutate objects in namespaces the webhook configuration excludes too.
    pub include_excluded_namespaces: bool,
    /// Applied to every namespace, under the namespace's own annotations.
    pub namespace_annotations: BTreeMap<String, String>,
    /// A user's catalogue over the built-in one (`--catalogue`); `None`: the built-in one.
    pub catalogue: Option<Catalogue>,
    /// Print, instead of the manifests, what decided each container's probes.
    pub explain: bool,
}

impl Options {
    pub fn catalogue(&self) -> &Catalogue {
        self.catalogue
            .as_ref()
            .unwrap_or_else(|| Catalogue::builtin())
    }
}

/// What the command prints; nothing is printed until the whole input went through.
#[derive(Debug, Default, PartialEq)]
pub struct Report {
    pub stdout: String,
    /// `Warning: ...` and `Denied: ...` lines.
    pub stderr: Vec<String>,
    pub exit_code: u8,
}

#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("{at}: {source}")]
    Decode {
        at: String,
        #[source]
        source: DecodeError,
    },
    #[error("{at}: expected an object with apiVersion and kind")]
    NotAnObject { at: String },
    #[error("{at}: internal error, the patch does not apply: {why}")]
    Patch { at: String, why: String },
    #[error("cannot write the output: {0}")]
    Output(String),
}

/// Parses `KEY=VALUE`, as given to `--namespace-annotation`.
pub fn parse_annotation(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_owned(), value.to_owned()))
        }
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}

/// One object of the input: a document, or an item of a `List` document.
pub struct Item<'a> {
    /// Where it is, as messages name it: `file: document 2`.
    pub at: String,
    pub origin: Origin,
    pub value: &'a mut Value,
}

/// What the engine did with a set of objects; the objects are mutated in place.
#[derive(Debug, Default)]
pub struct Evaluation {
    /// What would be added, warned and refused, in input order.
    pub findings: Vec<Finding>,
    /// `Warning: ...` and `Denied: ...` lines, in input order, then a `Note:` on what was
    /// left alone.
    pub stderr: Vec<String>,
    /// An object was refused (`metrics-coupling: deny`).
    pub denied: bool,
    /// The excluded namespaces' note, also the last line of `stderr`.
    pub note: Option<String>,
    patches: Vec<engine::Patch>,
    explained: Vec<String>,
}

/// Whether `value` is an AdmissionReview: what the API server sends the webhook, not a
/// manifest (examples/reviews/ holds two, to replay against `serve`).
pub fn is_review(value: &Value) -> bool {
    value["kind"] == "AdmissionReview"
        && value["apiVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("admission.k8s.io/"))
}

/// The note for a review left out of the output.
pub fn review_note(at: &str) -> String {
    format!(
        "Note: left out {at}: an AdmissionReview is what the API server sends `probegate serve`, not a manifest; to replay it, POST it to serve's /mutate (examples/reviews/README.md)"
    )
}

pub fn run(documents: Vec<Document>, options: &Options) -> Result<Report, OfflineError> {
    let (reviews, mut documents): (Vec<Document>, Vec<Document>) =
        documents.into_iter().partition(|d| is_review(&d.value));
    let mut items = Vec::new();
    for document in &mut documents {
        items.extend(expand(&document.origin, &mut document.value)?);
    }
    let evaluation = evaluate(&mut items, options)?;
    drop(items);
    let values: Vec<&Value> = documents.iter().map(|d| &d.value).collect();
    let stdout = if options.explain {
        evaluation
            .explained
            .iter()
            .map(|line| format!("{line}\n"))
            .collect()
    } else if options.format == OutputFormat::Sarif {
        sarif::render(&evaluation.findings, env!("CARGO_PKG_VERSION"))
            .map_err(|e| OfflineError::Output(e.to_string()))?
    } else {
        render(&values, &evaluation.patches, options.format)?
    };
    let check = options.check || options.format == OutputFormat::Sarif;
    let failed = evaluation.denied || (check && !evaluation.findings.is_empty());
    let mut stderr: Vec<String> = reviews
        .iter()
        .map(|review| review_note(&review.origin.to_string()))
        .collect();
    stderr.extend(evaluation.stderr);
    Ok(Report {
        stdout,
        stderr,
        exit_code: u8::from(failed),
    })
}

/// The webhook's answer for every item, with the input's Namespaces and Services as the
/// cluster's: each item is patched in place as the webhook would patch it.
pub fn evaluate(items: &mut [Item<'_>], options: &Options) -> Result<Evaluation, OfflineError> {
    let cluster = Cluster::from_items(items)?;
    let mut evaluation = Evaluation::default();
    let mut excluded: BTreeMap<String, usize> = BTreeMap::new();
    for item in items.iter_mut() {
        let object = Subject::of(item);
        // Never mutated: the API server refuses it before any webhook sees it.
        if let Some(why) = Kind::unserved(object.api_version(), object.kind()) {
            let finding = object.finding(item, Check::RemovedApiVersion, None, why);
            evaluation
                .stderr
                .push(format!("Warning: {}", finding.text()));
            evaluation.findings.push(finding);
            continue;
        }
        let (group, version) = split_api_version(object.api_version());
        let workload =
            Object::decode(group, version, object.kind(), item.value).map_err(|source| {
                OfflineError::Decode {
                    at: item.at.clone(),
                    source,
                }
            })?;
        let Some(workload) = workload else { continue };
        let namespace = object.namespace();
        if !options.include_excluded_namespaces && scope::is_excluded(namespace) {
            *excluded.entry(namespace.to_owned()).or_default() += 1;
            continue;
        }
        let mutation = judge(&workload, namespace, &cluster, options);
        if options.explain {
            evaluation.explained.push(object.text.clone());
            let context = Context {
                catalogue: options.catalogue(),
                ..Context::default()
            };
            evaluation.explained.extend(
                engine::explain(&workload, &context, &mutation)
                    .into_iter()
                    .map(|line| format!("  {line}")),
            );
        }
        evaluation.say(&object.text, &mutation);
        evaluation
            .findings
            .extend(found(&object, item, workload.kind(), &mutation));
        drop(workload);
        if !mutation.patch.is_empty() {
            let at = || item.at.clone();
            let operations = mutation
                .patch
                .operations()
                .map_err(|source| OfflineError::Patch {
                    at: at(),
                    why: source.to_string(),
                })?;
            json_patch::patch(item.value, &operations).map_err(|source| OfflineError::Patch {
                at: at(),
                why: source.to_string(),
            })?;
            evaluation.patches.push(mutation.patch);
        }
    }
    evaluation.note = excluded_note(&excluded);
    evaluation.stderr.extend(evaluation.note.clone());
    Ok(evaluation)
}

/// The engine's answer for one object as findings: what it would add, warn and refuse.
fn found(
    object: &Subject,
    item: &Item<'_>,
    kind: Kind,
    mutation: &engine::Mutation,
) -> Vec<Finding> {
    let plan = &mutation.plan;
    let mut findings = Vec::new();
    for container in &plan.probes {
        let kinds: Vec<&str> = container.added.iter().map(|(k, _)| k.field()).collect();
        findings.push(object.finding(
            item,
            Check::ProbesWouldBeAdded,
            Some(At::Container(container.index).path(kind)),
            format!(
                "would add {} to container {:?}",
                kinds.join(", "),
                container.container
            ),
        ));
    }
    if !plan.gates.is_empty() {
        findings.push(object.finding(
            item,
            Check::ReadinessGatesWouldBeAdded,
            Some(At::ReadinessGates.path(kind)),
            format!("would add readiness gates {}", plan.gates.join(", ")),
        ));
    }
    for warning in &mutation.warnings {
        findings.push(object.finding(
            item,
            Check::Warning(warning.rule),
            warning.at.map(|at| at.path(kind)),
            warning.message.clone(),
        ));
    }
    if let Some(reason) = &mutation.denial {
        findings.push(object.finding(item, Check::WouldBeDenied, None, reason.clone()));
    }
    findings
}

impl Evaluation {
    /// The engine's warnings and denial for one object, on stderr.
    fn say(&mut self, subject: &str, mutation: &engine::Mutation) {
        for warning in &mutation.warnings {
            self.stderr
                .push(format!("Warning: {subject}: {}", warning.message));
        }
        if let Some(reason) = &mutation.denial {
            self.stderr.push(format!("Denied: {subject}: {reason}"));
            self.denied = true;
        }
    }
}

/// An object as messages name it: `file:doc: Kind namespace/name`.
struct Subject {
    object: ObjectRef,
    text: String,
}

impl Subject {
    fn of(item: &Item<'_>) -> Subject {
        let text = |value: &Value| value.as_str().map(str::to_owned);
        let metadata = &item.value["metadata"];
        let object = ObjectRef {
            api_version: text(&item.value["apiVersion"]).unwrap_or_default(),
            kind: text(&item.value["kind"]).unwrap_or_default(),
            namespace: text(&metadata["namespace"]),
            name: text(&metadata["name"])
                .or_else(|| metadata["generateName"].as_str().map(|g| format!("{g}*")))
                .unwrap_or_else(|| "<unnamed>".into()),
        };
        let subject = Subject {
            text: String::new(),
            object,
        };
        let text = format!(
            "{}: {} {}/{}",
            item.at,
            subject.kind(),
            subject.namespace(),
            subject.object.name
        );
        Subject { text, ..subject }
    }

    fn api_version(&self) -> &str {
        &self.object.api_version
    }

    fn kind(&self) -> &str {
        &self.object.kind
    }

    /// The namespace the API server would put the object in.
    fn namespace(&self) -> &str {
        self.object.namespace.as_deref().unwrap_or("default")
    }

    fn finding(
        &self,
        item: &Item<'_>,
        check: Check,
        field: Option<String>,
        message: String,
    ) -> Finding {
        Finding {
            origin: item.origin.clone(),
            check,
            object: self.object.clone(),
            at: item.at.clone(),
            field,
            message,
        }
    }
}
/// The engine's answer with the namespace's settings and Services from the manifests.
fn judge(
    workload: &Object<'_>,
    namespace: &str,
    cluster: &Cluster,
    options: &Options,
) -> engine::Mutation {
    let mut layers = vec![&options.namespace_annotations];
    layers.extend(cluster.annotations.get(namespace));
    let services: Vec<&ServiceEvidence> = cluster
        .services
        .get(namespace)
        .into_iter()
        .flatten()
        .collect();
    engine::mutate(
        workload,
        &Context {
            layers: &layers,
            services: &services,
            catalogue: options.catalogue(),
        },
    )
}

/// One line, not one per object: these are not findings, only outside the webhook's reach.
fn excluded_note(excluded: &BTreeMap<String, usize>) -> Option<String> {
    if excluded.is_empty() {
        return None;
    }
    let counts: Vec<String> = excluded
        .iter()
        .map(|(namespace, count)| format!("{namespace}: {count}"))
        .collect();
    Some(format!(
        "Note: left {} object(s) unchanged in namespaces the webhook configuration never sends ({}); --include-excluded-namespaces mutates them too",
        excluded.values().sum::<usize>(),
        counts.join(", ")
    ))
}

fn render(
    values: &[&Value],
    patches: &[engine::Patch],
    format: OutputFormat,
) -> Result<String, OfflineError> {
    let output = |e: &dyn std::fmt::Display| OfflineError::Output(e.to_string());
    Ok(match format {
        OutputFormat::Yaml => {
            let mut out = String::new();
            for (index, value) in values.iter().enumerate() {
                if index > 0 {
                    out.push_str("---\n");
                }
                out.push_str(&crate::yaml::to_string(value));
            }
            out
        }
        OutputFormat::Json => {
            let value = match values {
                [single] => (*single).clone(),
                _ => json!({"apiVersion": "v1", "kind": "List", "items": values}),
            };
            let mut out = serde_json::to_string_pretty(&value).map_err(|e| output(&e))?;
            out.push('\n');
            out
        }
        // Rendered from the findings, not the objects.
        OutputFormat::Sarif => String::new(),
        OutputFormat::Patch => {
            let mut out = String::new();
            for patch in patches {
                out.push_str(&serde_json::to_string(patch).map_err(|e| output(&e))?);
                out.push('\n');
            }
            out
        }
    })
}

/// The objects of one document: itself, or the items of a `List`.
fn expand<'a>(origin: &Origin, value: &'a mut Value) -> Result<Vec<Item<'a>>, OfflineError> {
    let is_list = value["kind"] == "List" && value["items"].is_array();
    if !is_list {
        return Ok(vec![Item {
            at: origin.to_string(),
            origin: origin.clone(),
            value,
        }]);
    }
    let mut items = Vec::new();
    for (index, item) in value["items"]
        .as_array_mut()
        .into_iter()
        .flatten()
        .enumerate()
    {
        let at = format!("{origin}, item {}", index + 1);
        if !(item["apiVersion"].is_string() && item["kind"].is_string()) {
            return Err(OfflineError::NotAnObject { at });
        }
        items.push(Item {
            at,
            origin: origin.clone(),
            value: item,
        });
    }
    Ok(items)
}

/// Namespaces and Services found in the input.
#[derive(Default)]
struct Cluster {
    annotations: HashMap<String, BTreeMap<String, String>>,
    services: HashMap<String, Vec<ServiceEvidence>>,
}

impl Cluster {
    fn from_items(items: &[Item<'_>]) -> Result<Cluster, OfflineError> {
        let mut cluster = Cluster::default();
        for item in items {
            if item.value["apiVersion"] != "v1" {
                continue;
            }
            let namespace_name = |value: &Value| {
                value["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("default")
                    .to_owned()
            };
            match item.value["kind"].as_str() {
                Some("Namespace") => {
                    let namespace: k8s_openapi::api::core::v1::Namespace =
                        typed(item, "Namespace")?;
                    if let Some(name) = namespace.metadata.name {
                        cluster
                            .annotations
                            .insert(name, namespace.metadata.annotations.unwrap_or_default());
                    }
                }
                Some("Service") => {
                    let service: Service = typed(item, "Service")?;
                    cluster
                        .services
                        .entry(namespace_name(item.value))
                        .or_default()
                        .push(ServiceEvidence::from(service));
                }
                _ => {}
            }
        }
        Ok(cluster)
    }
}

fn typed<T: serde::de::DeserializeOwned>(
    item: &Item<'_>,
    kind: &'static str,
) -> Result<T, OfflineError> {
    serde_json::from_value(item.value.clone()).map_err(|source| OfflineError::Decode {
        at: item.at.clone(),
        source: DecodeError { kind, source },
    })
}
