//! Settings from `probegate.io/*` annotations.
//!
//! Settings come in layers, least specific first: built-in defaults, cluster-wide defaults,
//! the namespace, the workload, the pod template. Each key is resolved on its own: the most
//! specific layer whose value parses wins. A value that does not parse is reported and the
//! key falls back to the next layer, so a typo never produces a broken object.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

mod values;
pub use values::{check_dns_subdomain, is_port_name, parse_gates, parse_port};
use values::{
    parse_container_names, parse_coupling, parse_enabled, parse_handler, parse_path,
    parse_port_list, parse_probes, parse_scheme, parse_seconds,
};

/// Prefix shared by every annotation probegate reads or writes.
pub const PREFIX: &str = "probegate.io/";
/// Annotation probegate writes on what it mutated.
pub const INJECTED_ANNOTATION: &str = "probegate.io/injected";

pub const INJECT: &str = "probegate.io/inject";
pub const PROBES: &str = "probegate.io/probes";
pub const PROBE_HANDLER: &str = "probegate.io/probe-handler";
pub const LIVENESS_PATH: &str = "probegate.io/liveness-path";
pub const READINESS_PATH: &str = "probegate.io/readiness-path";
pub const STARTUP_PATH: &str = "probegate.io/startup-path";
pub const PORT: &str = "probegate.io/port";
pub const SCHEME: &str = "probegate.io/scheme";
pub const INITIAL_DELAY_SECONDS: &str = "probegate.io/initial-delay-seconds";
pub const PERIOD_SECONDS: &str = "probegate.io/period-seconds";
pub const TIMEOUT_SECONDS: &str = "probegate.io/timeout-seconds";
pub const FAILURE_THRESHOLD: &str = "probegate.io/failure-threshold";
pub const READINESS_GATES: &str = "probegate.io/readiness-gates";
pub const METRICS_COUPLING: &str = "probegate.io/metrics-coupling";
pub const METRICS_PORTS: &str = "probegate.io/metrics-ports";
pub const IDENTICAL_LIVENESS: &str = "probegate.io/identical-liveness";
pub const STARTUP_SECONDS: &str = "probegate.io/startup-seconds";
pub const SKIP_CONTAINERS: &str = "probegate.io/skip-containers";

/// Whether a value is valid for a key.
pub type ValueCheck = fn(&str) -> bool;

/// Every key probegate understands, with the check of its values; anything else under the
/// prefix is reported as unknown.
pub const KEYS: &[(&str, ValueCheck)] = &[
    (INJECT, |v| parse_enabled(v).is_ok()),
    (PROBES, |v| parse_probes(v).is_ok()),
    (PROBE_HANDLER, |v| parse_handler(v).is_ok()),
    (LIVENESS_PATH, |v| parse_path(v).is_ok()),
    (READINESS_PATH, |v| parse_path(v).is_ok()),
    (STARTUP_PATH, |v| parse_path(v).is_ok()),
    (PORT, |v| parse_port(v).is_ok()),
    (SCHEME, |v| parse_scheme(v).is_ok()),
    (INITIAL_DELAY_SECONDS, |v| parse_seconds(v, 0).is_ok()),
    (PERIOD_SECONDS, |v| parse_seconds(v, 1).is_ok()),
    (TIMEOUT_SECONDS, |v| parse_seconds(v, 1).is_ok()),
    (FAILURE_THRESHOLD, |v| parse_seconds(v, 1).is_ok()),
    (READINESS_GATES, |v| parse_gates(v).is_ok()),
    (METRICS_COUPLING, |v| parse_coupling(v).is_ok()),
    (METRICS_PORTS, |v| parse_port_list(v).is_ok()),
    (IDENTICAL_LIVENESS, |v| parse_enabled(v).is_ok()),
    (STARTUP_SECONDS, |v| parse_seconds(v, 1).is_ok()),
    (SKIP_CONTAINERS, |v| parse_container_names(v).is_ok()),
];

/// Built-in timing defaults, documented in the README.
pub const DEFAULT_INITIAL_DELAY_SECONDS: i32 = 5;
pub const DEFAULT_PERIOD_SECONDS: i32 = 10;
pub const DEFAULT_TIMEOUT_SECONDS: i32 = 3;
pub const DEFAULT_FAILURE_THRESHOLD: i32 = 3;
/// How long an injected startup probe lets a container take to start before liveness
/// applies: five minutes covers JVM warm-ups, migrations and cache loads.
pub const DEFAULT_STARTUP_SECONDS: i32 = 300;

