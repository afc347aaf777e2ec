//! Reading the cluster: paginated lists (`limit` + `continue`), so memory holds one page of
//! each kind at a time, and errors that say which permission is missing.

use std::fmt::Debug;
use std::io::Write as _;

use kube::api::{Api, ListParams};
use serde::de::DeserializeOwned;

use super::AuditError;

/// Objects per page: large enough that a big cluster takes few round trips, small enough
/// that a page of Pods stays a few MiB.
pub const PAGE_SIZE: u32 = 500;

/// Where a list runs, for messages: a namespace or the whole cluster.
pub fn place(namespace: Option<&str>) -> String {
    namespace.map_or_else(
        || "cluster-wide".to_owned(),
        |ns| format!("in namespace {ns:?}"),
    )
}

/// `deployments.apps`, `pods`: a resource as RBAC rules name it.
pub fn resource_name<K: kube::Resource<DynamicType = ()>>() -> String {
    let group = K::group(&());
    let plural = K::plural(&());
    if group.is_empty() {
        plural.into_owned()
    } else {
        format!("{plural}.{group}")
    }
}

/// Turns a failed request into an error naming the verb, resource and place.
pub fn error<K: kube::Resource<DynamicType = ()>>(
    verb: &'static str,
    namespace: Option<&str>,
    source: kube::Error,
) -> AuditError {
    let resource = resource_name::<K>();
    let place = place(namespace);
    match source {
        kube::Error::Api(status) if status.code == 403 => AuditError::Forbidden {
            verb,
            resource,
            place,
            message: status.message,
        },
        kube::Error::Api(status) if status.code == 401 => AuditError::Unauthorized {
            message: status.message,
        },
        source => {
            let mut reason = source.to_string();
            let mut cause = std::error::Error::source(&source);
            while let Some(error) = cause {
                let text = error.to_string();
                // Layers often repeat their cause's text.
                if !reason.contains(&text) {
                    reason.push_str(": ");
                    reason.push_str(&text);
                }
                cause = error.source();
            }
            AuditError::Request {
                verb,
                resource,
                place,
                reason,
            }
        }
    }
}

/// Shows how far a long listing got, on one rewritten stderr line.
#[derive(Debug, Clone, Copy)]
pub struct Progress {
    pub enabled: bool,
}

impl Progress {
    fn show(&self, resource: &str, count: usize) {
        if self.enabled {
            let mut stderr = std::io::stderr().lock();
            let _ = write!(
                stderr,
                "\r\x1b[Kprobegate audit: listing {resource}: {count}"
            );
            let _ = stderr.flush();
        }
    }

    pub fn clear(&self) {
        if self.enabled {
            let mut stderr = std::io::stderr().lock();
            let _ = write!(stderr, "\r\x1b[K");
            let _ = stderr.flush();
        }
    }
}

/// Lists every object of `api` matching `params`, one page at a time, handing each page to
/// `each` before asking for the next. Returns how many objects there were.
pub async fn pages<K>(
    api: &Api<K>,
    namespace: Option<&str>,
    params: ListParams,
    progress: Progress,
    mut each: impl FnMut(Vec<K>),
) -> Result<usize, AuditError>
where
    K: kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug,
{
    let resource = resource_name::<K>();
    let mut params = params.limit(PAGE_SIZE);
    let mut count = 0;
    loop {
        let list = api
            .list(&params)
            .await
            .map_err(|source| error::<K>("list", namespace, source))?;
        count += list.items.len();
        let token = list.metadata.continue_.filter(|t| !t.is_empty());
        each(list.items);
        progress.show(&resource, count);
        match token {
            Some(token) => params = params.continue_token(&token),
            None => return Ok(count),
        }
    }
}
