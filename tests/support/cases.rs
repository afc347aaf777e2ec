//! Generated workloads and the invariants every answer must keep.
//!
//! One generator, driven by `arbitrary::Unstructured`, serves both the property tests on
//! stable (`tests/properties.rs`, proptest feeds it random bytes and shrinks them) and the
//! coverage-guided fuzz targets in `fuzz/` (libFuzzer feeds it). The values are drawn from
//! what real manifests carry: the ports, flags and `probegate.io/` keys the rules read, with
//! valid and invalid values, so most cases reach deep into the engine instead of failing to
//! decode.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use arbitrary::{Result, Unstructured};
use futures_util::FutureExt;
use json_patch::Patch;
use k8s_openapi::api::core::v1::Service;
use probegate::admission::{Admission, to_wire};
use probegate::engine::Object;
use probegate::engine::command_line;
use probegate::engine::kinds::split_api_version;
use probegate::engine::{self, Context, ServiceEvidence};
use probegate::metrics::Metrics;
use probegate::namespace_cache::Directory;
use probegate::policy::{self, Layer, Settings};
use serde_json::{Map, Value, json};

/// One generated input: a workload, its namespace's annotations and the Services beside it.
#[derive(Debug, Clone)]
pub struct Case {
    pub object: Value,
    pub namespace: BTreeMap<String, String>,
    pub services: Vec<Value>,
}

const NAMESPACES: [&str; 2] = ["shop", "default"];
const APPS: [&str; 3] = ["web", "api", "worker"];
const PORT_NAMES: [&str; 9] = [
    "http", "health", "healthz", "probes", "metrics", "grpc", "admin", "web", "dns",
];
const PORT_NUMBERS: [i32; 8] = [80, 8080, 8081, 9090, 9102, 9440, 10660, 5672];
const ARGS: [&str; 16] = [
    "--health-probe-bind-address=:8081",
    "--health-probe-bind-address",
    "0.0.0.0:9440",
    "--health-probe-bind-address=127.0.0.1:8081",
    "--health-probe-bind-address=:0",
    "--enable-metrics=false",
    "--enable-metrics=true",
    "--enable-metrics",
    "false",
    "--metrics-bind-address=:8080",
    "--metrics-bind-address=0",
    "--metrics-port=9102",
    "--listen=:8080",
    "--Enable_Metrics=no",
    "serve",
    "-v=2",
];
const ENV: [(&str, &str); 6] = [
    ("ENABLE_METRICS", "false"),
    ("ENABLE_METRICS", "true"),
    ("METRICS_PORT", "9090"),
    ("METRICS_ENABLED", "0"),
    ("PORT", "8080"),
    ("LOG_LEVEL", "debug"),
];
const PATHS: [&str; 5] = ["/healthz", "/readyz", "/ready", "/live", "/"];
const LABEL_VALUES: [&str; 4] = ["web", "api", "worker", "other"];

/// Each real `probegate.io/` key with values that parse and values that do not.
const ANNOTATIONS: &[(&str, &[&str])] = &[
    (policy::INJECT, &["enabled", "disabled", "maybe"]),
    (
        policy::PROBES,
        &[
            "liveness,readiness",
            "readiness",
            "liveness",
            "startup",
            "liveness,readiness,startup",
            "none",
            "livenes",
            "",
        ],
    ),
    (policy::PROBE_HANDLER, &["tcp", "http", "grpc", "udp"]),
    (
        policy::LIVENESS_PATH,
        &["/healthz", "/live", "/ready", "live", ""],
    ),
    (
        policy::READINESS_PATH,
        &["/readyz", "/ready", "/live", "ready"],
    ),
    (policy::STARTUP_PATH, &["/started", "/live", "started"]),
    (
        policy::PORT,
        &[
            "http", "8080", "8081", "health", "metrics", "dns", "0", "99999", "Bad_Name",
        ],
    ),
    (policy::SCHEME, &["HTTP", "HTTPS", "ftp"]),
    (policy::INITIAL_DELAY_SECONDS, &["0", "5", "-1", "x"]),
    (policy::PERIOD_SECONDS, &["1", "10", "0", "2147483647"]),
    (policy::TIMEOUT_SECONDS, &["1", "3", "0", "abc"]),
    (policy::FAILURE_THRESHOLD, &["1", "3", "-5"]),
    (
        policy::READINESS_GATES,
        &[
            "target-health.elbv2.k8s.aws/k8s-shop-web",
            "example.com/ready,example.com/other",
            "none",
            "bad gate!",
            "",
        ],
    ),
    (policy::METRICS_COUPLING, &["warn", "deny", "off", "loud"]),
    (policy::METRICS_PORTS, &["9090", "metrics,9102", "x y", ""]),
    (policy::IDENTICAL_LIVENESS, &["enabled", "disabled", "yes"]),
    (policy::STARTUP_SECONDS, &["1", "300", "0", "2147483647"]),
    (policy::SKIP_CONTAINERS, &["c0", "c1,c2", "BAD NAME"]),
    ("probegate.io/unknown-key", &["x"]),
    (policy::INJECTED_ANNOTATION, &["c0=readiness", "gates=1"]),
];

