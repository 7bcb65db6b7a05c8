//! Connecting at start-up: the Kubernetes client (with its bound on requests in flight),
//! the Juju connection options from the connection Secret, the MAC key, and the check
//! that the CRDs are installed.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::Secret;
use kube::api::ListParams;
use kube::{Api, Client, Resource};

use super::run::RunError;
use crate::crd::grant::JujuSecretGrant;
use crate::crd::secret::JujuSecret;
use juju_client::{ConnectOptions, Password};

pub(crate) async fn kube_config(kubeconfig: Option<&PathBuf>) -> Result<kube::Config, RunError> {
    Ok(match kubeconfig {
        Some(path) => {
            let kc = kube::config::Kubeconfig::read_from(path)
                .map_err(|e| RunError::KubeConfig(e.to_string()))?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| RunError::KubeConfig(e.to_string()))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| RunError::KubeConfig(e.to_string()))?,
    })
}

pub(crate) fn kube_client(config: kube::Config) -> Result<Client, RunError> {
    let builder = kube::client::ClientBuilder::try_from(config)
        .map_err(|e| RunError::KubeConfig(e.to_string()))?;
    Ok(limit_requests(builder))
}

/// Requests in flight to the apiserver at most. The client speaks HTTP/1.1, one request
/// per connection: without a bound, a thousand reconciles reading Secrets or adding
/// finalizers at once open a thousand TLS connections (memory and handshakes on both
/// sides). A watch counts until its response starts, not while it streams.
pub const MAX_KUBE_REQUESTS: usize = 64;

/// Builds the client with at most [`MAX_KUBE_REQUESTS`] requests in flight; more wait.
pub fn limit_requests<S, B>(builder: kube::client::ClientBuilder<S>) -> Client
where
    S: tower::Service<http::Request<kube::client::Body>, Response = http::Response<B>>
        + Send
        + 'static,
    S::Future: Send + 'static,
    S::Error: Into<tower::BoxError>,
    B: http_body::Body<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<tower::BoxError>,
{
    builder
        .with_layer(&tower::limit::ConcurrencyLimitLayer::new(MAX_KUBE_REQUESTS))
        .build()
}

/// Reads the Juju connection (endpoints, CA, username, password) from a Secret.
pub async fn connection_options(client: &Client, secret: &str) -> Result<ConnectOptions, RunError> {
    let fail = |detail: String| RunError::Connection {
        secret: secret.to_owned(),
        detail,
    };
    let (namespace, name) = secret
        .split_once('/')
        .ok_or_else(|| fail("expected namespace/name".into()))?;
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let found = api
        .get_opt(name)
        .await
        .map_err(|e| fail(e.to_string()))?
        .ok_or_else(|| fail("not found".into()))?;
    options_from_secret(&found, secret)
}

/// The Juju connection held by a connection Secret (`data`, or `stringData` of a
/// manifest not yet applied); `what` names it in errors.
pub fn options_from_secret(found: &Secret, what: &str) -> Result<ConnectOptions, RunError> {
    let fail = |detail: String| RunError::Connection {
        secret: what.to_owned(),
        detail,
    };
    let mut data: std::collections::BTreeMap<String, Vec<u8>> = found
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.0.clone()))
        .collect();
    for (k, v) in found.string_data.iter().flatten() {
        data.insert(k.clone(), v.clone().into_bytes());
    }
    let field = |key: &str| -> Result<String, RunError> {
        let bytes = data
            .get(key)
            .ok_or_else(|| fail(format!("key {key:?} missing")))?;
        String::from_utf8(bytes.clone()).map_err(|_| fail(format!("key {key:?} is not UTF-8")))
    };
    let endpoints: Vec<String> = field("endpoints")?
        .split([',', '\n', ' '])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    if endpoints.is_empty() {
        return Err(fail("key \"endpoints\" lists no address".into()));
    }
    Ok(ConnectOptions::new(
        endpoints,
        field("ca-cert")?,
        field("username")?.trim(),
        Password::new(field("password")?),
    ))
}

/// Name of the Secret holding the key of the content MACs, beside the connection Secret.
pub const MAC_KEY_SECRET: &str = "juju-secrets-operator-mac-key";

/// The namespace of the connection Secret (`namespace/name`), where the operator keeps
/// its own objects: the MAC key, the ownership record and, by default, the leader Lease.
pub fn connection_namespace(connection_secret: &str) -> &str {
    connection_secret
        .split_once('/')
        .map_or("default", |(ns, _)| ns)
}

