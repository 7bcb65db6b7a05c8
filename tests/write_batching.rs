//! The per-model write batcher against the in-process emulator: writes that arrive
//! together share one bulk call; while a model's queue is busy (a cold start, a mass
//! edit) a batch waits longer so it fills; an isolated write goes out at once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_share_bulk_calls_and_busy_queues_fill_longer_batches() {
    let (emulator, _dir, juju, model) = setup().await;
    let batcher = Arc::new(WriteBatcher::new(juju));
    let calls = || emulator.call_count("Secrets", "CreateSecrets");

    // Fifty creates at once: one or two bulk calls, not fifty.
    let before = calls();
    let mut tasks = Vec::new();
    for i in 0..50 {
        let (b, m) = (batcher.clone(), model.clone());
        tasks.push(tokio::spawn(async move {
            create(&b, &m, &format!("burst-{i}")).await
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let burst = calls() - before;
    assert!(
        burst <= 2,
        "50 concurrent creates took {burst} CreateSecrets calls"
    );

    // Busy (a batch of several writes went out just now): a write 200 ms after another
    // joins its batch.
    let before = calls();
    let first = {
        let (b, m) = (batcher.clone(), model.clone());
        tokio::spawn(async move { create(&b, &m, "busy-a").await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    create(&batcher, &model, "busy-b").await;
    first.await.unwrap();
    assert_eq!(
        calls() - before,
        1,
        "while busy, writes 200 ms apart should share one call"
    );

    // Busy, but the burst is over: a write 2 s after the last one does not wait out the
    // busy linger with it (the queue was quiet for 1.5 s).
    let mut tasks = Vec::new();
    for i in 0..5 {
        let (b, m) = (batcher.clone(), model.clone());
        tasks.push(tokio::spawn(async move {
            create(&b, &m, &format!("burst2-{i}")).await
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let before = calls();
    let first = {
        let (b, m) = (batcher.clone(), model.clone());
        tokio::spawn(async move { create(&b, &m, "quiet-a").await })
    };
    tokio::time::sleep(Duration::from_millis(2000)).await;
    create(&batcher, &model, "quiet-b").await;
    first.await.unwrap();
    assert_eq!(
        calls() - before,
        2,
        "a busy batch waited out the whole linger after the burst was over"
    );

    // Idle again: an isolated write is not held for the busy linger: a second write
    // 200 ms later finds it sent, and goes in a call of its own. Writes one after
    // another (one-write batches) never make the queue busy.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let before = calls();
    let first = {
        let (b, m) = (batcher.clone(), model.clone());
        tokio::spawn(async move { create(&b, &m, "idle-a").await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    create(&batcher, &model, "idle-b").await;
    first.await.unwrap();
    assert_eq!(
        calls() - before,
        2,
        "an isolated write was held back (the busy linger applied to an idle queue)"
    );
    let before = calls();
    for i in 0..3 {
        create(&batcher, &model, &format!("sequential-{i}")).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first = {
        let (b, m) = (batcher.clone(), model.clone());
        tokio::spawn(async move { create(&b, &m, "sequential-a").await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    create(&batcher, &model, "sequential-b").await;
    first.await.unwrap();
    assert_eq!(
        calls() - before,
        5,
        "writes one after another made the queue busy"
    );
}
