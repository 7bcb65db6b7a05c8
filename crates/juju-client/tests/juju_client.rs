//! The Juju client against the emulator: every typed call, the error-code mapping,
//! reconnection, timeouts and many requests in flight on one connection.
//!
//! Every emulator here logs its frames under `target/tmp/frame-logs/`; the Python suite
//! validates those frames against Juju's facade schemas.
// Test helpers fail the test by panicking, like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use juju_client::facade::model_config::AUTO_BACKEND;
use juju_client::{
    BackendConfig, BackendUpdate, ConnectOptions, ContentError, Error, ErrorCode, JujuClient,
    NewBackend, NewSecret, Password, SecretContent, SecretFilter, SecretRemoval, SecretSelector,
    SecretUpdate,
};
use juju_emulator::{Emulator, EmulatorConfig};

struct Env {
    emulator: Emulator,
    _dir: tempfile::TempDir,
    model_uuid: String,
}

async fn start(test: &str) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let mut config = EmulatorConfig::new(dir.path());
    let logs = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("frame-logs");
    std::fs::create_dir_all(&logs).unwrap();
    let log = logs.join(format!("{test}.jsonl"));
    let _ = std::fs::remove_file(&log);
    config.frame_log = Some(log);
    let emulator = Emulator::start(config).await.unwrap();
    let model_uuid = emulator.connection_info().models[0].uuid.clone();
    Env {
        emulator,
        _dir: dir,
        model_uuid,
    }
}

impl Env {
    fn options(&self, user: &str) -> ConnectOptions {
        let info = self.emulator.connection_info();
        let password = info
            .users
            .iter()
            .find(|u| u.username == user)
            .map(|u| u.password.clone())
            .unwrap();
        let mut options = ConnectOptions::new(
            vec![info.endpoint.clone()],
            info.ca_cert.clone(),
            user,
            Password::new(password),
        );
        options.call_timeout = Duration::from_secs(10);
        options.backoff.initial = Duration::from_millis(50);
        options.backoff.max = Duration::from_millis(500);
        options
    }

    fn client(&self, user: &str) -> JujuClient {
        JujuClient::new(self.options(user)).unwrap()
    }
}

fn content(pairs: &[(&str, &str)]) -> SecretContent {
    let mut c = SecretContent::new();
    for (k, v) in pairs {
        c.insert(*k, *v);
    }
    c
}

fn new_secret(label: &str, pairs: &[(&str, &str)]) -> NewSecret {
    NewSecret {
        label: Some(label.to_owned()),
        description: None,
        content: content(pairs),
    }
}

#[tokio::test]
async fn models_resolve_by_name_qualified_name_and_uuid() {
    let env = start("models_resolve").await;
    let client = env.client("admin");
    let by_name = client.resolve_model("dev").await.unwrap();
    assert_eq!(by_name.uuid, env.model_uuid);
    assert_eq!(by_name.owner, "admin");
    assert_eq!(client.resolve_model("admin/dev").await.unwrap(), by_name);
    assert_eq!(
        client.resolve_model(&env.model_uuid).await.unwrap(),
        by_name
    );
    assert!(matches!(
        client.resolve_model("nosuch").await,
        Err(Error::ModelNotFound { .. })
    ));
    assert!(matches!(
        client.resolve_model("bob/dev").await,
        Err(Error::ModelNotFound { .. })
    ));
    let (info, agent_version) = client.model_info(&env.model_uuid).await.unwrap();
    assert_eq!(info, by_name);
    assert!(agent_version.is_some_and(|v| v.starts_with("3.6.")));
}

