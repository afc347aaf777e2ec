//! The admission objects probegate mutates, as typed k8s-openapi objects.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Pod, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::DeserializeOwned;

/// An object that carries a pod spec, directly or through a template.
#[derive(Debug, Clone, PartialEq)]
#[expect(
    clippy::large_enum_variant,
    reason = "one value per request, never stored in bulk"
)]
pub enum Workload {
    Pod(Pod),
    Deployment(Deployment),
    StatefulSet(StatefulSet),
    DaemonSet(DaemonSet),
    ReplicaSet(ReplicaSet),
    Job(Job),
    CronJob(CronJob),
}

#[derive(Debug, thiserror::Error)]
#[error("the object does not fit {kind}: {source}")]
pub struct DecodeError {
    pub kind: &'static str,
    #[source]
    pub source: serde_json::Error,
}

/// Versions of the handled kinds that API servers served once and no longer do, with the
/// Kubernetes release that removed them.
const REMOVED_VERSIONS: [(&str, &str, &str); 10] = [
    ("extensions/v1beta1", "Deployment", "1.16"),
    ("extensions/v1beta1", "DaemonSet", "1.16"),
    ("extensions/v1beta1", "ReplicaSet", "1.16"),
    ("apps/v1beta1", "Deployment", "1.16"),
    ("apps/v1beta1", "StatefulSet", "1.16"),
    ("apps/v1beta2", "Deployment", "1.16"),
    ("apps/v1beta2", "StatefulSet", "1.16"),
    ("apps/v1beta2", "DaemonSet", "1.16"),
    ("apps/v1beta2", "ReplicaSet", "1.16"),
    ("batch/v1beta1", "CronJob", "1.25"),
];

/// The part of a workload the engine works on.
pub struct PodParts<'a> {
    /// The workload's own metadata; `None` for a Pod, whose metadata is `pod_meta`.
    pub workload_meta: Option<&'a ObjectMeta>,
    /// The Pod's metadata or the pod template's (absent in a template that has none).
    pub pod_meta: Option<&'a ObjectMeta>,
    pub spec: &'a PodSpec,
    /// JSON pointer tokens from the object root to the Pod or pod template.
    pub base: &'static [&'static str],
}

const POD_BASE: &[&str] = &[];
const TEMPLATE_BASE: &[&str] = &["spec", "template"];
const CRONJOB_TEMPLATE_BASE: &[&str] = &["spec", "jobTemplate", "spec", "template"];

impl Workload {
    /// Every kind probegate handles, as `kind()` names them.
    pub const KINDS: [&'static str; 7] = [
        "Pod",
        "Deployment",
        "StatefulSet",
        "DaemonSet",
        "ReplicaSet",
        "Job",
        "CronJob",
    ];

    /// Decodes `object` if `group/version/kind` is one probegate handles; `Ok(None)` otherwise.
    pub fn decode(
        group: &str,
        version: &str,
        kind: &str,
        object: serde_json::Value,
    ) -> Result<Option<Workload>, DecodeError> {
        Ok(Some(match (group, version, kind) {
            ("", "v1", "Pod") => Workload::Pod(typed(object, "Pod")?),
            ("apps", "v1", "Deployment") => Workload::Deployment(typed(object, "Deployment")?),
            ("apps", "v1", "StatefulSet") => Workload::StatefulSet(typed(object, "StatefulSet")?),
            ("apps", "v1", "DaemonSet") => Workload::DaemonSet(typed(object, "DaemonSet")?),
            ("apps", "v1", "ReplicaSet") => Workload::ReplicaSet(typed(object, "ReplicaSet")?),
            ("batch", "v1", "Job") => Workload::Job(typed(object, "Job")?),
            ("batch", "v1", "CronJob") => Workload::CronJob(typed(object, "CronJob")?),
            _ => return Ok(None),
        }))
    }

    /// Why an object of a kind probegate handles, in a version it does not, would never reach
    /// the webhook: the API server no longer serves that version. `None` for objects of
    /// other kinds or groups, and for the versions probegate handles.
    pub fn unserved(api_version: &str, kind: &str) -> Option<String> {
        let served = Self::KINDS_SERVED.iter().find(|(k, _)| *k == kind)?.1;
        if api_version == served {
            return None;
        }
        let (group, _) = Self::split_api_version(api_version);
        let known_group = ["", "apps", "batch", "extensions"].contains(&group);
        if !known_group {
            return None;
        }
        Some(
            match REMOVED_VERSIONS
                .iter()
                .find(|(version, k, _)| *version == api_version && *k == kind)
            {
                Some((_, _, release)) => format!(
                    "{api_version} {kind} was removed in Kubernetes {release}: the API server refuses it; use {served}"
                ),
                None => format!(
                    "{api_version} is not a version the API server serves for {kind}; use {served}"
                ),
            },
        )
    }