fn annotations(u: &mut Unstructured) -> Result<Map<String, Value>> {
    let mut map = Map::new();
    for _ in 0..u.int_in_range(0..=4)? {
        let (key, values) = u.choose(ANNOTATIONS)?;
        map.insert((*key).into(), (*u.choose(values)?).into());
    }
    if u.ratio(1, 4)? {
        map.insert("prometheus.io/scrape".into(), "true".into());
    }
    Ok(map)
}

fn labels(u: &mut Unstructured) -> Result<Map<String, Value>> {
    let mut map = Map::new();
    if u.ratio(7, 8)? {
        map.insert("app".into(), (*u.choose(&LABEL_VALUES)?).into());
    }
    if u.ratio(1, 4)? {
        map.insert("tier".into(), (*u.choose(&["front", "back"])?).into());
    }
    if u.ratio(1, 16)? {
        map.insert(policy::INJECT.into(), "disabled".into());
    }
    Ok(map)
}

/// Metadata that may be absent, empty, or carry labels and annotations.
fn metadata(u: &mut Unstructured, name: Option<&str>, namespace: &str) -> Result<Value> {
    let mut meta = Map::new();
    if let Some(name) = name {
        meta.insert("name".into(), name.into());
        meta.insert("namespace".into(), namespace.into());
    }
    let labels = labels(u)?;
    if !labels.is_empty() || u.ratio(1, 8)? {
        meta.insert("labels".into(), labels.into());
    }
    let annotations = annotations(u)?;
    if !annotations.is_empty() || u.ratio(1, 8)? {
        meta.insert("annotations".into(), annotations.into());
    }
    Ok(meta.into())
}

fn port_ref(u: &mut Unstructured, ports: &[Value]) -> Result<Value> {
    if !ports.is_empty() && u.ratio(3, 4)? {
        let port = u.choose(ports)?;
        if let Some(name) = port.get("name").filter(|_| u.ratio(1, 2).unwrap_or(false)) {
            return Ok(name.clone());
        }
        return Ok(port["containerPort"].clone());
    }
    Ok(if u.arbitrary()? {
        (*u.choose(&PORT_NAMES)?).into()
    } else {
        (*u.choose(&PORT_NUMBERS)?).into()
    })
}

/// A probe the container already has, with any of the four handlers.
fn probe(u: &mut Unstructured, ports: &[Value]) -> Result<Value> {
    let mut probe = match u.int_in_range(0..=3)? {
        0 => json!({"tcpSocket": {"port": port_ref(u, ports)?}}),
        1 => json!({"httpGet": {"path": *u.choose(&PATHS)?, "port": port_ref(u, ports)?}}),
        2 => json!({"grpc": {"port": *u.choose(&PORT_NUMBERS)?}}),
        _ => json!({"exec": {"command": ["cat", "/tmp/healthy"]}}),
    };
    if u.arbitrary()? {
        probe["periodSeconds"] = u.int_in_range(1..=30)?.into();
    }
    Ok(probe)
}

fn container(u: &mut Unstructured, index: usize) -> Result<Value> {
    let mut ports = Vec::new();
    let mut names = Vec::new();
    for _ in 0..u.int_in_range(0..=3)? {
        let mut port = Map::new();
        port.insert("containerPort".into(), (*u.choose(&PORT_NUMBERS)?).into());
        let name = *u.choose(&PORT_NAMES)?;
        // Port names are unique within a container, as the API server requires.
        if u.ratio(2, 3)? && !names.contains(&name) {
            names.push(name);
            port.insert("name".into(), name.into());
        }
        match u.int_in_range(0..=3)? {
            0 => {}
            1 | 2 => {
                port.insert("protocol".into(), "TCP".into());
            }
            _ => {
                port.insert("protocol".into(), "UDP".into());
            }
        }
        ports.push(Value::Object(port));
    }
    let mut c = Map::new();
    c.insert("name".into(), format!("c{index}").into());
    c.insert("image".into(), format!("example.com/app{index}:1").into());
    if u.ratio(1, 8)? {
        c.insert(
            "command".into(),
            json!(["sh", "-c", "exec app --enable-metrics=false"]),
        );
    }
    let args: Vec<&str> = (0..u.int_in_range(0..=3)?)
        .map(|_| u.choose(&ARGS).copied())
        .collect::<Result<_>>()?;
    if !args.is_empty() {
        c.insert("args".into(), json!(args));
    }
    let env: Vec<Value> = (0..u.int_in_range(0..=2)?)
        .map(|_| {
            u.choose(&ENV)
                .map(|(name, value)| json!({"name": name, "value": value}))
        })
        .collect::<Result<_>>()?;
    if !env.is_empty() {
        c.insert("env".into(), env.into());
    }
    for field in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if u.ratio(1, 4)? {
            c.insert(field.into(), probe(u, &ports)?);
        }
    }
    if !ports.is_empty() || u.ratio(1, 8)? {
        c.insert("ports".into(), ports.into());
    }
    Ok(c.into())
}

