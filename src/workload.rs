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
mod tests;
