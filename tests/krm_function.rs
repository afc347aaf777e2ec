//! `probegate fn`, the KRM function, through the real binary and through the real kustomize
//! (built from its Go module by `.ci/install-tools.sh kustomize`) running it as an exec
//! transformer.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

use common::probegate;
use probegate::krm::{KrmResult, Severity};

const PATH: &str = "internal.config.kubernetes.io/path";
const INDEX: &str = "internal.config.kubernetes.io/index";

fn yaml(value: &Value) -> String {
    probegate::yaml::to_string(value)
}

fn documents(text: &str) -> Vec<Value> {
    probegate::yaml::load_all(text)
        .unwrap_or_else(|e| panic!("{e}:\n{text}"))
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

fn resource_list(items: &[Value], config: Option<Value>) -> Value {
    let mut list = json!({
        "apiVersion": "config.kubernetes.io/v1",
        "kind": "ResourceList",
        "items": items,
    });
    if let Some(config) = config {
        list["functionConfig"] = config;
    }
    list
}

/// The function's answer: the output list, its results, stderr and exit code.
struct Answer {
    list: Value,
    results: Vec<KrmResult>,
    stderr: String,
    code: i32,
}

fn run_fn(dir: &Path, list: &Value, args: &[&str]) -> Answer {
    let mut all = vec!["fn"];
    all.extend(args);
    let out = probegate(dir, &all, Some(yaml(list).as_bytes()));
    answer(out)
}

fn answer(out: Output) -> Answer {
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    let code = out.status.code().unwrap();
    let [list] = documents(&stdout)
        .try_into()
        .unwrap_or_else(|d: Vec<Value>| {
            panic!(
                "one ResourceList, got {} documents; stderr:\n{stderr}",
                d.len()
            )
        });
    let results = serde_json::from_value(list["results"].clone()).unwrap_or_default();
    Answer {
        list,
        results,
        stderr,
        code,
    }
}

fn deployment(namespace: &str, name: &str, args: &[&str], port: u16) -> Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {"containers": [{
                    "name": name,
                    "image": "example.com/app:1.0",
                    "args": args,
                    "ports": [{"name": "http", "containerPort": port}],
                }]},
            },
        },
    })
}

/// A controller with metrics off whose probes target its metrics port (the kube-ovn bug).
fn coupled(namespace: &str) -> Value {
    let mut object = deployment(namespace, "ctl", &["--enable-metrics=false"], 10660);
    let container = &mut object["spec"]["template"]["spec"]["containers"][0];
    container["ports"][0]["name"] = json!("metrics");
    container["readinessProbe"] = json!({"tcpSocket": {"port": 10660}});
    object
}

fn with_source(mut object: Value, path: &str, index: usize) -> Value {
    object["metadata"]["annotations"] = json!({PATH: path, INDEX: index.to_string()});
    object
}

/// A functionConfig named probegate: `api_version kind` with `field` set to `value`.
fn named(api_version: &str, kind: &str, field: &str, value: Value) -> Value {
    let mut config =
        json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": "probegate"}});
    config[field] = value;
    config
}

fn config_map(data: Value) -> Value {
    named("v1", "ConfigMap", "data", data)
}

fn function_config(spec: Value) -> Value {
    named("probegate.io/v1alpha1", "FunctionConfig", "spec", spec)
}

fn tmp() -> PathBuf {
    std::env::temp_dir()
}

