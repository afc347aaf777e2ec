//! `probegate fn`: the offline engine as a KRM function, for kustomize, kpt and Argo CD's
//! config management plugins. The KRM Functions Specification
//! (kubernetes-sigs/kustomize, cmd/config/docs/api-conventions/functions-spec.md): a
//! `ResourceList` on stdin, the same on stdout, findings in `results`, errors on stderr and
//! a non-zero exit on failure. The result fields are kyaml's (`fn/framework/result.go`,
//! kyaml v0.21.1): `message`, `severity` (error, warning, info), `resourceRef`,
//! `field.path`, `file.path` and `file.index`, `tags`.
//!
//! Every item goes through `offline::evaluate`, as `mutate` runs it: Namespace and Service
//! items are the cluster's, excluded namespaces are left alone unless configured.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::ConfigMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::engine::catalogue::Catalogue;
use crate::findings::{Finding, Level};
use crate::manifest::Origin;
use crate::offline::{self, Item, Options};

/// The ResourceList's version (kyaml `kio.ResourceListAPIVersion`).
const RESOURCE_LIST_API_VERSION: &str = "config.kubernetes.io/v1";
const RESOURCE_LIST: &str = "ResourceList";
/// probegate's own functionConfig kind.
pub const CONFIG_API_VERSION: &str = "probegate.io/v1alpha1";
pub const CONFIG_KIND: &str = "FunctionConfig";
/// Where an orchestrator says an item came from: the file and its 0-based index in it
/// (kyaml `kio/kioutil`: the internal annotations, then the legacy ones).
const PATH_ANNOTATIONS: [&str; 2] = [
    "internal.config.kubernetes.io/path",
    "config.kubernetes.io/path",
];
const INDEX_ANNOTATIONS: [&str; 2] = [
    "internal.config.kubernetes.io/index",
    "config.kubernetes.io/index",
];
/// The result tag naming the kind of finding, as SARIF's rule id names it.
const CHECK_TAG: &str = "probegate.io/check";

/// What the function prints, and how it exits.
#[derive(Debug, Default, PartialEq)]
pub struct Answer {
    pub stdout: String,
    pub stderr: Vec<String>,
    pub exit_code: u8,
}

