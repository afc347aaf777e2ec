use super::*;
use serde_json::{Value, json};

fn decode(object: &Value) -> Object<'_> {
    let api_version = object["apiVersion"].as_str().unwrap();
    let (group, version) = kinds::split_api_version(api_version);
    Object::decode(group, version, object["kind"].as_str().unwrap(), object)
        .unwrap()
        .unwrap()
}

/// Runs the engine, applies its patch to the raw JSON and checks the result still decodes.
fn run(object: &Value, layers: &[&BTreeMap<String, String>]) -> (Mutation, Value) {
    run_among(object, layers, &[])
}

/// As `run`, with these Services in the namespace.
fn run_among(
    object: &Value,
    layers: &[&BTreeMap<String, String>],
    services: &[Value],
) -> (Mutation, Value) {
    let services = super::test_support::service_evidence(services);
    let services: Vec<&ServiceEvidence> = services.iter().collect();
    let mutation = mutate(
        &decode(object),
        &Context {
            layers,
            services: &services,
            ..Context::default()
        },
    );
    let mut patched = object.clone();
    json_patch::patch(&mut patched, &mutation.patch.operations().unwrap())
        .expect("patch applies to its input");
    decode(&patched);
    (mutation, patched)
}

/// A Service selecting `app=<app>`, with extra annotations.
fn service(name: &str, app: &str, annotations: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "annotations": annotations},
        "spec": {"selector": {"app": app}, "ports": [{"port": 80}]}})
}

fn messages(m: &Mutation) -> Vec<&str> {
    m.warnings.iter().map(|w| w.message.as_str()).collect()
}

fn ns(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn pod(metadata: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": metadata,
        "spec": {"containers": [{"name": "web", "image": "web:1", "ports": [{"name": "http", "containerPort": 8080}]}]}
    })
}