/// Every golden input, as a ResourceList whose items say they came from `input.yaml`,
/// with the golden case's flags as a functionConfig: the items come back as `mutate`
/// prints the objects, with the same warnings and the same exit code.
#[test]
fn the_function_answers_every_golden_input_as_mutate_does() {
    for case in common::golden_cases() {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let flags: Vec<String> = std::fs::read_to_string(case.join("args"))
            .map(|a| a.split_whitespace().map(str::to_owned).collect())
            .unwrap_or_default();
        let mut spec = json!({});
        let mut flags = flags.iter();
        while let Some(flag) = flags.next() {
            match flag.as_str() {
                "--include-excluded-namespaces" => spec["includeExcludedNamespaces"] = json!(true),
                "--namespace-annotation" => {
                    let (key, value) = flags.next().unwrap().split_once('=').unwrap();
                    spec["namespaceAnnotations"][key] = json!(value);
                }
                "--catalogue" => {
                    let text = std::fs::read_to_string(case.join(flags.next().unwrap())).unwrap();
                    spec["catalogue"] = documents(&text).remove(0);
                }
                other => panic!("{name}: give {other} its functionConfig field here"),
            }
        }
        let input = documents(&std::fs::read_to_string(case.join("input.yaml")).unwrap());
        let items: Vec<Value> = input
            .iter()
            .enumerate()
            .map(|(index, item)| {
                let mut item = item.clone();
                let annotations = &mut item["metadata"]["annotations"];
                if annotations.is_null() {
                    *annotations = json!({});
                }
                annotations[PATH] = json!("input.yaml");
                annotations[INDEX] = json!(index.to_string());
                item
            })
            .collect();
        let answer = run_fn(
            &case,
            &resource_list(&items, Some(function_config(spec))),
            &[],
        );

        let mutate = probegate(
            &case,
            &["mutate", "-f", "input.yaml", "-o", "json"]
                .into_iter()
                .chain(
                    std::fs::read_to_string(case.join("args"))
                        .unwrap_or_default()
                        .split_whitespace(),
                )
                .collect::<Vec<_>>(),
            None,
        );
        let printed: Value = serde_json::from_slice(&mutate.stdout).unwrap();
        let expected = match printed["kind"].as_str() {
            Some("List") if input.len() > 1 => printed["items"].as_array().unwrap().clone(),
            _ => vec![printed],
        };
        let mut got = answer.list["items"].as_array().unwrap().clone();
        for item in &mut got {
            let annotations = item["metadata"]["annotations"].as_object_mut().unwrap();
            assert!(
                annotations.remove(PATH).is_some(),
                "{name}: the path survives"
            );
            assert!(
                annotations.remove(INDEX).is_some(),
                "{name}: the index survives"
            );
            if annotations.is_empty() {
                item["metadata"]
                    .as_object_mut()
                    .unwrap()
                    .remove("annotations");
            }
        }
        assert_eq!(got, expected, "{name}: items");
        assert_eq!(
            answer.stderr,
            String::from_utf8(mutate.stderr).unwrap(),
            "{name}: stderr"
        );
        assert_eq!(Some(answer.code), mutate.status.code(), "{name}: exit code");
    }
}

#[test]
fn results_name_the_object_the_field_and_the_file() {
    let items = [
        with_source(coupled("apps"), "apps/ctl.yaml", 1),
        deployment("apps", "web", &[], 8080),
    ];
    let answer = run_fn(&tmp(), &resource_list(&items, None), &[]);
    assert_eq!(
        answer.code, 0,
        "warnings do not fail the run: {}",
        answer.stderr
    );
    let coupling = answer
        .results
        .iter()
        .find(|r| {
            r.tags.get("probegate.io/check").map(String::as_str) == Some("metrics-coupled-probe")
        })
        .unwrap_or_else(|| panic!("{:#?}", answer.results));
    assert_eq!(coupling.severity, Severity::Warning);
    assert!(
        coupling
            .message
            .starts_with("container \"ctl\": readinessProbe targets port 10660"),
        "{}",
        coupling.message
    );
    let reference = coupling.resource_ref.as_ref().unwrap();
    assert_eq!(
        (
            reference.api_version.as_str(),
            reference.kind.as_str(),
            reference.name.as_str(),
            reference.namespace.as_deref()
        ),
        ("apps/v1", "Deployment", "ctl", Some("apps"))
    );
    assert_eq!(
        coupling.field.as_ref().unwrap().path,
        "spec.template.spec.containers[0].readinessProbe"
    );
    let file = coupling.file.as_ref().unwrap();
    assert_eq!((file.path.as_str(), file.index), ("apps/ctl.yaml", 1));

    let added = answer
        .results
        .iter()
        .find(|r| r.resource_ref.as_ref().unwrap().name == "web")
        .unwrap();
    assert_eq!(added.severity, Severity::Info);
    assert_eq!(
        added.message,
        "would add readinessProbe to container \"web\""
    );
    assert_eq!(
        added.field.as_ref().unwrap().path,
        "spec.template.spec.containers[0]"
    );
    assert!(added.file.is_none(), "an item without a path names no file");
    // The mutation itself is in the items.
    let web = &answer.list["items"][1]["spec"]["template"]["spec"]["containers"][0];
    assert!(web["readinessProbe"].is_object(), "{web}");
    // The orchestrator's annotations come back as they went.
    assert_eq!(
        answer.list["items"][0]["metadata"]["annotations"][PATH],
        "apps/ctl.yaml"
    );
    assert_eq!(
        answer.list["items"][0]["metadata"]["annotations"][INDEX],
        "1"
    );
}