/// The key of the content MACs if it exists (a plan reads, never creates it).
pub async fn existing_mac_key(
    client: &Client,
    connection_secret: &str,
) -> Result<Option<Vec<u8>>, kube::Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), connection_namespace(connection_secret));
    Ok(api
        .get_opt(MAC_KEY_SECRET)
        .await?
        .and_then(|s| s.data)
        .and_then(|d| d.get("key").map(|k| k.0.clone()))
        .filter(|k| k.len() >= 32))
}

/// The key of the content MACs: 32 random bytes, created once and kept in a Secret in
/// the connection Secret's namespace, so MACs survive restarts and reveal nothing (a
/// key derived from a password would let anyone who knows some content test guesses).
pub(super) async fn mac_key(client: &Client, connection_secret: &str) -> Result<Vec<u8>, RunError> {
    let namespace = connection_namespace(connection_secret);
    let fail = |detail: String| RunError::Connection {
        secret: format!("{namespace}/{MAC_KEY_SECRET}"),
        detail,
    };
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    for _ in 0..2 {
        if let Some(found) = api
            .get_opt(MAC_KEY_SECRET)
            .await
            .map_err(|e| fail(e.to_string()))?
        {
            return found
                .data
                .and_then(|d| d.get("key").map(|k| k.0.clone()))
                .filter(|k| k.len() >= 32)
                .ok_or_else(|| fail("key \"key\" missing or shorter than 32 bytes".into()));
        }
        let mut key = vec![0u8; 32];
        rand::Rng::fill(&mut rand::rng(), key.as_mut_slice());
        let secret = Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(MAC_KEY_SECRET.into()),
                namespace: Some(namespace.into()),
                ..Default::default()
            },
            data: Some(std::collections::BTreeMap::from([(
                "key".to_owned(),
                k8s_openapi::ByteString(key),
            )])),
            type_: Some("Opaque".into()),
            ..Default::default()
        };
        match api.create(&kube::api::PostParams::default(), &secret).await {
            Ok(_) => continue,
            // Another replica created it first: read that one.
            Err(kube::Error::Api(e)) if e.code == 409 => continue,
            Err(e) => return Err(fail(e.to_string())),
        }
    }
    Err(fail("could not create or read the key".into()))
}

pub(super) async fn check_crd_installed(client: &Client) -> Result<(), RunError> {
    check_kind::<JujuSecret>(client).await?;
    check_kind::<JujuSecretGrant>(client).await?;
    check_kind::<crate::crd::backend::JujuSecretBackend>(client).await
}

async fn check_kind<K>(client: &Client) -> Result<(), RunError>
where
    K: Resource<DynamicType = ()> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let api: Api<K> = Api::all(client.clone());
    api.list_metadata(&ListParams::default().limit(1))
        .await
        .map(|_| ())
        .map_err(|e| RunError::CrdsMissing {
            crd: format!("{}.{}", K::plural(&()), K::group(&())),
            detail: e.to_string(),
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use kube::client::Body;

    use super::*;

    /// A thousand requests at once reach the apiserver at most MAX_KUBE_REQUESTS at a
    /// time, and all of them are answered.
    #[tokio::test]
    async fn the_client_bounds_requests_in_flight() {
        let now = Arc::new(AtomicUsize::new(0));
        let peak = Arc::new(AtomicUsize::new(0));
        let service = tower::service_fn({
            let (now, peak) = (now.clone(), peak.clone());
            move |_req: http::Request<Body>| {
                let (now, peak) = (now.clone(), peak.clone());
                async move {
                    let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(n, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    now.fetch_sub(1, Ordering::SeqCst);
                    let body = serde_json::to_vec(&serde_json::json!({
                        "apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": "c", "namespace": "ns"}
                    }))
                    .unwrap();
                    Ok::<_, std::convert::Infallible>(
                        http::Response::builder().body(Body::from(body)).unwrap(),
                    )
                }
            }
        });
        let client = limit_requests(kube::client::ClientBuilder::new(service, "ns"));
        let api: Api<k8s_openapi::api::core::v1::ConfigMap> = Api::namespaced(client, "ns");
        let gets = (0..1000).map(|_| api.get("c"));
        let answered = futures::future::join_all(gets).await;
        assert!(answered.iter().all(Result::is_ok));
        let peak = peak.load(Ordering::SeqCst);
        assert!(peak <= MAX_KUBE_REQUESTS, "{peak} requests in flight");
        assert!(
            peak >= MAX_KUBE_REQUESTS / 2,
            "the limit serialised too much: {peak}"
        );
    }
}
