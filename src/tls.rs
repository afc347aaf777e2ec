//! The serving certificate and the client CA: loading, hot reload, and the rustls
//! configuration.
//!
//! Both live behind objects that new handshakes consult (a certificate resolver, a client
//! certificate verifier), so a renewal (cert-manager rewriting the files, or kubelet swapping
//! a Secret's `..data` link) reaches new connections without a restart, and connections in
//! flight keep what they began with.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::mpsc;

use crate::metrics::Metrics;

mod client_ca;
pub mod metrics;
pub use client_ca::ClientCaStore;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: no PEM certificate found")]
    NoCertificate { path: String },
    #[error("{path}: not a PEM certificate chain: {reason}")]
    BadCertificate { path: String, reason: String },
    #[error("{path}: no usable PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC): {reason}")]
    BadKey { path: String, reason: String },
    #[error("the private key does not match the certificate: {0}")]
    Mismatch(rustls::Error),
    #[error("{path}: not a usable client CA: {reason}")]
    BadClientCa { path: String, reason: String },
    #[error("TLS configuration: {0}")]
    Config(#[from] rustls::Error),
    #[error("cannot watch {path}: {source}")]
    Watch {
        path: String,
        #[source]
        source: notify::Error,
    },
}

/// Quiet time after a file event before the pair is read.
const SETTLE: Duration = Duration::from_millis(250);
/// The longest a stream of events may put a reload off.
const MAX_SETTLE: Duration = Duration::from_secs(2);

/// Reads and checks a certificate chain and its key.
pub fn load_pair(cert_path: &Path, key_path: &Path) -> Result<CertifiedKey, TlsError> {
    let cert_pem = read(cert_path)?;
    let key_pem = read(key_path)?;
    parse_pair(cert_path, &cert_pem, key_path, &key_pem)
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })
}

fn parse_pair(
    cert_path: &Path,
    cert_pem: &[u8],
    key_path: &Path,
    key_pem: &[u8],
) -> Result<CertifiedKey, TlsError> {
    let chain = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::BadCertificate {
            path: cert_path.display().to_string(),
            reason: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert_path.display().to_string(),
        });
    }
    let bad_key = |reason: String| TlsError::BadKey {
        path: key_path.display().to_string(),
        reason,
    };
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| bad_key(e.to_string()))?;
    let signing_key =
        rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| bad_key(e.to_string()))?;
    let certified = CertifiedKey::new(chain, signing_key);
    certified.keys_match().map_err(TlsError::Mismatch)?;
    Ok(certified)
}

/// What a reload attempt did.
#[derive(Debug, PartialEq, Eq)]
pub enum Reload {
    /// The files hold what was last read.
    Unchanged,
    Reloaded,
    /// The new files were refused; the previous pair stays in service.
    Refused(String),
}

/// Files that [`watch`] reloads when they change.
pub trait Reloadable: Send + Sync + 'static {
    /// What the files hold: the `certificate` label of the reload metric, and in logs.
    const KIND: &'static str;
    fn files(&self) -> Vec<&Path>;
    fn reload(&self) -> Reload;
    /// When what is in service stops being valid (its notAfter, in Unix seconds), for
    /// the expiry metric: None for files that hold no certificate, an error for a
    /// certificate whose validity cannot be read.
    fn not_after(&self) -> Option<Result<i64, String>> {
        None
    }
    /// Publishes [`Reloadable::not_after`]: a validity that cannot be read removes the
    /// series, so no stale date stays on show.
    fn publish_expiry(&self, metrics: &Metrics) {
        match self.not_after() {
            None => {}
            Some(Ok(not_after)) => metrics.tls.certificate_expiry(Self::KIND, Some(not_after)),
            Some(Err(reason)) => {
                tracing::warn!(%reason, certificate = Self::KIND, "cannot read the certificate's expiry");
                metrics.tls.certificate_expiry(Self::KIND, None);
            }
        }
    }
    /// Counts one reload attempt.
    fn count(metrics: &Metrics, success: bool) {
        metrics.tls.certificate_reload(Self::KIND, success);
    }
    /// Says in the log that new files are in service.
    fn log_reloaded(&self) {
        tracing::info!(certificate = Self::KIND, file = %self.files()[0].display(), "certificate reloaded");
    }
    /// Says in the log that new files were refused and the old ones stay.
    fn log_refused(&self, reason: &str) {
        tracing::warn!(%reason, certificate = Self::KIND, "new certificate refused; keeping the one in service");
    }
}

