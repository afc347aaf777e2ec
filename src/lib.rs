//! probegate: a Kubernetes mutating admission webhook that adds the probes and readiness
//! gates pods lack, and warns when a probe depends on a metrics switch.

pub mod admission;
pub mod audit;
pub mod catalogue_file;
pub mod certs;
pub mod engine;
pub mod findings;
pub mod health;
pub mod krm;
pub mod manifest;
pub mod metrics;
pub mod namespace_cache;
pub mod offline;
pub mod policy;
pub mod sarif;
pub mod scope;
pub mod server;
pub mod tls;
pub mod yaml;