/// The three probe kinds of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProbeKind {
    Liveness,
    Readiness,
    Startup,
}

impl ProbeKind {
    pub const ALL: [ProbeKind; 3] = [
        ProbeKind::Liveness,
        ProbeKind::Readiness,
        ProbeKind::Startup,
    ];

    /// The word used in annotations and in the `probegate.io/injected` record.
    pub fn as_str(self) -> &'static str {
        match self {
            ProbeKind::Liveness => "liveness",
            ProbeKind::Readiness => "readiness",
            ProbeKind::Startup => "startup",
        }
    }

    /// The container field, as users see it in manifests and warnings.
    pub fn field(self) -> &'static str {
        match self {
            ProbeKind::Liveness => "livenessProbe",
            ProbeKind::Readiness => "readinessProbe",
            ProbeKind::Startup => "startupProbe",
        }
    }

    /// The annotation that sets this probe's HTTP path.
    pub fn path_key(self) -> &'static str {
        match self {
            ProbeKind::Liveness => LIVENESS_PATH,
            ProbeKind::Readiness => READINESS_PATH,
            ProbeKind::Startup => STARTUP_PATH,
        }
    }
}

impl fmt::Display for ProbeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handler {
    Tcp,
    Http,
    Grpc,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

impl Scheme {
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Http => "HTTP",
            Scheme::Https => "HTTPS",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CouplingMode {
    Warn,
    Deny,
    Off,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timings {
    pub initial_delay_seconds: i32,
    pub period_seconds: i32,
    pub timeout_seconds: i32,
    pub failure_threshold: i32,
}

/// The effective settings for one object.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub inject: bool,
    /// Requested probe kinds, in `ProbeKind::ALL` order, without repeats.
    pub probes: Vec<ProbeKind>,
    pub handler: Handler,
    pub liveness_path: Option<String>,
    pub readiness_path: Option<String>,
    pub startup_path: Option<String>,
    pub port: Option<IntOrString>,
    pub scheme: Scheme,
    pub timings: Timings,
    /// Condition types as written; each is validated by the readiness-gates rule.
    pub readiness_gates: Vec<String>,
    pub metrics_coupling: CouplingMode,
    pub metrics_ports: Vec<IntOrString>,
    /// Add a liveness probe even where it can only repeat the readiness check.
    pub identical_liveness: bool,
    /// The start-up time an injected startup probe covers.
    pub startup_seconds: i32,
    /// Containers left without added probes on purpose (a sidecar with nothing to probe).
    pub skip_containers: Vec<String>,
    /// For each key that an annotation set, the index of the layer it came from.
    pub set_at: BTreeMap<&'static str, usize>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            inject: true,
            probes: vec![ProbeKind::Liveness, ProbeKind::Readiness],
            handler: Handler::Tcp,
            liveness_path: None,
            readiness_path: None,
            startup_path: None,
            port: None,
            scheme: Scheme::Http,
            timings: Timings {
                initial_delay_seconds: DEFAULT_INITIAL_DELAY_SECONDS,
                period_seconds: DEFAULT_PERIOD_SECONDS,
                timeout_seconds: DEFAULT_TIMEOUT_SECONDS,
                failure_threshold: DEFAULT_FAILURE_THRESHOLD,
            },
            readiness_gates: Vec::new(),
            metrics_coupling: CouplingMode::Warn,
            metrics_ports: Vec::new(),
            identical_liveness: false,
            startup_seconds: DEFAULT_STARTUP_SECONDS,
            skip_containers: Vec::new(),
            set_at: BTreeMap::new(),
        }
    }
}

impl Settings {
    pub fn path(&self, kind: ProbeKind) -> Option<&str> {
        match kind {
            ProbeKind::Liveness => self.liveness_path.as_deref(),
            ProbeKind::Readiness => self.readiness_path.as_deref(),
            ProbeKind::Startup => self.startup_path.as_deref(),
        }
    }

    /// Whether `key` was set by layer `first` or a more specific one: with the object's own
    /// layers last, whether the object itself asked for it.
    pub fn set_at_or_above(&self, key: &str, first: usize) -> bool {
        self.set_at.get(key).is_some_and(|index| *index >= first)
    }

