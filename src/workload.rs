//! The admission objects probegate mutates, as typed k8s-openapi objects.
//!
//! The handled kinds are listed once, in `handled_kinds!` below: the enum, the kind names,
//! API versions, the full decode `mutate` uses and the partial decode the webhook uses all
//! come from that line. A kind also says where its pod spec is (`PodCarrier`, here) and
//! what the webhook reads of it (`partial_decode::Viewed`).

use k8s_openapi::Resource;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::{Pod, PodSpec, PodTemplateSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::DeserializeOwned;

use crate::partial_decode;

#[derive(Debug, thiserror::Error)]
#[error("the object does not fit {kind}: {source}")]
pub struct DecodeError {
    pub kind: &'static str,
    #[source]
    pub source: serde_json::Error,
}

macro_rules! handled_kinds {
    ($($kind:ident),+ $(,)?) => {
        /// An object that carries a pod spec, directly or through a template.
        #[derive(Debug, Clone, PartialEq)]
        #[expect(
            clippy::large_enum_variant,
            reason = "one value per request, never stored in bulk"
        )]
        pub enum Workload {
            $($kind($kind)),+
        }

        /// A kind probegate handles, in the one API version it reads it in.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Kind {
            $($kind),+
        }

        impl Kind {
            pub const ALL: &'static [Kind] = &[$(Kind::$kind),+];

            pub fn name(self) -> &'static str {
                match self {
                    $(Kind::$kind => <$kind as Resource>::KIND),+
                }
            }

            pub fn api_version(self) -> &'static str {
                match self {
                    $(Kind::$kind => <$kind as Resource>::API_VERSION),+
                }
            }

            fn group_version(self) -> (&'static str, &'static str) {
                match self {
                    $(Kind::$kind => (<$kind as Resource>::GROUP, <$kind as Resource>::VERSION)),+
                }
            }

            /// Every field decoded and checked, as `probegate mutate` needs.
            pub fn decode(self, object: serde_json::Value) -> Result<Workload, DecodeError> {
                match self {
                    $(Kind::$kind => typed::<$kind>(object).map(Workload::$kind)),+
                }
            }

            /// Only what the rules read, straight off a deserializer (the webhook's path).
            pub(crate) fn read_view<'de, D: serde::Deserializer<'de>>(
                self,
                deserializer: D,
            ) -> Result<Workload, D::Error> {
                match self {
                    $(Kind::$kind => partial_decode::read::<$kind, D>(deserializer).map(Workload::$kind)),+
                }
            }
        }

        impl Workload {
            pub fn kind(&self) -> &'static str {
                self.handled_kind().name()
            }

            pub fn handled_kind(&self) -> Kind {
                match self {
                    $(Workload::$kind(_) => Kind::$kind),+
                }
            }

            pub fn metadata(&self) -> &ObjectMeta {
                match self {
                    $(Workload::$kind(o) => &o.metadata),+
                }
            }

            /// The pod spec and its metadata; `None` when the object has no pod spec yet.
            pub fn pod_parts(&self) -> Option<PodParts<'_>> {
                match self {
                    $(Workload::$kind(o) => o.pod_parts()),+
                }
            }
        }
    };
}

handled_kinds!(
    Pod,
    Deployment,
    StatefulSet,
    DaemonSet,
    ReplicaSet,
    Job,
    CronJob
);

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

/// Where a handled kind keeps its pod spec.
pub trait PodCarrier {
    fn pod_parts(&self) -> Option<PodParts<'_>>;
}

const TEMPLATE_BASE: &[&str] = &["spec", "template"];
const CRONJOB_TEMPLATE_BASE: &[&str] = &["spec", "jobTemplate", "spec", "template"];

impl PodCarrier for Pod {
    fn pod_parts(&self) -> Option<PodParts<'_>> {
        self.spec.as_ref().map(|spec| PodParts {
            workload_meta: None,
            pod_meta: Some(&self.metadata),
            spec,
            base: &[],
        })
    }
}

