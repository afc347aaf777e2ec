//! probegate: a Kubernetes mutating admission webhook that adds the probes and readiness
//! gates pods lack, and warns when a probe depends on a metrics switch.

pub mod engine;
pub mod manifest;
pub mod offline;
pub mod policy;
pub mod workload;
pub mod admission;
pub mod certs;
pub mod health;
pub mod metrics;
pub mod namespace_cache;
pub mod server;
pub mod tls;
