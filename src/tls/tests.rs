use super::*;
use crate::certs::{self, Names};

fn bundle() -> certs::Bundle {
    let names = Names {
        dns: vec!["localhost".into()],
        ips: vec!["127.0.0.1".parse().unwrap()],
    };
    certs::generate(&names, 1).unwrap()
}

#[test]
fn loads_a_generated_pair_and_refuses_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let good = bundle();
    let other = bundle();
    struct Case {
        name: &'static str,
        cert: String,
        key: String,
        /// What the error must say; None: the pair loads.
        error: Option<&'static str>,
    }
    let cases = [
        Case {
            name: "a generated pair",
            cert: good.cert_pem.clone(),
            key: good.key_pem.clone(),
            error: None,
        },
        Case {
            name: "a leaf followed by its CA",
            cert: format!("{}{}", good.cert_pem, good.ca_pem),
            key: good.key_pem.clone(),
            error: None,
        },
        Case {
            name: "a key of another pair",
            cert: good.cert_pem.clone(),
            key: other.key_pem.clone(),
            error: Some("does not match"),
        },
        Case {
            name: "an empty certificate file",
            cert: String::new(),
            key: good.key_pem.clone(),
            error: Some("no PEM certificate"),
        },
        Case {
            name: "a key file without a key",
            cert: good.cert_pem.clone(),
            key: "not a key".into(),
            error: Some("no usable PEM private key"),
        },
        Case {
            name: "a certificate in the key file",
            cert: good.cert_pem.clone(),
            key: good.cert_pem.clone(),
            error: Some("no usable PEM private key"),
        },
    ];
    for (i, case) in cases.into_iter().enumerate() {
        let name = case.name;
        let cert_path = dir.path().join(format!("{i}.crt"));
        let key_path = dir.path().join(format!("{i}.key"));
        std::fs::write(&cert_path, case.cert).unwrap();
        std::fs::write(&key_path, case.key).unwrap();
        match (load_pair(&cert_path, &key_path), case.error) {
            (Ok(_), None) => {}
            (Ok(_), Some(_)) => panic!("{name}: should fail"),
            (Err(e), error) => assert!(
                error.is_some_and(|error| e.to_string().contains(error)),
                "{name}: {e}"
            ),
        }
    }
    let missing =
        load_pair(&dir.path().join("nope.crt"), &dir.path().join("nope.key")).unwrap_err();
    assert!(missing.to_string().starts_with("cannot read"), "{missing}");
}

#[test]
fn reload_swaps_valid_pairs_and_keeps_the_old_one_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let cert_path = dir.path().join("tls.crt");
    let key_path = dir.path().join("tls.key");
    let first = bundle();
    std::fs::write(&cert_path, &first.cert_pem).unwrap();
    std::fs::write(&key_path, &first.key_pem).unwrap();
    let store = CertStore::open(&cert_path, &key_path).unwrap();
    let original = store.leaf();
    assert_eq!(store.reload(), Reload::Unchanged);

    let second = bundle();
    std::fs::write(&cert_path, &second.cert_pem).unwrap();
    assert!(matches!(store.reload(), Reload::Refused(r) if r.contains("does not match")));
    assert_eq!(
        store.leaf(),
        original,
        "a refused pair leaves the old one in service"
    );
    assert_eq!(
        store.reload(),
        Reload::Unchanged,
        "the same bad pair is refused once"
    );

    std::fs::write(&key_path, &second.key_pem).unwrap();
    assert_eq!(store.reload(), Reload::Reloaded);
    assert_ne!(store.leaf(), original);
}