fn ops_paths(m: &Mutation) -> Vec<String> {
    serde_json::to_value(&m.patch)
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|op| {
            format!(
                "{} {}",
                op["op"].as_str().unwrap(),
                op["path"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn the_record_annotation_is_placed_wherever_metadata_stands() {
    let deployment = |template: Value| {
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
            "spec": {"selector": {"matchLabels": {"app": "d"}}, "template": template}
        })
    };
    let spec = json!({"containers": [{"name": "web", "ports": [{"containerPort": 80}]}]});
    struct Case {
        name: &'static str,
        object: Value,
        /// The patch operations, as "op path".
        operations: Vec<&'static str>,
    }
    let cases = [
        Case {
            name: "a pod with annotations: one more key",
            object: pod(json!({"name": "p", "annotations": {"a": "b"}})),
            operations: vec![
                "add /spec/containers/0/readinessProbe",
                "add /metadata/annotations/probegate.io~1injected",
            ],
        },
        Case {
            name: "a pod without annotations: the map is added",
            object: pod(json!({"name": "p"})),
            operations: vec![
                "add /spec/containers/0/readinessProbe",
                "add /metadata/annotations",
            ],
        },
        Case {
            name: "a pod without metadata: metadata is added",
            object: json!({"apiVersion": "v1", "kind": "Pod", "spec": spec}),
            operations: vec!["add /spec/containers/0/readinessProbe", "add /metadata"],
        },
        Case {
            name: "a template without metadata: its metadata is added",
            object: deployment(json!({"spec": spec})),
            operations: vec![
                "add /spec/template/spec/containers/0/readinessProbe",
                "add /spec/template/metadata",
            ],
        },
        Case {
            name: "a template with labels but no annotations: the map is added",
            object: deployment(json!({"metadata": {"labels": {"app": "d"}}, "spec": spec})),
            operations: vec![
                "add /spec/template/spec/containers/0/readinessProbe",
                "add /spec/template/metadata/annotations",
            ],
        },
    ];
    for case in cases {
        let object = case.object;
        let (mutation, patched) = run(&object, &[]);
        assert_eq!(ops_paths(&mutation), case.operations, "{}", case.name);
        let pointer = if object["kind"] == "Pod" {
            "/metadata/annotations"
        } else {
            "/spec/template/metadata/annotations"
        };
        let annotations = patched.pointer(pointer).unwrap();
        assert_eq!(
            annotations["probegate.io/injected"],
            "web=readiness;liveness-held=web(same check as readiness)",
            "{}",
            case.name
        );
        if object["kind"] == "Pod" && object["metadata"]["annotations"]["a"] == "b" {
            assert_eq!(
                annotations["a"], "b",
                "{}: existing annotations stay",
                case.name
            );
        }
    }
}

fn cronjob(annotations: Value) -> Value {
    json!({
        "apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c", "annotations": annotations},
        "spec": {"schedule": "0 * * * *", "jobTemplate": {"spec": {"template": {
            "metadata": {"labels": {"app": "web"}},
            "spec": {"restartPolicy": "Never", "containers": [{"name": "job", "ports": [{"containerPort": 9000}]}]}
        }}}}
    })
}

#[test]
fn cronjob_template_is_reached_when_the_cronjob_asks() {
    let asks = cronjob(json!({"probegate.io/probes": "readiness"}));
    let (mutation, patched) = run(&asks, &[]);
    assert_eq!(mutation.probes_added(), [0, 1, 0]);
    let container = &patched["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["readinessProbe"]["tcpSocket"]["port"], 9000);
}

#[test]
fn batch_pods_are_left_alone() {
    let job_template = json!({"metadata": {"labels": {"app": "web"}},
        "spec": {"restartPolicy": "Never", "containers": [{"name": "job", "ports": [{"containerPort": 9000}]}]}});
    let job = |annotations: Value| {
        json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "j", "annotations": annotations}, "spec": {"template": job_template}})
    };
    let mut job_pod = pod(
        json!({"name": "j-x", "labels": {"app": "web"}, "ownerReferences": [
        {"apiVersion": "batch/v1", "kind": "Job", "name": "j", "uid": "1", "controller": true}]}),
    );
    job_pod["spec"]["restartPolicy"] = json!("OnFailure");
    // Everything the namespace asks for, and a Service that selects the pods.
    let namespace = ns(&[
        ("probegate.io/probes", "liveness,readiness,startup"),
        ("probegate.io/readiness-gates", "example.com/lb"),
        ("probegate.io/liveness-path", "/live"),
    ]);
    let services = [service(
        "web",
        "web",
        json!({"probegate.io/readiness-gates": "example.com/svc"}),
    )];
    for object in [job(json!({})), cronjob(json!({})), job_pod] {
        let (mutation, patched) = run_among(&object, &[&namespace], &services);
        assert!(mutation.is_empty(), "{object}: {:?}", mutation);
        assert_eq!(patched, object);
    }
    // What the Job asks for itself, it gets.
    let asks = job(
        json!({"probegate.io/probes": "readiness", "probegate.io/readiness-gates": "example.com/own"}),
    );
    let (mutation, patched) = run_among(&asks, &[&namespace], &services);
    assert_eq!(
        (mutation.probes_added(), mutation.gates_added()),
        ([0, 1, 0], 1)
    );
    assert_eq!(
        patched["spec"]["template"]["spec"]["readinessGates"],
        json!([{"conditionType": "example.com/own"}])
    );
}

#[test]
fn namespace_gates_go_only_to_pods_a_service_selects() {
    let gates = ns(&[("probegate.io/readiness-gates", "example.com/lb")]);
    let deployment =
        |app: &str| deployment_with(json!({"name": app}), json!({"labels": {"app": app}}));
    let services = [service("web", "web", json!({}))];
    let (web, patched) = run_among(&deployment("web"), &[&gates], &services);
    assert_eq!(web.gates_added(), 1);
    assert!(web.warnings.is_empty(), "{:?}", messages(&web));
    assert_eq!(
        patched["spec"]["template"]["spec"]["readinessGates"],
        json!([{"conditionType": "example.com/lb"}])
    );
    let (worker, patched) = run_among(&deployment("worker"), &[&gates], &services);
    assert_eq!(worker.gates_added(), 0);
    assert!(
        patched["spec"]["template"]["spec"]
            .get("readinessGates")
            .is_none()
    );
    assert_eq!(messages(&worker).len(), 1, "{:?}", messages(&worker));
    assert!(
        messages(&worker)[0]
            .contains("no Service selects these pods (labels app=worker; Services here: web)"),
        "{}",
        messages(&worker)[0]
    );
    assert_eq!(
        patched["spec"]["template"]["metadata"]["annotations"]["probegate.io/injected"],
        "web=readiness;liveness-held=web(same check as readiness);gates-held=1(no Service selects the pods)"
    );
    // Accepted on the workload: no gate, no warning.
    let accepted = deployment_with(
        json!({"name": "worker", "annotations": {"probegate.io/readiness-gates": "none"}}),
        json!({"labels": {"app": "worker"}}),
    );
    let (quiet, _) = run_among(&accepted, &[&gates], &services);
    assert!(quiet.warnings.is_empty(), "{:?}", messages(&quiet));
    assert_eq!(quiet.gates_added(), 0);
}

