//! A container's declared ports, as the probe and metrics rules both read them.

use super::object::{Container, Port};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// A port number, or a named port looked up in the container's ports.
pub fn resolve(container: &Container<'_>, port: &IntOrString) -> Option<i32> {
    match port {
        IntOrString::Int(n) => Some(*n),
        IntOrString::String(name) => container
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(name.as_str()))
            .map(|p| p.container_port),
    }
}

/// Whether the container declares `port`, by number or by name.
pub fn declares(container: &Container<'_>, port: &IntOrString) -> bool {
    container.ports.iter().flatten().any(|p| is(p, port))
}

/// Whether the declared `port` is the one `wanted` names, by number or by name.
pub fn is(port: &Port<'_>, wanted: &IntOrString) -> bool {
    match wanted {
        IntOrString::Int(n) => port.container_port == *n,
        IntOrString::String(name) => port.name.as_deref() == Some(name.as_str()),
    }
}

/// `8080` or `http`, for messages.
pub fn text(port: &IntOrString) -> String {
    match port {
        IntOrString::Int(n) => n.to_string(),
        IntOrString::String(s) => s.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_and_numbered_ports() {
        let container = Container {
            ports: Some(vec![Port {
                name: Some("http".into()),
                container_port: 8080,
                ..Port::default()
            }]),
            ..Container::default()
        };
        struct Case {
            name: &'static str,
            port: IntOrString,
            resolved: Option<i32>,
            declared: bool,
        }
        let cases = [
            Case {
                name: "a declared name resolves to its number",
                port: IntOrString::String("http".into()),
                resolved: Some(8080),
                declared: true,
            },
            Case {
                name: "an undeclared name resolves to nothing",
                port: IntOrString::String("admin".into()),
                resolved: None,
                declared: false,
            },
            Case {
                name: "a declared number",
                port: IntOrString::Int(8080),
                resolved: Some(8080),
                declared: true,
            },
            Case {
                name: "a number is a number even when undeclared",
                port: IntOrString::Int(9000),
                resolved: Some(9000),
                declared: false,
            },
        ];
        for case in cases {
            assert_eq!(
                resolve(&container, &case.port),
                case.resolved,
                "{}",
                case.name
            );
            assert_eq!(
                declares(&container, &case.port),
                case.declared,
                "{}",
                case.name
            );
        }
    }
}