    /// Each handled kind with the one API version probegate reads it in.
    const KINDS_SERVED: [(&'static str, &'static str); 7] = [
        ("Pod", "v1"),
        ("Deployment", "apps/v1"),
        ("StatefulSet", "apps/v1"),
        ("DaemonSet", "apps/v1"),
        ("ReplicaSet", "apps/v1"),
        ("Job", "batch/v1"),
        ("CronJob", "batch/v1"),
    ];

    /// Splits an `apiVersion` into group and version (`v1` is the core group).
    pub fn split_api_version(api_version: &str) -> (&str, &str) {
        match api_version.split_once('/') {
            Some((group, version)) => (group, version),
            None => ("", api_version),
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Workload::Pod(_) => "Pod",
            Workload::Deployment(_) => "Deployment",
            Workload::StatefulSet(_) => "StatefulSet",
            Workload::DaemonSet(_) => "DaemonSet",
            Workload::ReplicaSet(_) => "ReplicaSet",
            Workload::Job(_) => "Job",
            Workload::CronJob(_) => "CronJob",
        }
    }

    pub fn metadata(&self) -> &ObjectMeta {
        match self {
            Workload::Pod(o) => &o.metadata,
            Workload::Deployment(o) => &o.metadata,
            Workload::StatefulSet(o) => &o.metadata,
            Workload::DaemonSet(o) => &o.metadata,
            Workload::ReplicaSet(o) => &o.metadata,
            Workload::Job(o) => &o.metadata,
            Workload::CronJob(o) => &o.metadata,
        }
    }

    /// Whether its pods run to completion: a Job or CronJob, a Pod a Job owns, or a pod spec
    /// whose restartPolicy is not `Always`. Readiness means nothing for such pods, and a
    /// liveness probe on a port the job never opens fails it.
    pub fn is_batch(&self) -> bool {
        let run_to_completion = self
            .pod_parts()
            .and_then(|parts| parts.spec.restart_policy.as_deref())
            .is_some_and(|policy| policy != "Always");
        let job_owned = matches!(self, Workload::Pod(_))
            && self
                .metadata()
                .owner_references
                .iter()
                .flatten()
                .any(|owner| {
                    owner.kind == "Job"
                        && Workload::split_api_version(&owner.api_version).0 == "batch"
                });
        matches!(self, Workload::Job(_) | Workload::CronJob(_)) || job_owned || run_to_completion
    }

    /// The pod spec and its metadata; `None` when the object has no pod spec yet.
    pub fn pod_parts(&self) -> Option<PodParts<'_>> {
        let (template, base): (Option<&PodTemplateSpec>, _) = match self {
            Workload::Pod(pod) => {
                return pod.spec.as_ref().map(|spec| PodParts {
                    workload_meta: None,
                    pod_meta: Some(&pod.metadata),
                    spec,
                    base: POD_BASE,
                });
            }
            Workload::Deployment(o) => (Some(&o.spec.template), TEMPLATE_BASE),
            Workload::StatefulSet(o) => (Some(&o.spec.template), TEMPLATE_BASE),
            Workload::DaemonSet(o) => (Some(&o.spec.template), TEMPLATE_BASE),
            Workload::ReplicaSet(o) => (o.spec.template.as_ref(), TEMPLATE_BASE),
            Workload::Job(o) => (o.spec.as_ref().map(|s| &s.template), TEMPLATE_BASE),
            Workload::CronJob(o) => (
                o.spec.job_template.spec.as_ref().map(|s| &s.template),
                CRONJOB_TEMPLATE_BASE,
            ),
        };
        let template = template?;
        Some(PodParts {
            workload_meta: Some(self.metadata()),
            pod_meta: template.metadata.as_ref(),
            spec: template.spec.as_ref()?,
            base,
        })
    }
}