fn pod_spec(u: &mut Unstructured, kind: &str) -> Result<Value> {
    let containers: Vec<Value> = (0..u.int_in_range(1..=4)?)
        .map(|i| container(u, i))
        .collect::<Result<_>>()?;
    let mut spec = Map::new();
    spec.insert("containers".into(), containers.into());
    let restart: &[&str] = if kind == "Job" || kind == "CronJob" {
        &["Never", "OnFailure"]
    } else if kind == "Pod" {
        &["", "Always", "Never", "OnFailure"]
    } else {
        &["", "Always"]
    };
    let restart = *u.choose(restart)?;
    if !restart.is_empty() {
        spec.insert("restartPolicy".into(), restart.into());
    }
    if u.ratio(1, 6)? {
        let gate = *u.choose(&[
            "example.com/ready",
            "target-health.elbv2.k8s.aws/k8s-shop-web",
        ])?;
        spec.insert("readinessGates".into(), json!([{"conditionType": gate}]));
    }
    Ok(spec.into())
}

fn service(u: &mut Unstructured, index: usize, namespace: &str) -> Result<Value> {
    let mut meta = Map::new();
    meta.insert("name".into(), format!("svc{index}").into());
    let service_namespace = if u.ratio(7, 8)? {
        namespace
    } else {
        "elsewhere"
    };
    meta.insert("namespace".into(), service_namespace.into());
    if u.ratio(1, 3)? {
        let value = *u.choose(&[
            "target-health.elbv2.k8s.aws/k8s-shop-svc",
            "example.com/a,example.com/b",
            "bad gate!",
            "none",
        ])?;
        meta.insert(
            "annotations".into(),
            json!({ (policy::READINESS_GATES): value }),
        );
    }
    let mut spec = Map::new();
    match u.int_in_range(0..=5)? {
        0 => {}
        1 => {
            spec.insert("selector".into(), json!({}));
        }
        _ => {
            spec.insert("selector".into(), json!({"app": *u.choose(&APPS)?}));
        }
    }
    let ports: Vec<Value> = (0..u.int_in_range(1..=2)?)
        .map(|i| -> Result<Value> {
            let target: Value = if u.arbitrary()? {
                (*u.choose(&PORT_NAMES)?).into()
            } else {
                (*u.choose(&PORT_NUMBERS)?).into()
            };
            let name = *u.choose(&["http", "metrics", "amqp"])?;
            Ok(json!({"name": format!("{name}{i}"), "port": 80 + i, "targetPort": target}))
        })
        .collect::<Result<_>>()?;
    spec.insert("ports".into(), ports.into());
    Ok(json!({"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec}))
}

/// A workload of any handled kind, its namespace settings and the Services beside it.
pub fn case(u: &mut Unstructured) -> Result<Case> {
    let kind = *u.choose(&[
        "Pod",
        "Pod",
        "Deployment",
        "Deployment",
        "StatefulSet",
        "DaemonSet",
        "ReplicaSet",
        "Job",
        "CronJob",
    ])?;
    let namespace = *u.choose(&NAMESPACES)?;
    let name = kind.to_lowercase();
    let mut meta = metadata(u, Some(&name), namespace)?;
    if u.ratio(1, 6)? {
        let (api_version, owner_kind, controller) = *u.choose(&[
            ("batch/v1", "Job", true),
            ("apps/v1", "ReplicaSet", true),
            ("apps/v1", "Deployment", false),
        ])?;
        meta["ownerReferences"] = json!([{
            "apiVersion": api_version, "kind": owner_kind, "name": "owner",
            "uid": "00000000-0000-0000-0000-000000000001", "controller": controller
        }]);
    }
    let spec = pod_spec(u, kind)?;
    let object = if kind == "Pod" {
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec})
    } else {
        let mut template = Map::new();
        if u.ratio(7, 8)? {
            template.insert("metadata".into(), metadata(u, None, namespace)?);
        }
        template.insert("spec".into(), spec);
        let selector = json!({"matchLabels": {"app": "web"}});
        let api_version = match kind {
            "Job" | "CronJob" => "batch/v1",
            _ => "apps/v1",
        };
        let spec = match kind {
            "Job" => json!({"template": template}),
            "CronJob" => {
                json!({"schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": template}}})
            }
            "StatefulSet" => {
                json!({"selector": selector, "serviceName": "web", "template": template})
            }
            _ => json!({"selector": selector, "template": template}),
        };
        json!({"apiVersion": api_version, "kind": kind, "metadata": meta, "spec": spec})
    };
    let namespace_annotations = annotations(u)?
        .into_iter()
        .map(|(k, v)| (k, v.as_str().unwrap_or_default().to_owned()))
        .collect();
    let services = (0..u.int_in_range(0..=3)?)
        .map(|i| service(u, i, namespace))
        .collect::<Result<_>>()?;
    Ok(Case {
        object,
        namespace: namespace_annotations,
        services,
    })
}

