//! What the rules read of an object, and nothing else: typed views that borrow from
//! whatever holds the object.
//!
//! One model for all three callers. The webhook reads it straight off the review's body,
//! in the same pass as the review; `probegate mutate` reads it from the document it parsed,
//! after checking the document against k8s-openapi's type (`Kind::check`); `probegate audit`
//! from the objects it lists. serde reads past every field no rule reads (`managedFields`,
//! resources, volume mounts, the values of variables no rule looks at) without building
//! it, and a string without JSON escapes is borrowed, not copied.
//!
//! Probes a container already has are read as k8s-openapi's `Probe`: the rules compare them
//! with the probes they write, which are that type.

use std::borrow::{Borrow, Cow};
use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::api::core::v1::Probe;
use serde::Deserialize;
use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

use super::kinds::{DecodeError, JOB_GROUP, Kind, split_api_version};
use super::{reads_annotation, reads_variable};

/// A string of the object: borrowed where its JSON has no escapes. (serde's own
/// `Cow<str>` always copies.)
#[derive(Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Text<'a>(pub Cow<'a, str>);

impl Text<'_> {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Borrow<str> for Text<'_> {
    fn borrow(&self) -> &str {
        &self.0
    }
}

impl PartialEq<str> for Text<'_> {
    fn eq(&self, other: &str) -> bool {
        *self.0 == *other
    }
}

impl PartialEq<&str> for Text<'_> {
    fn eq(&self, other: &&str) -> bool {
        *self.0 == **other
    }
}

impl PartialEq<Text<'_>> for String {
    fn eq(&self, other: &Text<'_>) -> bool {
        *self == *other.0
    }
}

impl PartialEq<String> for Text<'_> {
    fn eq(&self, other: &String) -> bool {
        *self.0 == **other
    }
}

impl fmt::Debug for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&*self.0, f)
    }
}

impl fmt::Display for Text<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'a> From<&'a str> for Text<'a> {
    fn from(text: &'a str) -> Text<'a> {
        Text(Cow::Borrowed(text))
    }
}

impl From<String> for Text<'_> {
    fn from(text: String) -> Self {
        Text(Cow::Owned(text))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TextVisitor;
        impl<'de> Visitor<'de> for TextVisitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(s)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(s.to_owned())))
            }
            fn visit_string<E>(self, s: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(s)))
            }
        }
        d.deserialize_str(TextVisitor)
    }
}

/// Labels or annotations.
pub type Map<'a> = BTreeMap<Text<'a>, Text<'a>>;

impl crate::policy::Layer for Map<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        BTreeMap::get(self, key).map(Text::as_str)
    }

    fn each_key(&self, visit: &mut dyn FnMut(&str)) {
        self.keys().for_each(|key| visit(key));
    }
}

/// What the rules read of metadata.
#[derive(Debug, Default, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", default, bound(deserialize = "'de: 'a"))]
pub struct Meta<'a> {
    pub name: Option<Text<'a>>,
    pub namespace: Option<Text<'a>>,
    pub labels: Option<Map<'a>>,
    /// Only the annotations a rule reads (`engine::reads_annotation`): the last-applied
    /// configuration, a second copy of the object, is read past. The map stays `Some` when
    /// others were read past, as whether it exists decides the shape of the patch.
    #[serde(deserialize_with = "read_annotations")]
    pub annotations: Option<Map<'a>>,
    pub owner_references: Option<Vec<Owner<'a>>>,
}

/// Metadata that is absent.
static NO_META: Meta<'static> = Meta {
    name: None,
    namespace: None,
    labels: None,
    annotations: None,
    owner_references: None,
};

impl<'a> Meta<'a> {
    /// Whether a controller owns the object (a Deployment's ReplicaSet, a Job's Pod).
    pub fn is_controlled(&self) -> bool {
        self.owners().any(|owner| owner.controller == Some(true))
    }

    pub fn owners(&self) -> impl Iterator<Item = &Owner<'a>> {
        self.owner_references.iter().flatten()
    }

    pub fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key).map(Text::as_str)
    }

    pub fn label(&self, key: &str) -> Option<&str> {
        self.labels.as_ref()?.get(key).map(Text::as_str)
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", bound(deserialize = "'de: 'a"))]
pub struct Owner<'a> {
    #[serde(default, deserialize_with = "or_default")]
    pub api_version: Text<'a>,
    #[serde(default, deserialize_with = "or_default")]
    pub kind: Text<'a>,
    /// The owner's name: `audit` traces a ReplicaSet's pods to its Deployment.
    #[serde(default, deserialize_with = "or_default")]
    pub name: Text<'a>,
    #[serde(default)]
    pub controller: Option<bool>,
}

