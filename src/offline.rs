//! `probegate mutate`: the webhook's answer for every object of a set of manifests.
//!
//! Namespace documents in the input stand for the cluster's namespaces and Service
//! documents for its Services, so the output is what the webhook would do with them.

use std::collections::{BTreeMap, HashMap};

use k8s_openapi::api::core::v1::Service;
use serde_json::{Value, json};

use crate::engine::catalogue::Catalogue;
use crate::engine::kinds::split_api_version;
use crate::engine::{self, Context, ServiceEvidence};
use crate::engine::{DecodeError, Kind, Object};
use crate::manifest::{Document, ManifestError, Origin};
use crate::sarif::{self, Check, Finding};
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
struct Item<'a> {
    at: String,
    origin: Origin,
    value: &'a mut Value,
}

pub fn run(mut documents: Vec<Document>, options: &Options) -> Result<Report, OfflineError> {
    let mut items = Vec::new();
    for document in &mut documents {
        items.extend(expand(&document.origin, &mut document.value)?);
    }
    let cluster = Cluster::from_items(&items)?;

    let mut report = Report::default();
    let mut patches = Vec::new();
    let mut findings: Vec<Finding> = Vec::new();
    let mut excluded: BTreeMap<String, usize> = BTreeMap::new();
    let mut explained: Vec<String> = Vec::new();
    for item in &mut items {
        let object = Subject::of(item);
        // Never mutated: the API server refuses it before any webhook sees it.
        if let Some(why) = Kind::unserved(&object.api_version, &object.kind) {
            let message = format!("{}: {why}", object.text);
            report.stderr.push(format!("Warning: {message}"));
            findings.push(Finding {
                origin: item.origin.clone(),
                check: Check::RemovedApiVersion,
                message,
            });
            continue;
        }
        let (group, version) = split_api_version(&object.api_version);
        let workload =
            Object::decode(group, version, &object.kind, item.value).map_err(|source| {
                OfflineError::Decode {
                    at: item.at.clone(),
                    source,
                }
            })?;
        let Some(workload) = workload else { continue };
        if !options.include_excluded_namespaces && scope::is_excluded(&object.namespace) {
            *excluded.entry(object.namespace).or_default() += 1;
            continue;
        }
        let mutation = judge(&workload, &object.namespace, &cluster, options);
        if options.explain {
            explained.push(object.text.clone());
            let context = Context {
                catalogue: options.catalogue(),
                ..Context::default()
            };
            explained.extend(
                engine::explain(&workload, &context, &mutation)
                    .into_iter()
                    .map(|line| format!("  {line}")),
            );
        }
        report.say(&object.text, &mutation);
        findings.extend(found(&item.origin, &object.text, &mutation));
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
            patches.push(mutation.patch);
        }
    }
    report.stderr.extend(excluded_note(&excluded));
    let values: Vec<&Value> = documents.iter().map(|d| &d.value).collect();
    report.stdout = if options.explain {
        explained.iter().map(|line| format!("{line}\n")).collect()
    } else if options.format == OutputFormat::Sarif {
        sarif::render(&findings, env!("CARGO_PKG_VERSION"))
            .map_err(|e| OfflineError::Output(e.to_string()))?
    } else {
        render(&values, &patches, options.format)?
    };
    let check = options.check || options.format == OutputFormat::Sarif;
    if check && !findings.is_empty() {
        report.exit_code = 1;
    }
    Ok(report)
}

/// The engine's answer for one object as findings: what it would add, warn and refuse.
fn found(origin: &Origin, subject: &str, mutation: &engine::Mutation) -> Vec<Finding> {
    let finding = |check, message: String| Finding {
        origin: origin.clone(),
        check,
        message: format!("{subject}: {message}"),
    };
    let plan = &mutation.plan;
    let mut findings = Vec::new();
    for container in &plan.probes {
        let kinds: Vec<&str> = container.added.iter().map(|(k, _)| k.field()).collect();
        findings.push(finding(
            Check::ProbesWouldBeAdded,
            format!(
                "would add {} to container {:?}",
                kinds.join(", "),
                container.container
            ),
        ));
    }
    if !plan.gates.is_empty() {
        findings.push(finding(
            Check::ReadinessGatesWouldBeAdded,
            format!("would add readiness gates {}", plan.gates.join(", ")),
        ));
    }
    for warning in &mutation.warnings {
        findings.push(finding(
            Check::Warning(warning.rule),
            warning.message.clone(),
        ));
    }
    if let Some(reason) = &mutation.denial {
        findings.push(finding(Check::WouldBeDenied, reason.clone()));
    }
    findings
}

impl Report {
    /// The engine's warnings and denial for one object, on stderr; a denial fails the run.
    fn say(&mut self, subject: &str, mutation: &engine::Mutation) {
        for warning in &mutation.warnings {
            self.stderr
                .push(format!("Warning: {subject}: {}", warning.message));
        }
        if let Some(reason) = &mutation.denial {
            self.stderr.push(format!("Denied: {subject}: {reason}"));
            self.exit_code = 1;
        }
    }
}

/// An object as messages name it: `file:doc: Kind namespace/name`.
struct Subject {
    api_version: String,
    kind: String,
    namespace: String,
    text: String,
}

impl Subject {
    fn of(item: &Item<'_>) -> Subject {
        let api_version = item.value["apiVersion"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let kind = item.value["kind"].as_str().unwrap_or_default().to_owned();
        let metadata = &item.value["metadata"];
        let namespace = metadata["namespace"]
            .as_str()
            .unwrap_or("default")
            .to_owned();
        let name = metadata["name"]
            .as_str()
            .map(str::to_owned)
            .or_else(|| metadata["generateName"].as_str().map(|g| format!("{g}*")))
            .unwrap_or_else(|| "<unnamed>".into());
        let text = format!("{}: {kind} {namespace}/{name}", item.at);
        Subject {
            api_version,
            kind,
            namespace,
            text,
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
