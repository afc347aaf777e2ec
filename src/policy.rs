//! Settings from `probegate.io/*` annotations.
//!
//! Settings come in layers, least specific first: built-in defaults, cluster-wide defaults,
//! the namespace, the workload, the pod template. Each key is resolved on its own: the most
//! specific layer whose value parses wins. A value that does not parse is reported and the
//! key falls back to the next layer, so a typo never produces a broken object.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

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

/// Every key probegate understands; anything else under the prefix is reported as unknown.
pub const KNOWN_KEYS: &[&str] = &[
    INJECT,
    PROBES,
    PROBE_HANDLER,
    LIVENESS_PATH,
    READINESS_PATH,
    STARTUP_PATH,
    PORT,
    SCHEME,
    INITIAL_DELAY_SECONDS,
    PERIOD_SECONDS,
    TIMEOUT_SECONDS,
    FAILURE_THRESHOLD,
    READINESS_GATES,
    METRICS_COUPLING,
    METRICS_PORTS,
    IDENTICAL_LIVENESS,
    STARTUP_SECONDS,
    SKIP_CONTAINERS,
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
    let value = value.trim();
    match key {
        INJECT | IDENTICAL_LIVENESS => parse_enabled(value).is_ok(),
        PROBES => parse_probes(value).is_ok(),
        PROBE_HANDLER => parse_handler(value).is_ok(),
        LIVENESS_PATH | READINESS_PATH | STARTUP_PATH => parse_path(value).is_ok(),
        PORT => parse_port(value).is_ok(),
        SCHEME => parse_scheme(value).is_ok(),
        INITIAL_DELAY_SECONDS => parse_seconds(value, 0).is_ok(),
        PERIOD_SECONDS | TIMEOUT_SECONDS | FAILURE_THRESHOLD | STARTUP_SECONDS => {
            parse_seconds(value, 1).is_ok()
        }
        READINESS_GATES => parse_gates(value).is_ok(),
        SKIP_CONTAINERS => parse_container_names(value).is_ok(),
        METRICS_COUPLING => parse_coupling(value).is_ok(),
        METRICS_PORTS => parse_port_list(value).is_ok(),
        _ => false,
    }
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
                    && !KNOWN_KEYS.contains(&key.as_str())
                {
                    self.warnings
                        .push(format!("ignoring unknown annotation {key}"));
                }
            }
        }
    }
}

fn parse_enabled(value: &str) -> Result<bool, String> {
    match value {
        "enabled" => Ok(true),
        "disabled" => Ok(false),
        _ => Err("expected enabled or disabled".into()),
    }
}

fn parse_probes(value: &str) -> Result<Vec<ProbeKind>, String> {
    let mut kinds = Vec::new();
    if value == "none" {
        return Ok(kinds);
    }
    for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let kind = ProbeKind::ALL
            .into_iter()
            .find(|k| k.as_str() == item)
            .ok_or_else(|| format!("{item:?} is not one of liveness, readiness, startup"))?;
        kinds.push(kind);
    }
    kinds.sort();
    kinds.dedup();
    Ok(kinds)
}

fn parse_handler(value: &str) -> Result<Handler, String> {
    match value {
        "tcp" => Ok(Handler::Tcp),
        "http" => Ok(Handler::Http),
        "grpc" => Ok(Handler::Grpc),
        _ => Err("expected tcp, http or grpc".into()),
    }
}

fn parse_scheme(value: &str) -> Result<Scheme, String> {
    match value {
        "HTTP" => Ok(Scheme::Http),
        "HTTPS" => Ok(Scheme::Https),
        _ => Err("expected HTTP or HTTPS".into()),
    }
}

fn parse_coupling(value: &str) -> Result<CouplingMode, String> {
    match value {
        "warn" => Ok(CouplingMode::Warn),
        "deny" => Ok(CouplingMode::Deny),
        "off" => Ok(CouplingMode::Off),
        _ => Err("expected warn, deny or off".into()),
    }
}

fn parse_path(value: &str) -> Result<String, String> {
    if !value.starts_with('/') {
        return Err("an HTTP path must start with /".into());
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("an HTTP path cannot contain spaces or control characters".into());
    }
    Ok(value.to_owned())
}

fn parse_seconds(value: &str, min: i32) -> Result<i32, String> {
    match value.parse::<i32>() {
        Ok(n) if n >= min => Ok(n),
        Ok(_) => Err(format!("must be at least {min}")),
        Err(_) => Err("expected a whole number".into()),
    }
}

/// A comma-separated list of readiness gate condition types; `none` alone for none. Each
/// type is checked where it is used, so one bad entry does not discard the others.
pub fn parse_gates(value: &str) -> Result<Vec<String>, String> {
    let gates: Vec<String> = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    match gates.as_slice() {
        [only] if only == "none" => Ok(Vec::new()),
        _ if gates.iter().any(|g| g == "none") => {
            Err("none means no gates and cannot be listed with others".into())
        }
        _ => Ok(gates),
    }
}

/// Container names, as Kubernetes accepts them: DNS-1123 labels.
fn parse_container_names(value: &str) -> Result<Vec<String>, String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|name| {
            let ok = name.len() <= 63
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !name.starts_with('-')
                && !name.ends_with('-');
            if ok {
                Ok(name.to_owned())
            } else {
                Err(format!("{name:?} is not a container name"))
            }
        })
        .collect()
}

/// A port number (1-65535) or an IANA service name as Kubernetes accepts in container ports.
pub fn parse_port(value: &str) -> Result<IntOrString, String> {
    if let Ok(n) = value.parse::<i64>() {
        return if (1..=65535).contains(&n) {
            Ok(IntOrString::Int(n as i32))
        } else {
            Err("a port number must be between 1 and 65535".into())
        };
    }
    if is_port_name(value) {
        Ok(IntOrString::String(value.to_owned()))
    } else {
        Err("expected a port number or a container port name".into())
    }
}

fn parse_port_list(value: &str) -> Result<Vec<IntOrString>, String> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| parse_port(item).map_err(|why| format!("{item:?}: {why}")))
        .collect()
}

/// IANA_SVC_NAME: 1-15 lowercase letters, digits and dashes, at least one letter,
/// no dash at either end and no two dashes in a row.
pub fn is_port_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 15
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && name.bytes().any(|b| b.is_ascii_lowercase())
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
}

/// A lower-case RFC 1123 DNS subdomain, as Kubernetes names and prefixes must be.
pub fn check_dns_subdomain(value: &str) -> Result<(), String> {
    if value.is_empty() || value.len() > 253 {
        return Err("must be 1 to 253 characters".into());
    }
    let label_ok = |label: &str| {
        let b = label.as_bytes();
        !b.is_empty()
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
    };
    if value.split('.').all(label_ok) {
        Ok(())
    } else {
        Err("must be a lower-case DNS subdomain".into())
    }
}

#[cfg(test)]
mod tests;