#[test]
fn a_pod_judged_again_merges_its_record_into_the_templates() {
    let held = "gates-held=1(no Service selects the pods)";
    struct Case<'a> {
        name: &'static str,
        /// The record on the template.
        earlier: &'a str,
        /// This review's entries.
        now: &'a [&'a str],
        merged: String,
    }
    let held_earlier = format!("web=readiness;liveness-held=web(same check as readiness);{held}");
    let cases = [
        Case {
            name: "nothing on the template: this review's record",
            earlier: "",
            now: &["web=readiness", "gates=1"],
            merged: "web=readiness;gates=1".into(),
        },
        Case {
            name: "gates held before and added now: the held entry goes",
            earlier: &held_earlier,
            now: &["liveness-held=web(same check as readiness)", "gates=1"],
            merged: "web=readiness;liveness-held=web(same check as readiness);gates=1".into(),
        },
        Case {
            name: "gates added before and now are counted together",
            earlier: "web=readiness;gates=1",
            now: &["gates=1"],
            merged: "web=readiness;gates=2".into(),
        },
        Case {
            name: "the held count of this review replaces the earlier one",
            earlier: "web=readiness;gates-held=2(no Service selects the pods)",
            now: &["gates=1", held],
            merged: format!("web=readiness;{held};gates=1"),
        },
        Case {
            name: "probe kinds of one container are joined, other containers appended",
            earlier: "web=readiness",
            now: &["web=liveness,startup", "side=readiness"],
            merged: "web=readiness,liveness,startup;side=readiness".into(),
        },
    ];
    for case in cases {
        let now: Vec<String> = case.now.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            record::merge(case.earlier, &now),
            case.merged,
            "{}",
            case.name
        );
    }
}

#[test]
fn a_pod_is_judged_again_whichever_comes_first() {
    let gates = ns(&[("probegate.io/readiness-gates", "example.com/lb")]);
    let deployment = deployment_with(json!({"name": "web"}), json!({"labels": {"app": "web"}}));
    let web = [service("web", "web", json!({}))];
    let pod_of = |patched: &Value| {
        let template = &patched["spec"]["template"];
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": template["metadata"], "spec": template["spec"]})
    };
    // Deployment first: its template is held back, its pods get the gate once the Service
    // exists, and keep the template's record beside their own.
    let (_, template_first) = run_among(&deployment, &[&gates], &[]);
    let (judged_again, pod) = run_among(&pod_of(&template_first), &[&gates], &web);
    assert_eq!(judged_again.gates_added(), 1);
    assert_eq!(judged_again.probes_added(), [0, 0, 0]);
    assert_eq!(
        pod["spec"]["readinessGates"],
        json!([{"conditionType": "example.com/lb"}])
    );
    assert_eq!(
        pod["metadata"]["annotations"]["probegate.io/injected"],
        "web=readiness;liveness-held=web(same check as readiness);gates=1"
    );
    // Service first: the template has the gate, and its pods need nothing more.
    let (_, service_first) = run_among(&deployment, &[&gates], &web);
    let (again, _) = run_among(&pod_of(&service_first), &[&gates], &web);
    assert!(again.is_empty(), "{again:?}");
    // Either way the pods end with the same spec.
    assert_eq!(pod["spec"], pod_of(&service_first)["spec"]);
}

#[test]
fn nothing_added_means_an_empty_patch_and_no_record() {
    let mut object = pod(json!({"name": "p"}));
    object["spec"]["containers"][0]["livenessProbe"] = json!({"exec": {"command": ["true"]}});
    object["spec"]["containers"][0]["readinessProbe"] =
        json!({"httpGet": {"path": "/ready", "port": 8080}});
    let (mutation, patched) = run(&object, &[]);
    assert!(mutation.patch.is_empty());
    assert!(mutation.is_empty());
    assert_eq!(patched, object);
}

#[test]
fn running_on_its_own_output_changes_nothing() {
    let gates = ns(&[
        ("probegate.io/readiness-gates", "example.com/lb-ready"),
        ("probegate.io/probes", "liveness,readiness,startup"),
        ("probegate.io/liveness-path", "/live"),
    ]);
    let services = [service("web", "web", json!({}))];
    let object = pod(json!({"name": "p", "labels": {"app": "web"}}));
    let (first, patched) = run_among(&object, &[&gates], &services);
    assert!(!first.patch.is_empty());
    assert_eq!(first.probes_added(), [1, 1, 1]);
    assert_eq!(first.gates_added(), 1);
    let (second, again) = run_among(&patched, &[&gates], &services);
    assert!(second.patch.is_empty(), "{:?}", second.patch);
    assert_eq!(again, patched);
}

