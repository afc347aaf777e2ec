//! Where namespace annotations and Services come from.
//!
//! In a cluster, watchers keep both in memory, indexed by namespace, so a review never waits
//! on the API server; a namespace the cache has not seen yet (just created) is read once
//! directly, with a short timeout. Standalone, annotations come from a file.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};

use crate::engine::ServiceEvidence;
use crate::policy::PREFIX;

/// How long a review waits to read a namespace the cache has not seen.
const DIRECT_READ_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a failed direct read is remembered before the namespace is tried again.
const FAILED_READ_MEMORY: Duration = Duration::from_secs(10);

/// What a review needs to know about its namespace.
#[derive(Debug, Clone, Default)]
pub struct NamespaceView {
    pub annotations: Arc<BTreeMap<String, String>>,
    pub services: Vec<Arc<ServiceEvidence>>,
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

    /// Whether reviews can be answered from what is known: always standalone, and once
    /// both watchers have listed everything in a cluster.
    pub fn synced(&self) -> bool {
        match self {
            Directory::Standalone(_) => true,
            Directory::Cluster(cache) => cache.synced(),
        }
    }
}

/// Watch-fed caches of namespace annotations and Services.
pub struct ClusterCache {
    client: Client,
    /// Bumped whenever a watcher finishes a full list, for those waiting on `synced`.
    lists_done: tokio::sync::watch::Sender<()>,
    /// Namespaces whose direct read failed lately, with when and why.
    failed_reads: Mutex<HashMap<String, (Instant, String)>>,
    namespaces: Store<Arc<BTreeMap<String, String>>>,
    services: Store<Arc<ServiceEvidence>>,
}

impl std::fmt::Debug for ClusterCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCache")
            .field("synced", &self.synced())
            .finish_non_exhaustive()
    }
}

/// Objects by namespace, then name; filled by one watcher.
#[derive(Debug)]
struct Store<T> {
    name: &'static str,
    objects: RwLock<HashMap<String, HashMap<String, T>>>,
    /// Objects of a re-list in progress, swapped in whole when it ends.
    relist: Mutex<HashMap<String, HashMap<String, T>>>,
    synced: AtomicBool,
    last_heard: Mutex<Instant>,
}

impl<T: Clone> Store<T> {
    fn new(name: &'static str) -> Store<T> {
        Store {
            name,
            objects: RwLock::default(),
            relist: Mutex::default(),
            synced: AtomicBool::new(false),
            last_heard: Mutex::new(Instant::now()),
        }
    }

    fn apply(&self, event: Event<(String, String, T)>) {
        *lock(&self.last_heard) = Instant::now();
        match event {
            Event::Apply((ns, name, value)) => {
                write(&self.objects)
                    .entry(ns)
                    .or_default()
                    .insert(name, value);
            }
            Event::Delete((ns, name, _)) => {
                let mut objects = write(&self.objects);
                if let Some(names) = objects.get_mut(&ns) {
                    names.remove(&name);
                    if names.is_empty() {
                        objects.remove(&ns);
                    }
                }
            }
            Event::Init => lock(&self.relist).clear(),
            Event::InitApply((ns, name, value)) => {
                lock(&self.relist)
                    .entry(ns)
                    .or_default()
                    .insert(name, value);
            }
            Event::InitDone => {
                let fresh = std::mem::take(&mut *lock(&self.relist));
                *write(&self.objects) = fresh;
                self.synced.store(true, Ordering::Release);
                tracing::info!(cache = self.name, "cache synced");
            }
        }
    }

