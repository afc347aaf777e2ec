//! Where namespace annotations and Services come from.
//!
//! In a cluster, kube-runtime watchers fill reflector stores, so a review never waits on the
//! API server; a namespace the cache has not seen yet (just created) is read once directly,
//! with a short timeout. Standalone, annotations come from a file.
//!
//! Namespaces are watched as metadata only and kept as their name and `probegate.io/`
//! annotations. Services are listed and watched as `ListedService` (their metadata without
//! `managedFields`, selector and ports; the rest is read past unbuilt) and turned into their
//! compact `ServiceEvidence` before the store keeps them, and a thin index on top groups
//! them by namespace, sorted by name (see `service_index`). The reflector does the re-list
//! buffering: a re-list replaces the store whole when it ends. Readiness is a flag set when
//! each first list has ended (and the Service index is built), because `/readyz` asks
//! synchronously and the store's `wait_until_ready` is async only.
//!
//! Why the library's store, measured at 10,000 namespaces and 50,000 Services (docs/benchmarks/scale.md,
//! "Cluster mode at scale"): with the cached objects compact (`NamespacePolicy`,
//! `ServiceEvidence`, Services read as `ListedService`), RSS at ready is about 50 MiB where
//! the hand-built store of full objects took 150 MiB, and ready comes within the time the API
//! server needs to list both kinds; readiness is as truthful. The store's price is its key
//! per object (a 96-byte `ObjectRef` and copies of the name and namespace), which a
//! hand-built map could save; that is not measured to be worth its code.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use futures_util::{Stream, StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use parking_lot::Mutex;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::engine::ServiceEvidence;
use crate::policy::PREFIX;

mod listed_service;
mod namespace_policy;
mod service_index;
use listed_service::ListedService;
use namespace_policy::NamespacePolicy;
pub use service_index::NamespaceServices;
use service_index::ServiceIndex;

/// The longest wait between two attempts of a failing watch, jitter included.
const MAX_WATCH_RETRY: Duration = Duration::from_secs(5);

/// How the watchers retry. kube-runtime's default (client-go's) grows to 30 s, kind to an
/// API server with thousands of clients; with it, settings changed during an outage reached
/// the answers up to 70 s after the API server was back (docs/reliability.md). A webhook runs a
/// few replicas, and a retry every few seconds costs the API server little. Any event starts
/// the delays over: kube-runtime resets the backoff on each, the marker before a list
/// included, so a list that keeps failing (RBAC, throttling) is retried every 0.5-1 s
/// (0.8-1.6 s with the default).
fn watch_backoff() -> impl kube::runtime::utils::Backoff {
    // Jitter adds up to the delay itself: half the longest wait before it.
    watcher::ExponentialBackoff::from(
        backon::ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(500))
            .with_max_delay(MAX_WATCH_RETRY / 2)
            .with_factor(2.0)
            .with_jitter()
            .without_max_times(),
    )
}

/// How long a review waits to read a namespace the cache has not seen.
const DIRECT_READ_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a direct read, or its failure, is remembered before the namespace is read again.
const DIRECT_READ_MEMORY: Duration = Duration::from_secs(10);

/// What a review needs to know about its namespace.
#[derive(Debug, Clone, Default)]
pub struct NamespaceView {
    pub annotations: Arc<BTreeMap<String, String>>,
    /// Sorted by name.
    pub services: NamespaceServices,
    /// Why the defaults apply instead of the namespace's own annotations.
    pub warning: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum DirectoryError {
    #[error("cannot read the namespace config {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the namespace config {path} is not a YAML map of namespace name to annotations: {reason}"
    )]
    Parse { path: String, reason: String },
}

#[derive(Debug, Clone)]
pub enum Directory {
    Standalone(Arc<BTreeMap<String, Arc<BTreeMap<String, String>>>>),
    Cluster(Arc<ClusterCache>),
}

