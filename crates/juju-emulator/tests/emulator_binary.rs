//! The `juju-emulator` binary: startup line, connection.json, clean exit on SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use juju_emulator::ConnectionInfo;

#[test]
fn binary_announces_its_endpoint_and_exits_cleanly_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("seed.json");
    std::fs::write(
        &seed,
        r#"{"users":[{"username":"admin","password":"pw","access":"superuser"}],
            "models":[{"name":"prod","owner":"admin","applications":["pg"]}]}"#,
    )
    .unwrap();
    let state = dir.path().join("state");
    let mut child = Command::new(env!("CARGO_BIN_EXE_juju-emulator"))
        .args(["--listen", "127.0.0.1:0", "--state-dir"])
        .arg(&state)
        .arg("--seed")
        .arg(&seed)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let endpoint = line
        .trim()
        .strip_prefix("juju-emulator listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    let info: ConnectionInfo =
        serde_json::from_slice(&std::fs::read(state.join("connection.json")).unwrap()).unwrap();
    assert_eq!(info.endpoint, endpoint);
    assert_eq!(info.users[0].password, "pw");
    assert_eq!(info.models[0].name, "prod");
    assert_eq!(info.models[0].applications, ["pg"]);
    assert!(info.ca_cert.starts_with("-----BEGIN CERTIFICATE-----"));

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let exit = loop {
        if let Some(exit) = child.try_wait().unwrap() {
            break exit;
        }
        assert!(Instant::now() < deadline, "emulator ignored SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "{exit:?}");
}