/// Remembers the contents last tried, so one bad file set is refused once, not every poll.
#[derive(Debug)]
pub(crate) struct LastSeen(Mutex<u64>);

impl LastSeen {
    pub(crate) fn new(contents: &[&[u8]]) -> LastSeen {
        LastSeen(Mutex::new(fingerprint(contents)))
    }

    /// Records `contents`; false when they are what was last seen.
    pub(crate) fn changed(&self, contents: &[&[u8]]) -> bool {
        let seen = fingerprint(contents);
        let mut last = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let changed = *last != seen;
        *last = seen;
        changed
    }
}

/// The certificate in service, swapped atomically on reload.
pub struct CertStore {
    cert_path: PathBuf,
    key_path: PathBuf,
    current: ArcSwap<CertifiedKey>,
    last_seen: LastSeen,
}

impl std::fmt::Debug for CertStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertStore")
            .field("cert_path", &self.cert_path)
            .field("key_path", &self.key_path)
            .finish_non_exhaustive()
    }
}

impl CertStore {
    /// Loads the pair; a pair that does not load is an error at start-up.
    pub fn open(cert_path: &Path, key_path: &Path) -> Result<Arc<CertStore>, TlsError> {
        let cert_pem = read(cert_path)?;
        let key_pem = read(key_path)?;
        let certified = parse_pair(cert_path, &cert_pem, key_path, &key_pem)?;
        Ok(Arc::new(CertStore {
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
            current: ArcSwap::from_pointee(certified),
            last_seen: LastSeen::new(&[&cert_pem, &key_pem]),
        }))
    }

    /// The leaf certificate in service (DER).
    pub fn leaf(&self) -> CertificateDer<'static> {
        self.current.load().cert[0].clone()
    }

    /// A rustls server configuration that serves this store's certificate and, given a
    /// client CA, accepts only clients with a certificate that chains to it.
    pub fn server_config(
        self: &Arc<Self>,
        client_ca: Option<Arc<ClientCaStore>>,
    ) -> Result<Arc<ServerConfig>, TlsError> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
        let builder = match client_ca {
            Some(client_ca) => builder.with_client_cert_verifier(client_ca),
            None => builder.with_no_client_auth(),
        };
        let mut config = builder.with_cert_resolver(self.clone());
        // The API server talks HTTP/1.1 to webhooks.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

impl Reloadable for CertStore {
    const KIND: &'static str = "serving";

    fn files(&self) -> Vec<&Path> {
        vec![&self.cert_path, &self.key_path]
    }

    /// Re-reads the files and swaps the pair in when it changed and is valid.
    fn reload(&self) -> Reload {
        let (cert_pem, key_pem) = match (read(&self.cert_path), read(&self.key_path)) {
            (Ok(cert), Ok(key)) => (cert, key),
            // Mid-swap a file can be briefly missing; the next event or poll tries again.
            (Err(e), _) | (_, Err(e)) => return Reload::Refused(e.to_string()),
        };
        if !self.last_seen.changed(&[&cert_pem, &key_pem]) {
            return Reload::Unchanged;
        }
        match parse_pair(&self.cert_path, &cert_pem, &self.key_path, &key_pem) {
            Ok(certified) => {
                self.current.store(Arc::new(certified));
                Reload::Reloaded
            }
            Err(e) => Reload::Refused(e.to_string()),
        }
    }

