//! Decodes a handled object for the webhook keeping only what the rules read.
//!
//! A full k8s-openapi decode builds every field of the object: `managedFields`, resources,
//! volume mounts, every environment variable's source. The rules read a few of them, and the
//! review path spent most of its time building the rest. Here serde reads past unread fields
//! without building them, and the result is the same k8s-openapi type the engine always
//! takes, with unread fields left at their defaults. The object's metadata keeps every field
//! but `managedFields`, since whether it is empty decides the shape of the patch.
//!
//! `probegate mutate` keeps the full decode: it must report fields that do not fit the kind.
//! `tests` below hold the two to the same engine answers.

use k8s_openapi::api::apps::v1::{
    DaemonSet, DaemonSetSpec, Deployment, DeploymentSpec, ReplicaSet, ReplicaSetSpec, StatefulSet,
    StatefulSetSpec,
};
use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, Job, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Deserialize;

use crate::workload::{DecodeError, Kind, Workload};
use k8s_openapi::Resource;

mod views;
pub(crate) use views::PodSpecView;
use views::{MetaView, TemplateView};

/// Decodes `object` if `group/version/kind` is one probegate handles; `Ok(None)` otherwise.
pub fn decode(
    group: &str,
    version: &str,
    kind: &str,
    object: &str,
) -> Result<Option<Workload>, DecodeError> {
    let Some(kind) = Kind::of(group, version, kind) else {
        return Ok(None);
    };
    let mut deserializer = serde_json::Deserializer::from_str(object);
    let workload = serde::de::DeserializeSeed::deserialize(kind, &mut deserializer)
        .and_then(|workload| deserializer.end().map(|()| workload))
        .map_err(|source| DecodeError {
            kind: kind.name(),
            source,
        })?;
    Ok(Some(workload))
}

/// A handled kind reads itself straight off a deserializer: the admission layer decodes the
/// object with it in the same pass as the rest of the review.
impl<'de> serde::de::DeserializeSeed<'de> for Kind {
    type Value = Workload;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Workload, D::Error> {
        self.read_view(d)
    }
}

/// Metadata without `managedFields`, and with only the annotations a rule reads: for other
/// objects read the same way (the cache's Services).
pub(crate) fn read_meta<'de, D: serde::Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    MetaView::deserialize(d).map(Into::into)
}

/// A string read from the body: borrowed where the JSON has no escapes, so a map key or a
/// name that is only compared costs no allocation. (serde's own `Cow<str>` always owns.)
pub(crate) struct Text<'de>(pub(crate) std::borrow::Cow<'de, str>);

impl<'de> Deserialize<'de> for Text<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(s.into()))
            }
            fn visit_str<E>(self, s: &str) -> Result<Text<'de>, E> {
                Ok(Text(s.to_owned().into()))
            }
            fn visit_string<E>(self, s: String) -> Result<Text<'de>, E> {
                Ok(Text(s.into()))
            }
        }
        d.deserialize_str(Visitor)
    }
}

/// What the webhook reads of a kind's spec, and how the typed object is built from it.
pub(crate) trait Viewed: Sized {
    type Spec: for<'de> Deserialize<'de> + Default;
    fn from_view(metadata: ObjectMeta, spec: Self::Spec) -> Self;
}

/// Reads the view of `T` and checks its `apiVersion` and `kind`: the object's own, where it
/// says them, must name what the review says it is, as the full decode requires.
pub(crate) fn read<'de, T, D>(d: D) -> Result<T, D::Error>
where
    T: Viewed + Resource,
    D: serde::Deserializer<'de>,
{
    let view = ObjectView::<T::Spec>::deserialize(d)?;
    for (found, expected) in [(view.api_version, T::API_VERSION), (view.kind, T::KIND)] {
        if let Some(found) = found.filter(|f| f != expected) {
            return Err(serde::de::Error::invalid_value(
                serde::de::Unexpected::Str(&found),
                &expected,
            ));
        }
    }
    Ok(T::from_view(view.metadata.into(), view.spec))
}

impl Viewed for Pod {
    type Spec = Option<PodSpecView>;
    fn from_view(metadata: ObjectMeta, spec: Self::Spec) -> Pod {
        Pod {
            metadata,
            spec: spec.map(Into::into),
            status: None,
        }
    }
}

/// Deployments, StatefulSets and DaemonSets: only their template is read.
macro_rules! templated {
    ($($kind:ident: $spec:ident),+ $(,)?) => {
        $(impl Viewed for $kind {
            type Spec = TemplateHolder;
            fn from_view(metadata: ObjectMeta, spec: TemplateHolder) -> $kind {
                $kind {
                    metadata,
                    spec: $spec {
                        template: spec.template.into(),
                        ..$spec::default()
                    },
                    status: None,
                }
            }
        })+
    };
}

templated!(
    Deployment: DeploymentSpec,
    StatefulSet: StatefulSetSpec,
    DaemonSet: DaemonSetSpec,
);

impl Viewed for ReplicaSet {
    type Spec = OptionalTemplateHolder;
    fn from_view(metadata: ObjectMeta, spec: OptionalTemplateHolder) -> ReplicaSet {
        ReplicaSet {
            metadata,
            spec: ReplicaSetSpec {
                template: spec.template.map(Into::into),
                ..ReplicaSetSpec::default()
            },
            status: None,
        }
    }
}

impl Viewed for Job {
    type Spec = Option<TemplateHolder>;
    fn from_view(metadata: ObjectMeta, spec: Option<TemplateHolder>) -> Job {
        Job {
            metadata,
            spec: spec.map(Into::into),
            status: None,
        }
    }
}

impl Viewed for CronJob {
    type Spec = CronJobSpecView;
    fn from_view(metadata: ObjectMeta, spec: CronJobSpecView) -> CronJob {
        CronJob {
            metadata,
            spec: CronJobSpec {
                job_template: JobTemplateSpec {
                    metadata: None,
                    spec: spec.job_template.spec.map(Into::into),
                },
                ..CronJobSpec::default()
            },
            status: None,
        }
    }
}

/// What is read of every handled object: its own apiVersion and kind (checked against the
/// review's), its metadata, and the part of its spec that holds the pod template.
#[derive(Deserialize)]
struct ObjectView<S> {
    #[serde(default, rename = "apiVersion")]
    api_version: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    metadata: MetaView,
    #[serde(default)]
    spec: S,
}

#[derive(Deserialize, Default)]
#[serde(default)]
/// Deployments, StatefulSets, DaemonSets and Jobs: a template in the spec.
pub(crate) struct TemplateHolder {
    template: TemplateView,
}

#[derive(Deserialize, Default)]
#[serde(default)]
/// ReplicaSets: the template is optional.
pub(crate) struct OptionalTemplateHolder {
    template: Option<TemplateView>,
}

impl From<TemplateHolder> for JobSpec {
    fn from(s: TemplateHolder) -> JobSpec {
        JobSpec {
            template: s.template.into(),
            ..JobSpec::default()
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub(crate) struct CronJobSpecView {
    job_template: JobTemplateView,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct JobTemplateView {
    spec: Option<TemplateHolder>,
}

#[cfg(test)]
mod tests;
