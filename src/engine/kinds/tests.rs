use super::*;
use crate::engine::Object;
use serde_json::json;

fn container_names(w: &Object<'_>) -> Vec<String> {
    w.pod_parts()
        .map(|p| {
            p.spec
                .containers
                .iter()
                .map(|c| c.name.to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn decodes_every_handled_kind_and_finds_its_pod_spec() {
    let spec = json!({"containers": [{"name": "app", "image": "app:1"}]});
    let template = json!({"metadata": {"labels": {"app": "x"}}, "spec": spec});
    struct Case {
        name: &'static str,
        api_version: &'static str,
        kind: &'static str,
        object: serde_json::Value,
        /// The path to the pod's metadata and spec (empty for a Pod).
        base: &'static [&'static str],
    }
    let cases = [
        Case {
            name: "a Pod: its own spec",
            api_version: "v1",
            kind: "Pod",
            object: json!({"metadata": {"name": "p"}, "spec": spec}),
            base: &[][..],
        },
        Case {
            name: "a Deployment: its template",
            api_version: "apps/v1",
            kind: "Deployment",
            object: json!({"metadata": {"name": "d"}, "spec": {"selector": {}, "template": template}}),
            base: &["spec", "template"][..],
        },
        Case {
            name: "a StatefulSet: its template",
            api_version: "apps/v1",
            kind: "StatefulSet",
            object: json!({"metadata": {"name": "s"}, "spec": {"selector": {}, "template": template}}),
            base: &["spec", "template"][..],
        },
        Case {
            name: "a DaemonSet: its template",
            api_version: "apps/v1",
            kind: "DaemonSet",
            object: json!({"metadata": {"name": "ds"}, "spec": {"selector": {}, "template": template}}),
            base: &["spec", "template"][..],
        },
        Case {
            name: "a ReplicaSet: its template",
            api_version: "apps/v1",
            kind: "ReplicaSet",
            object: json!({"metadata": {"name": "rs"}, "spec": {"selector": {}, "template": template}}),
            base: &["spec", "template"][..],
        },
        Case {
            name: "a Job: its template",
            api_version: "batch/v1",
            kind: "Job",
            object: json!({"metadata": {"name": "j"}, "spec": {"template": template}}),
            base: &["spec", "template"][..],
        },
        Case {
            name: "a CronJob: its job template's template",
            api_version: "batch/v1",
            kind: "CronJob",
            object: json!({"metadata": {"name": "c"}, "spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": template}}}}),
            base: &["spec", "jobTemplate", "spec", "template"][..],
        },
    ];
    assert_eq!(cases.len(), Kind::ALL.len(), "every kind has a case");
    for case in cases {
        let (name, kind) = (case.name, case.kind);
        let (group, version) = split_api_version(case.api_version);
        let workload = Object::decode(group, version, kind, &case.object)
            .unwrap()
            .unwrap_or_else(|| panic!("{name}: {kind} not handled"));
        assert_eq!(workload.kind_name(), kind, "{name}");
        assert_eq!(
            Kind::of(group, version, kind).map(Kind::name),
            Some(kind),
            "{name}"
        );
        assert_eq!(container_names(&workload), ["app"], "{name}");
        let parts = workload.pod_parts().unwrap();
        assert_eq!(parts.base, case.base, "{name}");
        assert_eq!(parts.workload_meta.is_some(), kind != "Pod", "{name}");
    }
}

#[test]
fn other_kinds_and_versions_pass_through() {
    struct Case {
        name: &'static str,
        api_version: &'static str,
        kind: &'static str,
    }
    let cases = [
        Case {
            name: "a Service",
            api_version: "v1",
            kind: "Service",
        },
        Case {
            name: "a ConfigMap",
            api_version: "v1",
            kind: "ConfigMap",
        },
        Case {
            name: "a Deployment in apps/v1beta1",
            api_version: "apps/v1beta1",
            kind: "Deployment",
        },
        Case {
            name: "a Deployment in extensions/v1beta1",
            api_version: "extensions/v1beta1",
            kind: "Deployment",
        },
        Case {
            name: "a Pod of another group",
            api_version: "example.com/v1",
            kind: "Pod",
        },
    ];
    for case in cases {
        let (group, version) = split_api_version(case.api_version);
        let object = json!({"metadata": {}});
        let decoded = Object::decode(group, version, case.kind, &object).unwrap();
        assert!(decoded.is_none(), "{}", case.name);
    }
}