#[tokio::test]
async fn secret_lifecycle_create_update_rename_prune_remove() {
    let env = start("secret_lifecycle").await;
    let client = env.client("admin");
    let m = env.model_uuid.as_str();

    let created = client
        .create_secrets(
            m,
            &[new_secret(
                "db-creds",
                &[("username", "admin"), ("password", "hunter2")],
            )],
        )
        .await
        .unwrap();
    let uri = created.into_iter().next().unwrap().unwrap();

    let listed = client
        .list_secrets(m, &SecretFilter::user_secrets(m), true)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    let s = &listed[0];
    assert_eq!(s.uri, uri);
    assert_eq!(s.label.as_deref(), Some("db-creds"));
    assert_eq!(s.owner_tag, format!("model-{m}"));
    assert_eq!(s.latest_revision, 1);
    let written = content(&[("username", "admin"), ("password", "hunter2")]);
    assert_eq!(s.value.clone().unwrap().unwrap(), written);
    assert_eq!(
        s.latest_revision_checksum.as_deref(),
        Some(written.juju_checksum().as_str())
    );

    // New content by URI: revision 2. Identical content again: no new revision.
    let rotated = content(&[("username", "admin"), ("password", "rotated")]);
    let mut update = SecretUpdate::of(SecretSelector::Uri(uri.clone()));
    update.content = Some(rotated.clone());
    client.update_secrets(m, &[update.clone()]).await.unwrap()[0]
        .clone()
        .unwrap();
    client.update_secrets(m, &[update]).await.unwrap()[0]
        .clone()
        .unwrap();
    let s = &client
        .list_secrets(
            m,
            &SecretFilter {
                uri: Some(uri.clone()),
                ..Default::default()
            },
            true,
        )
        .await
        .unwrap()[0];
    assert_eq!(s.latest_revision, 2);
    assert_eq!(s.value.clone().unwrap().unwrap(), rotated);
    assert_eq!(
        s.revisions.iter().map(|r| r.revision).collect::<Vec<_>>(),
        vec![1, 2]
    );

    // Rename and describe by label: same URI, no new revision.
    let mut rename = SecretUpdate::of(SecretSelector::Label("db-creds".into()));
    rename.label = Some("db-primary".into());
    rename.description = Some("primary database".into());
    client.update_secrets(m, &[rename]).await.unwrap()[0]
        .clone()
        .unwrap();
    let s = &client
        .list_secrets(
            m,
            &SecretFilter {
                label: Some("db-primary".into()),
                ..Default::default()
            },
            false,
        )
        .await
        .unwrap()[0];
    assert_eq!(s.uri, uri);
    assert_eq!(s.latest_revision, 2);
    assert_eq!(s.description.as_deref(), Some("primary database"));
    assert!(s.value.is_none());

    // Auto-prune on with new content drops the older revisions in the same call.
    let mut prune = SecretUpdate::of(SecretSelector::Uri(uri.clone()));
    prune.auto_prune = Some(true);
    prune.content = Some(content(&[("username", "admin"), ("password", "third")]));
    client.update_secrets(m, &[prune]).await.unwrap()[0]
        .clone()
        .unwrap();
    let s = &client
        .list_secrets(
            m,
            &SecretFilter {
                uri: Some(uri.clone()),
                ..Default::default()
            },
            false,
        )
        .await
        .unwrap()[0];
    assert_eq!(s.latest_revision, 3);
    assert_eq!(
        s.revisions.iter().map(|r| r.revision).collect::<Vec<_>>(),
        vec![3]
    );

    // Removing the secret frees its name; removing it again is "not found".
    let removal = SecretRemoval {
        secret: SecretSelector::Uri(uri.clone()),
        revisions: None,
    };
    client
        .remove_secrets(m, std::slice::from_ref(&removal))
        .await
        .unwrap()[0]
        .clone()
        .unwrap();
    assert!(
        client
            .list_secrets(m, &SecretFilter::user_secrets(m), false)
            .await
            .unwrap()
            .is_empty()
    );
    let again = client.remove_secrets(m, &[removal]).await.unwrap()[0]
        .clone()
        .unwrap_err();
    assert_eq!(again.code, ErrorCode::NotFound);
    assert_eq!(
        again.message,
        format!("secret \"{}\" not found", uri.short())
    );
}

#[tokio::test]
async fn removing_some_revisions_keeps_the_rest() {
    let env = start("remove_revisions").await;
    let client = env.client("admin");
    let m = env.model_uuid.as_str();
    let uri = client
        .create_secrets(m, &[new_secret("tls", &[("cert", "one")])])
        .await
        .unwrap()[0]
        .clone()
        .unwrap();
    for v in ["two", "three"] {
        let mut u = SecretUpdate::of(SecretSelector::Label("tls".into()));
        u.content = Some(content(&[("cert", v)]));
        client.update_secrets(m, &[u]).await.unwrap()[0]
            .clone()
            .unwrap();
    }
    let removal = SecretRemoval {
        secret: SecretSelector::Label("tls".into()),
        revisions: Some(vec![1, 2]),
    };
    client.remove_secrets(m, &[removal]).await.unwrap()[0]
        .clone()
        .unwrap();
    let s = &client
        .list_secrets(
            m,
            &SecretFilter {
                uri: Some(uri),
                ..Default::default()
            },
            false,
        )
        .await
        .unwrap()[0];
    assert_eq!(s.latest_revision, 3);
    assert_eq!(
        s.revisions.iter().map(|r| r.revision).collect::<Vec<_>>(),
        vec![3]
    );
}

#[tokio::test]
async fn bulk_create_reports_each_item_and_duplicates_are_already_exists() {
    let env = start("bulk_create").await;
    let client = env.client("admin");
    let m = env.model_uuid.as_str();
    let batch: Vec<NewSecret> = (0..50)
        .map(|i| new_secret(&format!("bulk-{i}"), &[("value", "x")]))
        .collect();
    let results = client.create_secrets(m, &batch).await.unwrap();
    assert_eq!(results.len(), 50);
    assert!(results.iter().all(Result::is_ok));
    assert_eq!(
        client.stats().get("Secrets", "CreateSecrets"),
        1,
        "one round trip for the batch"
    );

    let results = client
        .create_secrets(
            m,
            &[
                new_secret("bulk-7", &[("value", "y")]),
                new_secret("fresh", &[("value", "z")]),
            ],
        )
        .await
        .unwrap();
    let dup = results[0].clone().unwrap_err();
    assert_eq!(dup.code, ErrorCode::AlreadyExists);
    assert_eq!(dup.message, "secret with name \"bulk-7\" already exists");
    assert!(results[1].is_ok());
}