fn typed<T: DeserializeOwned>(
    object: serde_json::Value,
    kind: &'static str,
) -> Result<T, DecodeError> {
    serde_json::from_value(object).map_err(|source| DecodeError { kind, source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn container_names(w: &Workload) -> Vec<String> {
        w.pod_parts()
            .map(|p| p.spec.containers.iter().map(|c| c.name.clone()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn decodes_every_handled_kind_and_finds_its_pod_spec() {
        let spec = json!({"containers": [{"name": "app", "image": "app:1"}]});
        let template = json!({"metadata": {"labels": {"app": "x"}}, "spec": spec});
        let cases = [
            (
                "v1",
                "Pod",
                json!({"metadata": {"name": "p"}, "spec": spec}),
                &[][..],
            ),
            (
                "apps/v1",
                "Deployment",
                json!({"metadata": {"name": "d"}, "spec": {"selector": {}, "template": template}}),
                TEMPLATE_BASE,
            ),
            (
                "apps/v1",
                "StatefulSet",
                json!({"metadata": {"name": "s"}, "spec": {"selector": {}, "template": template}}),
                TEMPLATE_BASE,
            ),
            (
                "apps/v1",
                "DaemonSet",
                json!({"metadata": {"name": "ds"}, "spec": {"selector": {}, "template": template}}),
                TEMPLATE_BASE,
            ),
            (
                "apps/v1",
                "ReplicaSet",
                json!({"metadata": {"name": "rs"}, "spec": {"selector": {}, "template": template}}),
                TEMPLATE_BASE,
            ),
            (
                "batch/v1",
                "Job",
                json!({"metadata": {"name": "j"}, "spec": {"template": template}}),
                TEMPLATE_BASE,
            ),
            (
                "batch/v1",
                "CronJob",
                json!({"metadata": {"name": "c"}, "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": template}}}}),
                CRONJOB_TEMPLATE_BASE,
            ),
        ];
        assert_eq!(cases.len(), Workload::KINDS.len(), "every kind has a case");
        for (api_version, kind, object, base) in cases {
            let (group, version) = Workload::split_api_version(api_version);
            let workload = Workload::decode(group, version, kind, object)
                .unwrap()
                .unwrap_or_else(|| panic!("{kind} not handled"));
            assert_eq!(workload.kind(), kind);
            assert!(Workload::KINDS.contains(&kind), "{kind} missing from KINDS");
            assert_eq!(container_names(&workload), ["app"], "{kind}");
            let parts = workload.pod_parts().unwrap();
            assert_eq!(parts.base, base, "{kind}");
            assert_eq!(parts.workload_meta.is_some(), kind != "Pod", "{kind}");
        }
    }

    #[test]
    fn other_kinds_and_versions_pass_through() {
        for (api_version, kind) in [
            ("v1", "Service"),
            ("v1", "ConfigMap"),
            ("apps/v1beta1", "Deployment"),
            ("extensions/v1beta1", "Deployment"),
            ("example.com/v1", "Pod"),
        ] {
            let (group, version) = Workload::split_api_version(api_version);
            let decoded = Workload::decode(group, version, kind, json!({"metadata": {}})).unwrap();
            assert!(decoded.is_none(), "{api_version} {kind}");
        }
    }

    #[test]
    fn unserved_versions_of_handled_kinds_are_named() {
        // (apiVersion, kind, what the message must say; None = nothing to say)
        let cases = [
            (
                "extensions/v1beta1",
                "Deployment",
                Some("removed in Kubernetes 1.16: the API server refuses it; use apps/v1"),
            ),
            (
                "extensions/v1beta1",
                "DaemonSet",
                Some("removed in Kubernetes 1.16"),
            ),
            (
                "extensions/v1beta1",
                "ReplicaSet",
                Some("removed in Kubernetes 1.16"),
            ),
            (
                "apps/v1beta1",
                "Deployment",
                Some("removed in Kubernetes 1.16"),
            ),
            (
                "apps/v1beta1",
                "StatefulSet",
                Some("removed in Kubernetes 1.16"),
            ),
            (
                "apps/v1beta2",
                "Deployment",
                Some("removed in Kubernetes 1.16"),
            ),
            (
                "apps/v1beta2",
                "StatefulSet",
                Some("removed in Kubernetes 1.16"),
            ),
            (
                "apps/v1beta2",
                "DaemonSet",
                Some("removed in Kubernetes 1.16"),
            ),
            (
                "apps/v1beta2",
                "ReplicaSet",
                Some("removed in Kubernetes 1.16"),
            ),
            (
                "batch/v1beta1",
                "CronJob",
                Some(
                    "batch/v1beta1 CronJob was removed in Kubernetes 1.25: the API server refuses it; use batch/v1",
                ),
            ),
            (
                "batch/v2alpha1",
                "CronJob",
                Some(
                    "batch/v2alpha1 is not a version the API server serves for CronJob; use batch/v1",
                ),
            ),
            (
                "batch/v1beta1",
                "Job",
                Some("not a version the API server serves for Job; use batch/v1"),
            ),
            ("v2", "Pod", Some("use v1")),
            ("apps/v1", "Deployment", None),
            ("batch/v1", "CronJob", None),
            ("v1", "Pod", None),
            ("example.com/v1", "Deployment", None),
            ("v1", "Service", None),
            ("extensions/v1beta1", "Ingress", None),
        ];
        for (api_version, kind, expected) in cases {
            let said = Workload::unserved(api_version, kind);
            match expected {
                None => assert_eq!(said, None, "{api_version} {kind}"),
                Some(part) => {
                    let said = said.unwrap_or_default();
                    assert!(said.contains(part), "{api_version} {kind}: {said}");
                }
            }
        }
        // Every kind probegate handles has its served version.
        for kind in Workload::KINDS {
            assert!(
                Workload::KINDS_SERVED.iter().any(|(k, _)| *k == kind),
                "{kind}"
            );
        }
    }

    #[test]
    fn fields_that_do_not_fit_the_kind_are_an_error() {
        let err =
            Workload::decode("", "v1", "Pod", json!({"spec": {"containers": "app"}})).unwrap_err();
        assert_eq!(err.kind, "Pod");
        assert!(err.to_string().contains("does not fit Pod"), "{err}");
    }

    #[test]
    fn batch_pods_are_recognised() {
        let spec = |restart: Option<&str>| {
            let mut spec = json!({"containers": [{"name": "app"}]});
            if let Some(restart) = restart {
                spec["restartPolicy"] = json!(restart);
            }
            spec
        };
        let template = json!({"spec": spec(None)});
        let owned_by = |api_version: &str, kind: &str| {
            json!({"name": "p", "ownerReferences": [{"apiVersion": api_version, "kind": kind,
                "name": "o", "uid": "1", "controller": true}]})
        };
        // (group, kind, object, batch)
        let cases = [
            (
                "batch",
                "Job",
                json!({"spec": {"template": template}}),
                true,
            ),
            (
                "batch",
                "CronJob",
                json!({"spec": {"schedule": "@daily", "jobTemplate": {"spec": {"template": template}}}}),
                true,
            ),
            (
                "",
                "Pod",
                json!({"metadata": owned_by("batch/v1", "Job"), "spec": spec(None)}),
                true,
            ),
            (
                "",
                "Pod",
                json!({"metadata": owned_by("example.com/v1", "Job"), "spec": spec(None)}),
                false,
            ),
            (
                "",
                "Pod",
                json!({"metadata": owned_by("apps/v1", "ReplicaSet"), "spec": spec(None)}),
                false,
            ),
            ("", "Pod", json!({"spec": spec(Some("Never"))}), true),
            ("", "Pod", json!({"spec": spec(Some("OnFailure"))}), true),
            ("", "Pod", json!({"spec": spec(Some("Always"))}), false),
            ("", "Pod", json!({"spec": spec(None)}), false),
            (
                "apps",
                "Deployment",
                json!({"spec": {"selector": {}, "template": template}}),
                false,
            ),
        ];
        for (group, kind, object, batch) in cases {
            let workload = Workload::decode(group, "v1", kind, object.clone())
                .unwrap()
                .unwrap();
            assert_eq!(workload.is_batch(), batch, "{kind} {object}");
        }
    }

    #[test]
    fn workloads_without_a_pod_spec_have_no_parts() {
        let deployment = Workload::decode(
            "apps",
            "v1",
            "Deployment",
            json!({"metadata": {"name": "d"}}),
        )
        .unwrap()
        .unwrap();
        assert!(deployment.pod_parts().is_none());
        let pod = Workload::decode("", "v1", "Pod", json!({"metadata": {"name": "p"}}))
            .unwrap()
            .unwrap();
        assert!(pod.pod_parts().is_none());
    }
}