impl Directory {
    /// Annotations from a YAML map of namespace name to annotations; no file means none.
    pub fn standalone(config: Option<&Path>) -> Result<Directory, DirectoryError> {
        let Some(path) = config else {
            return Ok(Directory::Standalone(Arc::default()));
        };
        let text = std::fs::read_to_string(path).map_err(|source| DirectoryError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let parse_error = |reason: String| DirectoryError::Parse {
            path: path.display().to_string(),
            reason,
        };
        let document = crate::yaml::load_all(&text)
            .map_err(|e| parse_error(e.message))?
            .into_iter()
            .next()
            .unwrap_or(serde_json::Value::Null);
        let map: BTreeMap<String, BTreeMap<String, String>> = if document.is_null() {
            BTreeMap::new()
        } else {
            serde_json::from_value(document).map_err(|e| parse_error(e.to_string()))?
        };
        Ok(Directory::Standalone(Arc::new(
            map.into_iter().map(|(ns, a)| (ns, Arc::new(a))).collect(),
        )))
    }

    pub async fn lookup(&self, namespace: &str) -> NamespaceView {
        match self {
            Directory::Standalone(map) => NamespaceView {
                annotations: map.get(namespace).cloned().unwrap_or_default(),
                ..NamespaceView::default()
            },
            Directory::Cluster(cache) => cache.lookup(namespace).await,
        }
    }

    /// Registers what the directory measures: a cluster cache's ages, read at each scrape.
    pub fn register_metrics(&self, registry: &mut Registry) {
        if let Directory::Cluster(cache) = self {
            registry.register_collector(Box::new(CacheAges(cache.clone())));
        }
    }

    /// Whether reviews can be answered from what is known: always standalone, and once
    /// both watchers have listed everything in a cluster.
    pub fn synced(&self) -> bool {
        match self {
            Directory::Standalone(_) => true,
            Directory::Cluster(cache) => cache.synced(),
        }
    }
}

/// Watch-fed caches of namespace annotations and Services, on kube-runtime's watchers and
/// reflector stores.
pub struct ClusterCache {
    client: Client,
    namespaces: Store<NamespacePolicy>,
    services: Store<ServiceEvidence>,
    services_by_namespace: ServiceIndex,
    /// Which stores have finished their first list: `[namespaces, services]`. The stores'
    /// own `wait_until_ready` cannot be asked synchronously, as `/readyz` must, and the
    /// Service index is built only after its store is.
    listed: tokio::sync::watch::Sender<[bool; 2]>,
    /// When each watcher last delivered an event, in milliseconds since `started`.
    heard: [AtomicU64; 2],
    started: Instant,
    /// Namespaces read directly lately (unknown to the cache yet), with when and what came.
    direct_reads: Mutex<HashMap<String, (Instant, DirectRead)>>,
}

/// A direct read's annotations, or why it failed.
type DirectRead = Result<Arc<BTreeMap<String, String>>, String>;

const NAMESPACES: usize = 0;
const SERVICES: usize = 1;
const CACHE_NAMES: [&str; 2] = ["namespaces", "services"];

impl std::fmt::Debug for ClusterCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCache")
            .field("synced", &self.synced())
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CacheLabels {
    cache: &'static str,
}

/// `cache_age_seconds` by cache, computed when scraped.
#[derive(Debug)]
struct CacheAges(Arc<ClusterCache>);

impl Collector for CacheAges {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "age_seconds",
            "Seconds since the cache last heard from the API server",
            None,
            MetricType::Gauge,
        )?;
        for (cache, age) in self.0.ages() {
            let gauge = ConstGauge::new(age.as_secs_f64());
            gauge.encode(family.encode_family(&CacheLabels { cache })?)?;
        }
        Ok(())
    }
}

/// Only `probegate.io/` annotations matter; the rest is not kept.
pub fn policy_annotations(meta: &ObjectMeta) -> BTreeMap<String, String> {
    meta.annotations
        .iter()
        .flatten()
        .filter(|(k, _)| k.starts_with(PREFIX))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// Drives `stream` (a reflector's) forever, handing each event to `follow`; the watcher
/// retries with backoff on errors, which are logged.
fn drive<K>(
    kind: &'static str,
    stream: impl Stream<Item = watcher::Result<Event<K>>> + Send + 'static,
    mut follow: impl FnMut(&Event<K>) + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut stream = pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(event) => follow(&event),
                Err(error) => tracing::warn!(%error, kind, "watch failed; retrying"),
            }
        }
    })
}

/// The event with its object in the form the cache keeps, before the store sees it.
fn compact<K, T>(event: Event<K>, f: impl Fn(&K) -> T) -> Event<T> {
    match event {
        Event::Apply(object) => Event::Apply(f(&object)),
        Event::Delete(object) => Event::Delete(f(&object)),
        Event::Init => Event::Init,
        Event::InitApply(object) => Event::InitApply(f(&object)),
        Event::InitDone => Event::InitDone,
    }
}

