//! What the controllers' unit tests share.

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};

use kube::client::Body;

/// A fake apiserver that answers every request with `body` and records each request as
/// `METHOD path` in `seen`.
pub(crate) fn fake_client(seen: Arc<Mutex<Vec<String>>>, body: serde_json::Value) -> kube::Client {
    let body = serde_json::to_vec(&body).unwrap();
    let service = tower::service_fn(move |req: http::Request<Body>| {
        let (seen, body) = (seen.clone(), body.clone());
        async move {
            seen.lock()
                .unwrap()
                .push(format!("{} {}", req.method(), req.uri().path()));
            Ok::<_, std::convert::Infallible>(
                http::Response::builder().body(Body::from(body)).unwrap(),
            )
        }
    });
    kube::Client::new(service, "default")
}
