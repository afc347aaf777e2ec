//! `audit --suggest`: the start-up budgets the audit suggests, per workload, as the
//! strategic-merge patch to commit with the manifest (or a kustomize patch) and the
//! `kubectl patch` line that applies it. Nothing is written to the cluster.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use k8s_openapi::api::core::v1::Probe;
use serde::Serialize;

use super::startup::{Change, ContainerChange, Workload};
use crate::engine::Kind;
use crate::policy::STARTUP_SECONDS;

/// The changes suggested for one workload's containers.
#[derive(Debug, Clone, PartialEq)]
pub struct Suggestion {
    pub workload: Workload,
    pub changes: Vec<ContainerChange>,
    /// The longest budget the webhook gives another container of the pods, which one
    /// `startup-seconds` annotation must not cut: it sizes every startup probe the webhook
    /// adds to them, over the catalogue's budgets too.
    pub annotation_at_least: i64,
}

/// A strategic-merge patch of exactly the fields that change (containers merge by name).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Document {
    pub api_version: &'static str,
    pub kind: &'static str,
    pub metadata: Metadata,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec: Option<Spec>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Metadata {
    pub name: String,
    pub namespace: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<&'static str, String>,
}

/// A workload's pod template, or a Pod's own spec.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Spec {
    Template { template: Template },
    Pod(Containers),
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Template {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Annotations>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spec: Option<Containers>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Annotations {
    pub annotations: BTreeMap<&'static str, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Containers {
    pub containers: Vec<ContainerPatch>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ContainerPatch {
    pub name: String,
    pub startup_probe: Probe,
}

impl Suggestion {
    /// The patch: the annotation on the pod template (a Pod's own metadata), and each
    /// container's startup probe change.
    pub fn document(&self) -> Document {
        // One annotation sizes every startup probe the webhook adds to the pods: the
        // longest suggested covers them all.
        let seconds = self
            .changes
            .iter()
            .filter_map(|c| match c.change {
                Change::Annotation { seconds } => Some(seconds),
                Change::FailureThreshold { annotation, .. } => annotation,
                Change::StartupProbe(_) => None,
            })
            .max()
            .map(|s| s.max(self.annotation_at_least));
        let annotations: BTreeMap<&'static str, String> = seconds
            .map(|s| (STARTUP_SECONDS, s.to_string()))
            .into_iter()
            .collect();
        let containers: Vec<ContainerPatch> = self
            .changes
            .iter()
            .filter_map(|c| {
                let startup_probe = match &c.change {
                    Change::Annotation { .. } => return None,
                    Change::FailureThreshold {
                        failure_threshold, ..
                    } => Probe {
                        failure_threshold: Some(*failure_threshold),
                        ..Probe::default()
                    },
                    Change::StartupProbe(probe) => (**probe).clone(),
                };
                Some(ContainerPatch {
                    name: c.container.clone(),
                    startup_probe,
                })
            })
            .collect();
        let containers = (!containers.is_empty()).then_some(Containers { containers });
        let kind = self.workload.kind;
        let (metadata_annotations, spec) = if kind == Kind::Pod {
            (annotations, containers.map(Spec::Pod))
        } else {
            let template = Template {
                metadata: (!annotations.is_empty()).then_some(Annotations { annotations }),
                spec: containers,
            };
            (BTreeMap::new(), Some(Spec::Template { template }))
        };
        Document {
            api_version: kind.api_version(),
            kind: kind.name(),
            metadata: Metadata {
                name: self.workload.name.clone(),
                namespace: self.workload.namespace.clone(),
                annotations: metadata_annotations,
            },
            spec,
        }
    }

    /// The `kubectl patch` line for the live object; `None` for a Pod, whose probes cannot
    /// change once it is created: its manifest takes the patch, and the next pod uses it.
    pub fn command(&self) -> Result<Option<String>, serde_json::Error> {
        /// The patch body: the live object's name and kind come from the command line.
        #[derive(Serialize)]
        struct Body {
            spec: Spec,
        }
        let spec = match self.document().spec {
            Some(spec) if self.workload.kind != Kind::Pod => spec,
            _ => return Ok(None),
        };
        let body = serde_json::to_string(&Body { spec })?;
        Ok(Some(format!(
            "kubectl patch {} {} -n {} --type=strategic -p {}",
            self.workload.kind.name().to_ascii_lowercase(),
            self.workload.name,
            self.workload.namespace,
            shell_quote(&body)
        )))
    }

    /// A comment line per container, then the command (or, for a Pod, the patch to take into
    /// its manifest).
    pub fn to_text(&self) -> Result<String, serde_json::Error> {
        let mut out = String::new();
        let w = &self.workload;
        for change in &self.changes {
            let _ = writeln!(
                out,
                "# {} {}/{}: {}",
                w.kind.name(),
                w.namespace,
                w.name,
                change.why
            );
        }
        match self.command()? {
            Some(command) => out.push_str(&command),
            None => {
                let _ = write!(
                    out,
                    "# a Pod's probes cannot change: recreate it from its manifest with this strategic-merge patch applied:\n# {}",
                    serde_json::to_string(&self.document())?
                );
            }
        }
        out.push('\n');
        Ok(out)
    }
}

/// Every suggestion, for people: comments and `kubectl patch` lines, a blank line between
/// workloads; one comment line when there is none.
pub fn to_text(suggestions: &[Suggestion]) -> Result<String, serde_json::Error> {
    if suggestions.is_empty() {
        return Ok("# no start-up budget to change\n".to_owned());
    }
    let texts = suggestions
        .iter()
        .map(Suggestion::to_text)
        .collect::<Result<Vec<_>, _>>()?;
    Ok(texts.join("\n"))
}

/// The patches as a YAML stream, one document per workload: files to commit beside the
/// manifests, or kustomize patches.
pub fn to_yaml(suggestions: &[Suggestion]) -> Result<String, serde_json::Error> {
    let documents = suggestions
        .iter()
        .map(|s| serde_json::to_value(s.document()).map(|v| crate::yaml::to_string(&v)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(documents.join("---\n"))
}

/// The patches as a `kind: List`, in JSON.
pub fn to_json(suggestions: &[Suggestion]) -> Result<String, serde_json::Error> {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct List {
        api_version: &'static str,
        kind: &'static str,
        items: Vec<Document>,
    }
    let list = List {
        api_version: "v1",
        kind: "List",
        items: suggestions.iter().map(Suggestion::document).collect(),
    };
    let mut out = serde_json::to_string_pretty(&list)?;
    out.push('\n');
    Ok(out)
}

/// `text` as one POSIX shell word: single-quoted, each `'` closed, escaped and reopened.
fn shell_quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::{ExecAction, HTTPGetAction};
    use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
    use serde_json::json;

    fn suggestion(kind: Kind, changes: Vec<(&str, Change)>) -> Suggestion {
        Suggestion {
            workload: Workload {
                namespace: "shop".into(),
                kind,
                name: "api".into(),
            },
            changes: changes
                .into_iter()
                .map(|(container, change)| ContainerChange {
                    container: container.into(),
                    seconds: 300,
                    change,
                    why: format!("container {container:?}: why"),
                })
                .collect(),
            annotation_at_least: 0,
        }
    }

    #[test]
    fn each_change_is_the_patch_its_origin_needs() {
        struct Case {
            name: &'static str,
            suggestion: Suggestion,
            document: serde_json::Value,
            command: Option<&'static str>,
        }
        let http = Probe {
            http_get: Some(HTTPGetAction {
                path: Some("/health".into()),
                port: IntOrString::Int(8080),
                ..HTTPGetAction::default()
            }),
            period_seconds: Some(10),
            failure_threshold: Some(30),
            ..Probe::default()
        };
        let cases = [
            Case {
                name: "a probe the webhook adds: the annotation on the pod template",
                suggestion: suggestion(
                    Kind::Deployment,
                    vec![("app", Change::Annotation { seconds: 150 })],
                ),
                document: json!({"apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": "api", "namespace": "shop"},
                    "spec": {"template": {"metadata": {"annotations": {"probegate.io/startup-seconds": "150"}}}}}),
                command: Some(
                    r#"kubectl patch deployment api -n shop --type=strategic -p '{"spec":{"template":{"metadata":{"annotations":{"probegate.io/startup-seconds":"150"}}}}}'"#,
                ),
            },
            Case {
                name: "the workload's own startup probe: its failureThreshold only",
                suggestion: suggestion(
                    Kind::StatefulSet,
                    vec![(
                        "db",
                        Change::FailureThreshold {
                            failure_threshold: 18,
                            annotation: None,
                        },
                    )],
                ),
                document: json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
                    "metadata": {"name": "api", "namespace": "shop"},
                    "spec": {"template": {"spec": {"containers": [{"name": "db", "startupProbe": {"failureThreshold": 18}}]}}}}),
                command: Some(
                    r#"kubectl patch statefulset api -n shop --type=strategic -p '{"spec":{"template":{"spec":{"containers":[{"name":"db","startupProbe":{"failureThreshold":18}}]}}}}'"#,
                ),
            },
            Case {
                name: "probegate's startup probe: its failureThreshold and the annotation",
                suggestion: suggestion(
                    Kind::DaemonSet,
                    vec![(
                        "agent",
                        Change::FailureThreshold {
                            failure_threshold: 12,
                            annotation: Some(120),
                        },
                    )],
                ),
                document: json!({"apiVersion": "apps/v1", "kind": "DaemonSet",
                    "metadata": {"name": "api", "namespace": "shop"},
                    "spec": {"template": {"metadata": {"annotations": {"probegate.io/startup-seconds": "120"}},
                        "spec": {"containers": [{"name": "agent", "startupProbe": {"failureThreshold": 12}}]}}}}),
                command: Some(
                    r#"kubectl patch daemonset api -n shop --type=strategic -p '{"spec":{"template":{"metadata":{"annotations":{"probegate.io/startup-seconds":"120"}},"spec":{"containers":[{"name":"agent","startupProbe":{"failureThreshold":12}}]}}}}'"#,
                ),
            },
            Case {
                name: "liveness of its own and no startup probe: a startup probe with its check",
                suggestion: suggestion(
                    Kind::Deployment,
                    vec![("app", Change::StartupProbe(Box::new(http.clone())))],
                ),
                document: json!({"apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": "api", "namespace": "shop"},
                    "spec": {"template": {"spec": {"containers": [{"name": "app", "startupProbe":
                        {"httpGet": {"path": "/health", "port": 8080}, "periodSeconds": 10, "failureThreshold": 30}}]}}}}),
                command: Some(
                    r#"kubectl patch deployment api -n shop --type=strategic -p '{"spec":{"template":{"spec":{"containers":[{"name":"app","startupProbe":{"failureThreshold":30,"httpGet":{"path":"/health","port":8080},"periodSeconds":10}}]}}}}'"#,
                ),
            },
            Case {
                name: "two containers: one annotation, the longest, and each probe change",
                suggestion: suggestion(
                    Kind::Deployment,
                    vec![
                        ("a", Change::Annotation { seconds: 90 }),
                        ("b", Change::Annotation { seconds: 200 }),
                        (
                            "c",
                            Change::FailureThreshold {
                                failure_threshold: 4,
                                annotation: None,
                            },
                        ),
                    ],
                ),
                document: json!({"apiVersion": "apps/v1", "kind": "Deployment",
                    "metadata": {"name": "api", "namespace": "shop"},
                    "spec": {"template": {"metadata": {"annotations": {"probegate.io/startup-seconds": "200"}},
                        "spec": {"containers": [{"name": "c", "startupProbe": {"failureThreshold": 4}}]}}}}),
                command: Some(
                    r#"kubectl patch deployment api -n shop --type=strategic -p '{"spec":{"template":{"metadata":{"annotations":{"probegate.io/startup-seconds":"200"}},"spec":{"containers":[{"name":"c","startupProbe":{"failureThreshold":4}}]}}}}'"#,
                ),
            },
            Case {
                name: "a bare pod: its own metadata and spec, and no command",
                suggestion: suggestion(
                    Kind::Pod,
                    vec![
                        ("a", Change::Annotation { seconds: 90 }),
                        (
                            "b",
                            Change::FailureThreshold {
                                failure_threshold: 9,
                                annotation: None,
                            },
                        ),
                    ],
                ),
                document: json!({"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": "api", "namespace": "shop", "annotations": {"probegate.io/startup-seconds": "90"}},
                    "spec": {"containers": [{"name": "b", "startupProbe": {"failureThreshold": 9}}]}}),
                command: None,
            },
        ];
        for case in cases {
            assert_eq!(
                serde_json::to_value(case.suggestion.document()).unwrap(),
                case.document,
                "{}",
                case.name
            );
            assert_eq!(
                case.suggestion.command().unwrap().as_deref(),
                case.command,
                "{}",
                case.name
            );
        }
    }

    #[test]
    fn the_annotation_covers_the_budgets_it_would_otherwise_cut() {
        let mut s = suggestion(
            Kind::Deployment,
            vec![("app", Change::Annotation { seconds: 150 })],
        );
        s.annotation_at_least = 900;
        let document = serde_json::to_value(s.document()).unwrap();
        assert_eq!(
            document["spec"]["template"]["metadata"]["annotations"]["probegate.io/startup-seconds"],
            "900"
        );
        // Without an annotation to write, none is written for the others' sake.
        let mut s = suggestion(
            Kind::Deployment,
            vec![(
                "app",
                Change::FailureThreshold {
                    failure_threshold: 9,
                    annotation: None,
                },
            )],
        );
        s.annotation_at_least = 900;
        let document = serde_json::to_value(s.document()).unwrap();
        assert!(
            document["spec"]["template"].get("metadata").is_none(),
            "{document}"
        );
    }

    #[test]
    fn a_command_with_quotes_in_it_stays_one_shell_word() {
        let probe = Probe {
            exec: Some(ExecAction {
                command: Some(vec![
                    "sh".into(),
                    "-c".into(),
                    "test -f '/tmp/ready'".into(),
                ]),
            }),
            ..Probe::default()
        };
        let s = suggestion(
            Kind::Deployment,
            vec![("app", Change::StartupProbe(Box::new(probe)))],
        );
        let command = s.command().unwrap().unwrap();
        // The shell reads the quoted patch back as the exact JSON.
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "printf %s {}",
                command.rsplit_once(" -p ").unwrap().1
            ))
            .output()
            .unwrap();
        let back: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(
            back["spec"]["template"]["spec"]["containers"][0]["startupProbe"]["exec"]["command"][2],
            "test -f '/tmp/ready'"
        );
    }

    #[test]
    fn text_names_each_container_then_the_command() {
        let s = suggestion(
            Kind::Deployment,
            vec![("app", Change::Annotation { seconds: 150 })],
        );
        let text = s.to_text().unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], r#"# Deployment shop/api: container "app": why"#);
        assert!(
            lines[1].starts_with("kubectl patch deployment api -n shop"),
            "{text}"
        );
        let pod = suggestion(
            Kind::Pod,
            vec![("app", Change::Annotation { seconds: 150 })],
        );
        let text = pod.to_text().unwrap();
        assert!(text.contains("recreate it from its manifest"), "{text}");
        assert!(!text.contains("kubectl patch"), "{text}");
    }
}