impl ClusterCache {
    /// Starts the watchers; they run until the returned tasks are aborted.
    pub fn start(client: Client) -> (Arc<ClusterCache>, Vec<tokio::task::JoinHandle<()>>) {
        let (namespaces, namespace_writer) = reflector::store();
        let (services, service_writer) = reflector::store();
        let cache = Arc::new(ClusterCache {
            client: client.clone(),
            namespaces,
            services,
            services_by_namespace: ServiceIndex::default(),
            listed: tokio::sync::watch::channel([false; 2]).0,
            heard: [AtomicU64::new(0), AtomicU64::new(0)],
            started: Instant::now(),
            direct_reads: Mutex::default(),
        });
        let config = watcher::Config::default();
        // Metadata only: the annotations are all that is read of a namespace.
        let namespace_api = Api::<PartialObjectMeta<Namespace>>::all(client.clone());
        let namespace_events = watcher::watcher(namespace_api, config.clone())
            .backoff(watch_backoff())
            .map_ok(|event| compact(event, |ns| NamespacePolicy::from(&ns.metadata)));
        let namespaces = drive(
            CACHE_NAMES[NAMESPACES],
            reflector::reflector(namespace_writer, namespace_events),
            {
                let cache = cache.clone();
                move |event| cache.heard(NAMESPACES, matches!(event, Event::InitDone))
            },
        );
        // Each Service becomes its compact evidence before the store keeps it.
        let service_events = watcher::watcher(Api::<ListedService>::all(client), config)
            .backoff(watch_backoff())
            .map_ok(|event| {
                compact(event, |service: &ListedService| {
                    ServiceEvidence::from(service)
                })
            });
        let services = drive(
            CACHE_NAMES[SERVICES],
            reflector::reflector(service_writer, service_events),
            {
                let cache = cache.clone();
                move |event| {
                    cache.services_by_namespace.follow(&cache.services, event);
                    cache.heard(SERVICES, matches!(event, Event::InitDone));
                }
            },
        );
        (cache, vec![namespaces, services])
    }

    fn heard(&self, store: usize, list_done: bool) {
        let now = self.started.elapsed().as_millis();
        self.heard[store].store(u64::try_from(now).unwrap_or(u64::MAX), Ordering::Relaxed);
        if list_done {
            self.listed
                .send_if_modified(|listed| !std::mem::replace(&mut listed[store], true));
            tracing::info!(cache = CACHE_NAMES[store], "cache synced");
        }
    }

    /// Resolves once both watchers have listed everything.
    pub async fn wait_synced(&self) {
        // Returns at once if already synced; an error means the cache is gone.
        let _ = self
            .listed
            .subscribe()
            .wait_for(|listed| listed.iter().all(|l| *l))
            .await;
    }

    pub fn synced(&self) -> bool {
        self.listed.borrow().iter().all(|listed| *listed)
    }

    /// Time since each cache last heard from the API server.
    pub fn ages(&self) -> [(&'static str, Duration); 2] {
        let now = self.started.elapsed();
        [NAMESPACES, SERVICES].map(|store| {
            let heard = Duration::from_millis(self.heard[store].load(Ordering::Relaxed));
            (CACHE_NAMES[store], now.saturating_sub(heard))
        })
    }

    async fn lookup(&self, namespace: &str) -> NamespaceView {
        let services = self.services_by_namespace.get(namespace);
        if let Some(cached) = self.namespaces.get(&ObjectRef::new(namespace)) {
            return NamespaceView {
                annotations: cached.annotations(),
                services,
                warning: None,
            };
        }
        let read = match self.recent_direct_read(namespace) {
            Some(read) => read,
            None => self.read_directly(namespace).await,
        };
        match read {
            Ok(annotations) => NamespaceView {
                annotations,
                services,
                warning: None,
            },
            Err(why) => NamespaceView {
                annotations: Arc::default(),
                services,
                warning: Some(format!(
                    "probegate could not read namespace {namespace:?} ({why}); its annotations were not applied, defaults were"
                )),
            },
        }
    }

    /// A namespace the watch has not brought yet (just created) is read once; the answer,
    /// or the failure, is remembered for a while so it is not read on every review.
    async fn read_directly(&self, namespace: &str) -> DirectRead {
        let api: Api<Namespace> = Api::all(self.client.clone());
        let read =
            match tokio::time::timeout(DIRECT_READ_TIMEOUT, api.get_metadata(namespace)).await {
                Ok(Ok(ns)) => Ok(Arc::new(policy_annotations(&ns.metadata))),
                Ok(Err(error)) => Err(error.to_string()),
                Err(_) => Err("timed out".to_owned()),
            };
        if let Err(why) = &read {
            tracing::warn!(namespace, reason = %why, "namespace unknown to the cache and unreadable");
        }
        self.direct_reads
            .lock()
            .insert(namespace.to_owned(), (Instant::now(), read.clone()));
        read
    }

    fn recent_direct_read(&self, namespace: &str) -> Option<DirectRead> {
        let mut reads = self.direct_reads.lock();
        reads.retain(|_, (at, _)| at.elapsed() < DIRECT_READ_MEMORY);
        reads.get(namespace).map(|(_, read)| read.clone())
    }
}

#[cfg(test)]
mod tests;