#[test]
fn a_refusal_is_an_error_result_and_a_failed_run() {
    let items = [coupled("apps")];
    for (name, config) in [
        (
            "configmap",
            config_map(json!({"probegate.io/metrics-coupling": "deny"})),
        ),
        (
            "kind",
            function_config(
                json!({"namespaceAnnotations": {"probegate.io/metrics-coupling": "deny"}}),
            ),
        ),
    ] {
        let answer = run_fn(&tmp(), &resource_list(&items, Some(config)), &[]);
        assert_eq!(answer.code, 1, "{name}");
        let denial = answer
            .results
            .iter()
            .find(|r| r.severity == Severity::Error)
            .unwrap_or_else(|| panic!("{name}: {:#?}", answer.results));
        assert_eq!(
            denial.tags["probegate.io/check"], "would-be-denied",
            "{name}"
        );
        assert!(
            answer
                .stderr
                .contains("Denied: items[0]: Deployment apps/ctl: "),
            "{name}: {}",
            answer.stderr
        );
        assert_eq!(
            answer.list["items"][0], items[0],
            "{name}: a refused object is unchanged"
        );
    }
}

#[test]
fn check_passes_the_items_on_unchanged_and_fails_on_any_finding() {
    let items = [deployment("apps", "web", &[], 8080)];
    for (name, args, config) in [
        ("flag", vec!["--check"], None),
        (
            "configmap",
            vec![],
            Some(config_map(json!({"check": "true"}))),
        ),
        (
            "kind",
            vec![],
            Some(function_config(json!({"check": true}))),
        ),
    ] {
        let answer = run_fn(&tmp(), &resource_list(&items, config), &args);
        assert_eq!(answer.code, 1, "{name}");
        assert_eq!(answer.list["items"][0], items[0], "{name}: unchanged");
        assert!(!answer.results.is_empty(), "{name}");
        assert!(
            answer.results.iter().all(|r| r.severity == Severity::Error),
            "{name}: {:#?}",
            answer.results
        );
    }
    // Clean input passes: what the function would add is already there.
    let mutated = run_fn(&tmp(), &resource_list(&items, None), &[]);
    assert_eq!(mutated.code, 0);
    let clean = mutated.list["items"].as_array().unwrap().clone();
    let answer = run_fn(&tmp(), &resource_list(&clean, None), &["--check"]);
    assert_eq!(
        (answer.code, answer.results.len()),
        (0, 0),
        "{:#?}",
        answer.results
    );
}

#[test]
fn configmap_settings_reach_the_engine() {
    let system = coupled("kube-system");
    // Left alone, with a note, unless asked.
    let answer = run_fn(
        &tmp(),
        &resource_list(std::slice::from_ref(&system), None),
        &[],
    );
    assert_eq!(answer.list["items"][0], system);
    assert_eq!(answer.results.len(), 1, "{:#?}", answer.results);
    assert_eq!(answer.results[0].severity, Severity::Info);
    assert!(
        answer.results[0].message.contains("kube-system: 1"),
        "{}",
        answer.results[0].message
    );

    let config = config_map(json!({"include-excluded-namespaces": "true"}));
    let answer = run_fn(
        &tmp(),
        &resource_list(std::slice::from_ref(&system), Some(config)),
        &[],
    );
    assert!(
        answer
            .results
            .iter()
            .any(|r| r.tags["probegate.io/check"] == "metrics-coupled-probe"),
        "{:#?}",
        answer.results
    );

    // A catalogue entry of the user's own decides the probe.
    let catalogue = "- name: in-house\n  images: [example.com/app]\n  ports: [{port: 8080, protocol: http}]\n  readiness: {httpGet: {port: http, path: /ready}}\n  source: https://wiki.example.com/app\n";
    let items = [deployment("apps", "web", &[], 8080)];
    for (name, config) in [
        ("configmap", config_map(json!({"catalogue": catalogue}))),
        (
            "kind",
            function_config(json!({"catalogue": documents(catalogue).remove(0)})),
        ),
    ] {
        let answer = run_fn(&tmp(), &resource_list(&items, Some(config)), &[]);
        assert_eq!(answer.code, 0, "{name}: {}", answer.stderr);
        let probe =
            &answer.list["items"][0]["spec"]["template"]["spec"]["containers"][0]["readinessProbe"];
        assert_eq!(probe["httpGet"]["path"], "/ready", "{name}: {probe}");
    }
}