#[test]
fn unserved_versions_of_handled_kinds_are_named() {
    struct Case {
        name: &'static str,
        api_version: &'static str,
        kind: &'static str,
        /// What the message must say; None: nothing to say.
        says: Option<&'static str>,
    }
    let cases = [
        Case {
            name: "extensions/v1beta1 Deployment: removed, use apps/v1",
            api_version: "extensions/v1beta1",
            kind: "Deployment",
            says: Some("removed in Kubernetes 1.16: the API server refuses it; use apps/v1"),
        },
        Case {
            name: "extensions/v1beta1 DaemonSet: removed",
            api_version: "extensions/v1beta1",
            kind: "DaemonSet",
            says: Some("removed in Kubernetes 1.16"),
        },
        Case {
            name: "extensions/v1beta1 ReplicaSet: removed",
            api_version: "extensions/v1beta1",
            kind: "ReplicaSet",
            says: Some("removed in Kubernetes 1.16"),
        },
        Case {
            name: "apps/v1beta1 Deployment: removed",
            api_version: "apps/v1beta1",
            kind: "Deployment",
            says: Some("removed in Kubernetes 1.16"),
        },
        Case {
            name: "apps/v1beta1 StatefulSet: removed",
            api_version: "apps/v1beta1",
            kind: "StatefulSet",
            says: Some("removed in Kubernetes 1.16"),
        },
        Case {
            name: "apps/v1beta2 Deployment: removed",
            api_version: "apps/v1beta2",
            kind: "Deployment",
            says: Some("removed in Kubernetes 1.16"),
        },
        Case {
            name: "apps/v1beta2 StatefulSet: removed",
            api_version: "apps/v1beta2",
            kind: "StatefulSet",
            says: Some("removed in Kubernetes 1.16"),
        },
        Case {
            name: "apps/v1beta2 DaemonSet: removed",
            api_version: "apps/v1beta2",
            kind: "DaemonSet",
            says: Some("removed in Kubernetes 1.16"),
        },
        Case {
            name: "apps/v1beta2 ReplicaSet: removed",
            api_version: "apps/v1beta2",
            kind: "ReplicaSet",
            says: Some("removed in Kubernetes 1.16"),
        },
        Case {
            name: "batch/v1beta1 CronJob: removed in 1.25",
            api_version: "batch/v1beta1",
            kind: "CronJob",
            says: Some(
                "batch/v1beta1 CronJob was removed in Kubernetes 1.25: the API server refuses it; use batch/v1",
            ),
        },
        Case {
            name: "batch/v2alpha1 CronJob: never served",
            api_version: "batch/v2alpha1",
            kind: "CronJob",
            says: Some(
                "batch/v2alpha1 is not a version the API server serves for CronJob; use batch/v1",
            ),
        },
        Case {
            name: "batch/v1beta1 Job: never served",
            api_version: "batch/v1beta1",
            kind: "Job",
            says: Some("not a version the API server serves for Job; use batch/v1"),
        },
        Case {
            name: "a Pod in v2",
            api_version: "v2",
            kind: "Pod",
            says: Some("use v1"),
        },
        Case {
            name: "apps/v1 Deployment is served",
            api_version: "apps/v1",
            kind: "Deployment",
            says: None,
        },
        Case {
            name: "batch/v1 CronJob is served",
            api_version: "batch/v1",
            kind: "CronJob",
            says: None,
        },
        Case {
            name: "v1 Pod is served",
            api_version: "v1",
            kind: "Pod",
            says: None,
        },
        Case {
            name: "a Deployment of another group is not ours to judge",
            api_version: "example.com/v1",
            kind: "Deployment",
            says: None,
        },
        Case {
            name: "a kind not handled",
            api_version: "v1",
            kind: "Service",
            says: None,
        },
        Case {
            name: "a removed version of a kind not handled",
            api_version: "extensions/v1beta1",
            kind: "Ingress",
            says: None,
        },
    ];
    for case in cases {
        let said = Kind::unserved(case.api_version, case.kind);
        match case.says {
            None => assert_eq!(said, None, "{}", case.name),
            Some(part) => {
                let said = said.unwrap_or_default();
                assert!(said.contains(part), "{}: {said}", case.name);
            }
        }
    }
}