/// The parts of a workload whose pods come from `template`.
fn templated<'a>(
    metadata: &'a ObjectMeta,
    template: Option<&'a PodTemplateSpec>,
    base: &'static [&'static str],
) -> Option<PodParts<'a>> {
    let template = template?;
    Some(PodParts {
        workload_meta: Some(metadata),
        pod_meta: template.metadata.as_ref(),
        spec: template.spec.as_ref()?,
        base,
    })
}

macro_rules! carries_template {
    ($($kind:ident: |$o:ident| $template:expr),+ $(,)?) => {
        $(impl PodCarrier for $kind {
            fn pod_parts(&self) -> Option<PodParts<'_>> {
                let $o = self;
                templated(&self.metadata, $template, TEMPLATE_BASE)
            }
        })+
    };
}

carries_template!(
    Deployment: |o| Some(&o.spec.template),
    StatefulSet: |o| Some(&o.spec.template),
    DaemonSet: |o| Some(&o.spec.template),
    ReplicaSet: |o| o.spec.template.as_ref(),
    Job: |o| o.spec.as_ref().map(|s| &s.template),
);

impl PodCarrier for CronJob {
    fn pod_parts(&self) -> Option<PodParts<'_>> {
        let template = self.spec.job_template.spec.as_ref().map(|s| &s.template);
        templated(&self.metadata, template, CRONJOB_TEMPLATE_BASE)
    }
}

impl Kind {
    /// The kind for `group/version/kind`, if probegate handles it.
    pub fn of(group: &str, version: &str, kind: &str) -> Option<Kind> {
        Kind::ALL
            .iter()
            .copied()
            .find(|k| k.group_version() == (group, version) && k.name() == kind)
    }

    /// A bounded metrics label: the kind's name, or `other`.
    pub fn label(kind: &str) -> &'static str {
        Kind::ALL
            .iter()
            .map(|k| k.name())
            .find(|name| *name == kind)
            .unwrap_or("other")
    }
}

impl Workload {
    /// Decodes `object` if `group/version/kind` is one probegate handles; `Ok(None)` otherwise.
    pub fn decode(
        group: &str,
        version: &str,
        kind: &str,
        object: serde_json::Value,
    ) -> Result<Option<Workload>, DecodeError> {
        Kind::of(group, version, kind)
            .map(|kind| kind.decode(object))
            .transpose()
    }

    /// Why an object of a kind probegate handles, in a version it does not, would never reach
    /// the webhook: the API server no longer serves that version. `None` for objects of
    /// other kinds or groups, and for the versions probegate handles.
    pub fn unserved(api_version: &str, kind: &str) -> Option<String> {
        let served = Kind::ALL.iter().find(|k| k.name() == kind)?.api_version();
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

    /// Splits an `apiVersion` into group and version (`v1` is the core group).
    pub fn split_api_version(api_version: &str) -> (&str, &str) {
        match api_version.split_once('/') {
            Some((group, version)) => (group, version),
            None => ("", api_version),
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
                    owner.kind == Job::KIND
                        && Workload::split_api_version(&owner.api_version).0 == Job::GROUP
                });
        matches!(self, Workload::Job(_) | Workload::CronJob(_)) || job_owned || run_to_completion
    }
}

fn typed<T: DeserializeOwned + Resource>(object: serde_json::Value) -> Result<T, DecodeError> {
    serde_json::from_value(object).map_err(|source| DecodeError {
        kind: T::KIND,
        source,
    })
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
        assert_eq!(cases.len(), Kind::ALL.len(), "every kind has a case");
        for (api_version, kind, object, base) in cases {
            let (group, version) = Workload::split_api_version(api_version);
            let workload = Workload::decode(group, version, kind, object)
                .unwrap()
                .unwrap_or_else(|| panic!("{kind} not handled"));
            assert_eq!(workload.kind(), kind);
            assert_eq!(Kind::of(group, version, kind).map(Kind::name), Some(kind));
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