/// The annotations a rule reads, into any map of strings: the model's, or the namespace
/// cache's owned one.
pub fn read_annotations<'de, D, K, V>(d: D) -> Result<Option<BTreeMap<K, V>>, D::Error>
where
    D: Deserializer<'de>,
    K: Ord + From<Text<'de>>,
    V: Deserialize<'de>,
{
    Ok(Option::<Annotations<K, V>>::deserialize(d)?.map(|read| read.0))
}

struct Annotations<K, V>(BTreeMap<K, V>);

impl<'de, K: Ord + From<Text<'de>>, V: Deserialize<'de>> Deserialize<'de> for Annotations<K, V> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Read<K, V>(std::marker::PhantomData<(K, V)>);
        impl<'de, K: Ord + From<Text<'de>>, V: Deserialize<'de>> Visitor<'de> for Read<K, V> {
            type Value = Annotations<K, V>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of strings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut kept = BTreeMap::new();
                while let Some(key) = map.next_key::<Text<'de>>()? {
                    if reads_annotation(&key) {
                        kept.insert(K::from(key), map.next_value::<V>()?);
                    } else {
                        map.next_value::<IgnoredAny>()?;
                    }
                }
                Ok(Annotations(kept))
            }
        }
        d.deserialize_map(Read(std::marker::PhantomData))
    }
}

impl<'de> From<Text<'de>> for String {
    fn from(text: Text<'de>) -> String {
        text.0.into_owned()
    }
}

/// What the rules read of a pod spec.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", bound(deserialize = "'de: 'a"))]
pub struct PodSpec<'a> {
    #[serde(default, deserialize_with = "objects")]
    pub containers: Vec<Container<'a>>,
    #[serde(default)]
    pub restart_policy: Option<Text<'a>>,
    #[serde(default)]
    pub readiness_gates: Option<Vec<Gate<'a>>>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", bound(deserialize = "'de: 'a"))]
pub struct Gate<'a> {
    #[serde(default, deserialize_with = "or_default")]
    pub condition_type: Text<'a>,
}

/// What the rules read of a container: its name, image, ports, probes, command line and
/// the variables a rule reads.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", bound(deserialize = "'de: 'a"))]
pub struct Container<'a> {
    #[serde(default, deserialize_with = "or_default")]
    pub name: Text<'a>,
    #[serde(default)]
    pub image: Option<Text<'a>>,
    #[serde(default)]
    pub command: Option<Vec<Text<'a>>>,
    #[serde(default)]
    pub args: Option<Vec<Text<'a>>>,
    /// Only the variables a rule reads (`engine::reads_variable`), with their literal
    /// values; every other variable is read past without its name or value being built.
    #[serde(default, deserialize_with = "read_variables")]
    pub env: Option<Vec<Variable<'a>>>,
    #[serde(default)]
    pub ports: Option<Vec<Port<'a>>>,
    #[serde(default)]
    pub liveness_probe: Option<Probe>,
    #[serde(default)]
    pub readiness_probe: Option<Probe>,
    #[serde(default)]
    pub startup_probe: Option<Probe>,
}

/// A variable, with its literal value: a `valueFrom` source is never a literal to read.
#[derive(Debug, Clone, PartialEq)]
pub struct Variable<'a> {
    pub name: Text<'a>,
    pub value: Option<Text<'a>>,
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", bound(deserialize = "'de: 'a"))]
pub struct Port<'a> {
    #[serde(default)]
    pub name: Option<Text<'a>>,
    #[serde(default, deserialize_with = "or_default")]
    pub container_port: i32,
    #[serde(default)]
    pub protocol: Option<Text<'a>>,
}

fn read_variables<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Variable<'de>>>, D::Error> {
    Ok(Option::<Variables<'de>>::deserialize(d)?.map(|read| read.0))
}

/// The variables a rule reads, kept as the list is read: the others are never stored.
struct Variables<'a>(Vec<Variable<'a>>);

impl<'de> Deserialize<'de> for Variables<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Read;
        impl<'de> Visitor<'de> for Read {
            type Value = Variables<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of EnvVar")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Self::Value, A::Error> {
                let mut read = Vec::new();
                while let Some(ReadVariable(variable)) = seq.next_element()? {
                    read.extend(variable);
                }
                Ok(Variables(read))
            }
        }
        d.deserialize_seq(Read)
    }
}

/// One variable: `Some` if a rule reads it, judged while its name is borrowed.
struct ReadVariable<'a>(Option<Variable<'a>>);

