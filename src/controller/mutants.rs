//! Deliberate faults for the randomized history tester's self-test: each one breaks a
//! promise the tester's invariants check, so that the tester shows it would catch it.
//! The end-to-end tests use one more ([`FINALIZER_NEVER_ADDED`]) to hold a window open.
//!
//! A mutant is on only in a debug build (`cfg(debug_assertions)`, what `cargo test`
//! builds) and only when the environment variable `JSO_TEST_MUTANTS` names it
//! (comma-separated). A release build has no mutants at all: [`active`] is `false`.

/// The environment variable naming the active mutants.
pub const ENV: &str = "JSO_TEST_MUTANTS";

/// A claim whose create Juju refused is kept (the cause of the conflict-then-delete
/// loss of a person's secret).
pub const KEEP_REFUSED_CLAIM: &str = "keep-refused-claim";
/// Cleanup removes the secret a claim names without the content check.
pub const CLEANUP_TRUSTS_CLAIM: &str = "cleanup-trusts-claim";
/// Deletion with `deletionPolicy: Delete` leaves the Juju secret behind.
pub const DELETE_LEAVES_SECRET: &str = "delete-leaves-secret";
/// Content changes are never sent to Juju, while the status says Synced.
pub const SKIP_CONTENT_UPDATE: &str = "skip-content-update";
/// A grant object revokes every application it does not list, people's grants included.
pub const REVOKE_UNLISTED: &str = "revoke-unlisted";
/// The content of every secret created is logged.
pub const LOG_VALUES: &str = "log-values";
/// Deletion with `deletionPolicy: Retain` removes the Juju secret all the same.
pub const RETAIN_REMOVES_SECRET: &str = "retain-removes-secret";
/// Every secret is created twice (as a lost answer followed by a blind retry would).
pub const CREATE_TWICE: &str = "create-twice";
/// The status names a secret ID that is not the object's secret.
pub const STATUS_WRONG_SECRET_ID: &str = "status-wrong-secret-id";
/// New objects never get the finalizer (their Juju write stays in the window before
/// it: the end-to-end tests open that window for as long as they need).
pub const FINALIZER_NEVER_ADDED: &str = "finalizer-never-added";

/// Whether the mutant `name` is on.
#[cfg(debug_assertions)]
pub fn active(name: &str) -> bool {
    std::env::var(ENV).is_ok_and(|v| v.split(',').any(|m| m.trim() == name))
}

/// Whether the mutant `name` is on: never, in a release build.
#[cfg(not(debug_assertions))]
pub fn active(_name: &str) -> bool {
    false
}