#[test]
fn fields_that_do_not_fit_the_kind_are_an_error() {
    let object = json!({"spec": {"containers": "app"}});
    let err = Object::decode("", "v1", "Pod", &object).unwrap_err();
    assert_eq!(err.kind, "Pod");
    assert!(err.to_string().contains("does not fit Pod"), "{err}");
}

#[test]
fn batch_pods_are_recognised() {
    let spec = |restart: Option<&str>| {
        let mut spec = json!({"containers": [{"name": "app"}]});
        if let Some(restart) = restart {
            spec["restartPolicy"] = json!(restart);
        }
        spec
    };
    let template = json!({"spec": spec(None)});
    let owned_by = |api_version: &str, kind: &str| {
        json!({"name": "p", "ownerReferences": [{"apiVersion": api_version, "kind": kind,
            "name": "o", "uid": "1", "controller": true}]})
    };
    struct Case {
        name: &'static str,
        group: &'static str,
        kind: &'static str,
        object: serde_json::Value,
        batch: bool,
    }
    let cases = [
        Case {
            name: "a Job",
            group: "batch",
            kind: "Job",
            object: json!({"spec": {"template": template}}),
            batch: true,
        },
        Case {
            name: "a CronJob",
            group: "batch",
            kind: "CronJob",
            object: json!({"spec": {"schedule": "@daily", "jobTemplate": {"spec": {"template": template}}}}),
            batch: true,
        },
        Case {
            name: "a pod a Job owns",
            group: "",
            kind: "Pod",
            object: json!({"metadata": owned_by("batch/v1", "Job"), "spec": spec(None)}),
            batch: true,
        },
        Case {
            name: "a pod a Job of another group owns",
            group: "",
            kind: "Pod",
            object: json!({"metadata": owned_by("example.com/v1", "Job"), "spec": spec(None)}),
            batch: false,
        },
        Case {
            name: "a pod a ReplicaSet owns",
            group: "",
            kind: "Pod",
            object: json!({"metadata": owned_by("apps/v1", "ReplicaSet"), "spec": spec(None)}),
            batch: false,
        },
        Case {
            name: "a pod that restarts Never",
            group: "",
            kind: "Pod",
            object: json!({"spec": spec(Some("Never"))}),
            batch: true,
        },
        Case {
            name: "a pod that restarts OnFailure",
            group: "",
            kind: "Pod",
            object: json!({"spec": spec(Some("OnFailure"))}),
            batch: true,
        },
        Case {
            name: "a pod that restarts Always",
            group: "",
            kind: "Pod",
            object: json!({"spec": spec(Some("Always"))}),
            batch: false,
        },
        Case {
            name: "a pod without a restart policy",
            group: "",
            kind: "Pod",
            object: json!({"spec": spec(None)}),
            batch: false,
        },
        Case {
            name: "a Deployment",
            group: "apps",
            kind: "Deployment",
            object: json!({"spec": {"selector": {}, "template": template}}),
            batch: false,
        },
    ];
    for case in cases {
        let workload = Object::decode(case.group, "v1", case.kind, &case.object)
            .unwrap()
            .unwrap();
        assert_eq!(workload.is_batch(), case.batch, "{}", case.name);
    }
}

#[test]
fn workloads_without_a_pod_spec_have_no_parts() {
    let object = json!({"metadata": {"name": "d"}});
    let deployment = Object::decode("apps", "v1", "Deployment", &object)
        .unwrap()
        .unwrap();
    assert!(deployment.pod_parts().is_none());
    let object = json!({"metadata": {"name": "p"}});
    let pod = Object::decode("", "v1", "Pod", &object).unwrap().unwrap();
    assert!(pod.pod_parts().is_none());
}