#[tokio::test]
async fn content_rules_are_checked_before_anything_is_sent() {
    let env = start("content_rules").await;
    let client = env.client("admin");
    let m = env.model_uuid.as_str();
    let bad_key = client
        .create_secrets(m, &[new_secret("bad", &[("Bad_Key", "v")])])
        .await;
    assert!(matches!(
        bad_key,
        Err(Error::InvalidContent(ContentError::InvalidKey { .. }))
    ));
    let mut big = SecretContent::new();
    big.insert("blob", vec![b'x'; 800_000]);
    let too_big = client
        .create_secrets(
            m,
            &[NewSecret {
                label: Some("big".into()),
                description: None,
                content: big,
            }],
        )
        .await;
    assert!(matches!(
        too_big,
        Err(Error::InvalidContent(ContentError::ValueTooLarge { .. }))
    ));
    let empty = client
        .create_secrets(
            m,
            &[NewSecret {
                label: Some("e".into()),
                description: None,
                content: SecretContent::new(),
            }],
        )
        .await;
    assert!(matches!(
        empty,
        Err(Error::InvalidContent(ContentError::Empty))
    ));
    assert_eq!(env.emulator.call_count("Secrets", "CreateSecrets"), 0);
}

#[tokio::test]
async fn grants_per_application_and_revoke_is_idempotent() {
    let env = start("grants").await;
    let client = env.client("admin");
    let m = env.model_uuid.as_str();
    let uri = client
        .create_secrets(m, &[new_secret("shared", &[("token", "t0k")])])
        .await
        .unwrap()[0]
        .clone()
        .unwrap();
    let sel = SecretSelector::Uri(uri.clone());
    let apps = vec!["mysql".to_owned(), "nosuchapp".to_owned()];
    let results = client.grant_secret(m, &sel, &apps).await.unwrap();
    assert!(results[0].is_ok());
    let missing = results[1].clone().unwrap_err();
    assert_eq!(missing.code, ErrorCode::NotFound);
    assert_eq!(
        missing.message,
        format!(
            "cannot change access to \"{}\" for \"nosuchapp\": invalid subject reference: saas application \"nosuchapp\" not found",
            uri.short()
        )
    );
    let s = &client
        .list_secrets(
            m,
            &SecretFilter {
                uri: Some(uri.clone()),
                ..Default::default()
            },
            false,
        )
        .await
        .unwrap()[0];
    assert_eq!(
        s.access
            .iter()
            .filter_map(|a| a.application())
            .collect::<Vec<_>>(),
        vec!["mysql"]
    );
    assert_eq!(s.access[0].scope_tag, format!("model-{m}"));

    // An application added later can be granted.
    env.emulator.add_application(m, "redis");
    let results = client
        .grant_secret(m, &sel, &["redis".to_owned()])
        .await
        .unwrap();
    assert!(results[0].is_ok());

    let results = client
        .revoke_secret(
            m,
            &SecretSelector::Label("shared".into()),
            &["mysql".into(), "redis".into(), "never-granted".into()],
        )
        .await
        .unwrap();
    assert!(results.iter().all(Result::is_ok));
    let s = &client
        .list_secrets(
            m,
            &SecretFilter {
                uri: Some(uri),
                ..Default::default()
            },
            false,
        )
        .await
        .unwrap()[0];
    assert!(s.access.is_empty());

    // A grant on a secret that does not exist fails the whole call.
    let err = client
        .grant_secret(m, &SecretSelector::Label("nope".into()), &["mysql".into()])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&ErrorCode::NotFound));
}

fn vault_config(token: &str) -> BackendConfig {
    let mut c = BackendConfig::default();
    c.insert("endpoint", "https://vault.example:8200");
    c.insert("token", token);
    c
}