impl<'de> Deserialize<'de> for ReadVariable<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Read;
        impl<'de> Visitor<'de> for Read {
            type Value = ReadVariable<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an EnvVar")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut name: Option<Text<'de>> = None;
                // Asked once per variable: every variable of every container is asked about.
                let mut read = None;
                let mut value: Option<Text<'de>> = None;
                while let Some(key) = map.next_key::<Text<'de>>()? {
                    match key.as_str() {
                        "name" => {
                            let text = map.next_value::<Option<Text<'de>>>()?.unwrap_or_default();
                            read = Some(reads_variable(&text));
                            name = Some(text);
                        }
                        // The API server writes name first; a value before it is kept.
                        "value" if read.is_none_or(|read| read) => value = map.next_value()?,
                        _ => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                // k8s-openapi reads a missing name as empty, which no rule reads.
                let name = name.unwrap_or_default();
                Ok(ReadVariable(
                    read.unwrap_or(false).then_some(Variable { name, value }),
                ))
            }
        }
        d.deserialize_map(Read)
    }
}

/// A pod template: its metadata, if it has any, and its spec, if it has one.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default, bound(deserialize = "'de: 'a"))]
pub struct Template<'a> {
    #[serde(deserialize_with = "object")]
    pub metadata: Option<Meta<'a>>,
    #[serde(deserialize_with = "object")]
    pub spec: Option<PodSpec<'a>>,
}

/// Where k8s-openapi's types read a required field that is missing or null as its default,
/// the view does too: a document `Kind::check` accepts is one the view reads.
fn or_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de> + Default,
{
    Option::<T>::deserialize(d).map(Option::unwrap_or_default)
}

/// A part of the object the patch may write into: read from a JSON object only (serde's
/// derive would also read a struct from an array, and the patch would then not apply), or
/// absent or null.
fn object<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<InObject<T>>::deserialize(d).map(|read| read.map(|InObject(value)| value))
}

/// A list of such parts (a pod's containers); missing or null is empty.
fn objects<'de, D, T>(d: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    let read = Option::<Vec<InObject<T>>>::deserialize(d)?.unwrap_or_default();
    Ok(read.into_iter().map(|InObject(value)| value).collect())
}

struct InObject<T>(T);

impl<'de, T: Deserialize<'de>> Deserialize<'de> for InObject<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Read<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for Read<T> {
            type Value = InObject<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                T::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(InObject)
            }
        }
        d.deserialize_map(Read(std::marker::PhantomData))
    }
}

/// An object of a kind probegate handles, as the rules read it.
#[derive(Debug, Clone, PartialEq)]
pub struct Object<'a> {
    pub kind: Kind,
    /// `None` when the object has no metadata (or it is `null`).
    pub metadata: Option<Meta<'a>>,
    body: Body<'a>,
}

#[derive(Debug, Clone, PartialEq)]
enum Body<'a> {
    /// A Pod's own spec.
    Pod(Option<PodSpec<'a>>),
    /// The template of a workload's pods.
    Template(Option<Template<'a>>),
}

/// The part of an object the engine works on.
#[derive(Debug, Clone, Copy)]
pub struct PodParts<'o, 'a> {
    /// The workload's own metadata; `None` for a Pod, whose metadata is `pod_meta`.
    pub workload_meta: Option<&'o Meta<'a>>,
    /// The Pod's metadata or the pod template's (absent in a template that has none).
    pub pod_meta: Option<&'o Meta<'a>>,
    pub spec: &'o PodSpec<'a>,
    /// JSON pointer tokens from the object root to the Pod or pod template.
    pub base: &'static [&'static str],
}

impl<'a> Object<'a> {
    /// Reads an object of `kind` from any deserializer: a review's body, a parsed document
    /// (`&serde_json::Value`). The object's own apiVersion and kind, where it says them,
    /// must be `kind`'s.
    pub fn read<'de: 'a, D: Deserializer<'de>>(kind: Kind, d: D) -> Result<Object<'a>, D::Error> {
        kind.deserialize(d)
    }