#[test]
fn gates_append_to_an_existing_list() {
    let mut object = pod(json!({"name": "p", "labels": {"app": "web"}}));
    object["spec"]["readinessGates"] = json!([{"conditionType": "example.com/first"}]);
    let gates = ns(&[
        (
            "probegate.io/readiness-gates",
            "example.com/first,example.com/second",
        ),
        ("probegate.io/probes", "none"),
    ]);
    let (mutation, patched) = run_among(&object, &[&gates], &[service("web", "web", json!({}))]);
    assert_eq!(
        ops_paths(&mutation),
        ["add /spec/readinessGates/-", "add /metadata/annotations"]
    );
    assert_eq!(
        patched["spec"]["readinessGates"],
        json!([{"conditionType": "example.com/first"}, {"conditionType": "example.com/second"}])
    );
    assert_eq!(
        patched["metadata"]["annotations"]["probegate.io/injected"],
        "gates=1"
    );
}

#[test]
fn keys_with_slash_and_tilde_are_escaped_in_pointers() {
    let object = pod(json!({"name": "p", "annotations": {"x~y/z": "1"}}));
    let (mutation, _) = run(&object, &[]);
    let wire = serde_json::to_string(&mutation.patch.operations().unwrap()).unwrap();
    assert!(
        wire.contains(r#""path":"/metadata/annotations/probegate.io~1injected""#),
        "{wire}"
    );
}

#[test]
fn metrics_coupling_modes() {
    let kube_ovn_like = json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "ctl"},
        "spec": {"containers": [{
            "name": "controller", "args": ["--enable-metrics=false"],
            "ports": [{"name": "metrics", "containerPort": 10660}],
            "readinessProbe": {"tcpSocket": {"port": 10660}},
            "livenessProbe": {"tcpSocket": {"port": 10660}}
        }]}
    });
    let warn = run(&kube_ovn_like, &[]).0;
    assert_eq!(warn.warnings.len(), 2, "{:?}", warn.warnings);
    assert!(
        warn.warnings
            .iter()
            .all(|w| w.rule == Rule::MetricsCoupling)
    );
    assert!(warn.denial.is_none());

    let deny = ns(&[("probegate.io/metrics-coupling", "deny")]);
    let denied = run(&kube_ovn_like, &[&deny]).0;
    let reason = denied.denial.expect("denied");
    assert!(
        reason.contains("livenessProbe targets port 10660") && reason.contains("readinessProbe"),
        "{reason}"
    );
    assert!(denied.patch.is_empty());

    let off = ns(&[("probegate.io/metrics-coupling", "off")]);
    let quiet = run(&kube_ovn_like, &[&off]).0;
    assert!(quiet.is_empty(), "{quiet:?}");
}

fn deployment_with(meta: Value, template_meta: Value) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": meta,
        "spec": {"selector": {}, "template": {"metadata": template_meta,
            "spec": {"containers": [{"name": "web", "ports": [{"containerPort": 80}]}]}}}
    })
}

