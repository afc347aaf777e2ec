use super::*;

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
    assert!(cache.recent_direct_read("shop").unwrap().is_err());
    assert_eq!(cache.lookup("shop").await.warning.unwrap(), warning);
    assert!(cache.recent_direct_read("elsewhere").is_none());

    // Those waiting on the sync wake once both lists are done, not before.
    let waiting = tokio::spawn({
        let cache = cache.clone();
        async move { cache.wait_synced().await }
    });
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished());
    cache.heard(NAMESPACES, true);
    tokio::task::yield_now().await;
    assert!(!waiting.is_finished(), "services have not listed yet");
    assert!(!cache.synced());
    cache.heard(SERVICES, true);
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

#[test]
fn a_cached_namespace_keeps_its_name_and_policy_annotations_only() {
    use kube::runtime::reflector::Lookup;
    let meta = ObjectMeta {
        name: Some("shop".into()),
        uid: Some("0a1b".into()),
        resource_version: Some("42".into()),
        labels: Some(BTreeMap::from([("team".to_string(), "a".to_string())])),
        annotations: Some(BTreeMap::from([
            ("probegate.io/probes".to_string(), "readiness".to_string()),
            ("other.io/x".to_string(), "y".to_string()),
        ])),
        ..ObjectMeta::default()
    };
    let kept = NamespacePolicy::from(&meta);
    assert_eq!(kept.name().as_deref(), Some("shop"));
    assert_eq!((kept.resource_version(), kept.uid()), (None, None));
    assert_eq!(
        *kept.annotations(),
        BTreeMap::from([("probegate.io/probes".to_string(), "readiness".to_string())])
    );
    let plain = NamespacePolicy::from(&ObjectMeta {
        name: Some("plain".into()),
        ..ObjectMeta::default()
    });
    assert!(plain.annotations().is_empty());
}

#[tokio::test]
async fn cache_ages_are_read_when_scraped() {
    let unused = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", unused.local_addr().unwrap());
    drop(unused);
    let client = Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
    let (cache, watchers) = ClusterCache::start(client);
    let metrics = crate::metrics::Metrics::new(&Directory::Cluster(cache.clone()));
    let age = |text: &str, name: &str| -> f64 {
        let prefix = format!("probegate_cache_age_seconds{{cache=\"{name}\"}} ");
        let line = text.lines().find(|l| l.starts_with(&prefix));
        line.unwrap_or_else(|| panic!("no {prefix} in\n{text}"))[prefix.len()..]
            .parse()
            .unwrap()
    };
    let before = metrics.encode().unwrap();
    let waited = Instant::now();
    while waited.elapsed() < Duration::from_millis(20) {
        tokio::task::yield_now().await;
    }
    cache.heard(SERVICES, false);
    let after = metrics.encode().unwrap();
    // Nothing sets the value: each scrape computes it, so it grows until the watcher is heard.
    assert!(age(&after, "namespaces") >= age(&before, "namespaces") + 0.02);
    assert!(age(&after, "services") < age(&after, "namespaces"));
    for watcher in watchers {
        watcher.abort();
    }
}

#[test]
fn the_watchers_retry_within_seconds_through_an_outage_and_start_over_after_a_success() {
    use kube::runtime::utils::Backoff;
    let mut backoff = watch_backoff();
    let delays: Vec<Duration> = backoff.by_ref().take(50).collect();
    assert_eq!(delays.len(), 50, "the watchers never give up");
    assert!(
        delays[0] <= Duration::from_secs(1),
        "first retry: {delays:?}"
    );
    let longest = delays.iter().max().unwrap();
    assert!(
        *longest <= MAX_WATCH_RETRY,
        "a setting changed during an outage must not wait {longest:?} for the next attempt"
    );
    backoff.reset();
    assert!(backoff.next().unwrap() <= Duration::from_secs(1));
}