#[tokio::test]
async fn secret_backends_add_list_update_assign_and_remove() {
    let env = start("backends").await;
    let client = env.client("admin");
    let m = env.model_uuid.as_str();
    let controller_uuid = env.emulator.connection_info().controller_uuid.clone();

    let added = client
        .add_secret_backends(&[NewBackend {
            name: "myvault".into(),
            backend_type: "vault".into(),
            token_rotate_interval: Some(Duration::from_secs(86_400)),
            config: vault_config("s.first-token"),
        }])
        .await
        .unwrap();
    added[0].clone().unwrap();

    let listed = client.list_secret_backends(&[], false).await.unwrap();
    let names: Vec<&str> = listed.iter().map(|b| b.name.as_str()).collect();
    assert!(
        names.contains(&"internal") && names.contains(&"myvault"),
        "{names:?}"
    );
    let ids: Vec<&str> = listed.iter().map(|b| b.id.as_str()).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(ids, sorted, "sorted by id");
    let internal = listed.iter().find(|b| b.name == "internal").unwrap();
    assert_eq!(internal.id, controller_uuid);
    assert_eq!(internal.backend_type, "controller");
    let vault = listed.iter().find(|b| b.name == "myvault").unwrap();
    assert_eq!(vault.status, "active");
    assert_eq!(
        vault.token_rotate_interval,
        Some(Duration::from_secs(86_400))
    );
    assert!(
        vault.config.get("token").is_none(),
        "token hidden without reveal"
    );
    let revealed = client
        .list_secret_backends(&["myvault".into()], true)
        .await
        .unwrap();
    assert_eq!(revealed.len(), 1);
    assert_eq!(
        revealed[0].config.get("token").and_then(|v| v.as_str()),
        Some("s.first-token")
    );

    // Update the token; a bad rotate interval is refused with Juju's message.
    let mut cfg = BackendConfig::default();
    cfg.insert("token", "s.second-token");
    let update = BackendUpdate {
        name: "myvault".into(),
        config: Some(cfg),
        ..Default::default()
    };
    client.update_secret_backends(&[update]).await.unwrap()[0]
        .clone()
        .unwrap();
    let revealed = client
        .list_secret_backends(&["myvault".into()], true)
        .await
        .unwrap();
    assert_eq!(
        revealed[0].config.get("token").and_then(|v| v.as_str()),
        Some("s.second-token")
    );
    let bad = BackendUpdate {
        name: "myvault".into(),
        token_rotate_interval: Some(Duration::from_secs(600)),
        ..Default::default()
    };
    let err = client.update_secret_backends(&[bad]).await.unwrap()[0]
        .clone()
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::NotValid);
    assert_eq!(
        err.message,
        "token rotate interval \"10m0s\" less than 1h not valid"
    );

    // Point the model at the vault; new secrets land there.
    assert_eq!(client.secret_backend(m).await.unwrap(), AUTO_BACKEND);
    client.set_secret_backend(m, "myvault").await.unwrap();
    assert_eq!(client.secret_backend(m).await.unwrap(), "myvault");
    let uri = client
        .create_secrets(m, &[new_secret("in-vault", &[("token", "abc")])])
        .await
        .unwrap()[0]
        .clone()
        .unwrap();
    let s = &client
        .list_secrets(
            m,
            &SecretFilter {
                uri: Some(uri),
                ..Default::default()
            },
            false,
        )
        .await
        .unwrap()[0];
    assert_eq!(s.revisions[0].backend_name.as_deref(), Some("myvault"));
    let vault = &client
        .list_secret_backends(&["myvault".into()], false)
        .await
        .unwrap()[0];
    assert_eq!(vault.num_secrets, 1);

    // In use: removal refused unless forced.
    let err = client
        .remove_secret_backends(&[("myvault".into(), false)])
        .await
        .unwrap()[0]
        .clone()
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::NotSupported);
    assert_eq!(
        err.message,
        "removing backend with 1 stored secret revisions not supported"
    );

    // Back to auto moves the revisions home; then removal needs no force.
    client.unset_secret_backend(m).await.unwrap();
    assert_eq!(client.secret_backend(m).await.unwrap(), AUTO_BACKEND);
    client.set_secret_backend(m, AUTO_BACKEND).await.unwrap();
    client
        .remove_secret_backends(&[("myvault".into(), false)])
        .await
        .unwrap()[0]
        .clone()
        .unwrap();
    // Unknown names succeed.
    client
        .remove_secret_backends(&[("myvault".into(), false)])
        .await
        .unwrap()[0]
        .clone()
        .unwrap();

    // The reserved names get Juju's literal message.
    let err = client
        .remove_secret_backends(&[("internal".into(), false)])
        .await
        .unwrap()[0]
        .clone()
        .unwrap_err();
    assert_eq!(err.message, "backend %!q(MISSING) not valid");
}

#[tokio::test]
async fn a_misspelled_token_key_never_comes_back_in_an_error() {
    let env = start("misspelled_token").await;
    let client = env.client("admin");
    let mut config = BackendConfig::default();
    config.insert("endpoint", "https://vault.example:8200");
    config.insert("Token", "s.leaky-token-value");
    let err = client
        .add_secret_backends(&[NewBackend {
            name: "typo".into(),
            backend_type: "vault".into(),
            token_rotate_interval: None,
            config,
        }])
        .await
        .unwrap()[0]
        .clone()
        .unwrap_err();
    assert!(err.message.contains("unknown key \"Token\""), "{err}");
    assert!(!err.to_string().contains("leaky"), "{err}");
    assert!(!format!("{err:?}").contains("leaky"));
}

