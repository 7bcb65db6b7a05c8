//! The custom resources of group `secrets.juju.is`, version `v1alpha1`.
//!
//! One module per kind: [`secret::JujuSecret`], [`grant::JujuSecretGrant`] and
//! [`backend::JujuSecretBackend`]. Field names are public API (they live in users' Git
//! repositories); every field's doc comment is its `kubectl explain` text. What the
//! schema can say is said there, as OpenAPI constraints and CEL rules
//! (`x-kubernetes-validations`); the controllers check the same rules again before any
//! Juju call, because an apiserver older than 1.25 does not run CEL.

pub mod backend;
pub mod condition;
pub mod grant;
pub mod secret;

use kube::CustomResourceExt;

/// API group of every kind.
pub const GROUP: &str = "secrets.juju.is";
/// API version of every kind.
pub const VERSION: &str = "v1alpha1";

/// The CRDs of every kind, in a stable order.
pub fn all()
-> Vec<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>
{
    vec![
        backend::JujuSecretBackend::crd(),
        grant::JujuSecretGrant::crd(),
        secret::JujuSecret::crd(),
    ]
}

/// The CRDs as `(file name, YAML)` pairs: the content of `crds/`.
pub fn files() -> Result<Vec<(String, String)>, serde_yaml_ng::Error> {
    all()
        .into_iter()
        .map(|crd| {
            let file = format!("{}.yaml", crd.metadata.name.clone().unwrap_or_default());
            serde_yaml_ng::to_string(&crd).map(|yaml| (file, yaml))
        })
        .collect()
}
