//! Wire-level tests of the Juju controller emulator, driven by a raw TLS websocket client.

// The helpers below are test code too: a failed unwrap is a failed test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use juju_emulator::{ConnectionInfo, Emulator, EmulatorConfig, Seed, SeedModel, SeedUser};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

const TIMEOUT: Duration = Duration::from_secs(10);

/// A raw API client: one websocket, request ids counted from 1.
struct Client {
    ws: WebSocketStream<TlsStream<TcpStream>>,
    next_id: u64,
}

impl Client {
    async fn connect(info: &ConnectionInfo, path: &str) -> Client {
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(info.ca_cert.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        let tcp = TcpStream::connect(&info.endpoint).await.unwrap();
        let tls = tokio_rustls::TlsConnector::from(Arc::new(config))
            .connect(ServerName::try_from("juju-apiserver").unwrap(), tcp)
            .await
            .unwrap();
        let url = format!("wss://juju-apiserver{path}");
        let (ws, _) = tokio_tungstenite::client_async(url, tls).await.unwrap();
        Client { ws, next_id: 1 }
    }

    async fn send_text(&mut self, text: String) {
        self.ws.send(Message::Text(text.into())).await.unwrap();
    }

    /// The next frame, as text.
    async fn recv_text(&mut self) -> String {
        loop {
            let msg = tokio::time::timeout(TIMEOUT, self.ws.next())
                .await
                .expect("timed out waiting for a frame")
                .expect("connection closed")
                .expect("websocket error");
            if let Message::Text(t) = msg {
                return t.as_str().to_owned();
            }
        }
    }

    async fn recv(&mut self) -> Value {
        serde_json::from_str(&self.recv_text().await).unwrap()
    }

    /// Sends a request and returns its id.
    async fn send(&mut self, facade: &str, version: i64, method: &str, params: Value) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        let frame = json!({"request-id": id, "type": facade, "version": version,
                           "request": method, "params": params});
        self.send_text(frame.to_string()).await;
        id
    }

    /// One call; returns the whole response frame.
    async fn call(&mut self, facade: &str, version: i64, method: &str, params: Value) -> Value {
        let id = self.send(facade, version, method, params).await;
        let frame = self.recv().await;
        assert_eq!(frame["request-id"], json!(id), "{frame}");
        frame
    }

    /// One call that must succeed; returns `response`.
    async fn ok(&mut self, facade: &str, version: i64, method: &str, params: Value) -> Value {
        let frame = self.call(facade, version, method, params).await;
        assert!(frame.get("error").is_none(), "unexpected error: {frame}");
        frame["response"].clone()
    }

    async fn login(&mut self, user: &str, password: &str) -> Value {
        self.call(
            "Admin",
            3,
            "Login",
            json!({"auth-tag": format!("user-{user}"), "credentials": password,
                   "client-version": "3.6.1.3"}),
        )
        .await
    }
}

fn password(info: &ConnectionInfo, user: &str) -> String {
    info.users
        .iter()
        .find(|u| u.username == user)
        .unwrap()
        .password
        .clone()
}

fn dev_uuid(info: &ConnectionInfo) -> String {
    info.models[0].uuid.clone()
}

async fn start(dir: &tempfile::TempDir) -> Emulator {
    Emulator::start(EmulatorConfig::new(dir.path()))
        .await
        .unwrap()
}

async fn admin_model(emu: &Emulator) -> Client {
    let info = emu.connection_info();
    let mut c = Client::connect(info, &format!("/model/{}/api", dev_uuid(info))).await;
    let login = c.login("admin", &password(info, "admin")).await;
    assert!(login.get("error").is_none(), "{login}");
    c
}

async fn admin_controller(emu: &Emulator) -> Client {
    let info = emu.connection_info();
    let mut c = Client::connect(info, "/api").await;
    let login = c.login("admin", &password(info, "admin")).await;
    assert!(login.get("error").is_none(), "{login}");
    c
}

fn assert_error(frame: &Value, message: &str, code: Option<&str>) {
    assert_eq!(frame["error"], json!(message), "{frame}");
    assert_eq!(
        frame.get("error-code").and_then(Value::as_str),
        code,
        "{frame}"
    );
    assert_eq!(frame["response"], json!({}), "{frame}");
}