#[tokio::test]
async fn an_empty_revision_list_is_refused_before_sending() {
    let env = start("empty_revisions").await;
    let client = env.client("admin");
    let m = env.model_uuid.as_str();
    client
        .create_secrets(m, &[new_secret("keep-me", &[("value", "v")])])
        .await
        .unwrap();
    let removal = SecretRemoval {
        secret: SecretSelector::Label("keep-me".into()),
        revisions: Some(vec![]),
    };
    assert!(matches!(
        client.remove_secrets(m, &[removal]).await,
        Err(Error::Config(_))
    ));
    assert_eq!(
        client
            .list_secrets(m, &SecretFilter::user_secrets(m), false)
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn an_unreachable_backend_is_reported_and_refused() {
    let env = start("unreachable_backend").await;
    let client = env.client("admin");
    env.emulator
        .faults()
        .set_backend_reachable("offline", false);
    let new = NewBackend {
        name: "offline".into(),
        backend_type: "vault".into(),
        token_rotate_interval: None,
        config: vault_config("s.tok"),
    };
    let err = client
        .add_secret_backends(std::slice::from_ref(&new))
        .await
        .unwrap()[0]
        .clone()
        .unwrap_err();
    assert!(err.message.contains("not reachable"), "{err}");
    env.emulator.faults().set_backend_reachable("offline", true);
    client.add_secret_backends(&[new]).await.unwrap()[0]
        .clone()
        .unwrap();
    env.emulator
        .faults()
        .set_backend_reachable("offline", false);
    let listed = client
        .list_secret_backends(&["offline".into()], false)
        .await
        .unwrap();
    assert_eq!(listed[0].status, "error");
    assert!(
        listed[0]
            .message
            .as_deref()
            .is_some_and(|m| m.contains("not reachable"))
    );
}

#[tokio::test]
async fn a_reader_can_list_but_not_write() {
    let env = start("reader").await;
    let admin = env.client("admin");
    let reader = env.client("reader");
    let m = env.model_uuid.as_str();
    admin
        .create_secrets(m, &[new_secret("visible", &[("value", "v1")])])
        .await
        .unwrap();
    let listed = reader
        .list_secrets(m, &SecretFilter::user_secrets(m), false)
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    let err = reader
        .create_secrets(m, &[new_secret("nope", &[("value", "v")])])
        .await
        .unwrap_err();
    assert!(err.is_unauthorized(), "{err}");
    let err = reader
        .list_secrets(m, &SecretFilter::user_secrets(m), true)
        .await
        .unwrap_err();
    assert!(err.is_unauthorized(), "{err}");
    let err = reader
        .add_secret_backends(&[NewBackend {
            name: "v".into(),
            backend_type: "vault".into(),
            token_rotate_interval: None,
            config: vault_config("t"),
        }])
        .await
        .unwrap_err();
    assert!(err.is_unauthorized(), "{err}");
}

#[tokio::test]
async fn bad_password_and_unknown_model_fail_login_with_their_codes() {
    let env = start("login_errors").await;
    let mut options = env.options("admin");
    options.password = Password::new("wrong");
    let client = JujuClient::new(options).unwrap();
    let connection = client.controller().unwrap();
    let err = client.list_models().await.unwrap_err();
    match &err {
        Error::Login { source, .. } => {
            assert_eq!(source.code, ErrorCode::Unauthorized);
            assert_eq!(source.message, "invalid entity name or password");
        }
        other => panic!("expected a login error, got {other}"),
    }
    assert!(
        !err.to_string().contains("wrong"),
        "the password never shows: {err}"
    );
    // A refused login is not retried in the background: the connection that tried has
    // stopped for good (its task ended); the next call opens a new one and logs in once.
    let logins = env.emulator.call_count("Admin", "Login");
    assert!(
        connection.is_finished(),
        "the refused connection still runs"
    );
    assert!(client.list_models().await.is_err());
    assert_eq!(env.emulator.call_count("Admin", "Login"), logins + 1);

    let client = env.client("admin");
    let unknown = "00000000-0000-4000-8000-000000000000";
    let err = client
        .list_secrets(unknown, &SecretFilter::default(), false)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(&ErrorCode::ModelNotFound), "{err}");
}

#[tokio::test]
async fn error_codes_from_juju_map_to_the_enum() {
    let env = start("error_codes").await;
    let client = env.client("admin");
    let m = env.model_uuid.as_str();
    client
        .list_secrets(m, &SecretFilter::default(), false)
        .await
        .unwrap();
    for (wire, code) in [
        ("not found", ErrorCode::NotFound),
        ("already exists", ErrorCode::AlreadyExists),
        ("unauthorized access", ErrorCode::Unauthorized),
        ("not supported", ErrorCode::NotSupported),
        ("not valid", ErrorCode::NotValid),
        ("not implemented", ErrorCode::NotImplemented),
        ("bad request", ErrorCode::BadRequest),
        ("", ErrorCode::Empty),
        ("quota exceeded", ErrorCode::Other("quota exceeded".into())),
    ] {
        env.emulator
            .faults()
            .fail_next("Secrets", "ListSecrets", 1, wire, "injected failure");
        let err = client
            .list_secrets(m, &SecretFilter::default(), false)
            .await
            .unwrap_err();
        match err {
            Error::Api {
                facade,
                method,
                source,
            } => {
                assert_eq!((facade, method), ("Secrets", "ListSecrets"));
                assert_eq!(source.code, code);
                assert_eq!(source.message, "injected failure");
            }
            other => panic!("expected an API error, got {other}"),
        }
    }
    // The fault was used up: the next call works.
    client
        .list_secrets(m, &SecretFilter::default(), false)
        .await
        .unwrap();
}

#[tokio::test]
async fn the_client_reconnects_after_dropped_connections() {
    let env = start("reconnect").await;
    let client = env.client("admin");
    let m = env.model_uuid.as_str();
    client
        .create_secrets(m, &[new_secret("before-drop", &[("value", "v")])])
        .await
        .unwrap();
    let logins_before = env.emulator.call_count("Admin", "Login");
    for _ in 0..3 {
        env.emulator.faults().drop_connections();
        // Calls made while the connection is re-established either fail as lost or
        // succeed; within a bounded number of tries they succeed.
        let mut ok = false;
        for _ in 0..50 {
            match client
                .list_secrets(m, &SecretFilter::user_secrets(m), false)
                .await
            {
                Ok(listed) => {
                    assert_eq!(listed.len(), 1);
                    ok = true;
                    break;
                }
                Err(e) => {
                    assert!(e.is_transient(), "unexpected error {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
        assert!(ok, "no recovery after a dropped connection");
    }
    assert!(
        env.emulator.call_count("Admin", "Login") >= logins_before + 3,
        "logged in again"
    );
    client.list_models().await.unwrap();
}

#[tokio::test]
async fn no_call_goes_out_once_the_fence_has_closed() {
    let env = start("fence").await;
    let mut options = env.options("admin");
    let fence = juju_client::Fence::new(tokio::time::Instant::now() + Duration::from_secs(60));
    options.fence = Some(fence.clone());
    let client = JujuClient::new(options).unwrap();
    let m = env.model_uuid.as_str();
    client
        .list_secrets(m, &SecretFilter::default(), false)
        .await
        .unwrap();
    let listed = env.emulator.call_count("Secrets", "ListSecrets");
    assert_eq!(listed, 1);
    // Closed: calls fail at once and reach nothing.
    fence.open_until(tokio::time::Instant::now());
    let err = client
        .create_secrets(m, &[new_secret("fenced", &[("token", "value")])])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Fenced {
                facade: "Secrets",
                method: "CreateSecrets"
            }
        ),
        "{err}"
    );
    assert_eq!(env.emulator.call_count("Secrets", "CreateSecrets"), 0);
    assert!(
        client
            .list_secrets(m, &SecretFilter::default(), false)
            .await
            .is_err()
    );
    assert_eq!(env.emulator.call_count("Secrets", "ListSecrets"), listed);
    // Opened again (a renewal): calls go out.
    fence.open_until(tokio::time::Instant::now() + Duration::from_secs(60));
    client
        .list_secrets(m, &SecretFilter::default(), false)
        .await
        .unwrap();
}

#[tokio::test]
async fn calls_time_out_and_the_connection_stays_usable() {
    let env = start("timeouts").await;
    let mut options = env.options("admin");
    options.call_timeout = Duration::from_millis(300);
    let client = JujuClient::new(options).unwrap();
    let m = env.model_uuid.as_str();
    client
        .list_secrets(m, &SecretFilter::default(), false)
        .await
        .unwrap();
    env.emulator.faults().set_delay(Duration::from_secs(2));
    let err = client
        .list_secrets(m, &SecretFilter::default(), false)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Timeout {
                facade: "Secrets",
                method: "ListSecrets",
                ..
            }
        ),
        "{err}"
    );
    env.emulator.faults().set_delay(Duration::ZERO);
    client
        .list_secrets(m, &SecretFilter::default(), false)
        .await
        .unwrap();
}

#[tokio::test]
async fn a_hundred_concurrent_requests_share_one_connection() {
    let env = start("concurrency").await;
    let mut options = env.options("admin");
    options.call_timeout = Duration::from_secs(5);
    let client = JujuClient::new(options).unwrap();
    let m = env.model_uuid.as_str();
    let batch: Vec<NewSecret> = (0..10)
        .map(|i| new_secret(&format!("c-{i}"), &[("value", "v")]))
        .collect();
    client.create_secrets(m, &batch).await.unwrap();
    let logins_before = env.emulator.call_count("Admin", "Login");
    // Every ListSecrets answer is held 200 ms while ModelGet answers at once, so
    // answers arrive out of order; one call at a time would need 20 s and time out.
    env.emulator.faults().set_delay_for(
        Some("Secrets"),
        Some("ListSecrets"),
        Duration::from_millis(200),
    );
    let lists = (0..100).map(|i| {
        let client = client.clone();
        async move {
            let label = format!("c-{}", i % 10);
            let found = client
                .list_secrets(
                    m,
                    &SecretFilter {
                        label: Some(label.clone()),
                        ..Default::default()
                    },
                    false,
                )
                .await?;
            Ok::<_, Error>((label, found))
        }
    });
    let gets = (0..20).map(|_| client.secret_backend(m));
    let (results, backends) = futures::future::join(
        futures::future::join_all(lists),
        futures::future::join_all(gets),
    )
    .await;
    for backend in backends {
        assert_eq!(backend.unwrap(), AUTO_BACKEND);
    }
    for r in results {
        let (label, found) = r.unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].label.as_deref(), Some(label.as_str()));
    }
    assert_eq!(
        env.emulator.call_count("Admin", "Login"),
        logins_before,
        "no new connection"
    );
    assert_eq!(client.stats().get("Secrets", "ListSecrets"), 100);
}

