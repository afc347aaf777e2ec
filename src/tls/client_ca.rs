//! The client CA (`--client-ca-file`): who may call the webhook, reloaded like the
//! serving certificate.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, UnixTime};

use super::{LastSeen, Reload, Reloadable, TlsError, read};

/// The CAs a client certificate must chain to (`--client-ca-file`), swapped atomically on
/// reload. Handshakes ask it to verify; it hands each check to the verifier in service.
pub struct ClientCaStore {
    path: PathBuf,
    current: ArcSwap<Verifier>,
    last_seen: LastSeen,
}

/// `ArcSwap` holds sized values: the verifier in a box of its own, with the bundle's
/// earliest notAfter (from then on, some clients it let in are refused).
#[derive(Debug)]
struct Verifier {
    verifier: Arc<dyn ClientCertVerifier>,
    not_after: Result<i64, String>,
}

impl std::fmt::Debug for ClientCaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCaStore")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl ClientCaStore {
    /// Loads the CA file; one that does not load is an error at start-up.
    pub fn open(path: &Path) -> Result<Arc<ClientCaStore>, TlsError> {
        let pem = read(path)?;
        let verifier = parse_client_ca(path, &pem)?;
        Ok(Arc::new(ClientCaStore {
            path: path.to_owned(),
            current: ArcSwap::from_pointee(verifier),
            last_seen: LastSeen::new(&[&pem]),
        }))
    }

    fn verifier(&self) -> Arc<dyn ClientCertVerifier> {
        self.current.load().verifier.clone()
    }
}

fn parse_client_ca(path: &Path, pem: &[u8]) -> Result<Verifier, TlsError> {
    let bad = |reason: String| TlsError::BadClientCa {
        path: path.display().to_string(),
        reason,
    };
    let cas = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(e.to_string()))?;
    if cas.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.display().to_string(),
        });
    }
    let not_after = cas
        .iter()
        .map(super::not_after)
        .try_fold(i64::MAX, |earliest, not_after| Ok(earliest.min(not_after?)));
    let mut roots = rustls::RootCertStore::empty();
    for ca in cas {
        roots.add(ca).map_err(|e| bad(e.to_string()))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| bad(e.to_string()))?;
    Ok(Verifier {
        verifier,
        not_after,
    })
}

impl Reloadable for ClientCaStore {
    const KIND: &'static str = "client_ca";

    fn files(&self) -> Vec<&Path> {
        vec![&self.path]
    }

    fn reload(&self) -> Reload {
        let pem = match read(&self.path) {
            Ok(pem) => pem,
            Err(e) => return Reload::Refused(e.to_string()),
        };
        if !self.last_seen.changed(&[&pem]) {
            return Reload::Unchanged;
        }
        match parse_client_ca(&self.path, &pem) {
            Ok(verifier) => {
                self.current.store(Arc::new(verifier));
                Reload::Reloaded
            }
            Err(e) => Reload::Refused(e.to_string()),
        }
    }

    /// The bundle's earliest.
    fn not_after(&self) -> Option<Result<i64, String>> {
        Some(self.current.load().not_after.clone())
    }
}

impl ClientCertVerifier for ClientCaStore {
    /// No hints: a borrowed list cannot follow a reload. Clients that get none send the
    /// certificate they have (RFC 8446 4.2.4; Go's client, the API server's, does).
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.verifier()
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.verifier().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.verifier().supported_verify_schemes()
    }
}
