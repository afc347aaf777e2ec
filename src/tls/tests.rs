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
