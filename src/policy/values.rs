//! What a valid value of each setting is, and what it means.

use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{CouplingMode, Handler, ProbeKind, Scheme};

pub fn parse_enabled(value: &str) -> Result<bool, String> {
    match value {
        "enabled" => Ok(true),
        "disabled" => Ok(false),
        _ => Err("expected enabled or disabled".into()),
    }
}

pub fn parse_probes(value: &str) -> Result<Vec<ProbeKind>, String> {
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

pub fn parse_handler(value: &str) -> Result<Handler, String> {
    match value {
        "tcp" => Ok(Handler::Tcp),
        "http" => Ok(Handler::Http),
        "grpc" => Ok(Handler::Grpc),
        _ => Err("expected tcp, http or grpc".into()),
    }
}

pub fn parse_scheme(value: &str) -> Result<Scheme, String> {
    match value {
        "HTTP" => Ok(Scheme::Http),
        "HTTPS" => Ok(Scheme::Https),
        _ => Err("expected HTTP or HTTPS".into()),
    }
}

pub fn parse_coupling(value: &str) -> Result<CouplingMode, String> {
    match value {
        "warn" => Ok(CouplingMode::Warn),
        "deny" => Ok(CouplingMode::Deny),
        "off" => Ok(CouplingMode::Off),
        _ => Err("expected warn, deny or off".into()),
    }
}

pub fn parse_path(value: &str) -> Result<String, String> {
    if !value.starts_with('/') {
        return Err("an HTTP path must start with /".into());
    }
    if value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("an HTTP path cannot contain spaces or control characters".into());
    }
    Ok(value.to_owned())
}

pub fn parse_seconds(value: &str, min: i32) -> Result<i32, String> {
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
pub fn parse_container_names(value: &str) -> Result<Vec<String>, String> {
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

pub fn parse_port_list(value: &str) -> Result<Vec<IntOrString>, String> {
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
