//! Builders the engine's rule tests share.

use k8s_openapi::api::core::v1::{EnvVar, Service};
use serde_json::Value;

use super::ServiceEvidence;

/// Literal variables, as a container lists them.
pub fn variables(env: &[(&str, &str)]) -> Option<Vec<EnvVar>> {
    Some(
        env.iter()
            .map(|(name, value)| EnvVar {
                name: name.to_string(),
                value: Some(value.to_string()),
                value_from: None,
            })
            .collect(),
    )
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
