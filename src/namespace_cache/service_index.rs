//! The Services of each namespace, sorted by name: what a review reads.
//!
//! kube-runtime's reflector store keeps the Services keyed by namespace and name; this thin
//! layer on top groups them by namespace, so a review takes one `Arc` clone instead of
//! scanning every Service of the cluster. It shares the store's `Arc`s, so each Service is
//! held once. It follows the store: on `Apply` and `Delete` it updates one namespace, and
//! when a (re-)list ends it is rebuilt from the store, which swapped the new list in whole.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use k8s_openapi::Resource;
use k8s_openapi::api::core::v1::Service;
use kube::runtime::reflector::{Lookup, ObjectRef, Store};
use kube::runtime::watcher::Event;
use parking_lot::RwLock;

use crate::engine::ServiceEvidence;

/// One namespace's Services, sorted by name.
pub type NamespaceServices = Arc<[Arc<ServiceEvidence>]>;

#[derive(Default)]
pub struct ServiceIndex {
    by_namespace: RwLock<HashMap<Box<str>, NamespaceServices>>,
}

impl ServiceIndex {
    pub fn get(&self, namespace: &str) -> NamespaceServices {
        self.by_namespace
            .read()
            .get(namespace)
            .cloned()
            .unwrap_or_else(|| Arc::new([]))
    }

    /// Follows an event the reflector has just applied to `store`.
    pub fn follow(&self, store: &Store<ServiceEvidence>, event: &Event<ServiceEvidence>) {
        match event {
            Event::Apply(service) => {
                // The store's own copy, so the index holds no second one.
                if let Some(stored) = store.get(&ObjectRef::from_obj(service)) {
                    self.replace(service, Some(stored));
                }
            }
            Event::Delete(service) => self.replace(service, None),
            Event::InitDone => self.rebuild(store.state()),
            Event::Init | Event::InitApply(_) => {}
        }
    }

    /// Puts `stored` in place of `service`'s entry in its namespace (or removes it).
    fn replace(&self, service: &ServiceEvidence, stored: Option<Arc<ServiceEvidence>>) {
        let namespace = service.namespace().unwrap_or_default();
        let mut by_namespace = self.by_namespace.write();
        let mut services: Vec<Arc<ServiceEvidence>> = by_namespace
            .get(namespace)
            .map(|services| services.to_vec())
            .unwrap_or_default();
        services.retain(|s| s.name() != service.name());
        services.extend(stored);
        if services.is_empty() {
            by_namespace.remove(namespace);
        } else {
            services.sort_by(|a, b| a.name().cmp(b.name()));
            by_namespace.insert(namespace.into(), services.into());
        }
    }

    fn rebuild(&self, all: Vec<Arc<ServiceEvidence>>) {
        let mut grouped: HashMap<Box<str>, Vec<Arc<ServiceEvidence>>> = HashMap::new();
        for service in all {
            let namespace = service.namespace().unwrap_or_default().into();
            grouped.entry(namespace).or_default().push(service);
        }
        let rebuilt = grouped
            .into_iter()
            .map(|(namespace, mut services)| {
                services.sort_by(|a, b| a.name().cmp(b.name()));
                (namespace, services.into())
            })
            .collect();
        *self.by_namespace.write() = rebuilt;
    }
}

/// What the reflector store needs to key a Service's evidence: its kind, namespace and
/// name. No resource version or uid is kept, so the store's keys hold none either.
impl Lookup for ServiceEvidence {
    type DynamicType = ();

    fn kind(_: &()) -> Cow<'_, str> {
        Service::KIND.into()
    }

    fn group(_: &()) -> Cow<'_, str> {
        Service::GROUP.into()
    }

    fn version(_: &()) -> Cow<'_, str> {
        Service::VERSION.into()
    }

    fn plural(_: &()) -> Cow<'_, str> {
        Service::URL_PATH_SEGMENT.into()
    }

    fn name(&self) -> Option<Cow<'_, str>> {
        Some(ServiceEvidence::name(self).into())
    }

    fn namespace(&self) -> Option<Cow<'_, str>> {
        ServiceEvidence::namespace(self).map(Into::into)
    }

    fn resource_version(&self) -> Option<Cow<'_, str>> {
        None
    }

    fn uid(&self) -> Option<Cow<'_, str>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

    fn service(namespace: &str, name: &str, port: i32) -> ServiceEvidence {
        let service = Service {
            metadata: ObjectMeta {
                name: Some(name.into()),
                namespace: Some(namespace.into()),
                ..ObjectMeta::default()
            },
            spec: Some(k8s_openapi::api::core::v1::ServiceSpec {
                ports: Some(vec![k8s_openapi::api::core::v1::ServicePort {
                    port,
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            status: None,
        };
        ServiceEvidence::from(&service)
    }

    /// `(name, first port)` of each Service the index gives for `namespace`.
    fn listed(index: &ServiceIndex, namespace: &str) -> Vec<(String, i32)> {
        index
            .get(namespace)
            .iter()
            .map(|s| {
                (
                    s.name().to_owned(),
                    s.ports().next().map_or(0, |p| p.port()),
                )
            })
            .collect()
    }

    #[test]
    fn the_index_follows_the_store_through_events_and_relists() {
        let (store, mut writer) = kube::runtime::reflector::store::<ServiceEvidence>();
        let index = ServiceIndex::default();
        let mut apply = |event: Event<ServiceEvidence>| {
            writer.apply_watcher_event(&event);
            index.follow(&store, &event);
        };
        apply(Event::Init);
        apply(Event::InitApply(service("shop", "web", 80)));
        apply(Event::InitApply(service("shop", "api", 81)));
        assert!(
            listed(&index, "shop").is_empty(),
            "a list counts once it ends"
        );
        apply(Event::InitDone);
        let both = [("api".to_owned(), 81), ("web".to_owned(), 80)];
        assert_eq!(listed(&index, "shop"), both, "sorted by name");
        apply(Event::Apply(service("shop", "web", 8080)));
        apply(Event::Apply(service("other", "web", 90)));
        assert_eq!(listed(&index, "shop")[1], ("web".to_owned(), 8080));
        assert_eq!(listed(&index, "other"), [("web".to_owned(), 90)]);
        apply(Event::Delete(service("shop", "api", 81)));
        assert_eq!(listed(&index, "shop"), [("web".to_owned(), 8080)]);
        // The index shares the store's copy of each Service.
        let stored = store.get(&ObjectRef::new("web").within("shop")).unwrap();
        assert!(Arc::ptr_eq(&index.get("shop")[0], &stored));
        // A re-list replaces everything: Services deleted while the watch was down go away.
        apply(Event::Init);
        apply(Event::InitApply(service("new", "db", 5432)));
        assert_eq!(
            listed(&index, "other").len(),
            1,
            "the old list serves until the new ends"
        );
        apply(Event::InitDone);
        assert!(listed(&index, "shop").is_empty() && listed(&index, "other").is_empty());
        assert_eq!(listed(&index, "new"), [("db".to_owned(), 5432)]);
    }
}