/// Group, version and kind, as the object names them.
pub fn gvk(object: &Value) -> [&str; 3] {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let (group, version) = split_api_version(api_version);
    [group, version, object["kind"].as_str().unwrap_or_default()]
}

pub fn decode(object: &Value) -> Object<'_> {
    decode_as(gvk(object), object)
}

/// Decodes `object` as `[group, version, kind]`, as the admission layer does with the
/// review's kind (the object's own apiVersion and kind are not read).
pub fn decode_as<'v>([group, version, kind]: [&str; 3], object: &'v Value) -> Object<'v> {
    match Object::decode(group, version, kind, object) {
        Ok(Some(workload)) => workload,
        Ok(None) => panic!("not a handled kind: {group}/{version} {kind}"),
        Err(error) => panic!("does not decode: {error}\n{object:#}"),
    }
}

/// The engine on one case: every invariant, then the same again on its own result.
pub fn check_engine(case: &Case) {
    let services: Vec<Service> = case
        .services
        .iter()
        .map(|s| serde_json::from_value(s.clone()).expect("generated Service decodes"))
        .collect();
    let services: Vec<&Service> = services.iter().collect();
    // The engine reads the compact evidence; the checks below read the typed Services.
    let evidence: Vec<ServiceEvidence> = services.iter().map(|s| (*s).into()).collect();
    let evidence: Vec<&ServiceEvidence> = evidence.iter().collect();
    let context = Context {
        layers: &[&case.namespace],
        services: &evidence,
        ..Context::default()
    };
    let mutation = engine::mutate(&decode(&case.object), &context);
    let after = check_patch(
        gvk(&case.object),
        &case.object,
        &[&case.namespace],
        &services,
        &mutation
            .patch
            .operations()
            .expect("the patch is a JSON Patch"),
    );
    let again = engine::mutate(&decode(&after), &context);
    assert!(
        again.patch.is_empty(),
        "not idempotent: mutating the result adds {}\nfirst patch {}\nresult {after:#}",
        json!(again.patch),
        json!(mutation.patch),
    );
}

