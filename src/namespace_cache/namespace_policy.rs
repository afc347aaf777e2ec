//! A namespace as the cache keeps it: its name and `probegate.io/` annotations, nothing
//! else (a `PartialObjectMeta` is 408 bytes before any of its strings; this is 24).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use k8s_openapi::Resource;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::reflector::Lookup;

use super::policy_annotations;

#[derive(Debug, Clone, PartialEq)]
pub struct NamespacePolicy {
    name: Box<str>,
    /// `None` when the namespace has no `probegate.io/` annotation, as most have not.
    annotations: Option<Arc<BTreeMap<String, String>>>,
}

impl From<&ObjectMeta> for NamespacePolicy {
    fn from(meta: &ObjectMeta) -> NamespacePolicy {
        let annotations = policy_annotations(meta);
        NamespacePolicy {
            name: meta.name.as_deref().unwrap_or_default().into(),
            annotations: (!annotations.is_empty()).then(|| Arc::new(annotations)),
        }
    }
}

impl NamespacePolicy {
    pub fn annotations(&self) -> Arc<BTreeMap<String, String>> {
        self.annotations.clone().unwrap_or_default()
    }
}

/// What the reflector store needs to key a namespace: its kind and name.
impl Lookup for NamespacePolicy {
    type DynamicType = ();

    fn kind(_: &()) -> Cow<'_, str> {
        Namespace::KIND.into()
    }

    fn group(_: &()) -> Cow<'_, str> {
        Namespace::GROUP.into()
    }

    fn version(_: &()) -> Cow<'_, str> {
        Namespace::VERSION.into()
    }

    fn plural(_: &()) -> Cow<'_, str> {
        Namespace::URL_PATH_SEGMENT.into()
    }

    fn name(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(&self.name))
    }

    fn namespace(&self) -> Option<Cow<'_, str>> {
        None
    }

    fn resource_version(&self) -> Option<Cow<'_, str>> {
        None
    }

    fn uid(&self) -> Option<Cow<'_, str>> {
        None
    }
}