#[test]
fn opt_out_and_its_reach() {
    let disabled = json!({"probegate.io/inject": "disabled"});
    let named = |annotations: Value| json!({"name": "d", "annotations": annotations});
    struct Case {
        name: &'static str,
        object: Value,
        /// The namespace's annotations.
        namespace: BTreeMap<String, String>,
        /// The annotations the template must end with; None: the object is unchanged.
        template_annotations: Option<Value>,
    }
    let cases = [
        // The workload's own opt-out is copied down, so its pods are not mutated either.
        Case {
            name: "the workload's own opt-out is copied down to its template",
            object: deployment_with(named(disabled.clone()), json!({})),
            namespace: ns(&[]),
            template_annotations: Some(json!({"probegate.io/inject": "disabled"})),
        },
        Case {
            name: "an opt-out on the template alone: unchanged",
            object: deployment_with(named(json!({})), json!({"annotations": disabled.clone()})),
            namespace: ns(&[]),
            template_annotations: None,
        },
        Case {
            name: "an opt-out on the workload and its template: unchanged",
            object: deployment_with(
                named(disabled.clone()),
                json!({"annotations": disabled.clone()}),
            ),
            namespace: ns(&[]),
            template_annotations: None,
        },
        // Pods in a disabled namespace are not mutated anyway: nothing to copy.
        Case {
            name: "a workload opted out in a disabled namespace: nothing to copy",
            object: deployment_with(named(disabled.clone()), json!({})),
            namespace: ns(&[("probegate.io/inject", "disabled")]),
            template_annotations: None,
        },
        Case {
            name: "a workload's other settings in a disabled namespace: unchanged",
            object: deployment_with(named(json!({"probegate.io/probes": "startup"})), json!({})),
            namespace: ns(&[("probegate.io/inject", "disabled")]),
            template_annotations: None,
        },
        Case {
            name: "an opted-out pod: unchanged",
            object: pod(json!({"name": "p", "annotations": disabled.clone()})),
            namespace: ns(&[]),
            template_annotations: None,
        },
    ];
    for case in cases {
        let (object, name) = (&case.object, case.name);
        let (mutation, patched) = run(object, &[&case.namespace]);
        assert!(
            mutation.warnings.is_empty(),
            "{name}: {:?}",
            messages(&mutation)
        );
        match case.template_annotations {
            None => {
                assert!(mutation.patch.is_empty(), "{name}");
                assert_eq!(&patched, object, "{name}");
            }
            Some(annotations) => {
                assert_eq!(
                    patched["spec"]["template"]["metadata"]["annotations"], annotations,
                    "{name}"
                );
                assert_eq!(mutation.probes_added(), [0, 0, 0], "{name}");
                // Bookkeeping, not a finding: `mutate --check` passes an opted-out workload.
                assert!(!mutation.is_finding(), "{name}");
            }
        }
    }
    // The objectSelector's opt-out label, on the workload or its template.
    for labelled in [
        pod(json!({"name": "p", "labels": {"probegate.io/inject": "disabled"}})),
        deployment_with(
            json!({"name": "d"}),
            json!({"labels": {"probegate.io/inject": "disabled"}}),
        ),
    ] {
        let (mutation, patched) = run(&labelled, &[]);
        assert!(mutation.is_empty(), "{labelled}");
        assert_eq!(patched, labelled);
    }
    // The workload's own annotation beats the namespace's, and reaches its pods.
    let enabled_here = deployment_with(named(json!({"probegate.io/inject": "enabled"})), json!({}));
    let namespace = ns(&[("probegate.io/inject", "disabled")]);
    let (mutation, patched) = run(&enabled_here, &[&namespace]);
    assert_eq!(mutation.probes_added(), [0, 1, 0]);
    assert_eq!(
        patched["spec"]["template"]["metadata"]["annotations"]["probegate.io/inject"],
        "enabled"
    );
}

#[test]
fn workload_settings_reach_its_pods() {
    let deployment = deployment_with(
        json!({"name": "d", "annotations": {"probegate.io/probes": "readiness", "probegate.io/metrics-coupling": "off", "other.io/x": "y"}}),
        json!({"labels": {"app": "d"}}),
    );
    let (mutation, patched) = run(&deployment, &[]);
    assert_eq!(mutation.probes_added(), [0, 1, 0]);
    let template = patched["spec"]["template"].clone();
    assert_eq!(
        template["metadata"]["annotations"],
        json!({"probegate.io/probes": "readiness", "probegate.io/metrics-coupling": "off", "probegate.io/injected": "web=readiness"})
    );
    // The pod the ReplicaSet makes from that template gets nothing more.
    let pod_from_template = json!({"apiVersion": "v1", "kind": "Pod", "metadata": template["metadata"], "spec": template["spec"]});
    let (second, _) = run(&pod_from_template, &[]);
    assert!(second.patch.is_empty(), "{:?}", second.patch);
}

#[test]
fn controller_owned_workloads_are_left_to_their_controller() {
    let owned = json!({
        "apiVersion": "apps/v1", "kind": "ReplicaSet",
        "metadata": {"name": "web-5d9c", "ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": "web", "uid": "1", "controller": true}]},
        "spec": {"selector": {}, "template": {"spec": {"containers": [{"name": "web", "ports": [{"containerPort": 80}]}]}}}
    });
    let (mutation, patched) = run(&owned, &[]);
    assert!(mutation.is_empty());
    assert_eq!(patched, owned);
    // Pods are mutated whoever owns them: the template may predate probegate.
    let mut owned_pod = pod(json!({"name": "web-5d9c-x"}));
    owned_pod["metadata"]["ownerReferences"] = owned["metadata"]["ownerReferences"].clone();
    assert_eq!(run(&owned_pod, &[]).0.probes_added(), [0, 1, 0]);
}