/// A run that could not answer with a ResourceList: the input is not one.
#[derive(Debug, thiserror::Error)]
pub enum InputError {
    #[error("standard input is not YAML: {0}")]
    Yaml(String),
    #[error("standard input holds {0} documents; a function reads one ResourceList")]
    Documents(usize),
    #[error("standard input is not a ResourceList or List: {0}")]
    NotAList(String),
    #[error("cannot write the output: {0}")]
    Output(String),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ResourceList {
    api_version: Option<String>,
    kind: String,
    #[serde(default)]
    items: Vec<Value>,
    function_config: Option<Value>,
    /// Earlier functions' results, passed on as they came.
    #[serde(default)]
    results: Vec<Value>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Output<'a> {
    api_version: &'a str,
    kind: &'a str,
    items: &'a [Value],
    #[serde(skip_serializing_if = "Option::is_none")]
    function_config: Option<&'a Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    results: Vec<Value>,
}

/// One entry of `results`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KrmResult {
    pub message: String,
    pub severity: Severity,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_ref: Option<ResourceRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<Field>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<File>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
    Info,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourceRef {
    pub api_version: String,
    pub kind: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Field {
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct File {
    pub path: String,
    /// kyaml omits a zero index (`omitempty`); it is written here, and read when absent.
    #[serde(default)]
    pub index: usize,
}

/// probegate's functionConfig kind: what `mutate`'s flags carry.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FunctionConfig {
    #[serde(rename = "apiVersion")]
    _api_version: String,
    #[serde(rename = "kind")]
    _kind: String,
    #[serde(default, rename = "metadata")]
    _metadata: Option<Value>,
    #[serde(default)]
    spec: ConfigSpec,
}

#[derive(Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ConfigSpec {
    /// `--namespace-annotation`: settings under every namespace's own.
    #[serde(default)]
    namespace_annotations: BTreeMap<String, String>,
    /// `--catalogue`: entries of the catalogue's schema (docs/catalogue.md), inline.
    #[serde(default)]
    catalogue: Option<Value>,
    #[serde(default)]
    include_excluded_namespaces: bool,
    /// Findings fail the run; the items are passed on unchanged.
    #[serde(default)]
    check: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TypeMeta {
    #[serde(default)]
    api_version: String,
    #[serde(default)]
    kind: String,
}

/// What a functionConfig ConfigMap's `data` keys mean besides `probegate.io/` settings.
const DATA_CATALOGUE: &str = "catalogue";
const DATA_INCLUDE_EXCLUDED: &str = "include-excluded-namespaces";
const DATA_CHECK: &str = "check";

/// The options a functionConfig carries, and whether findings fail the run.
fn configure(config: Option<&Value>) -> Result<(Options, bool), String> {
    let mut options = Options::default();
    let Some(config) = config else {
        return Ok((options, false));
    };
    let meta = TypeMeta::deserialize(config).map_err(|e| format!("functionConfig: {e}"))?;
    let (catalogue, check) = match (meta.api_version.as_str(), meta.kind.as_str()) {
        ("v1", "ConfigMap") => {
            let map = ConfigMap::deserialize(config)
                .map_err(|e| format!("functionConfig ConfigMap: {e}"))?;
            let mut catalogue = None;
            let mut check = false;
            for (key, value) in map.data.unwrap_or_default() {
                match key.as_str() {
                    DATA_CATALOGUE => catalogue = Some(value),
                    DATA_INCLUDE_EXCLUDED => {
                        options.include_excluded_namespaces = boolean(&key, &value)?;
                    }
                    DATA_CHECK => check = boolean(&key, &value)?,
                    _ if key.starts_with(crate::policy::PREFIX) => {
                        options.namespace_annotations.insert(key, value);
                    }
                    _ => {
                        return Err(format!(
                            "functionConfig ConfigMap: unknown key {key:?} (known: probegate.io/ settings, {DATA_CATALOGUE}, {DATA_INCLUDE_EXCLUDED}, {DATA_CHECK})"
                        ));
                    }
                }
            }
            (catalogue, check)
        }
        (CONFIG_API_VERSION, CONFIG_KIND) => {
            let config = FunctionConfig::deserialize(config)
                .map_err(|e| format!("functionConfig {CONFIG_KIND}: {e}"))?;
            let spec = config.spec;
            options.namespace_annotations = spec.namespace_annotations;
            options.include_excluded_namespaces = spec.include_excluded_namespaces;
            // JSON is YAML: the catalogue's own reader checks the entries.
            let catalogue = spec
                .catalogue
                .map(|entries| serde_json::to_string(&entries))
                .transpose()
                .map_err(|e| format!("functionConfig spec.catalogue: {e}"))?;
            (catalogue, spec.check)
        }
        (api_version, kind) => {
            return Err(format!(
                "functionConfig: expected a v1 ConfigMap or a {CONFIG_API_VERSION} {CONFIG_KIND}, got {api_version:?} {kind:?}"
            ));
        }
    };
    if let Some(text) = catalogue {
        let catalogue = Catalogue::with_user_file("functionConfig catalogue", &text)
            .map_err(|e| e.to_string())?;
        options.catalogue = Some(catalogue);
    }
    Ok((options, check))
}

fn boolean(key: &str, value: &str) -> Result<bool, String> {
    match value {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(format!(
            "functionConfig ConfigMap: {key} is \"true\" or \"false\", not {value:?}"
        )),
    }
}

/// Runs the function on `input`; `check` as the functionConfig's `check`.
pub fn run(input: &str, check: bool) -> Result<Answer, InputError> {
    let documents = crate::yaml::load_all(input).map_err(|e| InputError::Yaml(e.to_string()))?;
    let documents: Vec<Value> = documents.into_iter().filter(|d| !d.is_null()).collect();
    let [document] = documents.as_slice() else {
        return Err(InputError::Documents(documents.len()));
    };
    let list =
        ResourceList::deserialize(document).map_err(|e| InputError::NotAList(e.to_string()))?;
    let is_resource_list = match list.kind.as_str() {
        RESOURCE_LIST => true,
        // The specification's other input: a List, answered with one.
        "List" => false,
        other => return Err(InputError::NotAList(format!("its kind is {other:?}"))),
    };
    let mut results: Vec<KrmResult> = Vec::new();
    let mut answer = Answer::default();
    // Reviews are not resources: left out with a note, as `mutate` leaves them out.
    let mut items = Vec::with_capacity(list.items.len());
    let mut places = Vec::with_capacity(list.items.len());
    let mut notes = Vec::new();
    for (position, item) in list.items.into_iter().enumerate() {
        let place = locate(position, &item);
        if offline::is_review(&item) {
            notes.push(offline::review_note(&place.0));
        } else {
            items.push(item);
            places.push(place);
        }
    }
    answer.stderr.clone_from(&notes);
    results.extend(notes.iter().map(|note| info(note)));
    match configure(list.function_config.as_ref()) {
        Err(why) => fail(&mut answer, &mut results, why),
        Ok((options, configured_check)) => {
            let check = check || configured_check;
            // A check passes the items on as they came: it validates, it does not mutate.
            let mut evaluated = items.clone();
            match evaluate(&mut evaluated, places, &options) {
                Err(why) => fail(&mut answer, &mut results, why),
                Ok(evaluation) => {
                    answer.stderr.extend(evaluation.stderr);
                    let level = |finding: &Finding| {
                        if check {
                            Severity::Error
                        } else {
                            severity(finding.check.describe().3)
                        }
                    };
                    results.extend(
                        evaluation
                            .findings
                            .iter()
                            .map(|finding| result(finding, level(finding))),
                    );
                    results.extend(evaluation.note.as_deref().map(info));
                    if evaluation.denied || (check && !evaluation.findings.is_empty()) {
                        answer.exit_code = 1;
                    }
                    if !check {
                        items = evaluated;
                    }
                }
            }
        }
    }
    let output = |e: serde_json::Error| InputError::Output(e.to_string());
    let mut all_results = list.results;
    for result in &results {
        all_results.push(serde_json::to_value(result).map_err(output)?);
    }
    let (api_version, kind) = if is_resource_list {
        (
            list.api_version
                .as_deref()
                .unwrap_or(RESOURCE_LIST_API_VERSION),
            RESOURCE_LIST,
        )
    } else {
        ("v1", "List")
    };
    let out = Output {
        api_version,
        kind,
        items: &items,
        function_config: list.function_config.as_ref(),
        results: if is_resource_list {
            all_results
        } else {
            Vec::new()
        },
    };
    let value = serde_json::to_value(&out).map_err(output)?;
    // The answer in the input's form: JSON for JSON, YAML otherwise (the spec's SHOULD).
    answer.stdout = if input.trim_start().starts_with('{') {
        let mut text = serde_json::to_string_pretty(&value).map_err(output)?;
        text.push('\n');
        text
    } else {
        crate::yaml::to_string(&value)
    };
    Ok(answer)
}

/// An error result, an error line and a failed run; the items pass on unchanged.
fn fail(answer: &mut Answer, results: &mut Vec<KrmResult>, why: String) {
    answer.stderr.push(format!("error: {why}"));
    answer.exit_code = 1;
    results.push(KrmResult {
        message: why,
        severity: Severity::Error,
        resource_ref: None,
        field: None,
        file: None,
        tags: BTreeMap::new(),
    });
}

/// An info result for a `Note:` line.
fn info(note: &str) -> KrmResult {
    KrmResult {
        message: note.trim_start_matches("Note: ").to_owned(),
        severity: Severity::Info,
        resource_ref: None,
        field: None,
        file: None,
        tags: BTreeMap::new(),
    }
}

/// Where the item at `position` is, as messages name it: the file its orchestrator says it
/// came from, else its place in the list.
fn locate(position: usize, item: &Value) -> (String, Origin) {
    match source(item) {
        Some((path, index)) => {
            let origin = Origin {
                source: path,
                position: index + 1,
                line: 0,
            };
            (origin.to_string(), origin)
        }
        None => (
            format!("items[{position}]"),
            Origin {
                source: "-".into(),
                position: position + 1,
                line: 0,
            },
        ),
    }
}

/// The engine on the items, in place, each at its place.
fn evaluate(
    items: &mut [Value],
    places: Vec<(String, Origin)>,
    options: &Options,
) -> Result<offline::Evaluation, String> {
    let mut evaluated: Vec<Item<'_>> = items
        .iter_mut()
        .zip(places)
        .map(|(value, (at, origin))| Item { at, origin, value })
        .collect();
    offline::evaluate(&mut evaluated, options).map_err(|e| e.to_string())
}

#[derive(Default, Deserialize)]
struct Annotated {
    #[serde(default)]
    metadata: Option<Annotations>,
}

#[derive(Default, Deserialize)]
struct Annotations {
    #[serde(default)]
    annotations: Option<BTreeMap<String, Value>>,
}

/// The file an item came from and its index there, from the orchestrator's annotations.
fn source(item: &Value) -> Option<(String, usize)> {
    let annotations = Annotated::deserialize(item).ok()?.metadata?.annotations?;
    let first = |keys: &[&str]| {
        keys.iter()
            .find_map(|key| annotations.get(*key)?.as_str().map(str::to_owned))
    };
    let path = first(&PATH_ANNOTATIONS)?;
    let index = first(&INDEX_ANNOTATIONS)
        .and_then(|index| index.parse().ok())
        .unwrap_or(0);
    Some((path, index))
}

fn severity(level: Level) -> Severity {
    match level {
        Level::Note => Severity::Info,
        Level::Warning => Severity::Warning,
        Level::Error => Severity::Error,
    }
}

fn result(finding: &Finding, severity: Severity) -> KrmResult {
    let object = &finding.object;
    let file = (finding.origin.source != "-").then(|| File {
        path: finding.origin.source.clone(),
        index: finding.origin.position.saturating_sub(1),
    });
    KrmResult {
        message: finding.message.clone(),
        severity,
        resource_ref: Some(ResourceRef {
            api_version: object.api_version.clone(),
            kind: object.kind.clone(),
            name: object.name.clone(),
            namespace: object.namespace.clone(),
        }),
        field: finding.field.clone().map(|path| Field { path }),
        file,
        tags: BTreeMap::from([(CHECK_TAG.to_owned(), finding.check.describe().0.to_owned())]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_items_file_comes_from_the_internal_annotations_then_the_legacy_ones() {
        let cases = [
            (
                "internal",
                json!({PATH_ANNOTATIONS[0]: "a.yaml", INDEX_ANNOTATIONS[0]: "2"}),
                Some(("a.yaml", 2)),
            ),
            (
                "legacy",
                json!({PATH_ANNOTATIONS[1]: "b.yaml", INDEX_ANNOTATIONS[1]: "1"}),
                Some(("b.yaml", 1)),
            ),
            (
                "internal first",
                json!({PATH_ANNOTATIONS[1]: "old.yaml", PATH_ANNOTATIONS[0]: "new.yaml"}),
                Some(("new.yaml", 0)),
            ),
            (
                "index that is no number",
                json!({PATH_ANNOTATIONS[0]: "a.yaml", INDEX_ANNOTATIONS[0]: "x"}),
                Some(("a.yaml", 0)),
            ),
            ("index alone", json!({INDEX_ANNOTATIONS[0]: "3"}), None),
            ("annotations that are no map", json!(["x"]), None),
        ];
        for (name, annotations, want) in cases {
            let item = json!({"metadata": {"annotations": annotations}});
            let got = source(&item);
            assert_eq!(
                got.as_ref().map(|(path, index)| (path.as_str(), *index)),
                want,
                "{name}"
            );
        }
    }
}