#[test]
fn a_bad_function_config_or_item_is_an_error_result_with_the_items_unchanged() {
    let items = [deployment("apps", "web", &[], 8080)];
    let cases = [
        (
            "unknown kind",
            json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}}),
            "expected a v1 ConfigMap or a probegate.io/v1alpha1 FunctionConfig",
        ),
        (
            "unknown key",
            config_map(json!({"catalog": "[]"})),
            "unknown key \"catalog\"",
        ),
        (
            "bad boolean",
            config_map(json!({"check": "yes"})),
            "check is \"true\" or \"false\", not \"yes\"",
        ),
        (
            "misspelt field",
            function_config(json!({"namespaceAnnotation": {}})),
            "unknown field `namespaceAnnotation`",
        ),
        (
            "bad catalogue",
            config_map(json!({"catalogue": "- name: x\n"})),
            "functionConfig catalogue",
        ),
    ];
    for (name, config, says) in cases {
        let answer = run_fn(&tmp(), &resource_list(&items, Some(config)), &[]);
        assert_eq!(answer.code, 1, "{name}");
        assert_eq!(answer.list["items"][0], items[0], "{name}");
        assert_eq!(answer.results.len(), 1, "{name}: {:#?}", answer.results);
        assert_eq!(answer.results[0].severity, Severity::Error, "{name}");
        assert!(
            answer.results[0].message.contains(says),
            "{name}: {}",
            answer.results[0].message
        );
        assert!(answer.stderr.contains(says), "{name}: {}", answer.stderr);
    }
    let mut misfit = deployment("apps", "web", &[], 8080);
    misfit["spec"]["replicas"] = json!("two");
    let answer = run_fn(
        &tmp(),
        &resource_list(std::slice::from_ref(&misfit), None),
        &[],
    );
    assert_eq!(answer.code, 1);
    assert_eq!(answer.list["items"][0], misfit);
    assert!(
        answer.results[0]
            .message
            .contains("items[0]: the object does not fit Deployment"),
        "{}",
        answer.results[0].message
    );
}

#[test]
fn input_that_is_no_resource_list_exits_2_and_says_why() {
    for (name, input, says) in [
        ("not yaml", "items: [a\n", "standard input is not YAML"),
        (
            "two documents",
            "kind: ResourceList\n---\nkind: ResourceList\n",
            "holds 2 documents",
        ),
        (
            "another kind",
            "apiVersion: v1\nkind: ConfigMap\n",
            "its kind is \"ConfigMap\"",
        ),
        ("empty", "", "holds 0 documents"),
    ] {
        let out = probegate(&tmp(), &["fn"], Some(input.as_bytes()));
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert_eq!(out.status.code(), Some(2), "{name}: {stderr}");
        assert!(out.stdout.is_empty(), "{name}");
        assert!(stderr.contains(says), "{name}: {stderr}");
    }
}

