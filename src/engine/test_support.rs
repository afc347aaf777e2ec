//! Builders the engine's rule tests share.

use k8s_openapi::api::core::v1::Service;
use serde_json::Value;

use super::ServiceEvidence;
use super::object::{Map, Variable};

/// Literal variables, as a container lists them.
pub fn variables(env: &[(&str, &str)]) -> Option<Vec<Variable<'static>>> {
    Some(
        env.iter()
            .map(|(name, value)| Variable {
                name: name.to_string().into(),
                value: Some(value.to_string().into()),
            })
            .collect(),
    )
}

/// The object a test wrote as JSON, checked against its kind's type and read as the rules
/// read it. Leaked, so that a test may hold it as long as it likes.
pub fn object(value: Value) -> super::Object<'static> {
    let value: &'static Value = Box::leak(Box::new(value));
    let api_version = value["apiVersion"].as_str().expect("apiVersion");
    let (group, version) = super::kinds::split_api_version(api_version);
    let kind = value["kind"].as_str().expect("kind");
    super::Object::decode(group, version, kind, value)
        .expect("the object fits its kind")
        .expect("a kind probegate handles")
}

/// Labels or annotations, as an object carries them.
pub fn map(pairs: &[(&str, &str)]) -> Map<'static> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string().into(), v.to_string().into()))
        .collect()
}

/// The evidence the engine reads of Services written as JSON.
pub fn service_evidence(services: &[Value]) -> Vec<ServiceEvidence> {
    services
        .iter()
        .map(|s| {
            serde_json::from_value::<Service>(s.clone())
                .expect("a Service")
                .into()
        })
        .collect()
}