    /// Resolves settings from annotation layers, least specific first.
    ///
    /// Returns the settings and one warning per value that did not parse or key that is unknown.
    pub fn resolve(layers: &[&BTreeMap<String, String>]) -> (Settings, Vec<String>) {
        let mut warnings = Vec::new();
        let mut resolver = Resolver {
            layers,
            warnings: &mut warnings,
            set_at: BTreeMap::new(),
        };
        let defaults = Settings::default();
        let settings = Settings {
            inject: resolver
                .key(INJECT, parse_enabled)
                .unwrap_or(defaults.inject),
            probes: resolver
                .key(PROBES, parse_probes)
                .unwrap_or(defaults.probes),
            handler: resolver
                .key(PROBE_HANDLER, parse_handler)
                .unwrap_or(defaults.handler),
            liveness_path: resolver.key(LIVENESS_PATH, parse_path),
            readiness_path: resolver.key(READINESS_PATH, parse_path),
            startup_path: resolver.key(STARTUP_PATH, parse_path),
            port: resolver.key(PORT, parse_port),
            scheme: resolver
                .key(SCHEME, parse_scheme)
                .unwrap_or(defaults.scheme),
            timings: resolver.timings(defaults.timings),
            readiness_gates: resolver
                .key(READINESS_GATES, parse_gates)
                .unwrap_or(defaults.readiness_gates),
            metrics_coupling: resolver
                .key(METRICS_COUPLING, parse_coupling)
                .unwrap_or(defaults.metrics_coupling),
            metrics_ports: resolver
                .key(METRICS_PORTS, parse_port_list)
                .unwrap_or(defaults.metrics_ports),
            identical_liveness: resolver
                .key(IDENTICAL_LIVENESS, parse_enabled)
                .unwrap_or(defaults.identical_liveness),
            startup_seconds: resolver
                .key(STARTUP_SECONDS, |v| parse_seconds(v, 1))
                .unwrap_or(defaults.startup_seconds),
            skip_containers: resolver
                .key(SKIP_CONTAINERS, parse_container_names)
                .unwrap_or(defaults.skip_containers),
            set_at: BTreeMap::new(),
        };
        resolver.unknown_keys();
        let settings = Settings {
            set_at: resolver.set_at,
            ..settings
        };
        (settings, warnings)
    }
}

/// Whether `value` is valid for the policy annotation `key` (unknown keys are not).
pub fn is_valid(key: &str, value: &str) -> bool {
    KEYS.iter()
        .find(|(known, _)| *known == key)
        .is_some_and(|(_, valid)| valid(value.trim()))
}

struct Resolver<'a, 'w> {
    layers: &'a [&'a BTreeMap<String, String>],
    warnings: &'w mut Vec<String>,
    set_at: BTreeMap<&'static str, usize>,
}

impl Resolver<'_, '_> {
    fn timings(&mut self, defaults: Timings) -> Timings {
        Timings {
            initial_delay_seconds: self
                .key(INITIAL_DELAY_SECONDS, |v| parse_seconds(v, 0))
                .unwrap_or(defaults.initial_delay_seconds),
            period_seconds: self
                .key(PERIOD_SECONDS, |v| parse_seconds(v, 1))
                .unwrap_or(defaults.period_seconds),
            timeout_seconds: self
                .key(TIMEOUT_SECONDS, |v| parse_seconds(v, 1))
                .unwrap_or(defaults.timeout_seconds),
            failure_threshold: self
                .key(FAILURE_THRESHOLD, |v| parse_seconds(v, 1))
                .unwrap_or(defaults.failure_threshold),
        }
    }

    /// The value of `key` from the most specific layer where it parses.
    fn key<T>(
        &mut self,
        key: &'static str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Option<T> {
        for (index, layer) in self.layers.iter().enumerate().rev() {
            let Some(raw) = layer.get(key) else { continue };
            match parse(raw.trim()) {
                Ok(value) => {
                    self.set_at.insert(key, index);
                    return Some(value);
                }
                Err(why) => self.warnings.push(format!(
                    "ignoring annotation {key}={raw:?}: {why}; using the value from the next level"
                )),
            }
        }
        None
    }

    fn unknown_keys(&mut self) {
        for layer in self.layers {
            for key in layer.keys() {
                if key.starts_with(PREFIX)
                    && key != INJECTED_ANNOTATION
                    && !KEYS.iter().any(|(known, _)| known == key)
                {
                    self.warnings
                        .push(format!("ignoring unknown annotation {key}"));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