    /// A parsed document of `group/version/kind`, as `probegate mutate` reads one: every
    /// field checked against k8s-openapi's type (`Kind::check`), then read. `Ok(None)` for a
    /// kind probegate does not handle.
    pub fn decode(
        group: &str,
        version: &str,
        kind: &str,
        value: &'a serde_json::Value,
    ) -> Result<Option<Object<'a>>, DecodeError> {
        let Some(kind) = Kind::of(group, version, kind) else {
            return Ok(None);
        };
        kind.check(value)?;
        Object::read(kind, value)
            .map(Some)
            .map_err(|source| DecodeError {
                kind: kind.name(),
                source,
            })
    }

    /// The object's metadata, empty where it has none.
    pub fn meta(&self) -> &Meta<'a> {
        self.metadata.as_ref().unwrap_or(&NO_META)
    }

    pub fn kind_name(&self) -> &'static str {
        self.kind.name()
    }

    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The pod spec and its metadata; `None` when the object has no pod spec yet.
    pub fn pod_parts(&self) -> Option<PodParts<'_, 'a>> {
        let base = self.kind.base();
        match &self.body {
            Body::Pod(spec) => Some(PodParts {
                workload_meta: None,
                pod_meta: self.metadata.as_ref(),
                spec: spec.as_ref()?,
                base,
            }),
            Body::Template(template) => {
                let template = template.as_ref()?;
                Some(PodParts {
                    workload_meta: Some(self.meta()),
                    pod_meta: template.metadata.as_ref(),
                    spec: template.spec.as_ref()?,
                    base,
                })
            }
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
        let job_owned = self.kind == Kind::Pod
            && self.meta().owners().any(|owner| {
                owner.kind == Kind::Job.name()
                    && split_api_version(&owner.api_version).0 == JOB_GROUP
            });
        self.kind.is_batch() || job_owned || run_to_completion
    }
}

/// A handled kind reads its object straight off a deserializer: the admission layer reads
/// the object with it in the same pass as the rest of the review.
impl<'de> DeserializeSeed<'de> for Kind {
    type Value = Object<'de>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Object<'de>, D::Error> {
        let (metadata, body) = match self {
            Kind::Pod => {
                let view = Whole::<PodSpec<'de>>::deserialize(d)?;
                view.check(self)?;
                (view.metadata, Body::Pod(view.spec))
            }
            Kind::Job => {
                let view = Whole::<Templated<'de>>::deserialize(d)?;
                view.check(self)?;
                (
                    view.metadata,
                    Body::Template(view.spec.and_then(|s| s.template)),
                )
            }
            Kind::CronJob => {
                let view = Whole::<CronJobSpec<'de>>::deserialize(d)?;
                view.check(self)?;
                let template = view
                    .spec
                    .and_then(|s| s.job_template)
                    .and_then(|j| j.spec)
                    .and_then(|s| s.template);
                (view.metadata, Body::Template(template))
            }
            Kind::Deployment | Kind::StatefulSet | Kind::DaemonSet | Kind::ReplicaSet => {
                let view = Whole::<Templated<'de>>::deserialize(d)?;
                view.check(self)?;
                let template = view.spec.and_then(|s| s.template);
                (view.metadata, Body::Template(template))
            }
        };
        Ok(Object {
            kind: self,
            metadata,
            body,
        })
    }
}

/// What is read of every handled object: its own apiVersion and kind (checked against the
/// kind it is read as), its metadata, and the part of its spec that holds the pod template.
#[derive(Deserialize)]
#[serde(bound(deserialize = "'de: 'a, S: Deserialize<'de>"))]
struct Whole<'a, S> {
    #[serde(default, rename = "apiVersion")]
    api_version: Option<Text<'a>>,
    #[serde(default)]
    kind: Option<Text<'a>>,
    #[serde(default, deserialize_with = "object")]
    metadata: Option<Meta<'a>>,
    #[serde(default, deserialize_with = "object")]
    spec: Option<S>,
}

impl<S> Whole<'_, S> {
    fn check<E: serde::de::Error>(&self, kind: Kind) -> Result<(), E> {
        for (found, expected) in [
            (&self.api_version, kind.api_version()),
            (&self.kind, kind.name()),
        ] {
            if let Some(found) = found.as_deref().filter(|f| *f != expected) {
                return Err(E::invalid_value(
                    serde::de::Unexpected::Str(found),
                    &expected,
                ));
            }
        }
        Ok(())
    }
}

/// Deployments, StatefulSets, DaemonSets, ReplicaSets and Jobs: a template in the spec.
#[derive(Deserialize, Default)]
#[serde(default, bound(deserialize = "'de: 'a"))]
struct Templated<'a> {
    #[serde(deserialize_with = "object")]
    template: Option<Template<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase", bound(deserialize = "'de: 'a"))]
struct CronJobSpec<'a> {
    #[serde(deserialize_with = "object")]
    job_template: Option<JobTemplate<'a>>,
}

#[derive(Deserialize, Default)]
#[serde(default, bound(deserialize = "'de: 'a"))]
struct JobTemplate<'a> {
    #[serde(deserialize_with = "object")]
    spec: Option<Templated<'a>>,
}

#[cfg(test)]
mod tests;