#[tokio::test]
async fn keepalive_pings_are_sent() {
    let env = start("pings").await;
    let mut options = env.options("admin");
    options.ping_interval = Duration::from_millis(100);
    let client = JujuClient::new(options).unwrap();
    client.list_models().await.unwrap();
    // Pings keep coming while the connection is idle (how often is not asserted here).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while env.emulator.call_count("Pinger", "Ping") < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "fewer than 3 pings in 10 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(client.stats().get("Pinger", "Ping") >= 3);
}

#[tokio::test]
async fn a_connection_that_hears_answers_is_not_pinged() {
    let env = start("busy_pings").await;
    let mut options = env.options("admin");
    options.ping_interval = Duration::from_millis(400);
    let client = JujuClient::new(options).unwrap();
    // Calls answered every 50 ms for 2 s: five ping intervals, none of them silent.
    let busy_until = std::time::Instant::now() + Duration::from_secs(2);
    while std::time::Instant::now() < busy_until {
        client.list_models().await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(env.emulator.call_count("Pinger", "Ping"), 0);
    // Silent, it is pinged again (proof that the pinger was running all along).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while env.emulator.call_count("Pinger", "Ping") == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no ping in 10 s of silence"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_controller_that_is_down_is_a_transient_connect_error() {
    let env = start("down").await;
    let mut options = env.options("admin");
    env.emulator.shutdown().await;
    options.call_timeout = Duration::from_secs(2);
    let client = JujuClient::new(options).unwrap();
    let err = client.list_models().await.unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err}");
    assert!(err.is_transient());
}

