//! Settings from `probegate.io/*` annotations.
//!
//! Settings come in layers, least specific first: built-in defaults, cluster-wide defaults,
//! the namespace, the workload, the pod template. Each key is resolved on its own: the most
//! specific layer whose value parses wins. A value that does not parse is reported and the
//! key falls back to the next layer, so a typo never produces a broken object.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

pub mod values;
pub use values::{check_dns_subdomain, is_port_name, parse_gates, parse_port};

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

/// A key and how its values read; `key` below names each key's parser, once.
pub struct Key<T> {
    pub name: &'static str,
    parse: fn(&str) -> Result<T, String>,
}

/// Any key, whatever its value type: for the list of every key.
pub trait AnyKey: Sync {
    fn name(&self) -> &'static str;
    fn is_valid(&self, value: &str) -> bool;
}

impl<T> AnyKey for Key<T> {
    fn name(&self) -> &'static str {
        self.name
    }
    fn is_valid(&self, value: &str) -> bool {
        (self.parse)(value).is_ok()
    }
}

/// The typed keys `Settings::resolve` reads, each named as its annotation's constant.
mod key {
    use super::values::*;
    use super::*;

    macro_rules! keys {
        ($($name:ident: $value:ty = $parse:expr;)+) => {
            $(pub const $name: Key<$value> = Key { name: super::$name, parse: $parse };)+
        };
    }

    keys! {
        INJECT: bool = parse_enabled;
        PROBES: Vec<ProbeKind> = parse_probes;
        PROBE_HANDLER: Handler = parse_handler;
        LIVENESS_PATH: String = parse_path;
        READINESS_PATH: String = parse_path;
        STARTUP_PATH: String = parse_path;
        PORT: IntOrString = parse_port;
        SCHEME: Scheme = parse_scheme;
        INITIAL_DELAY_SECONDS: i32 = |v| parse_seconds(v, 0);
        PERIOD_SECONDS: i32 = |v| parse_seconds(v, 1);
        TIMEOUT_SECONDS: i32 = |v| parse_seconds(v, 1);
        FAILURE_THRESHOLD: i32 = |v| parse_seconds(v, 1);
        READINESS_GATES: Vec<String> = parse_gates;
        METRICS_COUPLING: CouplingMode = parse_coupling;
        METRICS_PORTS: Vec<IntOrString> = parse_port_list;
        IDENTICAL_LIVENESS: bool = parse_enabled;
        STARTUP_SECONDS: i32 = |v| parse_seconds(v, 1);
        SKIP_CONTAINERS: Vec<String> = parse_container_names;
    }
}

/// Every key probegate understands; anything else under the prefix is reported as
/// unknown. A test holds it to what `Settings::resolve` reads.
pub const KEYS: &[&dyn AnyKey] = &[
    &key::INJECT,
    &key::PROBES,
    &key::PROBE_HANDLER,
    &key::LIVENESS_PATH,
    &key::READINESS_PATH,
    &key::STARTUP_PATH,
    &key::PORT,
    &key::SCHEME,
    &key::INITIAL_DELAY_SECONDS,
    &key::PERIOD_SECONDS,
    &key::TIMEOUT_SECONDS,
    &key::FAILURE_THRESHOLD,
    &key::READINESS_GATES,
    &key::METRICS_COUPLING,
    &key::METRICS_PORTS,
    &key::IDENTICAL_LIVENESS,
    &key::STARTUP_SECONDS,
    &key::SKIP_CONTAINERS,
];

/// Built-in timing defaults, documented in docs/configuration.md.
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
    pub fn resolve(layers: &[&dyn Layer]) -> (Settings, Vec<String>) {
        let mut warnings = Vec::new();
        let mut resolver = Resolver {
            layers,
            warnings: &mut warnings,
            set_at: BTreeMap::new(),
        };
        let defaults = Settings::default();
        let settings = Settings {
            inject: resolver.key(key::INJECT).unwrap_or(defaults.inject),
            probes: resolver.key(key::PROBES).unwrap_or(defaults.probes),
            handler: resolver.key(key::PROBE_HANDLER).unwrap_or(defaults.handler),
            liveness_path: resolver.key(key::LIVENESS_PATH),
            readiness_path: resolver.key(key::READINESS_PATH),
            startup_path: resolver.key(key::STARTUP_PATH),
            port: resolver.key(key::PORT),
            scheme: resolver.key(key::SCHEME).unwrap_or(defaults.scheme),
            timings: resolver.timings(defaults.timings),
            readiness_gates: resolver
                .key(key::READINESS_GATES)
                .unwrap_or(defaults.readiness_gates),
            metrics_coupling: resolver
                .key(key::METRICS_COUPLING)
                .unwrap_or(defaults.metrics_coupling),
            metrics_ports: resolver
                .key(key::METRICS_PORTS)
                .unwrap_or(defaults.metrics_ports),
            identical_liveness: resolver
                .key(key::IDENTICAL_LIVENESS)
                .unwrap_or(defaults.identical_liveness),
            startup_seconds: resolver
                .key(key::STARTUP_SECONDS)
                .unwrap_or(defaults.startup_seconds),
            skip_containers: resolver
                .key(key::SKIP_CONTAINERS)
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
        .find(|known| known.name() == key)
        .is_some_and(|known| known.is_valid(value.trim()))
}

/// One level of annotations that settings are read from: the cluster's defaults, a
/// namespace's, a workload's, a pod's. Read where they are, never copied.
pub trait Layer {
    fn get(&self, key: &str) -> Option<&str>;
    /// Calls `visit` with each key, for the warnings about unknown ones.
    fn each_key(&self, visit: &mut dyn FnMut(&str));
}

impl Layer for BTreeMap<String, String> {
    fn get(&self, key: &str) -> Option<&str> {
        BTreeMap::get(self, key).map(String::as_str)
    }

    fn each_key(&self, visit: &mut dyn FnMut(&str)) {
        self.keys().for_each(|key| visit(key));
    }
}

struct Resolver<'a, 'w> {
    layers: &'a [&'a dyn Layer],
    warnings: &'w mut Vec<String>,
    set_at: BTreeMap<&'static str, usize>,
}

impl Resolver<'_, '_> {
    fn timings(&mut self, defaults: Timings) -> Timings {
        Timings {
            initial_delay_seconds: self
                .key(key::INITIAL_DELAY_SECONDS)
                .unwrap_or(defaults.initial_delay_seconds),
            period_seconds: self
                .key(key::PERIOD_SECONDS)
                .unwrap_or(defaults.period_seconds),
            timeout_seconds: self
                .key(key::TIMEOUT_SECONDS)
                .unwrap_or(defaults.timeout_seconds),
            failure_threshold: self
                .key(key::FAILURE_THRESHOLD)
                .unwrap_or(defaults.failure_threshold),
        }
    }

    /// The value of `key` from the most specific layer where it parses.
    fn key<T>(&mut self, key: Key<T>) -> Option<T> {
        let Key { name: key, parse } = key;
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
            layer.each_key(&mut |key| {
                if key.starts_with(PREFIX)
                    && key != INJECTED_ANNOTATION
                    && !KEYS.iter().any(|known| known.name() == key)
                {
                    self.warnings
                        .push(format!("ignoring unknown annotation {key}"));
                }
            });
        }
    }
}

#[cfg(test)]
mod tests;