/// Applies `patch` to `before` and checks what it did; returns the result.
pub fn check_patch(
    gvk: [&str; 3],
    before: &Value,
    layers: &[&BTreeMap<String, String>],
    services: &[&Service],
    patch: &Patch,
) -> Value {
    let mut after = before.clone();
    if let Err(error) = json_patch::patch(&mut after, patch) {
        panic!(
            "the patch does not apply: {error}\npatch {}\nobject {before:#}",
            json!(patch)
        );
    }
    // The admission layer reads only the fields its rules need, so an object that is
    // invalid elsewhere (which the API server never sends: it decodes objects into their
    // types first) may be patched too; a result that must decode comes from one that did.
    let [group, version, kind] = gvk;
    if matches!(Object::decode(group, version, kind, before), Ok(Some(_))) {
        decode_as(gvk, &after);
    }
    if patch.0.is_empty() {
        return after;
    }
    let why = || format!("patch {}\nobject {before:#}", json!(patch));
    let base = if kind == "Pod" {
        ""
    } else if kind == "CronJob" {
        "/spec/jobTemplate/spec/template"
    } else {
        "/spec/template"
    };
    let pod = |v: &Value| v.pointer(base).cloned().unwrap_or(Value::Null);
    let (pod_before, pod_after) = (pod(before), pod(&after));
    let annotations = |meta: &Value| -> BTreeMap<String, String> {
        meta["annotations"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
            .collect()
    };
    let own = [
        (!base.is_empty()).then(|| annotations(&before["metadata"])),
        Some(annotations(&pod_before["metadata"])),
    ];
    let own: Vec<&BTreeMap<String, String>> = own.iter().flatten().collect();
    let asked = |key: &str| own.iter().any(|a| a.contains_key(key));
    let all_layers: Vec<&dyn Layer> = layers
        .iter()
        .chain(&own)
        .map(|layer| *layer as &dyn Layer)
        .collect();
    let settings = Settings::resolve(&all_layers).0;

    // Nothing changes but probes, readiness gates and the pod's annotations. Pod metadata
    // that is absent or null is written whole; any other is kept, unknown fields and all.
    let reads_as_absent = |meta: &Value| meta.is_null();
    let pod_meta_absent = reads_as_absent(&pod_before["metadata"]);
    let mut stripped = after.clone();
    if let Some(p) = stripped.pointer_mut(base) {
        p["spec"]["readinessGates"] = pod_before["spec"]["readinessGates"].clone();
        if pod_meta_absent {
            let meta = p["metadata"]
                .as_object_mut()
                .map(std::mem::take)
                .unwrap_or_default();
            assert!(meta.keys().all(|k| k == "annotations"), "{}", why());
        } else {
            p["metadata"]["annotations"] = pod_before["metadata"]["annotations"].clone();
        }
        strip_nulls(p);
        for (c, was) in p["spec"]["containers"]
            .as_array_mut()
            .into_iter()
            .flatten()
            .zip(
                pod_before["spec"]["containers"]
                    .as_array()
                    .into_iter()
                    .flatten(),
            )
        {
            for field in ["livenessProbe", "readinessProbe", "startupProbe"] {
                c[field] = was[field].clone();
            }
            strip_nulls(c);
        }
    }
    let mut before_stripped = before.clone();
    if let Some(p) = before_stripped
        .pointer_mut(base)
        .filter(|_| pod_meta_absent)
    {
        p["metadata"] = Value::Null;
    }
    strip_nulls_deep(&mut before_stripped);
    strip_nulls_deep(&mut stripped);
    assert_eq!(
        stripped,
        before_stripped,
        "the patch changed more than probes, gates and pod annotations\n{}",
        why()
    );

    // Existing annotations keep their values; only probegate's record may grow.
    let (meta_before, meta_after) = (
        annotations(&pod_before["metadata"]),
        annotations(&pod_after["metadata"]),
    );
    for (key, value) in &meta_before {
        if key != policy::INJECTED_ANNOTATION {
            assert_eq!(
                meta_after.get(key),
                Some(value),
                "annotation {key} changed\n{}",
                why()
            );
        }
    }

    let batch = is_batch(kind, before, &pod_before);
    let containers_before = pod_before["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let containers_after = pod_after["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(containers_before.len(), containers_after.len(), "{}", why());
    let mut added_any = false;
    for (was, now) in containers_before.iter().zip(&containers_after) {
        let name = was["name"].as_str().unwrap_or_default();
        let added = |field: &str| was.get(field).is_none() && now.get(field).is_some();
        for field in ["livenessProbe", "readinessProbe", "startupProbe"] {
            if let Some(existing) = was.get(field) {
                assert_eq!(
                    now.get(field),
                    Some(existing),
                    "{name}: existing {field} changed\n{}",
                    why()
                );
            } else if let Some(probe) = now.get(field) {
                added_any = true;
                check_port(was, probe, &settings, field, &why);
            }
        }
        if added("livenessProbe") {
            assert!(
                now.get("startupProbe").is_some(),
                "{name}: liveness added without a startup probe\n{}",
                why()
            );
        }
        if (added("livenessProbe") || added("readinessProbe"))
            && !settings.identical_liveness
            && let (Some(l), Some(r)) = (now.get("livenessProbe"), now.get("readinessProbe"))
        {
            assert!(
                !same_check(was, l, r),
                "{name}: added a liveness probe identical to readiness\n{}",
                why()
            );
        }
        if settings.skip_containers.iter().any(|s| s == name) {
            assert_eq!(
                was,
                now,
                "{name}: a skipped container was changed\n{}",
                why()
            );
        }
    }
    if batch && added_any {
        assert!(
            asked(policy::PROBES),
            "probes added to a batch pod that did not ask\n{}",
            why()
        );
    }
    let gates = |pod: &Value| pod["spec"]["readinessGates"].as_array().map_or(0, Vec::len);
    let gates_added = gates(&pod_after) > gates(&pod_before);
    if let Some(was) = pod_before["spec"]["readinessGates"].as_array() {
        assert_eq!(
            &pod_after["spec"]["readinessGates"].as_array().unwrap()[..was.len()],
            &was[..],
            "existing gates changed\n{}",
            why()
        );
    }
    if gates_added && !asked(policy::READINESS_GATES) {
        assert!(
            !batch,
            "gates added to a batch pod that did not ask\n{}",
            why()
        );
        let namespace = before["metadata"]["namespace"].as_str();
        let labels = &pod_before["metadata"]["labels"];
        let selected = services.iter().any(|s| {
            let same_namespace = match (s.metadata.namespace.as_deref(), namespace) {
                (Some(a), Some(b)) => a == b,
                _ => true,
            };
            let selector = s.spec.as_ref().and_then(|s| s.selector.as_ref());
            same_namespace
                && selector.is_some_and(|sel| {
                    !sel.is_empty() && sel.iter().all(|(k, v)| labels[k].as_str() == Some(v))
                })
        });
        assert!(
            selected,
            "gates added to pods no Service selects\n{}",
            why()
        );
    }
    let disabled = |meta: &Value| meta["labels"][policy::INJECT] == "disabled";
    assert!(
        !disabled(&before["metadata"]) && !disabled(&pod_before["metadata"]),
        "an object labelled {}=disabled was changed\n{}",
        policy::INJECT,
        why()
    );
    after
}

fn strip_nulls(value: &mut Value) {
    if let Value::Object(map) = value {
        map.retain(|_, v| !v.is_null());
    }
}

fn strip_nulls_deep(value: &mut Value) {
    match value {
        Value::Object(map) => {
            map.retain(|_, v| !v.is_null());
            map.values_mut().for_each(strip_nulls_deep);
            // A metadata object left empty by stripping its annotations reads as absent.
            map.retain(|k, v| !(k == "metadata" && v.as_object().is_some_and(Map::is_empty)));
        }
        Value::Array(items) => items.iter_mut().for_each(strip_nulls_deep),
        _ => {}
    }
}

/// Pods that run to completion, read from the JSON (not from the engine's own test).
fn is_batch(kind: &str, object: &Value, pod: &Value) -> bool {
    let owned_by_job = object["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|o| {
            o["kind"] == "Job"
                && o["apiVersion"]
                    .as_str()
                    .is_some_and(|v| v.starts_with("batch/"))
        });
    let restart = pod["spec"]["restartPolicy"].as_str();
    kind == "Job"
        || kind == "CronJob"
        || (kind == "Pod" && owned_by_job)
        || matches!(restart, Some("Never" | "OnFailure"))
}

/// The ports an added probe may use: one the container declares, its controller-runtime
/// health address, or the number `probegate.io/port` names.
fn check_port(
    container: &Value,
    probe: &Value,
    settings: &Settings,
    field: &str,
    why: &dyn Fn() -> String,
) {
    let name = container["name"].as_str().unwrap_or_default();
    let port = ["tcpSocket", "httpGet", "grpc"]
        .iter()
        .find_map(|h| probe.get(*h).map(|handler| handler["port"].clone()))
        .unwrap_or_else(|| {
            panic!(
                "{name}: added {field} connects to no port: {probe}\n{}",
                why()
            )
        });
    let declared = container["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|p| match &port {
            Value::Number(n) => p["containerPort"].as_i64() == n.as_i64(),
            Value::String(s) => p["name"].as_str() == Some(s.as_str()),
            _ => false,
        });
    // A container invalid in fields the rules do not read is read past by the admission
    // layer (see `check_patch`); its health address is then not known here.
    let typed: Option<probegate::engine::object::Container<'_>> =
        k8s_openapi::serde::Deserialize::deserialize(container).ok();
    let health = typed.iter().any(|typed| {
        command_line::flags(typed)
            .iter()
            .filter(|f| f.name == "health-probe-bind-address")
            .filter_map(|f| f.value().and_then(command_line::listen_port))
            .any(|p| port.as_i64() == Some(i64::from(p)))
    });
    let set = match &settings.port {
        Some(k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(n)) => {
            port.as_i64() == Some(i64::from(*n))
        }
        _ => false,
    };
    assert!(
        declared || health || set,
        "{name}: added {field} on port {port}, which the container does not declare\n{}",
        why()
    );
}