    /// The leaf's: the API server checks the leaf, whatever the chain behind it.
    fn not_after(&self) -> Option<Result<i64, String>> {
        Some(not_after(&self.leaf()))
    }
}

/// A certificate's notAfter, in Unix seconds.
pub fn not_after(der: &CertificateDer<'_>) -> Result<i64, String> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).map_err(|e| e.to_string())?;
    Ok(cert.validity().not_after.timestamp())
}

/// Reloads `store` on file events in its files' folders, and polls as a backstop for
/// filesystems that send no events. Runs until the task is dropped. The expiry of what is
/// in service is published at once, before the task first runs (so the first scrape
/// sees it), and again on every reload.
pub fn watch<R: Reloadable>(
    store: Arc<R>,
    metrics: Arc<Metrics>,
    poll: Duration,
) -> impl Future<Output = ()> + Send + 'static {
    store.publish_expiry(&metrics);
    reload_on_change(store, metrics, poll)
}

async fn reload_on_change<R: Reloadable>(store: Arc<R>, metrics: Arc<Metrics>, poll: Duration) {
    let (events, mut changed) = mpsc::channel::<()>(1);
    // Without file events (inotify limits, odd filesystems) the poll still runs.
    let _watcher = match watch_folders(&store.files(), events) {
        Ok(watcher) => Some(watcher),
        Err(error) => {
            R::count(&metrics, false);
            tracing::warn!(%error, poll = ?poll, files = R::KIND, "cannot watch the files; polling only");
            None
        }
    };
    let mut ticker = tokio::time::interval(poll);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            Some(()) = changed.recv() => {
                // Writers that replace the key and the certificate one at a time pass
                // through a mismatched pair: let the folder settle, within reason.
                let settle_until = tokio::time::Instant::now() + MAX_SETTLE;
                while tokio::time::timeout_at(settle_until.min(tokio::time::Instant::now() + SETTLE), changed.recv())
                    .await
                    .is_ok_and(|event| event.is_some())
                {}
            }
            _ = ticker.tick() => {}
        }
        match store.reload() {
            Reload::Unchanged => {}
            Reload::Reloaded => {
                R::count(&metrics, true);
                store.publish_expiry(&metrics);
                store.log_reloaded();
            }
            Reload::Refused(reason) => {
                R::count(&metrics, false);
                store.log_refused(&reason);
            }
        }
    }
}

/// Watches the folders holding the files; a Secret volume swaps its `..data` link there.
fn watch_folders(
    files: &[&Path],
    events: mpsc::Sender<()>,
) -> Result<notify::RecommendedWatcher, TlsError> {
    use notify::Watcher;
    let watch_error = |path: &Path| {
        let path = path.display().to_string();
        move |source| TlsError::Watch { path, source }
    };
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        // Reading the files is an event too: only changes wake the reloader.
        let is_change = event.is_ok_and(|e| !matches!(e.kind, notify::EventKind::Access(_)));
        if is_change {
            // A full channel already holds a wake-up; dropping this one loses nothing.
            let _ = events.try_send(());
        }
    })
    .map_err(watch_error(
        files.first().copied().unwrap_or(Path::new(".")),
    ))?;
    let mut folders: Vec<&Path> = files
        .iter()
        .map(|p| {
            p.parent()
                .filter(|d| !d.as_os_str().is_empty())
                .unwrap_or(Path::new("."))
        })
        .collect();
    folders.dedup();
    for folder in folders {
        watcher
            .watch(folder, notify::RecursiveMode::NonRecursive)
            .map_err(watch_error(folder))?;
    }
    Ok(watcher)
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load_full())
    }
}

fn fingerprint(contents: &[&[u8]]) -> u64 {
    let mut hasher = DefaultHasher::new();
    contents.hash(&mut hasher);
    hasher.finish()
}

#[cfg(test)]
mod tests;