#[tokio::test]
async fn the_ca_is_the_only_trust_anchor() {
    let env = start("wrong_ca").await;
    let other = start("wrong_ca_other").await;
    let mut options = env.options("admin");
    options.ca_cert = other.emulator.connection_info().ca_cert.clone();
    options.call_timeout = Duration::from_secs(2);
    let client = JujuClient::new(options).unwrap();
    let err = client.list_models().await.unwrap_err();
    match err {
        Error::Connect { detail, .. } => assert!(detail.contains("tls"), "{detail}"),
        other => panic!("expected a TLS failure, got {other}"),
    }
}

#[tokio::test]
async fn a_call_in_flight_when_the_connection_drops_fails_as_lost_not_as_timeout() {
    let env = start("in_flight_drop").await;
    let client = env.client("admin");
    let m = env.model_uuid.clone();
    client
        .list_secrets(&m, &SecretFilter::default(), false)
        .await
        .unwrap();
    env.emulator.faults().set_delay_for(
        Some("Secrets"),
        Some("ListSecrets"),
        Duration::from_secs(5),
    );
    let pending = {
        let client = client.clone();
        let m = m.clone();
        tokio::spawn(async move {
            client
                .list_secrets(&m, &SecretFilter::default(), false)
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    env.emulator.faults().drop_connections();
    let err = pending.await.unwrap().unwrap_err();
    assert!(
        matches!(
            err,
            Error::ConnectionLost {
                facade: "Secrets",
                method: "ListSecrets"
            }
        ),
        "{err}"
    );
}

#[tokio::test]
async fn the_client_recovers_when_the_controller_comes_back() {
    let dir = tempfile::tempdir().unwrap();
    let first = Emulator::start(EmulatorConfig::new(dir.path()))
        .await
        .unwrap();
    let info = first.connection_info().clone();
    let admin = info.users.iter().find(|u| u.username == "admin").unwrap();
    let mut options = ConnectOptions::new(
        vec![info.endpoint.clone()],
        info.ca_cert.clone(),
        "admin",
        Password::new(admin.password.clone()),
    );
    options.call_timeout = Duration::from_secs(2);
    options.backoff.initial = Duration::from_millis(50);
    options.backoff.max = Duration::from_millis(300);
    let client = JujuClient::new(options).unwrap();
    let m = info.models[0].uuid.clone();
    client
        .create_secrets(&m, &[new_secret("survivor", &[("value", "v")])])
        .await
        .unwrap();

    let listen = first.endpoint();
    first.shutdown().await;
    let err = client
        .list_secrets(&m, &SecretFilter::default(), false)
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err}");

    // Same state directory and address: the same controller, back after a restart.
    let mut config = EmulatorConfig::new(dir.path());
    config.listen = listen;
    let _second = Emulator::start(config).await.unwrap();
    let mut recovered = None;
    for _ in 0..100 {
        match client
            .list_secrets(&m, &SecretFilter::user_secrets(&m), false)
            .await
        {
            Ok(listed) => {
                recovered = Some(listed);
                break;
            }
            Err(e) => {
                assert!(e.is_transient(), "{e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
    let listed = recovered.expect("the client reconnected");
    assert_eq!(listed.len(), 1, "state survived and nothing was duplicated");
    assert_eq!(listed[0].label.as_deref(), Some("survivor"));
}

/// Against a controller before Juju 3.6 (the emulator without checksums) the client
/// reports no checksum, and identical content makes a new revision.
#[tokio::test]
async fn without_checksums_no_checksum_is_reported_and_identical_content_is_a_revision() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = EmulatorConfig::new(dir.path());
    config.checksums = false;
    let emulator = Emulator::start(config).await.unwrap();
    let info = emulator.connection_info();
    let m = info.models[0].uuid.clone();
    let password = info
        .users
        .iter()
        .find(|u| u.username == "admin")
        .map(|u| u.password.clone())
        .unwrap();
    let client = JujuClient::new(ConnectOptions::new(
        vec![info.endpoint.clone()],
        info.ca_cert.clone(),
        "admin",
        Password::new(password),
    ))
    .unwrap();
    let uri = client
        .create_secrets(&m, &[new_secret("old", &[("password", "one")])])
        .await
        .unwrap()
        .remove(0)
        .unwrap();
    let mut update = SecretUpdate::of(SecretSelector::Uri(uri.clone()));
    update.content = Some(content(&[("password", "one")]));
    let results = client.update_secrets(&m, &[update]).await.unwrap();
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let listed = client
        .list_secrets(&m, &SecretFilter::user_secrets(&m), false)
        .await
        .unwrap();
    let s = listed.iter().find(|s| s.uri == uri).unwrap();
    assert_eq!(s.latest_revision_checksum, None);
    assert_eq!(s.latest_revision, 2, "identical content made no revision");
}

#[tokio::test]
async fn application_config_is_read_set_and_reset_like_juju_config() {
    let env = start("app_config").await;
    let client = env.client("admin");
    let m = env.model_uuid.as_str();
    let config = client.application_config(m, "mysql").await.unwrap();
    let root = &config["root-password"];
    assert_eq!(
        (root.kind.as_str(), root.source.as_str()),
        ("secret", "unset")
    );
    assert_eq!(root.value, None);
    assert_eq!(config["port"].value, Some(serde_json::json!(3306)));
    assert_eq!(
        config["port"].user_value(),
        None,
        "a default is no user value"
    );

    let uri = "secret:9m4e2mr0ui3e8a215n4g";
    let set = |app: &str, k: &str, v: &str| {
        (
            app.to_owned(),
            std::collections::BTreeMap::from([(k.to_owned(), v.to_owned())]),
        )
    };
    let results = client
        .set_application_config(
            m,
            &[
                set("mysql", "root-password", uri),
                set("mysql", "port", "abc"),
                set("nosuchapp", "x", "y"),
            ],
        )
        .await
        .unwrap();
    assert!(results[0].is_ok(), "{:?}", results[0]);
    let e = results[1].as_ref().unwrap_err();
    assert_eq!(
        e.message,
        "parsing settings for application: option \"port\" expected int, got \"abc\""
    );
    let e = results[2].as_ref().unwrap_err();
    assert_eq!(e.code, ErrorCode::NotFound);
    assert_eq!(e.message, "application \"nosuchapp\" not found");
    let config = client.application_config(m, "mysql").await.unwrap();
    assert_eq!(
        config["root-password"].user_value(),
        Some(&serde_json::json!(uri))
    );
    assert!(
        !format!("{:?}", config["root-password"]).contains(uri),
        "Debug shows no value"
    );

    let results = client
        .unset_application_config(
            m,
            &[
                ("mysql".to_owned(), vec!["root-password".to_owned()]),
                ("mysql".to_owned(), vec!["nope".to_owned()]),
            ],
        )
        .await
        .unwrap();
    assert!(results[0].is_ok());
    assert_eq!(
        results[1].as_ref().unwrap_err().message,
        "updating application charm settings: unknown option \"nope\""
    );
    let config = client.application_config(m, "mysql").await.unwrap();
    assert_eq!(config["root-password"].source, "unset");

    let err = client.application_config(m, "nosuchapp").await.unwrap_err();
    assert_eq!(err.code(), Some(&ErrorCode::NotFound), "{err}");
}
