//! `--catalogue FILE`: a user's catalogue over the built-in one, read at start-up and, for
//! `serve`, reloaded when the file changes (as the certificates are). A file that does not
//! validate is refused at start-up; on reload it is refused with a log line and a metric,
//! and the catalogue in service stays.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arc_swap::{ArcSwap, Guard};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::engine::catalogue::{Catalogue, CatalogueError};
use crate::metrics::Metrics;
use crate::tls::{LastSeen, Reload, Reloadable};

#[derive(Debug, thiserror::Error)]
pub enum CatalogueFileError {
    #[error("cannot read the catalogue {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the catalogue {path} is not UTF-8 text: {why}")]
    NotText { path: String, why: String },
    #[error(transparent)]
    Invalid(#[from] CatalogueError),
}

/// Reads `path` and puts its entries over the built-in ones.
pub fn load(path: &Path) -> Result<Catalogue, CatalogueFileError> {
    let (catalogue, _) = read(path)?;
    Ok(catalogue)
}

fn read(path: &Path) -> Result<(Catalogue, Vec<u8>), CatalogueFileError> {
    let bytes = std::fs::read(path).map_err(|source| CatalogueFileError::Read {
        path: path.display().to_string(),
        source,
    })?;
    let catalogue = parse_bytes(path, &bytes)?;
    Ok((catalogue, bytes))
}

fn parse_bytes(path: &Path, bytes: &[u8]) -> Result<Catalogue, CatalogueFileError> {
    let file = path.display().to_string();
    let text = std::str::from_utf8(bytes).map_err(|error| CatalogueFileError::NotText {
        path: file.clone(),
        why: error.to_string(),
    })?;
    Ok(Catalogue::with_user_file(&file, text)?)
}

/// The catalogue in service, swapped atomically on reload.
pub struct CatalogueStore {
    path: Option<PathBuf>,
    current: ArcSwap<Catalogue>,
    last_seen: LastSeen,
}

impl CatalogueStore {
    /// The built-in catalogue alone: nothing to reload.
    pub fn builtin() -> Arc<CatalogueStore> {
        Arc::new(CatalogueStore {
            path: None,
            current: ArcSwap::new(Catalogue::builtin_shared()),
            last_seen: LastSeen::new(&[]),
        })
    }

    /// The built-in catalogue with `path` over it; a file that does not load is an error.
    pub fn open(path: &Path) -> Result<Arc<CatalogueStore>, CatalogueFileError> {
        let (catalogue, bytes) = read(path)?;
        Ok(Arc::new(CatalogueStore {
            path: Some(path.to_owned()),
            current: ArcSwap::from_pointee(catalogue),
            last_seen: LastSeen::new(&[&bytes]),
        }))
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    pub fn load(&self) -> Guard<Arc<Catalogue>> {
        self.current.load()
    }
}

impl Reloadable for CatalogueStore {
    const KIND: &'static str = "catalogue";

    fn files(&self) -> Vec<&Path> {
        self.path.iter().map(PathBuf::as_path).collect()
    }

    fn reload(&self) -> Reload {
        let Some(path) = &self.path else {
            return Reload::Unchanged;
        };
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            // Mid-swap a ConfigMap's file is briefly missing: not a refusal; the next event
            // or poll reads it.
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
                return Reload::Unchanged;
            }
            Err(error) => return Reload::Refused(error.to_string()),
        };
        if !self.last_seen.changed(&[&bytes]) {
            return Reload::Unchanged;
        }
        match parse_bytes(path, &bytes) {
            Ok(catalogue) => {
                self.current.store(Arc::new(catalogue));
                Reload::Reloaded
            }
            Err(error) => Reload::Refused(error.to_string()),
        }
    }

    fn count(metrics: &Metrics, success: bool) {
        metrics.catalogue.reload(success);
    }

    fn log_reloaded(&self) {
        tracing::info!(file = %self.files()[0].display(), entries = self.load().entries().len(), "catalogue reloaded");
    }

    fn log_refused(&self, reason: &str) {
        tracing::warn!(%reason, "new catalogue refused; keeping the one in service");
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

/// `probegate_catalogue_reloads_total{result}`, and `probegate_catalogue_reload_failing`:
/// 1 while the file on disk is refused, so the catalogue in service is an older one (and a
/// restart would refuse to start), 0 once one loads.
#[derive(Debug)]
pub struct CatalogueMetrics {
    reloads: Family<ResultLabels, Counter>,
    failing: Gauge,
}

impl CatalogueMetrics {
    pub fn register(registry: &mut Registry) -> CatalogueMetrics {
        let metrics = CatalogueMetrics {
            reloads: Family::default(),
            failing: Gauge::default(),
        };
        registry.register(
            "catalogue_reloads",
            "Reloads of the --catalogue file, by result (success, failure)",
            metrics.reloads.clone(),
        );
        registry.register(
            "catalogue_reload_failing",
            "1 while the --catalogue file on disk is refused and an older one serves",
            metrics.failing.clone(),
        );
        metrics
    }

    pub fn reload(&self, success: bool) {
        let result = if success { "success" } else { "failure" };
        self.reloads.get_or_create(&ResultLabels { result }).inc();
        self.failing.set(i64::from(!success));
    }
}