/// Two probes that fail together: the same handler, port (names resolved) and path.
fn same_check(container: &Value, a: &Value, b: &Value) -> bool {
    let resolve = |port: &Value| -> Value {
        match port {
            Value::String(name) => container["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|p| p["name"].as_str() == Some(name))
                .map_or_else(|| port.clone(), |p| p["containerPort"].clone()),
            other => other.clone(),
        }
    };
    ["tcpSocket", "httpGet", "grpc", "exec"]
        .iter()
        .any(|h| match (a.get(*h), b.get(*h)) {
            (Some(x), Some(y)) => {
                resolve(&x["port"]) == resolve(&y["port"])
                    && x["path"] == y["path"]
                    && x["service"] == y["service"]
                    && x["command"] == y["command"]
            }
            _ => false,
        })
}

/// A review body built around a case, bent in the ways real bodies go wrong: other
/// versions and kinds, a kind that does not match the object, other operations, odd uids,
/// and truncation.
pub fn review_body(u: &mut Unstructured, case: &Case) -> Result<Vec<u8>> {
    let object = &case.object;
    let (group, version) = split_api_version(object["apiVersion"].as_str().unwrap_or_default());
    let mut gvk = json!({"group": group, "version": version, "kind": object["kind"]});
    if u.ratio(1, 8)? {
        gvk = (*u.choose(&[
            json!({"group": "", "version": "v1", "kind": "Service"}),
            json!({"group": "apps", "version": "v1", "kind": "Deployment"}),
            json!({"group": "", "version": "v1", "kind": "Pod"}),
            json!({"group": "batch", "version": "v1beta1", "kind": "CronJob"}),
            json!({"kind": "Pod"}),
        ])?)
        .clone();
    }
    let uid: Value = match u.int_in_range(0..=7)? {
        0 => Value::Null,
        1 => 42.into(),
        2 => "".into(),
        _ => "b4e6c6f5-4a2f-4a0e-9d59-3a1c0e7c2f11".into(),
    };
    let operation = *u.choose(&[
        "CREATE", "CREATE", "CREATE", "UPDATE", "DELETE", "CONNECT", "create",
    ])?;
    let mut request = json!({
        "uid": uid,
        "kind": gvk,
        "resource": {"group": group, "version": version, "resource": "things"},
        "namespace": object["metadata"]["namespace"],
        "operation": operation,
        "userInfo": {"username": "fuzz"},
        "object": object,
        "oldObject": null,
        "dryRun": u.arbitrary::<bool>()?,
    });
    if u.ratio(1, 10)? {
        request["object"] = Value::Null;
    }
    if u.ratio(1, 10)? {
        request.as_object_mut().map(|r| {
            r.remove(
                *u.choose(&["uid", "kind", "operation", "userInfo", "namespace"])
                    .unwrap_or(&"uid"),
            )
        });
    }
    let mut review = json!({
        "apiVersion": *u.choose(&["admission.k8s.io/v1", "admission.k8s.io/v1", "admission.k8s.io/v1", "admission.k8s.io/v1beta1", "v1"])?,
        "kind": *u.choose(&["AdmissionReview", "AdmissionReview", "AdmissionReview", "Pod"])?,
        "request": request,
    });
    if u.ratio(1, 12)? {
        review.as_object_mut().map(|r| r.remove("request"));
    }
    let mut body = serde_json::to_vec(&review).unwrap_or_default();
    if u.ratio(1, 10)? {
        let cut = u.int_in_range(0..=body.len())?;
        body.truncate(cut);
    }
    Ok(body)
}

/// An admission layer over a standalone directory where every namespace has `annotations`.
pub fn admission(annotations: &BTreeMap<String, String>) -> Admission {
    let map = NAMESPACES
        .iter()
        .map(|ns| (ns.to_string(), Arc::new(annotations.clone())))
        .collect();
    Admission::new(
        Directory::Standalone(Arc::new(map)),
        BTreeMap::new(),
        Arc::new(Metrics::default()),
    )
}

/// Any body: either a 400 error, or a valid AdmissionReview answer to this very request,
/// whose patch keeps every engine invariant and is idempotent.
pub fn check_review(admission: &Admission, annotations: &BTreeMap<String, String>, body: &[u8]) {
    let Some(answer) = admission.review(body).now_or_never() else {
        panic!("a standalone review waited on something");
    };
    let review = match answer {
        Ok(review) => review,
        // Answered 400 by the server; the error says why.
        Err(error) => {
            assert!(!error.to_string().is_empty());
            return;
        }
    };
    // A body is answered only if it is UTF-8, wherever a stray byte is.
    let text = std::str::from_utf8(body).expect("an answered body is UTF-8");
    let wire = to_wire(review).expect("the answer serializes");
    let input: Value = match serde_json::from_str(text) {
        Ok(input) => input,
        // Nor does it build a number it skips: one beyond f64 where no rule reads (which no
        // API server sends) is answered, though this check cannot build the body. Read what
        // the answer is checked against the same way, skipping the rest.
        Err(_) => {
            // (serde through k8s-openapi: the fuzz crate, which shares this file, has no
            // serde of its own.)
            #[derive(k8s_openapi::serde::Deserialize)]
            #[serde(crate = "k8s_openapi::serde")]
            struct Skim {
                request: SkimRequest,
            }
            #[derive(k8s_openapi::serde::Deserialize)]
            #[serde(crate = "k8s_openapi::serde")]
            struct SkimRequest {
                uid: String,
                operation: String,
            }
            let skim: Skim = serde_json::from_str(text).expect("an answered body is JSON");
            let request = json!({"uid": skim.request.uid, "operation": skim.request.operation});
            check_answer(&wire, &json!({"request": request}));
            return;
        }
    };
    let Some(patch) = check_answer(&wire, &input) else {
        return;
    };
    let object = &input["request"]["object"];
    let request_kind = &input["request"]["kind"];
    let field = |name: &str| request_kind[name].as_str().unwrap_or_default();
    let gvk = [field("group"), field("version"), field("kind")];
    let after = check_patch(gvk, object, &[annotations], &[], &patch);
    // Idempotent through the wire too: the same review of the result adds nothing.
    let mut again = input.clone();
    again["request"]["object"] = after;
    let body = serde_json::to_vec(&again).expect("serializes");
    let second = admission
        .review(&body)
        .now_or_never()
        .expect("standalone")
        .expect("the mutated object is still a valid review");
    let second = second.response.expect("a response");
    assert!(
        second.patch.is_none(),
        "not idempotent through the admission layer"
    );
}

/// The answer (`wire`) to `input` is a valid review with its uid; a denial carries no patch, and a
/// patch comes only on CREATE, as base64 JSON Patch, which is returned.
fn check_answer(wire: &[u8], input: &Value) -> Option<Patch> {
    let reply: Value = serde_json::from_slice(wire).expect("the answer is JSON");
    assert_eq!(reply["apiVersion"], "admission.k8s.io/v1", "{reply}");
    assert_eq!(reply["kind"], "AdmissionReview", "{reply}");
    let response = &reply["response"];
    assert_eq!(
        response["uid"], input["request"]["uid"],
        "the answer carries another uid: {reply}"
    );
    let allowed = response["allowed"].as_bool().expect("allowed is a boolean");
    if !allowed {
        assert_eq!(response["status"]["code"], 403, "{reply}");
        assert!(response.get("patch").is_none_or(Value::is_null), "{reply}");
        return None;
    }
    let patch = response["patch"].as_str()?;
    assert_eq!(response["patchType"], "JSONPatch", "{reply}");
    assert_eq!(
        input["request"]["operation"], "CREATE",
        "only CREATE is mutated: {reply}"
    );
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(patch)
        .expect("the patch is base64");
    Some(serde_json::from_slice(&bytes).expect("the patch is a JSON Patch"))
}

/// The YAML loader as `probegate mutate` uses it: a document that loads is written back and
/// reads as the same value; input that reads as manifests goes through the offline run to
/// a report or an error, and the YAML it prints reads back.
pub fn check_yaml(data: &[u8]) {
    use probegate::offline::{self, Options, OutputFormat};
    use probegate::yaml;
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(values) = yaml::load_all(text) {
        for value in values.iter().filter(|v| !v.is_null()) {
            let written = yaml::to_string(value);
            match yaml::load_all(&written) {
                Ok(back) => assert_eq!(
                    back.as_slice(),
                    std::slice::from_ref(value),
                    "written as\n{written}"
                ),
                Err(error) => panic!("its own output does not load: {error}\n{written}"),
            }
        }
    }
    let stdin = std::path::PathBuf::from("-");
    let Ok(documents) = probegate::manifest::read_paths(&[stdin], &mut text.as_bytes()) else {
        return;
    };
    for format in [OutputFormat::Yaml, OutputFormat::Json, OutputFormat::Patch] {
        let options = Options {
            format,
            ..Options::default()
        };
        let Ok(report) = offline::run(documents.clone(), &options) else {
            continue;
        };
        if format == OutputFormat::Yaml
            && let Err(error) = yaml::load_all(&report.stdout)
        {
            panic!(
                "mutate's YAML output does not load: {error}\n{}",
                report.stdout
            );
        }
    }
}

/// The engine target's input: a case, checked on the engine and through a review body.
pub fn check_fuzz_case(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(case) = case(&mut u) else {
        return;
    };
    check_engine(&case);
    if let Ok(body) = review_body(&mut u, &case) {
        check_review(&admission(&case.namespace), &case.namespace, &body);
    }
}