#[tokio::test]
async fn responses_echo_the_request_id_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let emu = start(&dir).await;
    let mut c = admin_model(&emu).await;
    c.send_text(
        r#"{"request-id":41,"type":"Pinger","version":1,"request":"Ping","params":{}}"#.into(),
    )
    .await;
    assert_eq!(c.recv_text().await, "{\"request-id\":41,\"response\":{}}\n");
    // An error without a code leaves error-code out but still carries response.
    c.send_text(
        r#"{"request-id":42,"type":"Secrets","version":2,"request":"GrantSecret","params":{"uri":null,"label":"","applications":["mysql"]}}"#
            .into(),
    )
    .await;
    assert_eq!(
        c.recv_text().await,
        "{\"request-id\":42,\"error\":\"must specify either URI or name\",\"response\":{}}\n"
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn login_reports_facades_per_connection_kind() {
    let dir = tempfile::tempdir().unwrap();
    let emu = start(&dir).await;
    let info = emu.connection_info().clone();
    let mut model = Client::connect(&info, &format!("/model/{}/api", dev_uuid(&info))).await;
    let frame = model.login("admin", &password(&info, "admin")).await;
    let r = &frame["response"];
    assert_eq!(r["model-tag"], json!(format!("model-{}", dev_uuid(&info))));
    assert_eq!(
        r["controller-tag"],
        json!(format!("controller-{}", info.controller_uuid))
    );
    assert_eq!(r["server-version"], json!("3.6.14"));
    assert_eq!(r["user-info"]["model-access"], json!("admin"));
    let names: Vec<&str> = r["facades"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "AllWatcher",
            "Application",
            "Client",
            "ModelConfig",
            "Pinger",
            "Secrets"
        ]
    );
    let application = r["facades"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "Application")
        .unwrap();
    assert_eq!(
        application["versions"],
        json!([15, 16, 17, 18, 19, 20, 21, 22])
    );

    let mut ctrl = Client::connect(&info, "/api").await;
    let frame = ctrl.login("admin", &password(&info, "admin")).await;
    let r = &frame["response"];
    assert!(r.get("model-tag").is_none());
    assert_eq!(r["user-info"]["model-access"], json!(""));
    assert_eq!(r["user-info"]["controller-access"], json!("superuser"));
    let names: Vec<&str> = r["facades"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["ModelConfig", "ModelManager", "Pinger", "SecretBackends"]
    );

    // A second Login does not reach the Admin facade.
    let again = ctrl.login("admin", &password(&info, "admin")).await;
    assert_error(
        &again,
        "facade \"Admin\" not supported for controller API connection",
        Some("not supported"),
    );
    let again = model.login("admin", &password(&info, "admin")).await;
    assert_error(
        &again,
        "unknown version (3) of interface \"Admin\"",
        Some("not implemented"),
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn login_failures_and_pre_login_calls() {
    let dir = tempfile::tempdir().unwrap();
    let seed = Seed {
        controller_uuid: None,
        users: vec![
            SeedUser {
                username: "admin".into(),
                password: Some("pw".into()),
                access: "superuser".into(),
                models: Default::default(),
            },
            SeedUser {
                username: "outsider".into(),
                password: Some("pw2".into()),
                access: "login".into(),
                models: Default::default(),
            },
        ],
        models: vec![SeedModel {
            name: "dev".into(),
            owner: "admin".into(),
            uuid: None,
            applications: vec![],
        }],
    };
    let mut config = EmulatorConfig::new(dir.path());
    config.seed = Some(seed);
    let emu = Emulator::start(config).await.unwrap();
    let info = emu.connection_info().clone();
    let path = format!("/model/{}/api", dev_uuid(&info));

    let mut c = Client::connect(&info, &path).await;
    let frame = c.call("Secrets", 2, "ListSecrets", json!({})).await;
    assert_error(
        &frame,
        "unknown version (2) of interface \"Secrets\"",
        Some("not implemented"),
    );
    let frame = c.login("admin", "wrong").await;
    assert_error(
        &frame,
        "invalid entity name or password",
        Some("unauthorized access"),
    );
    let frame = c.login("nobody", "pw").await;
    assert_error(
        &frame,
        "invalid entity name or password",
        Some("unauthorized access"),
    );
    let frame = c.login("outsider", "pw2").await;
    assert_error(&frame, "permission denied", Some("unauthorized access"));
    // Failed logins leave the connection usable for another attempt.
    let frame = c.login("admin", "pw").await;
    assert!(frame.get("error").is_none(), "{frame}");

    let bogus = "00000000-0000-0000-0000-000000000000";
    let mut c = Client::connect(&info, &format!("/model/{bogus}/api")).await;
    let frame = c.login("admin", "pw").await;
    assert_error(
        &frame,
        &format!("unknown model: \"{bogus}\""),
        Some("model not found"),
    );
    let frame = c.call("Pinger", 1, "Ping", json!({})).await;
    assert_error(
        &frame,
        &format!("unknown model: \"{bogus}\""),
        Some("model not found"),
    );
    emu.shutdown().await;
}

#[tokio::test]
async fn facade_split_and_unknown_calls() {
    let dir = tempfile::tempdir().unwrap();
    let emu = start(&dir).await;
    let mut m = admin_model(&emu).await;
    let mut c = admin_controller(&emu).await;
    let f = c.call("Secrets", 2, "ListSecrets", json!({})).await;
    assert_error(
        &f,
        "facade \"Secrets\" not supported for controller API connection",
        Some("not supported"),
    );
    let f = m
        .call("SecretBackends", 1, "ListSecretBackends", json!({}))
        .await;
    assert_error(
        &f,
        "facade \"SecretBackends\" not supported for model API connection",
        Some("not supported"),
    );
    let f = m.call("Foo", 1, "Bar", json!({})).await;
    assert_error(&f, "unknown object type \"Foo\"", Some("not implemented"));
    let f = m.call("Secrets", 3, "ListSecrets", json!({})).await;
    assert_error(
        &f,
        "unknown version (3) of interface \"Secrets\"",
        Some("not implemented"),
    );
    let f = m.call("Secrets", 2, "Foo", json!({})).await;
    assert_error(
        &f,
        "no such request - method Secrets(2).Foo is not implemented",
        Some("not implemented"),
    );
    let f = m.call("Secrets", 1, "CreateSecrets", json!({})).await;
    assert_error(
        &f,
        "no such request - method Secrets(1).CreateSecrets is not implemented",
        Some("not implemented"),
    );
    // Both connection kinds answer Ping and ModelConfig.
    c.ok("Pinger", 1, "Ping", json!({})).await;
    let cfg = c.ok("ModelConfig", 3, "ModelGet", json!({})).await;
    assert_eq!(cfg["config"]["name"]["value"], json!("controller"));
    emu.shutdown().await;
}

#[tokio::test]
async fn secret_lifecycle_follows_juju_3_6_rules() {
    let dir = tempfile::tempdir().unwrap();
    let emu = start(&dir).await;
    let uuid = dev_uuid(emu.connection_info());
    let mut m = admin_model(&emu).await;

    let r = m
        .ok(
            "Secrets",
            2,
            "CreateSecrets",
            json!({"args": [{"label": "db", "description": "primary",
                "content": {"data": {"username": "YWRtaW4=", "password": "aHVudGVyMg=="}},
                "owner-tag": ""},
                {"label": "db", "content": {"data": {"a": "Yg=="}}},
                {"label": "empty", "content": {}},
                {"label": "x", "content": {"data": {"a": "Yg=="}}, "owner-tag": format!("model-{uuid}")}]}),
        )
        .await;
    let results = r["results"].as_array().unwrap();
    let uri = results[0]["result"].as_str().unwrap().to_owned();
    assert!(uri.starts_with("secret:") && uri.len() == 27, "{uri}");
    assert!(results[0].get("error").is_none());
    assert_eq!(
        results[1]["error"],
        json!({"message": "secret with name \"db\" already exists", "code": "already exists"})
    );
    assert_eq!(results[1]["result"], json!(""));
    assert_eq!(
        results[2]["error"]["message"],
        json!("empty secret value not valid")
    );
    assert_eq!(
        results[3]["error"]["message"],
        json!(format!("owner tag \"model-{uuid}\" not valid"))
    );

    // Identical content makes no revision; new content makes revision 2.
    let same = json!({"args": [{"uri": "", "existing-label": "db",
        "content": {"data": {"password": "aHVudGVyMg==", "username": "YWRtaW4="}}}]});
    assert_eq!(
        m.ok("Secrets", 2, "UpdateSecrets", same).await,
        json!({"results": [{}]})
    );
    let rotated = json!({"args": [{"uri": "", "existing-label": "db",
        "content": {"data": {"username": "YWRtaW4=", "password": "cm90YXRlZC10b2tlbg=="}}}]});
    assert_eq!(
        m.ok("Secrets", 2, "UpdateSecrets", rotated).await,
        json!({"results": [{}]})
    );

    let grant = m
        .ok(
            "Secrets",
            2,
            "GrantSecret",
            json!({"uri": null, "label": "db", "applications": ["mysql", "nosuchapp"]}),
        )
        .await;
    assert_eq!(grant["results"][0], json!({}));
    let id = uri.trim_start_matches("secret:");
    assert_eq!(
        grant["results"][1]["error"],
        json!({"message": format!("cannot change access to \"secret:{id}\" for \"nosuchapp\": invalid subject reference: saas application \"nosuchapp\" not found"),
               "code": "not found"})
    );

    let list = m
        .ok(
            "Secrets",
            2,
            "ListSecrets",
            json!({"show-secrets": true, "filter": {"owner-tag": format!("model-{uuid}")}}),
        )
        .await;
    let s = &list["results"][0];
    assert_eq!(s["uri"], json!(uri));
    assert_eq!(s["version"], json!(1));
    assert_eq!(s["owner-tag"], json!(format!("model-{uuid}")));
    assert_eq!(s["label"], json!("db"));
    assert_eq!(s["description"], json!("primary"));
    assert_eq!(s["latest-revision"], json!(2));
    assert_eq!(
        s["latest-revision-checksum"],
        json!("79c19799bdc30e17dc7c8636f595a1a3d05dcf23068fb358ff93c199a16148e8")
    );
    assert_eq!(s["revisions"].as_array().unwrap().len(), 2);
    assert_eq!(s["revisions"][0]["backend-name"], json!("internal"));
    assert_eq!(
        s["value"]["data"]["password"],
        json!("cm90YXRlZC10b2tlbg==")
    );
    assert_eq!(
        s["access"],
        json!([{"target-tag": "application-mysql", "scope-tag": format!("model-{uuid}"), "role": "view"}])
    );
    assert!(s.get("rotate-policy").is_none());

    // auto-prune alone prunes the obsolete revision at once.
    let prune = json!({"args": [{"uri": uri, "existing-label": "", "auto-prune": true}]});
    m.ok("Secrets", 2, "UpdateSecrets", prune).await;
    let list = m
        .ok(
            "Secrets",
            2,
            "ListSecrets",
            json!({"filter": {"label": "db"}, "show-secrets": false}),
        )
        .await;
    let s = &list["results"][0];
    assert!(s.get("value").is_none());
    assert_eq!(s["revisions"].as_array().unwrap().len(), 1);
    assert_eq!(s["revisions"][0]["revision"], json!(2));

    // Removal by label, then the label is free and unknown names report not found.
    let rm = m
        .ok(
            "Secrets",
            2,
            "RemoveSecrets",
            json!({"args": [{"label": "db"}, {"label": "db"}, {}]}),
        )
        .await;
    assert_eq!(rm["results"][0], json!({}));
    assert_eq!(
        rm["results"][1]["error"],
        json!({"message": "secret \"db\" not found", "code": "not found"})
    );
    assert_eq!(
        rm["results"][2]["error"],
        json!({"message": "secret \"\" not found", "code": "not found"})
    );
    let list = m
        .ok("Secrets", 2, "ListSecrets", json!({"filter": null}))
        .await;
    assert_eq!(list, json!({"results": []}));
    emu.shutdown().await;
}

#[tokio::test]
async fn revisions_are_sorted_as_strings_and_removal_keeps_latest_revision() {
    let dir = tempfile::tempdir().unwrap();
    let emu = start(&dir).await;
    let mut m = admin_model(&emu).await;
    m.ok(
        "Secrets",
        2,
        "CreateSecrets",
        json!({"args": [{"label": "many", "content": {"data": {"v": "MA=="}}}]}),
    )
    .await;
    for i in 1..=10 {
        let data = json!({"v": format!("{i}")});
        m.ok(
            "Secrets",
            2,
            "UpdateSecrets",
            json!({"args": [{"uri": "", "existing-label": "many", "content": {"data": data}}]}),
        )
        .await;
    }
    let list = m.ok("Secrets", 2, "ListSecrets", json!({})).await;
    let revs: Vec<i64> = list["results"][0]["revisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["revision"].as_i64().unwrap())
        .collect();
    assert_eq!(revs, [1, 10, 11, 2, 3, 4, 5, 6, 7, 8, 9]);

    let rm = m
        .ok(
            "Secrets",
            2,
            "RemoveSecrets",
            json!({"args": [{"uri": "", "label": "many", "revisions": [11, 99]},
                            {"uri": "", "label": "many", "revisions": [98, 99]}]}),
        )
        .await;
    assert_eq!(rm["results"][0], json!({}));
    assert_eq!(
        rm["results"][1]["error"],
        json!({"message": "cannot delete any of revisions [98 99] - revisions not found", "code": "not found"})
    );
    let list = m.ok("Secrets", 2, "ListSecrets", json!({})).await;
    assert_eq!(list["results"][0]["latest-revision"], json!(11));
    assert_eq!(
        list["results"][0]["revisions"].as_array().unwrap().len(),
        10
    );
    let f = m
        .call(
            "Secrets",
            2,
            "ListSecrets",
            json!({"filter": {"revision": 11}}),
        )
        .await;
    assert_eq!(f["error-code"], json!("not found"), "{f}");
    emu.shutdown().await;
}

#[tokio::test]
async fn reader_can_list_but_not_write() {
    let dir = tempfile::tempdir().unwrap();
    let emu = start(&dir).await;
    let info = emu.connection_info().clone();
    let mut r = Client::connect(&info, &format!("/model/{}/api", dev_uuid(&info))).await;
    let login = r.login("reader", &password(&info, "reader")).await;
    assert_eq!(
        login["response"]["user-info"]["model-access"],
        json!("read")
    );
    r.ok("Secrets", 2, "ListSecrets", json!({"show-secrets": false}))
        .await;
    r.ok("ModelConfig", 3, "ModelGet", json!({})).await;
    let f = r
        .call("Secrets", 2, "ListSecrets", json!({"show-secrets": true}))
        .await;
    assert_error(&f, "permission denied", Some("unauthorized access"));
    let f = r
        .call(
            "Secrets",
            2,
            "CreateSecrets",
            json!({"args": [{"content": {"data": {"a": "Yg=="}}}]}),
        )
        .await;
    assert_error(&f, "permission denied", Some("unauthorized access"));
    let f = r
        .call("ModelConfig", 3, "ModelSet", json!({"config": {"x": "y"}}))
        .await;
    assert_error(&f, "permission denied", Some("unauthorized access"));

    let mut c = Client::connect(&info, "/api").await;
    c.login("reader", &password(&info, "reader")).await;
    c.ok(
        "SecretBackends",
        1,
        "ListSecretBackends",
        json!({"names": null, "reveal": false}),
    )
    .await;
    let f = c
        .call(
            "SecretBackends",
            1,
            "ListSecretBackends",
            json!({"reveal": true}),
        )
        .await;
    assert_error(&f, "permission denied", Some("unauthorized access"));
    let f = c
        .call(
            "SecretBackends",
            1,
            "RemoveSecretBackends",
            json!({"args": [{"name": "x"}]}),
        )
        .await;
    assert_error(&f, "permission denied", Some("unauthorized access"));
    let models = c
        .ok(
            "ModelManager",
            10,
            "ListModels",
            json!({"tag": "user-reader"}),
        )
        .await;
    assert_eq!(models["user-models"][0]["model"]["name"], json!("dev"));
    let f = c
        .call(
            "ModelManager",
            10,
            "ListModels",
            json!({"tag": "user-admin"}),
        )
        .await;
    assert_error(&f, "permission denied", Some("unauthorized access"));
    emu.shutdown().await;
}

#[tokio::test]
async fn backends_switching_and_removal() {
    let dir = tempfile::tempdir().unwrap();
    let emu = start(&dir).await;
    let info = emu.connection_info().clone();
    let mut c = admin_controller(&emu).await;
    let mut m = admin_model(&emu).await;
    m.ok(
        "Secrets",
        2,
        "CreateSecrets",
        json!({"args": [{"label": "s", "content": {"data": {"a": "Yg=="}}}]}),
    )
    .await;

    let add = c
        .ok(
            "SecretBackends",
            1,
            "AddSecretBackends",
            json!({"args": [
                {"name": "myvault", "backend-type": "vault",
                 "config": {"endpoint": "https://vault:8200", "token": "s.tok"}},
                {"name": "internal", "backend-type": "vault", "config": {}},
                {"name": "bad", "backend-type": "foo", "config": {}},
                {"name": "rot", "backend-type": "vault", "token-rotate-interval": 600000000000i64,
                 "config": {"endpoint": "https://v"}},
                {"name": "myvault", "backend-type": "vault", "config": {"endpoint": "https://x"}}]}),
        )
        .await;
    let res = add["results"].as_array().unwrap();
    assert_eq!(res[0], json!({}));
    assert_eq!(
        res[1]["error"]["message"],
        json!("backend %!q(MISSING) not valid")
    );
    assert_eq!(
        res[2]["error"],
        json!({"message": "creating backend provider type \"foo\": no registered provider for \"foo\"", "code": "not found"})
    );
    assert_eq!(
        res[3]["error"]["message"],
        json!("token rotate interval \"10m0s\" less than 1h not valid")
    );
    assert_eq!(
        res[4]["error"],
        json!({"message": "secret backend with ID \"\" already exists", "code": "already exists"})
    );

    let list = c
        .ok("SecretBackends", 1, "ListSecretBackends", json!({}))
        .await;
    let items = list["results"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    let ids: Vec<&str> = items.iter().map(|i| i["id"].as_str().unwrap()).collect();
    let mut sorted = ids.clone();
    sorted.sort();
    assert_eq!(ids, sorted);
    let internal = items
        .iter()
        .find(|i| i["result"]["name"] == "internal")
        .unwrap();
    assert_eq!(internal["id"], json!(info.controller_uuid));
    assert_eq!(internal["num-secrets"], json!(1));
    let vault = items
        .iter()
        .find(|i| i["result"]["name"] == "myvault")
        .unwrap();
    assert!(vault["result"]["config"].get("token").is_none());
    assert_eq!(vault["status"], json!("active"));

    // Switch the model: existing revisions move to the new backend.
    m.ok(
        "ModelConfig",
        3,
        "ModelSet",
        json!({"config": {"secret-backend": "myvault"}}),
    )
    .await;
    let cfg = m.ok("ModelConfig", 3, "ModelGet", json!({})).await;
    assert_eq!(
        cfg["config"]["secret-backend"],
        json!({"value": "myvault", "source": "model"})
    );
    let list = m.ok("Secrets", 2, "ListSecrets", json!({})).await;
    assert_eq!(
        list["results"][0]["revisions"][0]["backend-name"],
        json!("myvault")
    );
    let f = m
        .call(
            "ModelConfig",
            3,
            "ModelSet",
            json!({"config": {"secret-backend": "internal"}}),
        )
        .await;
    assert_error(
        &f,
        "secret backend \"internal\" not found",
        Some("not found"),
    );

    let rm = c
        .ok(
            "SecretBackends",
            1,
            "RemoveSecretBackends",
            json!({"args": [{"name": "myvault"}, {"name": "ghost"}]}),
        )
        .await;
    assert_eq!(
        rm["results"][0]["error"],
        json!({"message": "removing backend with 1 stored secret revisions not supported", "code": "not supported"})
    );
    assert_eq!(rm["results"][1], json!({}));

    // Unreachable backend: ping failures everywhere.
    emu.faults().set_backend_reachable("myvault", false);
    let list = c
        .ok(
            "SecretBackends",
            1,
            "ListSecretBackends",
            json!({"names": ["myvault"]}),
        )
        .await;
    assert_eq!(list["results"][0]["status"], json!("error"));
    assert_eq!(
        list["results"][0]["message"],
        json!("backend not reachable: dial tcp: connection refused")
    );
    let up = c
        .ok(
            "SecretBackends",
            1,
            "UpdateSecretBackends",
            json!({"args": [{"name": "myvault", "config": {"endpoint": "https://other"}, "token-rotate-interval": null},
                            {"name": "myvault", "config": {"tls-server-name": "v"}, "force": false, "token-rotate-interval": null}]}),
        )
        .await;
    assert_eq!(
        up["results"][0]["error"]["message"],
        json!("invalid config for provider \"vault\": cannot change immutable field \"endpoint\"")
    );
    assert_eq!(
        up["results"][1]["error"]["message"],
        json!("backend not reachable: dial tcp: connection refused")
    );
    let list = m
        .ok("Secrets", 2, "ListSecrets", json!({"show-secrets": true}))
        .await;
    assert_eq!(
        list["results"][0]["value"]["error"]["message"],
        json!("backend not reachable: dial tcp: connection refused")
    );
    emu.faults().set_backend_reachable("myvault", true);

    // Back to auto, then the backend can go without force.
    m.ok(
        "ModelConfig",
        3,
        "ModelUnset",
        json!({"keys": ["secret-backend"]}),
    )
    .await;
    let rm = c
        .ok(
            "SecretBackends",
            1,
            "RemoveSecretBackends",
            json!({"args": [{"name": "myvault"}]}),
        )
        .await;
    assert_eq!(rm["results"][0], json!({}));
    emu.shutdown().await;
}

#[tokio::test]
async fn restart_with_the_same_state_dir_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let emu = start(&dir).await;
    let first = emu.connection_info().clone();
    let mut m = admin_model(&emu).await;
    m.ok(
        "Secrets",
        2,
        "CreateSecrets",
        json!({"args": [{"label": "kept", "content": {"data": {"a": "Yg=="}}}]}),
    )
    .await;
    drop(m);
    emu.shutdown().await;

    let emu = start(&dir).await;
    let second = emu.connection_info().clone();
    assert_eq!(first.ca_cert, second.ca_cert);
    assert_eq!(first.controller_uuid, second.controller_uuid);
    assert_eq!(first.users, second.users);
    assert_eq!(first.models, second.models);
    let on_disk: ConnectionInfo =
        serde_json::from_slice(&std::fs::read(dir.path().join("connection.json")).unwrap())
            .unwrap();
    assert_eq!(on_disk, second);
    let mut m = admin_model(&emu).await;
    let list = m.ok("Secrets", 2, "ListSecrets", json!({})).await;
    assert_eq!(list["results"][0]["label"], json!("kept"));
    emu.shutdown().await;
}

/// A change reaches `state.json` soon after, without a shutdown (a killed emulator
/// loses at most the last half second).
#[tokio::test]
async fn changes_reach_the_state_file_without_a_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let emu = start(&dir).await;
    let mut m = admin_model(&emu).await;
    m.ok(
        "Secrets",
        2,
        "CreateSecrets",
        json!({"args": [{"label": "written-soon", "content": {"data": {"a": "Yg=="}}}]}),
    )
    .await;
    let path = dir.path().join("state.json");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !std::fs::read_to_string(&path)
        .unwrap_or_default()
        .contains("written-soon")
    {
        assert!(
            Instant::now() < deadline,
            "state.json not written within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    emu.shutdown().await;
}

#[tokio::test]
async fn faults_fail_delay_and_drop() {
    let dir = tempfile::tempdir().unwrap();
    let emu = start(&dir).await;
    let mut m = admin_model(&emu).await;

    emu.faults()
        .fail_next("Secrets", "ListSecrets", 1, "not found", "injected");
    let f = m.call("Secrets", 2, "ListSecrets", json!({})).await;
    assert_error(&f, "injected", Some("not found"));
    m.ok("Secrets", 2, "ListSecrets", json!({})).await;
    assert_eq!(emu.call_count("Secrets", "ListSecrets"), 2);

    // A delayed call is overtaken by a later one: responses come out of order.
    emu.faults().set_delay_for(
        Some("Secrets"),
        Some("ListSecrets"),
        Duration::from_millis(300),
    );
    let started = Instant::now();
    let slow = m.send("Secrets", 2, "ListSecrets", json!({})).await;
    let fast = m.send("Pinger", 1, "Ping", json!({})).await;
    assert_eq!(m.recv().await["request-id"], json!(fast));
    assert_eq!(m.recv().await["request-id"], json!(slow));
    assert!(started.elapsed() >= Duration::from_millis(300));
    emu.faults()
        .set_delay_for(Some("Secrets"), Some("ListSecrets"), Duration::ZERO);

    emu.faults().drop_connections();
    let next = tokio::time::timeout(TIMEOUT, async {
        loop {
            match m.ws.next().await {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return true,
                Some(Ok(_)) => {}
            }
        }
    })
    .await
    .unwrap();
    assert!(next);
    // New connections work.
    let mut m = admin_model(&emu).await;
    m.ok("Pinger", 1, "Ping", json!({})).await;
    emu.shutdown().await;
}

#[tokio::test]
async fn control_path_drives_faults() {
    let dir = tempfile::tempdir().unwrap();
    let emu = start(&dir).await;
    let info = emu.connection_info().clone();
    let uuid = dev_uuid(&info);
    let mut ctl = Client::connect(&info, "/emulator/control").await;
    ctl.ok(
        "Emulator",
        1,
        "AddApplication",
        json!({"model-uuid": uuid, "application": "redis"}),
    )
    .await;
    ctl.ok(
        "Emulator",
        1,
        "FailNext",
        json!({"facade": "Pinger", "method": "Ping", "count": 1, "code": "", "message": "boom"}),
    )
    .await;
    let mut m = admin_model(&emu).await;
    let f = m.call("Pinger", 1, "Ping", json!({})).await;
    assert_error(&f, "boom", None);
    m.ok(
        "Secrets",
        2,
        "CreateSecrets",
        json!({"args": [{"label": "g", "content": {"data": {"a": "Yg=="}}}]}),
    )
    .await;
    let g = m
        .ok(
            "Secrets",
            2,
            "GrantSecret",
            json!({"label": "g", "applications": ["redis"]}),
        )
        .await;
    assert_eq!(g, json!({"results": [{}]}));
    let counts = ctl.ok("Emulator", 1, "CallCounts", json!({})).await;
    assert_eq!(counts["Pinger.Ping"], json!(1));
    assert_eq!(counts["Admin.Login"], json!(1));
    ctl.ok("Emulator", 1, "DropConnections", json!({})).await;
    // The control connection itself stays open.
    ctl.ok("Emulator", 1, "CallCounts", json!({})).await;
    emu.shutdown().await;
}

/// `ContentTimes` reports, per model and label, when the newest revision's content was
/// stored: a new revision moves it, a label-only update does not.
#[tokio::test]
async fn content_times_follow_the_newest_revision() {
    use juju_emulator::control_call;
    let dir = tempfile::tempdir().unwrap();
    let emu = start(&dir).await;
    let info = emu.connection_info().clone();
    let mut m = admin_model(&emu).await;
    let before_ms = u64::try_from(jiff::Timestamp::now().as_millisecond()).unwrap();
    let created = m
        .ok(
            "Secrets",
            2,
            "CreateSecrets",
            json!({"args": [{"label": "t", "content": {"data": {"a": "Yg=="}}}]}),
        )
        .await;
    let uri = created["results"][0]["result"].as_str().unwrap().to_owned();
    let times = control_call(&info, "ContentTimes", json!({}))
        .await
        .unwrap();
    let model = times
        .as_object()
        .unwrap()
        .values()
        .find(|v| v.get("t").is_some());
    let first = model.and_then(|v| v["t"].as_u64()).unwrap_or(0);
    assert!(first >= before_ms, "stored after the call started: {times}");
    tokio::time::sleep(Duration::from_millis(20)).await;
    m.ok(
        "Secrets",
        2,
        "UpdateSecrets",
        json!({"args": [{"uri": uri, "description": "d"}]}),
    )
    .await;
    let same = control_call(&info, "ContentTimes", json!({}))
        .await
        .unwrap();
    assert_eq!(same, times, "no new revision, no new time");
    m.ok(
        "Secrets",
        2,
        "UpdateSecrets",
        json!({"args": [{"uri": uri, "content": {"data": {"a": "Yw=="}}}]}),
    )
    .await;
    let later = control_call(&info, "ContentTimes", json!({}))
        .await
        .unwrap();
    let second = later
        .as_object()
        .unwrap()
        .values()
        .find_map(|v| v["t"].as_u64())
        .unwrap_or(0);
    assert!(
        second >= first + 20,
        "a new revision moves it: {times} then {later}"
    );
    emu.shutdown().await;
}

/// `CallTimes` reports the time spent serving each method, without injected delays and
/// without control calls; `control_call` reaches it from Rust.
#[tokio::test]
async fn call_times_leave_out_injected_delays() {
    use juju_emulator::control_call;
    let dir = tempfile::tempdir().unwrap();
    let emu = start(&dir).await;
    let info = emu.connection_info().clone();
    let empty = control_call(&info, "CallTimes", json!({})).await.unwrap();
    assert_eq!(empty, json!({}), "nothing served yet");
    control_call(
        &info,
        "SetDelay",
        json!({"milliseconds": 2000, "facade": "Pinger", "method": "Ping"}),
    )
    .await
    .unwrap();
    let mut m = admin_model(&emu).await;
    let t = Instant::now();
    m.ok("Pinger", 1, "Ping", json!({})).await;
    assert!(
        t.elapsed() >= Duration::from_millis(2000),
        "the delay was applied"
    );
    m.ok(
        "Secrets",
        2,
        "CreateSecrets",
        json!({"args": [{"label": "t", "content": {"data": {"a": "Yg=="}}}]}),
    )
    .await;
    let times = control_call(&info, "CallTimes", json!({})).await.unwrap();
    let secs = |k: &str| times[k].as_f64().unwrap_or(-1.0);
    assert!(secs("Pinger.Ping") >= 0.0, "{times}");
    // A Ping is served in far less than the 2 s it was held: the hold is not counted.
    assert!(
        secs("Pinger.Ping") < 2.0,
        "the injected delay is not Juju-side time: {times}"
    );
    assert!(secs("Secrets.CreateSecrets") > 0.0, "{times}");
    assert!(secs("Admin.Login") > 0.0, "{times}");
    assert!(
        times.get("Emulator.CallTimes").is_none(),
        "control calls are not timed"
    );
    let err = control_call(&info, "NoSuchThing", json!({}))
        .await
        .unwrap_err();
    assert!(err.contains("not implemented"), "{err}");
    emu.shutdown().await;
}

#[tokio::test]
async fn python_style_watcher_and_case_insensitive_keys() {
    let dir = tempfile::tempdir().unwrap();
    let emu = start(&dir).await;
    let mut m = admin_model(&emu).await;
    let w = m.ok("Client", 8, "WatchAll", json!({})).await;
    let id = w["watcher-id"].as_str().unwrap().to_owned();
    // python-libjuju sends the watcher id as "Id", pretty-printed.
    let next = |rid: u64| {
        serde_json::to_string_pretty(
            &json!({"type": "AllWatcher", "request": "Next", "version": 3,
            "Id": id, "params": {}, "request-id": rid}),
        )
        .unwrap()
    };
    m.send_text(next(100)).await;
    let f = m.recv().await;
    assert_eq!(f, json!({"request-id": 100, "response": {"deltas": []}}));
    m.send_text(next(101)).await;
    // The second Next blocks; a Ping still gets through.
    let ping = m.send("Pinger", 1, "Ping", json!({})).await;
    assert_eq!(m.recv().await["request-id"], json!(ping));
    let stop =
        json!({"Request-Id": 102, "Type": "AllWatcher", "Version": 3, "Request": "Stop", "ID": id});
    m.send_text(stop.to_string()).await;
    let mut seen = Vec::new();
    for _ in 0..2 {
        let f = m.recv().await;
        seen.push(f["request-id"].as_u64().unwrap());
        if f["request-id"] == json!(101) {
            assert_eq!(f["error"], json!("watcher was stopped"));
        }
    }
    seen.sort();
    assert_eq!(seen, [101, 102]);
    emu.shutdown().await;
}

#[tokio::test]
async fn model_manager_lists_models_for_python_and_go_clients() {
    let dir = tempfile::tempdir().unwrap();
    let emu = start(&dir).await;
    let info = emu.connection_info().clone();
    let mut c = admin_controller(&emu).await;
    let s = c
        .ok(
            "ModelManager",
            10,
            "ListModelSummaries",
            json!({"user-tag": "user-admin", "all": false}),
        )
        .await;
    assert_eq!(s["results"][0]["result"]["name"], json!("dev"));
    assert_eq!(s["results"][0]["result"]["agent-version"], json!("3.6.14"));
    let mi = c
        .ok(
            "ModelManager",
            10,
            "ModelInfo",
            json!({"entities": [{"tag": format!("model-{}", dev_uuid(&info))},
                                {"tag": "model-00000000-0000-0000-0000-000000000000"},
                                {"tag": "foo"}]}),
        )
        .await;
    assert_eq!(mi["results"][0]["result"]["uuid"], json!(dev_uuid(&info)));
    assert!(mi["results"][0]["result"].get("default-series").is_none());
    assert_eq!(mi["results"][0]["result"]["machines"], Value::Null);
    assert_eq!(
        mi["results"][1]["error"]["code"],
        json!("unauthorized access")
    );
    assert_eq!(
        mi["results"][2]["error"]["message"],
        json!("\"foo\" is not a valid model tag")
    );
    let v9 = c
        .ok(
            "ModelManager",
            9,
            "ModelInfo",
            json!({"entities": [{"tag": format!("model-{}", dev_uuid(&info))}]}),
        )
        .await;
    assert!(v9["results"][0]["result"].get("default-series").is_some());
    emu.shutdown().await;
}

#[tokio::test]
async fn frame_log_records_each_call() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("frames.jsonl");
    let mut config = EmulatorConfig::new(dir.path().join("state"));
    config.frame_log = Some(log.clone());
    let emu = Emulator::start(config).await.unwrap();
    let mut m = admin_model(&emu).await;
    m.ok(
        "Secrets",
        2,
        "ListSecrets",
        json!({"filter": null, "show-secrets": false}),
    )
    .await;
    let f = m.call("Secrets", 2, "Nope", json!({})).await;
    assert!(f.get("error").is_some());
    emu.shutdown().await;
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert_eq!(lines[0]["conn"], json!("model"));
    assert_eq!(lines[0]["type"], json!("Admin"));
    assert_eq!(
        lines[1],
        json!({"conn": "model", "type": "Secrets", "version": 2, "request": "ListSecrets",
               "params": {"filter": null, "show-secrets": false}, "response": {"results": []}})
    );
    assert_eq!(lines[2]["error-code"], json!("not implemented"));
    assert_eq!(lines[2]["response"], json!({}));
}

/// The config reads python-libjuju never makes, on the wire: GetConfig and CharmConfig
/// answer `Results` (capital R, as Juju's Go struct has no JSON tag), with `config: null`
/// on a failed item; CharmConfig, unlike the others, does not read an empty branch as
/// master.
#[tokio::test]
async fn charm_config_reads_answer_per_item() {
    let dir = tempfile::tempdir().unwrap();
    let emu = start(&dir).await;
    let uuid = dev_uuid(emu.connection_info()).to_owned();
    let mut m = admin_model(&emu).await;
    let r = m
        .ok(
            "Application",
            20,
            "GetConfig",
            json!({"entities": [{"tag": "application-mysql"}, {"tag": "application-nope"}, {"tag": "unit-mysql-0"}]}),
        )
        .await;
    let results = r["Results"].as_array().unwrap();
    assert_eq!(results[0]["config"]["root-password"]["type"], "secret");
    assert_eq!(results[1]["config"], Value::Null);
    assert_eq!(
        results[1]["error"],
        json!({"message": "application \"nope\" not found", "code": "not found"})
    );
    assert_eq!(
        results[2]["error"]["message"],
        "unexpected tag type, expected application, got unit"
    );
    let r = m
        .ok(
            "Application",
            20,
            "CharmConfig",
            json!({"args": [{"application": "mysql", "branch": "master"}, {"application": "mysql", "branch": ""}]}),
        )
        .await;
    let results = r["Results"].as_array().unwrap();
    assert_eq!(results[0]["config"]["port"]["value"], 3306);
    assert_eq!(
        results[1]["error"],
        json!({
            "message": format!("charm config for application \"mysql\": branch \"\" in model \"{uuid}\" not found"),
            "code": "not found"
        })
    );
    emu.shutdown().await;
}
