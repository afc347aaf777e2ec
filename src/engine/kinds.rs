//! The kinds probegate handles, in one table: their names and API versions, where each keeps
//! its pod template, and the strict decode into k8s-openapi's types that `probegate mutate`
//! checks documents with.

use k8s_openapi::Resource;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, ReplicaSet, StatefulSet};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Pod;
use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
#[error("the object does not fit {kind}: {source}")]
pub struct DecodeError {
    pub kind: &'static str,
    #[source]
    pub source: serde_json::Error,
}

/// Where a kind keeps its pod spec: JSON pointer tokens from the object root to the Pod or
/// pod template.
const POD: &[&str] = &[];
const TEMPLATE: &[&str] = &["spec", "template"];
const CRONJOB_TEMPLATE: &[&str] = &["spec", "jobTemplate", "spec", "template"];

macro_rules! handled_kinds {
    ($($kind:ident: $base:expr),+ $(,)?) => {
        /// A kind probegate handles, in the one API version it reads it in.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Kind {
            $($kind),+
        }

        impl Kind {
            pub const ALL: &'static [Kind] = &[$(Kind::$kind),+];

            pub fn name(self) -> &'static str {
                match self {
                    $(Kind::$kind => <$kind as Resource>::KIND),+
                }
            }

            pub fn api_version(self) -> &'static str {
                match self {
                    $(Kind::$kind => <$kind as Resource>::API_VERSION),+
                }
            }

            fn group_version(self) -> (&'static str, &'static str) {
                match self {
                    $(Kind::$kind => (<$kind as Resource>::GROUP, <$kind as Resource>::VERSION)),+
                }
            }

            /// JSON pointer tokens from the object root to its Pod or pod template.
            pub fn base(self) -> &'static [&'static str] {
                match self {
                    $(Kind::$kind => $base),+
                }
            }

            /// The object decoded into k8s-openapi's type and written back, as `audit` gets
            /// the objects it lists.
            #[cfg(test)]
            pub fn typed_round_trip(self, object: &serde_json::Value) -> serde_json::Value {
                match self {
                    $(Kind::$kind => serde_json::to_value($kind::deserialize(object).expect("fits its kind")).expect("serializes")),+
                }
            }

            /// Every field decoded into k8s-openapi's type and checked, as `probegate mutate`
            /// needs: a field that does not fit the kind is an error there.
            pub fn check(self, object: &serde_json::Value) -> Result<(), DecodeError> {
                match self {
                    $(Kind::$kind => $kind::deserialize(object).map(drop).map_err(|source| DecodeError {
                        kind: self.name(),
                        source,
                    })),+
                }
            }
        }
    };
}

handled_kinds!(
    Pod: POD,
    Deployment: TEMPLATE,
    StatefulSet: TEMPLATE,
    DaemonSet: TEMPLATE,
    ReplicaSet: TEMPLATE,
    Job: TEMPLATE,
    CronJob: CRONJOB_TEMPLATE,
);

/// Versions of the handled kinds that API servers served once and no longer do, with the
/// Kubernetes release that removed them.
const REMOVED_VERSIONS: [(&str, &str, &str); 10] = [
    ("extensions/v1beta1", "Deployment", "1.16"),
    ("extensions/v1beta1", "DaemonSet", "1.16"),
    ("extensions/v1beta1", "ReplicaSet", "1.16"),
    ("apps/v1beta1", "Deployment", "1.16"),
    ("apps/v1beta1", "StatefulSet", "1.16"),
    ("apps/v1beta2", "Deployment", "1.16"),
    ("apps/v1beta2", "StatefulSet", "1.16"),
    ("apps/v1beta2", "DaemonSet", "1.16"),
    ("apps/v1beta2", "ReplicaSet", "1.16"),
    ("batch/v1beta1", "CronJob", "1.25"),
];

impl Kind {
    /// The kind for `group/version/kind`, if probegate handles it.
    pub fn of(group: &str, version: &str, kind: &str) -> Option<Kind> {
        Kind::ALL
            .iter()
            .copied()
            .find(|k| k.group_version() == (group, version) && k.name() == kind)
    }

    /// A bounded metrics label: the kind's name, or `other`.
    pub fn label(kind: &str) -> &'static str {
        Kind::ALL
            .iter()
            .map(|k| k.name())
            .find(|name| *name == kind)
            .unwrap_or("other")
    }

    /// Whether the kind's pods run to completion whatever their spec says.
    pub fn is_batch(self) -> bool {
        matches!(self, Kind::Job | Kind::CronJob)
    }

    /// Why an object of a kind probegate handles, in a version it does not, would never reach
    /// the webhook: the API server no longer serves that version. `None` for objects of
    /// other kinds or groups, and for the versions probegate handles.
    pub fn unserved(api_version: &str, kind: &str) -> Option<String> {
        let served = Kind::ALL.iter().find(|k| k.name() == kind)?.api_version();
        if api_version == served {
            return None;
        }
        let (group, _) = split_api_version(api_version);
        let known_group = ["", "apps", "batch", "extensions"].contains(&group);
        if !known_group {
            return None;
        }
        Some(
            match REMOVED_VERSIONS
                .iter()
                .find(|(version, k, _)| *version == api_version && *k == kind)
            {
                Some((_, _, release)) => format!(
                    "{api_version} {kind} was removed in Kubernetes {release}: the API server refuses it; use {served}"
                ),
                None => format!(
                    "{api_version} is not a version the API server serves for {kind}; use {served}"
                ),
            },
        )
    }
}

/// Splits an `apiVersion` into group and version (`v1` is the core group).
pub fn split_api_version(api_version: &str) -> (&str, &str) {
    match api_version.split_once('/') {
        Some((group, version)) => (group, version),
        None => ("", api_version),
    }
}

/// The group of Jobs, for owner references.
pub const JOB_GROUP: &str = <Job as Resource>::GROUP;

/// The Deployment controller's revision of a Deployment and of each of its ReplicaSets:
/// `audit` tells the current template's pods from older ones by it.
pub const DEPLOYMENT_REVISION: &str = "deployment.kubernetes.io/revision";

#[cfg(test)]
mod tests;