#[test]
fn port_setting_is_for_the_containers_that_declare_it() {
    let two = |app_ports: Value| {
        json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "annotations": {"probegate.io/port": "8080"}},
            "spec": {"containers": [
                {"name": "app", "ports": app_ports},
                {"name": "proxy", "ports": [{"name": "admin", "containerPort": 15000}]}
            ]}
        })
    };
    // Declared by the app: the proxy keeps its own port.
    let (_, patched) = run(&two(json!([{"containerPort": 8080}])), &[]);
    assert_eq!(
        patched["spec"]["containers"][0]["readinessProbe"]["tcpSocket"]["port"],
        8080
    );
    assert_eq!(
        patched["spec"]["containers"][1]["readinessProbe"]["tcpSocket"]["port"],
        "admin"
    );
    // Declared by nobody: the first container gets it, the sidecar never does.
    let (_, patched) = run(&two(json!([])), &[]);
    assert_eq!(
        patched["spec"]["containers"][0]["readinessProbe"]["tcpSocket"]["port"],
        8080
    );
    assert_eq!(
        patched["spec"]["containers"][1]["readinessProbe"]["tcpSocket"]["port"],
        "admin"
    );
}

#[test]
fn a_denial_counts_no_injection() {
    let mut object =
        pod(json!({"name": "p", "annotations": {"probegate.io/metrics-coupling": "deny"}}));
    object["spec"]["containers"][0]["args"] = json!(["--enable-metrics=false"]);
    object["spec"]["containers"][0]["ports"] = json!([{"name": "metrics", "containerPort": 9090}, {"name": "http", "containerPort": 8080}]);
    object["spec"]["containers"][0]["readinessProbe"] = json!({"tcpSocket": {"port": "metrics"}});
    let (mutation, _) = run(&object, &[]);
    assert!(mutation.denial.is_some());
    assert_eq!(
        (mutation.probes_added(), mutation.gates_added()),
        ([0, 0, 0], 0)
    );
}

#[test]
fn layers_resolve_in_order_cluster_namespace_workload_template() {
    let object = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "d", "annotations": {"probegate.io/period-seconds": "30", "probegate.io/timeout-seconds": "4"}},
        "spec": {"selector": {}, "template": {"metadata": {"annotations": {"probegate.io/timeout-seconds": "5"}},
            "spec": {"containers": [{"name": "web", "ports": [{"containerPort": 80}]}]}}}
    });
    let cluster = ns(&[
        ("probegate.io/failure-threshold", "6"),
        ("probegate.io/initial-delay-seconds", "1"),
    ]);
    let namespace = ns(&[
        ("probegate.io/initial-delay-seconds", "2"),
        ("probegate.io/period-seconds", "20"),
    ]);
    let (_, patched) = run(&object, &[&cluster, &namespace]);
    let probe = &patched["spec"]["template"]["spec"]["containers"][0]["readinessProbe"];
    assert_eq!(probe["failureThreshold"], 6);
    assert_eq!(probe["initialDelaySeconds"], 2);
    assert_eq!(probe["periodSeconds"], 30);
    assert_eq!(probe["timeoutSeconds"], 5);
}

#[test]
fn kinds_without_pod_spec_pass_through() {
    let deployment =
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"}});
    let (mutation, patched) = run(&deployment, &[]);
    assert!(mutation.is_empty());
    assert_eq!(patched, deployment);
}

#[test]
fn skipped_containers_get_nothing_and_no_warning() {
    let object = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "p", "annotations": {"probegate.io/skip-containers": "log-shipper"}},
        "spec": {"containers": [
            {"name": "web", "ports": [{"name": "http", "containerPort": 8080}]},
            {"name": "log-shipper"}
        ]}
    });
    let (mutation, patched) = run(&object, &[]);
    assert!(mutation.warnings.is_empty(), "{:?}", messages(&mutation));
    assert!(patched["spec"]["containers"][0]["readinessProbe"].is_object());
    assert!(patched["spec"]["containers"][1]["readinessProbe"].is_null());
    // Without the setting, the sidecar is explained.
    let mut unlisted = object.clone();
    unlisted["metadata"]["annotations"] = json!({});
    let (mutation, _) = run(&unlisted, &[]);
    assert_eq!(messages(&mutation).len(), 1);
    assert!(
        messages(&mutation)[0].starts_with("container \"log-shipper\": no probe added"),
        "{:?}",
        messages(&mutation)
    );
}