#[test]
fn client_ca_files_that_cannot_verify_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = certs::generate_client(1).unwrap();
    struct Case {
        name: &'static str,
        pem: String,
        /// What the error must say; None: the file loads.
        error: Option<&'static str>,
    }
    let cases = [
        Case {
            name: "a CA certificate",
            pem: ca.ca_pem.clone(),
            error: None,
        },
        Case {
            name: "two CA certificates",
            pem: format!("{}{}", ca.ca_pem, bundle().ca_pem),
            error: None,
        },
        Case {
            name: "an empty file",
            pem: String::new(),
            error: Some("no PEM certificate found"),
        },
        Case {
            name: "a key, not a certificate",
            pem: ca.ca_key_pem.clone(),
            error: Some("no PEM certificate found"),
        },
        Case {
            name: "a certificate block that is not DER",
            pem: "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".into(),
            error: Some("not a usable client CA"),
        },
    ];
    for (i, case) in cases.into_iter().enumerate() {
        let name = case.name;
        let path = dir.path().join(format!("{i}.crt"));
        std::fs::write(&path, case.pem).unwrap();
        match (ClientCaStore::open(&path), case.error) {
            (Ok(_), None) => {}
            (Ok(_), Some(_)) => panic!("{name}: should fail"),
            (Err(e), error) => assert!(
                error.is_some_and(|error| e.to_string().contains(error)),
                "{name}: {e}"
            ),
        }
    }
}

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The expiry gauge's value for `certificate`, if it is shown.
fn shown_expiry(metrics: &Metrics, certificate: &str) -> Option<i64> {
    let prefix =
        format!("probegate_certificate_expiry_timestamp_seconds{{certificate=\"{certificate}\"}} ");
    let text = metrics.encode().unwrap();
    let line = text.lines().find(|l| l.starts_with(&prefix))?;
    Some(line[prefix.len()..].parse().unwrap())
}

/// Asserts `value` is `days` after a moment between `before` and `after` (Unix seconds).
fn assert_days_after(value: Option<i64>, days: i64, (before, after): (i64, i64), what: &str) {
    let value = value.unwrap_or_else(|| panic!("{what}: no expiry shown"));
    let day = 86_400;
    assert!(
        (before + days * day..=after + days * day).contains(&value),
        "{what}: {value} is not {days} days after {before}..{after}"
    );
}

#[test]
fn expiry_shows_the_leaf_and_the_client_bundles_earliest_from_the_start_and_after_a_reload() {
    let dir = tempfile::tempdir().unwrap();
    let names = Names {
        dns: vec!["localhost".into()],
        ips: Vec::new(),
    };
    let metrics = Arc::new(Metrics::default());
    let cert_path = dir.path().join("tls.crt");
    let key_path = dir.path().join("tls.key");
    let write_pair = |days: u32| {
        let before = unix_now();
        let pair = certs::generate(&names, days).unwrap();
        let made = (before, unix_now());
        std::fs::write(&cert_path, format!("{}{}", pair.cert_pem, pair.ca_pem)).unwrap();
        std::fs::write(&key_path, &pair.key_pem).unwrap();
        made
    };
    let made = write_pair(3);
    let serving = CertStore::open(&cert_path, &key_path).unwrap();
    // The CA that follows the leaf outlives it (twice the days): the leaf's date is shown.
    drop(watch(
        serving.clone(),
        metrics.clone(),
        Duration::from_secs(60),
    ));
    assert_days_after(shown_expiry(&metrics, "serving"), 3, made, "at start");
    assert_eq!(shown_expiry(&metrics, "client_ca"), None);

    let made = write_pair(30);
    assert_eq!(serving.reload(), Reload::Reloaded);
    serving.publish_expiry(&metrics);
    assert_days_after(
        shown_expiry(&metrics, "serving"),
        30,
        made,
        "after a reload",
    );

    // A CA outlives its leaves by as many days again: 20 and 10 days, the earlier shown.
    let ca_path = dir.path().join("client-ca.crt");
    let later = certs::generate_client(10).unwrap();
    let before = unix_now();
    let earlier = certs::generate_client(5).unwrap();
    let made = (before, unix_now());
    std::fs::write(&ca_path, format!("{}{}", later.ca_pem, earlier.ca_pem)).unwrap();
    let client_ca = ClientCaStore::open(&ca_path).unwrap();
    drop(watch(client_ca, metrics.clone(), Duration::from_secs(60)));
    assert_days_after(
        shown_expiry(&metrics, "client_ca"),
        10,
        made,
        "client CA bundle",
    );

    // A validity that cannot be read shows no date rather than the old one.
    metrics.tls.certificate_expiry("serving", None);
    assert_eq!(shown_expiry(&metrics, "serving"), None);
}
