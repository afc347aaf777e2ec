//! A Service as the cache lists and watches it: its metadata without `managedFields` and
//! with only the annotations a rule reads, its selector and ports. The rest of the object
//! (status, cluster IPs, every `managedFields` entry as a JSON tree) is read past unbuilt,
//! which at 50,000 Services is most of the time to ready.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Service, ServicePort};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference, Time};
use serde::Deserialize;

use crate::engine::ServiceEvidence;

#[derive(Clone, Debug, Deserialize)]
pub(super) struct ListedService {
    #[serde(default, deserialize_with = "read_meta")]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: Option<Spec>,
}

#[derive(Clone, Debug, Deserialize)]
struct Spec {
    #[serde(default)]
    selector: Option<BTreeMap<String, String>>,
    #[serde(default)]
    ports: Option<Vec<ServicePort>>,
}

/// Every field of ObjectMeta but `managedFields`, which is read past, and the annotations no
/// rule reads.
#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct MetaView {
    #[serde(deserialize_with = "crate::engine::object::read_annotations")]
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

fn read_meta<'de, D: serde::Deserializer<'de>>(d: D) -> Result<ObjectMeta, D::Error> {
    let m = MetaView::deserialize(d)?;
    Ok(ObjectMeta {
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
    })
}

/// Listed and watched at the Service's own endpoint, as a `Service`.
impl k8s_openapi::Resource for ListedService {
    const API_VERSION: &'static str = <Service as k8s_openapi::Resource>::API_VERSION;
    const GROUP: &'static str = <Service as k8s_openapi::Resource>::GROUP;
    const KIND: &'static str = <Service as k8s_openapi::Resource>::KIND;
    const VERSION: &'static str = <Service as k8s_openapi::Resource>::VERSION;
    const URL_PATH_SEGMENT: &'static str = <Service as k8s_openapi::Resource>::URL_PATH_SEGMENT;
    type Scope = <Service as k8s_openapi::Resource>::Scope;
}

impl k8s_openapi::Metadata for ListedService {
    type Ty = ObjectMeta;

    fn metadata(&self) -> &ObjectMeta {
        &self.metadata
    }

    fn metadata_mut(&mut self) -> &mut ObjectMeta {
        &mut self.metadata
    }
}

impl From<&ListedService> for ServiceEvidence {
    fn from(listed: &ListedService) -> ServiceEvidence {
        let spec = listed.spec.as_ref();
        ServiceEvidence::from_parts(
            &listed.metadata,
            spec.and_then(|s| s.selector.as_ref()),
            spec.and_then(|s| s.ports.as_deref()),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_evidence_is_the_same_as_from_the_whole_service() {
        let service = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "shop", "uid": "u",
                "annotations": {"probegate.io/readiness-gates": "example.com/lb", "other": "x",
                    "kubectl.kubernetes.io/last-applied-configuration": "{\"big\": true}"},
                "managedFields": [{"manager": "kubectl", "operation": "Update",
                    "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:ports": {}}}}]},
            "spec": {"selector": {"app": "web"}, "clusterIP": "10.0.0.1", "type": "ClusterIP",
                "ports": [{"name": "http", "port": 80, "targetPort": "http"},
                          {"name": "dns", "port": 53, "protocol": "UDP"},
                          {"port": 9090}]},
            "status": {"loadBalancer": {}}
        });
        let whole: Service = serde_json::from_value(service.clone()).unwrap();
        let listed: ListedService = serde_json::from_value(service).unwrap();
        assert_eq!(
            ServiceEvidence::from(&listed),
            ServiceEvidence::from(&whole),
            "the listed form must keep everything the rules read"
        );
        assert!(listed.metadata.managed_fields.is_none());
    }
}
