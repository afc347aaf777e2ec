//! What the webhook reads of metadata and pod specs; everything else is read past unbuilt.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{
    Container, ContainerPort, EnvVar, PodReadinessGate, PodSpec, PodTemplateSpec, Probe,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use serde::Deserialize;

use super::Text;
use crate::engine::{reads_annotation, reads_variable};

/// Every field of ObjectMeta but `managedFields`, which is read past, and the annotations no
/// rule reads (the last-applied configuration, a second copy of the object, among them).
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
pub(super) struct MetaView {
    #[serde(deserialize_with = "read_annotations")]
    annotations: Option<BTreeMap<String, String>>,
    creation_timestamp: Option<Time>,
    deletion_grace_period_seconds: Option<i64>,
    deletion_timestamp: Option<Time>,
    finalizers: Option<Vec<String>>,
    generate_name: Option<String>,
    generation: Option<i64>,
    labels: Option<BTreeMap<String, String>>,
    name: Option<String>,
    namespace: Option<String>,
    owner_references: Option<Vec<OwnerReference>>,
    resource_version: Option<String>,
    self_link: Option<String>,
    uid: Option<String>,
}

/// The annotations a rule reads; the map itself stays `Some` when others were read past, as
/// whether it exists decides the shape of the patch.
fn read_annotations<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<BTreeMap<String, String>>, D::Error> {
    Ok(Option::<ReadAnnotations>::deserialize(deserializer)?.map(|read| read.0))
}

struct ReadAnnotations(BTreeMap<String, String>);

impl<'de> Deserialize<'de> for ReadAnnotations {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = ReadAnnotations;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map of strings")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<ReadAnnotations, A::Error> {
                let mut kept = BTreeMap::new();
                while let Some(Text(key)) = map.next_key()? {
                    if reads_annotation(&key) {
                        kept.insert(key.into_owned(), map.next_value::<String>()?);
                    } else {
                        map.next_value::<serde::de::IgnoredAny>()?;
                    }
                }
                Ok(ReadAnnotations(kept))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

impl From<MetaView> for ObjectMeta {
    fn from(m: MetaView) -> ObjectMeta {
        ObjectMeta {
            annotations: m.annotations,
            creation_timestamp: m.creation_timestamp,
            deletion_grace_period_seconds: m.deletion_grace_period_seconds,
            deletion_timestamp: m.deletion_timestamp,
            finalizers: m.finalizers,
            generate_name: m.generate_name,
            generation: m.generation,
            labels: m.labels,
            managed_fields: None,
            name: m.name,
            namespace: m.namespace,
            owner_references: m.owner_references,
            resource_version: m.resource_version,
            self_link: m.self_link,
            uid: m.uid,
        }
    }
}

/// What the rules read of a container: its name, image, ports, probes, command line and
/// variables.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ContainerView {
    name: String,
    #[serde(default)]
    image: Option<String>,
    #[serde(default)]
    args: Option<Vec<String>>,
    #[serde(default)]
    command: Option<Vec<String>>,
    #[serde(default, deserialize_with = "read_env")]
    env: Option<Vec<EnvVar>>,
    #[serde(default)]
    ports: Option<Vec<ContainerPort>>,
    #[serde(default)]
    liveness_probe: Option<Probe>,
    #[serde(default)]
    readiness_probe: Option<Probe>,
    #[serde(default)]
    startup_probe: Option<Probe>,
}

/// The variables a rule reads (`engine::reads_variable`), with their literal
/// values; every other variable is read past without its name or value being built. A
/// `valueFrom` source is never a literal to read.
fn read_env<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<EnvVar>>, D::Error> {
    Ok(Option::<ReadVariables>::deserialize(d)?.map(|read| read.0))
}

struct ReadVariables(Vec<EnvVar>);

impl<'de> Deserialize<'de> for ReadVariables {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = ReadVariables;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a list of EnvVar")
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<ReadVariables, A::Error> {
                let mut read = Vec::new();
                while let Some(ReadVariable(variable)) = seq.next_element()? {
                    read.extend(variable);
                }
                Ok(ReadVariables(read))
            }
        }
        d.deserialize_seq(Visitor)
    }
}

/// One variable: `Some` if a rule reads it. Its name is borrowed from the body while it is
/// judged, so a variable no rule reads costs no allocation.
struct ReadVariable(Option<EnvVar>);

impl<'de> Deserialize<'de> for ReadVariable {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = ReadVariable;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an EnvVar")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<ReadVariable, A::Error> {
                let mut name: Option<std::borrow::Cow<'de, str>> = None;
                // Asked once per variable: every variable of every container is asked about.
                let mut read = None;
                let mut value: Option<String> = None;
                while let Some(Text(key)) = map.next_key()? {
                    match key.as_ref() {
                        "name" => {
                            let text = map.next_value::<Text<'de>>()?.0;
                            read = Some(reads_variable(&text));
                            name = Some(text);
                        }
                        // The API server writes name first; a value before it is kept.
                        "value" if read.is_none_or(|read| read) => value = map.next_value()?,
                        _ => {
                            map.next_value::<serde::de::IgnoredAny>()?;
                        }
                    }
                }
                let name = name.ok_or_else(|| serde::de::Error::missing_field("name"))?;
                Ok(ReadVariable(read.unwrap_or(false).then(|| EnvVar {
                    name: name.into_owned(),
                    value,
                    value_from: None,
                })))
            }
        }
        deserializer.deserialize_map(Visitor)
    }
}

impl From<ContainerView> for Container {
    fn from(c: ContainerView) -> Container {
        Container {
            name: c.name,
            image: c.image,
            args: c.args,
            command: c.command,
            env: c.env,
            ports: c.ports,
            liveness_probe: c.liveness_probe,
            readiness_probe: c.readiness_probe,
            startup_probe: c.startup_probe,
            ..Container::default()
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PodSpecView {
    containers: Vec<ContainerView>,
    #[serde(default)]
    restart_policy: Option<String>,
    #[serde(default)]
    readiness_gates: Option<Vec<PodReadinessGate>>,
}

impl From<PodSpecView> for PodSpec {
    fn from(s: PodSpecView) -> PodSpec {
        PodSpec {
            containers: s.containers.into_iter().map(Into::into).collect(),
            restart_policy: s.restart_policy,
            readiness_gates: s.readiness_gates,
            ..PodSpec::default()
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub(super) struct TemplateView {
    metadata: Option<MetaView>,
    spec: Option<PodSpecView>,
}

impl From<TemplateView> for PodTemplateSpec {
    fn from(t: TemplateView) -> PodTemplateSpec {
        PodTemplateSpec {
            metadata: t.metadata.map(Into::into),
            spec: t.spec.map(Into::into),
        }
    }
}
