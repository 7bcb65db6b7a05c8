//! The per-model write batcher against the in-process emulator: writes that arrive
//! together share one bulk call, writes queued while a call is in flight go out together
//! in the next one, and writes made one after another each go out on their own.
//!
//! These checks rest on order, not on the clock: how long a batch lingers (briefly when
//! the queue is idle, longer while busy) is the batcher's `Pace`, unit-tested with
//! explicit instants in `controller::juju_state`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use futures::future::join_all;

use juju_client::{ConnectOptions, JujuClient, NewSecret, Password, SecretContent};
use juju_emulator::{Emulator, EmulatorConfig};
use juju_secrets_operator::controller::juju_state::WriteBatcher;

async fn setup() -> (Emulator, tempfile::TempDir, JujuClient, String) {
    let dir = tempfile::tempdir().unwrap();
    let emulator = Emulator::start(EmulatorConfig::new(dir.path()))
        .await
        .unwrap();
    let info = emulator.connection_info().clone();
    let model = info.models[0].uuid.clone();
    let admin = info.users.iter().find(|u| u.username == "admin").unwrap();
    let mut options = ConnectOptions::new(
        vec![info.endpoint.clone()],
        info.ca_cert.clone(),
        "admin",
        Password::new(admin.password.clone()),
    );
    options.call_timeout = Duration::from_secs(10);
    let juju = JujuClient::new(options).unwrap();
    (emulator, dir, juju, model)
}

fn secret(label: &str) -> NewSecret {
    let mut content = SecretContent::new();
    content.insert("password", "value");
    NewSecret {
        label: Some(label.to_owned()),
        description: None,
        content,
    }
}

async fn create(batcher: &WriteBatcher, model: &str, label: &str) {
    let uri = batcher.create(model, secret(label)).await.unwrap();
    assert!(uri.is_ok(), "{label}: {uri:?}");
}

/// Starts `n` creates without yielding: on the test's single-threaded runtime all of them
/// are queued before the batcher's task runs at all.
async fn creates_at_once(batcher: &WriteBatcher, model: &str, prefix: &str, n: usize) {
    let labels: Vec<String> = (0..n).map(|i| format!("{prefix}-{i}")).collect();
    join_all(labels.iter().map(|l| create(batcher, model, l))).await;
}

#[tokio::test]
async fn writes_queued_together_share_one_bulk_call() {
    let (emulator, _dir, juju, model) = setup().await;
    let batcher = WriteBatcher::new(juju);
    let calls = || emulator.call_count("Secrets", "CreateSecrets");
    let before = calls();
    creates_at_once(&batcher, &model, "burst", 50).await;
    assert_eq!(calls() - before, 1, "50 creates queued together");
    // The queue is busy now; a second burst queued together still takes one call.
    let before = calls();
    creates_at_once(&batcher, &model, "again", 20).await;
    assert_eq!(calls() - before, 1, "20 creates queued together");
}

#[tokio::test]
async fn writes_queued_while_a_call_is_in_flight_go_out_together_next() {
    let (emulator, _dir, juju, model) = setup().await;
    let batcher = Arc::new(WriteBatcher::new(juju));
    let calls = || emulator.call_count("Secrets", "CreateSecrets");
    // The first call is held in the emulator (a slow controller) while ten more
    // creates are queued.
    emulator.faults().set_delay_for(
        Some("Secrets"),
        Some("CreateSecrets"),
        Duration::from_secs(3),
    );
    let before = calls();
    let first = {
        let (b, m) = (batcher.clone(), model.clone());
        tokio::spawn(async move { create(&b, &m, "first").await })
    };
    while calls() == before {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    emulator
        .faults()
        .set_delay_for(Some("Secrets"), Some("CreateSecrets"), Duration::ZERO);
    creates_at_once(&batcher, &model, "queued", 10).await;
    first.await.unwrap();
    assert_eq!(
        calls() - before,
        2,
        "one call for the first create, one for the ten queued behind it"
    );
}

#[tokio::test]
async fn writes_one_after_another_each_go_out_on_their_own() {
    let (emulator, _dir, juju, model) = setup().await;
    let batcher = WriteBatcher::new(juju);
    let calls = || emulator.call_count("Secrets", "CreateSecrets");
    let before = calls();
    for i in 0..5 {
        create(&batcher, &model, &format!("sequential-{i}")).await;
        assert_eq!(calls() - before, i + 1, "write {i} waited for company");
    }
}