    fn age(&self) -> Duration {
        lock(&self.last_heard).elapsed()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The data stays consistent under panics here: every critical section is a single
    // map operation.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn write<T>(lock: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    lock.write()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Feeds every event of a watch on `api` to `apply`, retrying with backoff on errors.
fn watch<K>(api: Api<K>, apply: impl Fn(Event<K>) + Send + 'static) -> tokio::task::JoinHandle<()>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
{
    tokio::spawn(async move {
        let kind = std::any::type_name::<K>()
            .rsplit("::")
            .next()
            .unwrap_or("object");
        let stream = watcher::watcher(api, watcher::Config::default()).default_backoff();
        let mut stream = pin!(stream);
        while let Some(event) = stream.next().await {
            match event {
                Ok(event) => apply(event),
                Err(error) => tracing::warn!(%error, kind, "watch failed; retrying"),
            }
        }
    })
}

fn map_event<K, T>(event: Event<K>, mut f: impl FnMut(K) -> T) -> Event<T> {
    match event {
        Event::Apply(k) => Event::Apply(f(k)),
        Event::Delete(k) => Event::Delete(f(k)),
        Event::Init => Event::Init,
        Event::InitApply(k) => Event::InitApply(f(k)),
        Event::InitDone => Event::InitDone,
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

impl ClusterCache {
    /// Starts the watchers; they run until the returned tasks are aborted.
    pub fn start(client: Client) -> (Arc<ClusterCache>, Vec<tokio::task::JoinHandle<()>>) {
        let cache = Arc::new(ClusterCache {
            client: client.clone(),
            failed_reads: Mutex::default(),
            lists_done: tokio::sync::watch::channel(()).0,
            namespaces: Store::new("namespaces"),
            services: Store::new("services"),
        });
        let namespaces = {
            let cache = cache.clone();
            watch(Api::<Namespace>::all(client.clone()), move |event| {
                let list_done = matches!(event, Event::InitDone);
                cache.namespaces.apply(map_event(event, |ns: Namespace| {
                    let name = ns.metadata.name.clone().unwrap_or_default();
                    (
                        name.clone(),
                        name,
                        Arc::new(policy_annotations(&ns.metadata)),
                    )
                }));
                if list_done {
                    cache.lists_done.send_replace(());
                }
            })
        };
        let services = {
            let cache = cache.clone();
            watch(Api::<Service>::all(client), move |event| {
                let list_done = matches!(event, Event::InitDone);
                cache.services.apply(map_event(event, |svc: Service| {
                    let ns = svc.metadata.namespace.clone().unwrap_or_default();
                    let name = svc.metadata.name.clone().unwrap_or_default();
                    (ns, name, Arc::new(ServiceEvidence::from(svc)))
                }));
                if list_done {
                    cache.lists_done.send_replace(());
                }
            })
        };
        (cache, vec![namespaces, services])
    }

    /// Resolves once both watchers have listed everything.
    pub async fn wait_synced(&self) {
        let mut lists_done = self.lists_done.subscribe();
        // Subscribed before looking, so a list finishing in between is not missed.
        while !self.synced() {
            if lists_done.changed().await.is_err() {
                return;
            }
        }
    }

    pub fn synced(&self) -> bool {
        self.namespaces.synced.load(Ordering::Acquire)
            && self.services.synced.load(Ordering::Acquire)
    }

    /// Seconds since each cache last heard from the API server.
    pub fn ages(&self) -> [(&'static str, Duration); 2] {
        [
            (self.namespaces.name, self.namespaces.age()),
            (self.services.name, self.services.age()),
        ]
    }

    async fn lookup(&self, namespace: &str) -> NamespaceView {
        let services = read(&self.services.objects)
            .get(namespace)
            .map(|by_name| by_name.values().cloned().collect())
            .unwrap_or_default();
        let cached = read(&self.namespaces.objects)
            .get(namespace)
            .and_then(|by_name| by_name.get(namespace).cloned());
        if let Some(annotations) = cached {
            return NamespaceView {
                annotations,
                services,
                warning: None,
            };
        }
        // A namespace that could not be read recently is not read again on every review.
        if let Some(why) = self.recent_failure(namespace) {
            return defaults_view(namespace, services, &why);
        }
        let api: Api<Namespace> = Api::all(self.client.clone());
        let why = match tokio::time::timeout(DIRECT_READ_TIMEOUT, api.get(namespace)).await {
            Ok(Ok(ns)) => {
                let annotations = Arc::new(policy_annotations(&ns.metadata));
                // Kept until the watch brings its own copy.
                self.namespaces.apply(Event::Apply((
                    namespace.to_owned(),
                    namespace.to_owned(),
                    annotations.clone(),
                )));
                return NamespaceView {
                    annotations,
                    services,
                    warning: None,
                };
            }
            Ok(Err(error)) => error.to_string(),
            Err(_) => "timed out".to_owned(),
        };
        tracing::warn!(namespace, reason = %why, "namespace unknown to the cache and unreadable");
        lock(&self.failed_reads).insert(namespace.to_owned(), (Instant::now(), why.clone()));
        defaults_view(namespace, services, &why)
    }

    fn recent_failure(&self, namespace: &str) -> Option<String> {
        let mut failed = lock(&self.failed_reads);
        failed.retain(|_, (at, _)| at.elapsed() < FAILED_READ_MEMORY);
        failed.get(namespace).map(|(_, why)| why.clone())
    }
}

fn defaults_view(namespace: &str, services: Vec<Arc<ServiceEvidence>>, why: &str) -> NamespaceView {
    NamespaceView {
        annotations: Arc::default(),
        services,
        warning: Some(format!(
            "probegate could not read namespace {namespace:?} ({why}); its annotations were not applied, defaults were"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(ns: &str, name: &str, v: u32) -> (String, String, u32) {
        (ns.into(), name.into(), v)
    }

    #[test]
    fn store_follows_watch_events_and_relists() {
        let store: Store<u32> = Store::new("test");
        store.apply(Event::Init);
        store.apply(Event::InitApply(entry("a", "x", 1)));
        assert!(!store.synced.load(Ordering::Acquire));
        assert!(
            read(&store.objects).is_empty(),
            "a re-list is invisible until it ends"
        );
        store.apply(Event::InitDone);
        assert!(store.synced.load(Ordering::Acquire));
        store.apply(Event::Apply(entry("a", "y", 2)));
        store.apply(Event::Apply(entry("a", "x", 3)));
        assert_eq!(read(&store.objects)["a"]["x"], 3);
        store.apply(Event::Delete(entry("a", "x", 3)));
        store.apply(Event::Delete(entry("a", "y", 2)));
        assert!(!read(&store.objects).contains_key("a"));
        // A re-list replaces everything: objects deleted while the watch was down go away.
        store.apply(Event::Apply(entry("b", "gone", 1)));
        store.apply(Event::Init);
        store.apply(Event::InitApply(entry("c", "z", 1)));
        store.apply(Event::InitDone);
        let objects = read(&store.objects);
        assert!(!objects.contains_key("b"));
        assert_eq!(objects["c"]["z"], 1);
    }

    #[test]
    fn keeps_only_policy_annotations() {
        let meta = ObjectMeta {
            annotations: Some(BTreeMap::from([
                ("probegate.io/probes".to_string(), "liveness".to_string()),
                (
                    "kubectl.kubernetes.io/last-applied-configuration".to_string(),
                    "{...}".to_string(),
                ),
            ])),
            ..ObjectMeta::default()
        };
        assert_eq!(
            policy_annotations(&meta).keys().collect::<Vec<_>>(),
            ["probegate.io/probes"]
        );
    }

    #[tokio::test]
    async fn an_unreadable_namespace_gets_defaults_with_a_warning_and_is_not_reread_at_once() {
        // A port nothing listens on: every read fails at once.
        let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", unused.local_addr().unwrap());
        drop(unused);
        let config = kube::Config::new(url.parse().unwrap());
        let client = Client::try_from(config).unwrap();
        let (cache, watchers) = ClusterCache::start(client);
        assert!(!cache.synced());
        let view = cache.lookup("shop").await;
        assert!(view.annotations.is_empty());
        let warning = view.warning.unwrap();
        assert!(
            warning.starts_with("probegate could not read namespace \"shop\""),
            "{warning}"
        );
        // The failure is remembered: the next review is answered without another read.
        assert!(cache.recent_failure("shop").is_some());
        assert_eq!(cache.lookup("shop").await.warning.unwrap(), warning);
        assert!(cache.recent_failure("elsewhere").is_none());

        // Those waiting on the sync wake once both lists are done, not before.
        let waiting = tokio::spawn({
            let cache = cache.clone();
            async move { cache.wait_synced().await }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        cache.namespaces.apply(Event::InitDone);
        cache.lists_done.send_replace(());
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "services have not listed yet");
        cache.services.apply(Event::InitDone);
        cache.lists_done.send_replace(());
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .unwrap()
            .unwrap();
        assert!(cache.synced());
        for watcher in watchers {
            watcher.abort();
        }
    }

    #[tokio::test]
    async fn standalone_reads_a_yaml_map() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ns.yaml");
        std::fs::write(
            &path,
            "shop:\n  probegate.io/probes: readiness\nempty: {}\n",
        )
        .unwrap();
        let directory = Directory::standalone(Some(&path)).unwrap();
        assert!(directory.synced());
        assert_eq!(
            directory.lookup("shop").await.annotations["probegate.io/probes"],
            "readiness"
        );
        assert!(directory.lookup("elsewhere").await.annotations.is_empty());

        std::fs::write(&path, "- not a map\n").unwrap();
        let error = Directory::standalone(Some(&path)).unwrap_err().to_string();
        assert!(
            error.contains("is not a YAML map of namespace name to annotations"),
            "{error}"
        );
        let error = Directory::standalone(Some(&dir.path().join("none.yaml")))
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("cannot read the namespace config"),
            "{error}"
        );
    }
}