#[test]
fn a_list_comes_back_a_list_and_json_comes_back_json() {
    let items = [deployment("apps", "web", &[], 8080)];
    let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
    let answer = run_fn(&tmp(), &list, &[]);
    assert_eq!(
        (answer.list["kind"].as_str(), answer.code),
        (Some("List"), 0)
    );
    assert!(
        answer.list["items"][0]["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]
            .is_object()
    );

    let json_input = serde_json::to_string(&resource_list(&items, None)).unwrap();
    let out = probegate(&tmp(), &["fn"], Some(json_input.as_bytes()));
    let back: Value = serde_json::from_slice(&out.stdout).expect("JSON in, JSON out");
    assert_eq!(back["kind"], "ResourceList");
}

/// A kustomization with probegate as an exec transformer, configured by `config`; the
/// wrapper keeps what kustomize sent and what the function answered.
struct Kustomization {
    dir: PathBuf,
}

impl Kustomization {
    fn new(name: &str, resources: &[Value], config: Value) -> Kustomization {
        let dir = tmp().join(format!("probegate-krm-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let text: Vec<String> = resources.iter().map(yaml).collect();
        std::fs::write(dir.join("app.yaml"), text.join("---\n")).unwrap();
        std::fs::write(
            dir.join("fn.sh"),
            format!(
                "#!/bin/sh\ntee sent.yaml | {} fn > answered.yaml\ncode=$?\ncat answered.yaml\nexit $code\n",
                env!("CARGO_BIN_EXE_probegate")
            ),
        )
        .unwrap();
        let mut config = config;
        config["metadata"]["annotations"] =
            json!({"config.kubernetes.io/function": "exec:\n  path: ./fn.sh\n"});
        std::fs::write(dir.join("probegate.yaml"), yaml(&config)).unwrap();
        std::fs::write(
            dir.join("kustomization.yaml"),
            "resources:\n  - app.yaml\ntransformers:\n  - probegate.yaml\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join("fn.sh"), std::fs::Permissions::from_mode(0o755))
            .unwrap();
        Kustomization { dir }
    }

    fn build(&self) -> Output {
        Command::new(common::kustomize())
            .current_dir(&self.dir)
            .args(["build", "--enable-alpha-plugins", "--enable-exec", "."])
            .output()
            .unwrap()
    }

    fn file(&self, name: &str) -> Vec<Value> {
        documents(&std::fs::read_to_string(self.dir.join(name)).unwrap())
    }
}

fn by_name(objects: &[Value], kind: &str, name: &str) -> Value {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in {objects:#?}"))
        .clone()
}

#[test]
fn kustomize_renders_the_webhooks_mutations_with_results() {
    let service = json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "web", "namespace": "apps"},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": "http"}]},
    });
    let resources = [service.clone(), deployment("apps", "web", &[], 8080)];
    let kustomization = Kustomization::new("render", &resources, config_map(json!({})));
    let out = kustomization.build();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let built = documents(&String::from_utf8(out.stdout).unwrap());

    // What `probegate mutate` prints for the same files.
    let mutate = probegate(
        &kustomization.dir,
        &["mutate", "-f", "app.yaml", "-o", "json"],
        None,
    );
    let mutated: Value = serde_json::from_slice(&mutate.stdout).unwrap();
    let mutated = mutated["items"].as_array().unwrap();
    for (kind, name) in [("Service", "web"), ("Deployment", "web")] {
        assert_eq!(
            by_name(&built, kind, name),
            by_name(mutated, kind, name),
            "{kind} {name}"
        );
    }
    let container =
        &by_name(&built, "Deployment", "web")["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(
        container["readinessProbe"]["tcpSocket"]["port"], "http",
        "{container}"
    );

    // The function answered with results, and every internal annotation kustomize set came
    // back as it was sent.
    let [sent] = kustomization.file("sent.yaml").try_into().unwrap();
    let [answered] = kustomization.file("answered.yaml").try_into().unwrap();
    let results: Vec<KrmResult> = serde_json::from_value(answered["results"].clone()).unwrap();
    assert!(
        results
            .iter()
            .any(|r| r.tags["probegate.io/check"] == "probes-would-be-added"
                && r.resource_ref.as_ref().unwrap().name == "web"),
        "{results:#?}"
    );
    let sent_items = sent["items"].as_array().unwrap();
    for (before, after) in sent_items.iter().zip(answered["items"].as_array().unwrap()) {
        for (key, value) in before["metadata"]["annotations"].as_object().unwrap() {
            if key.contains("config.k") {
                assert_eq!(&after["metadata"]["annotations"][key], value, "{key}");
            }
        }
    }
    assert!(
        sent_items[0]["metadata"]["annotations"]
            .as_object()
            .unwrap()
            .keys()
            .any(|k| k == "internal.config.kubernetes.io/index"),
        "kustomize sends the internal annotations this checks"
    );
}

#[test]
fn kustomize_build_fails_on_a_refusal() {
    let kustomization = Kustomization::new(
        "deny",
        &[coupled("apps")],
        config_map(json!({"probegate.io/metrics-coupling": "deny"})),
    );
    let out = kustomization.build();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the build fails");
    assert!(out.stdout.is_empty(), "and renders nothing");
    assert!(stderr.contains("Denied: items[0]: Deployment apps/ctl: container \"ctl\": readinessProbe targets port 10660"), "{stderr}");
}
