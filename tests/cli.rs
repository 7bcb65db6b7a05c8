//! The operator binary's command line: flags it refuses before it connects to anything.

#![allow(clippy::expect_used)]

use std::process::Command;

/// `run` with `args`: its exit status and what it printed on stderr.
fn run(args: &[&str]) -> (std::process::ExitStatus, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_juju-secrets-operator"))
        .arg("run")
        .args(args)
        .env_remove("KUBECONFIG")
        .output()
        .expect("the operator binary runs");
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_lease_duration_outside_3s_to_1h_is_refused() {
    for duration in ["1s", "2h"] {
        let (status, stderr) = run(&[
            "--juju-connection-secret",
            "ns/name",
            "--lease-duration",
            duration,
        ]);
        assert!(
            !status.success(),
            "--lease-duration {duration} was accepted"
        );
        assert!(
            stderr.contains("--lease-duration must be between 3s and 1h"),
            "--lease-duration {duration}: {stderr}"
        );
    }
}
