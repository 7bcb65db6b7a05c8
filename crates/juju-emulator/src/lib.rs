//! Juju controller emulator: a TLS websocket server that speaks the Juju API for user
//! secrets, secret backends and model config, for tests and local development.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use juju_emulator::{Emulator, EmulatorConfig};
//!
//! let dir = tempfile::tempdir()?;
//! let emulator = Emulator::start(EmulatorConfig::new(dir.path())).await?;
//! let info = emulator.connection_info(); // endpoint, CA, users and models to log in with
//! assert_eq!(info.models[0].name, "dev");
//! emulator.faults().drop_connections(); // every client connection is cut once
//! emulator.shutdown().await;
//! # Ok(())
//! # }
//! ```
//!
//! It is not a Juju controller: no deploy, units, relations or charm secrets, no real
//! vault or Kubernetes secret backend (their reachability is a fault), and its frame log
//! holds passwords and secret values verbatim. Never run it outside tests and local
//! development.
//!
//! # Imitated version
//!
//! The emulator behaves like a **Juju 3.6.14** controller (`server-version` and
//! `agent-version` are `"3.6.14"`): identical content makes no new secret revision,
//! `latest-revision-checksum` is reported, RemoveSecrets skips missing revisions,
//! external `kubernetes` backends have the strict 3.6.3+ schema, vault accepts
//! `mount-path`, CreateSecrets still accepts a `uri`, and secret IDs are xids.
//!
//! From the second reading of Juju's source (`juju-api.md` §10) it also does: a write
//! (CreateSecrets, UpdateSecrets, even a description-only update) fails at the top level
//! when the model's active backend is unreachable; GrantSecret on a URI that does not
//! exist fails per application with `secret "<uri>" not found`, RevokeSecret succeeds
//! for every application, a revoke of an unknown application succeeds; RemoveSecrets
//! deletes from the external backend first, per item (`backend "<id>" not found` for a
//! force-removed one, `cannot remove revision "<id>-<n>" from secret backend ...` for an
//! unreachable vault, every item failing while the model names a removed backend), and
//! revisions of a force-removed backend stay there when the model moves; the backend
//! edge cases of §10.7 (the controller UUID accepted as a new backend's ID, a negative
//! rotate interval stored on update, a present `name-change` always running the in-use
//! check and never validated); backend config validated but stored and listed as sent
//! (§10.6); the `show-secrets` value errors of §10.8 (a model naming a removed backend,
//! a removed latest revision, a force-removed backend); the empty label as no label
//! (§10.5: any number of unlabelled secrets, a label `""` filter lists them, RemoveSecrets
//! with neither URI nor label removes the one unlabelled secret).
//!
//! # Where it still differs from Juju 3.6
//!
//! * Juju drains a model's revisions to its new `secret-backend` asynchronously (§10.1);
//!   the emulator does it after a fixed drain delay (`SetDrainDelay`), at once by
//!   default, and all of a model's revisions in one step.
//! * A value read from a force-removed backend says `have map[...]` with the remaining
//!   backends' IDs where Juju prints its map of backend clients (§10.8); a model naming
//!   a removed backend gives every value `secret backend "<name>" not found`, the text
//!   the emulator uses for that backend elsewhere (Juju's own wording there is unverified).
//!
//! With [`EmulatorConfig::checksums`] off (`juju-emulator --no-checksums`) it behaves
//! like a controller before 3.6 where secrets' content is concerned: no checksum in
//! listings and a new revision even for identical content. It still says 3.6.14 and
//! still sends `latest-revision-checksum`, empty (as 3.6 does for revisions written
//! before it; Juju before 3.6 leaves the field out, which clients read the same way).
//!
//! # Endpoints
//!
//! * `/api` (and `/`): controller login. Facades: ModelConfig v3 (on the unlisted controller
//!   model), ModelManager v9/v10, Pinger v1, SecretBackends v1.
//! * `/model/<uuid>/api`: model login. Facades: AllWatcher v3, Application v15–v22 (the
//!   charm config calls; applications' charms and their options are described in
//!   `facades/application.rs`), Client v6–v8 (WatchAll only), ModelConfig v3, Pinger v1,
//!   Secrets v1/v2. An unknown UUID makes every request
//!   fail with `unknown model: "<uuid>"` (`model not found`).
//! * `/emulator/control`: the control facade, accepted from loopback addresses only, with
//!   no login. It uses the normal RPC envelope with `"type":"Emulator","version":1` and the
//!   methods `DropConnections {}`, `SetDelay {"milliseconds","facade"?,"method"?}`,
//!   `FailNext {"facade","method","count","code","message"}`,
//!   `SetBackendReachable {"name","reachable"}`, `SetDrainDelay {"milliseconds"}` (how
//!   long after a model's `secret-backend` changes its revisions move; 0, the default,
//!   moves them at once; `juju-emulator --drain-delay-ms` sets it at start),
//!   `AddApplication {"model-uuid","application"}`, `CallCounts {}` (which returns
//!   `{"Facade.Method": n}`) and `CallTimes {}` (`{"Facade.Method": seconds}`: time from
//!   each frame's arrival to its encoded response, injected delays excluded; the
//!   "Juju-side time" of the benchmark) and `ContentTimes {}` (`{"<model uuid>":
//!   {"<label or ID>": ms}}`: when each secret's newest revision was stored, in ms since
//!   the Unix epoch; the benchmark's "time to Juju"). Control calls are not counted, timed, delayed,
//!   failed or logged. [`control_call`] sends one control request from Rust.
//!
//! The envelope follows Juju's codec: `request-id` echoed, `response` always present,
//! `error-code` only when non-empty, request keys matched case-insensitively with `null`
//! read as absent. Requests on one connection run concurrently, so responses may come
//! back out of order.
//!
//! # State directory
//!
//! `ca.pem`, `ca-key.pem`, `server.pem`, `server-key.pem` (kept, so a restarted emulator
//! stays trusted), `state.json` (users, passwords, models, secrets, backends; rewritten
//! atomically half a second after a change, a burst of changes at once, and at
//! shutdown) and `connection.json` ([`ConnectionInfo`], written once the server listens). A [`Seed`] is applied only when `state.json` does not exist yet.
//!
//! # Frame log
//!
//! With [`EmulatorConfig::frame_log`] set, or with the environment variable
//! `JUJU_EMULATOR_FRAME_LOG=<dir>` (then each instance writes `<dir>/<random>.jsonl`),
//! every API call is appended as one JSON line; see [`frame_log`]. The log holds requests
//! and responses verbatim, Login passwords and revealed secret content included, so it is
//! meant for test runs only. Tracing output never contains secret values.

mod control_client;
mod facades;
mod faults;
pub mod frame_log;
mod ids;
mod info;
mod rpc;
mod server;
mod state;
mod tls;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;
use tokio::sync::watch;

pub use control_client::control_call;
pub use faults::Faults;
pub use info::{ConnectionInfo, ModelInfo, Seed, SeedModel, SeedUser, UserInfo};

use rpc::RpcError;
use server::Shared;
use state::State;

/// The Juju version the emulator imitates.
pub const JUJU_VERSION: &str = facades::JUJU_VERSION;

/// Environment variable naming a directory for per-instance frame logs.
pub const FRAME_LOG_ENV: &str = "JUJU_EMULATOR_FRAME_LOG";

/// Errors starting the emulator.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// A file in the state directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The listening socket could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Certificate generation or TLS setup failed.
    #[error("TLS setup: {0}")]
    Tls(String),
    /// `state.json` could not be parsed or written.
    #[error("emulator state: {0}")]
    State(String),
    /// The seed is invalid.
    #[error("seed: {0}")]
    Seed(String),
}

/// How to start an emulator.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Address to listen on; port 0 picks a free port.
    pub listen: SocketAddr,
    /// Directory for certificates, state and `connection.json`; created if missing.
    pub state_dir: PathBuf,
    /// Starting content for a new state directory; `None` means [`Seed::default`].
    pub seed: Option<Seed>,
    /// File to append the frame log to.
    pub frame_log: Option<PathBuf>,
    /// Content checksums as Juju 3.6 reports them (default); `false` behaves like a
    /// controller before 3.6 ([`Faults::set_checksums`]).
    pub checksums: bool,
}

impl EmulatorConfig {
    /// Listens on `127.0.0.1:0` with the default seed and no frame log.
    pub fn new(state_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            state_dir: state_dir.into(),
            seed: None,
            frame_log: None,
            checksums: true,
        }
    }
}

/// A running emulator. Dropping it without [`Emulator::shutdown`] also stops the server
/// and closes its connections, in the background.
pub struct Emulator {
    info: ConnectionInfo,
    endpoint: SocketAddr,
    faults: Faults,
    shared: Arc<Shared>,
    shutdown_tx: watch::Sender<bool>,
    server: Option<tokio::task::JoinHandle<()>>,
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.shutdown_tx.send(true);
        self.shared.flush();
    }
}

impl std::fmt::Debug for Emulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Emulator")
            .field("endpoint", &self.endpoint)
            .field("controller_uuid", &self.info.controller_uuid)
            .finish_non_exhaustive()
    }
}

impl Emulator {
    /// Starts listening and writes `connection.json`.
    pub async fn start(config: EmulatorConfig) -> Result<Emulator, EmulatorError> {
        let dir = config.state_dir.clone();
        std::fs::create_dir_all(&dir).map_err(|source| EmulatorError::Io {
            path: dir.clone(),
            source,
        })?;
        let material = tls::load_or_create(&dir)?;
        let tls_config = tls::server_config(&material)?;
        let state_path = dir.join("state.json");
        let state = match State::load(&state_path)? {
            Some(s) => s,
            None => {
                let s = State::from_seed(&config.seed.clone().unwrap_or_default())?;
                s.save(&state_path)?;
                s
            }
        };
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .map_err(|source| EmulatorError::Bind {
                addr: config.listen,
                source,
            })?;
        let endpoint = listener
            .local_addr()
            .map_err(|source| EmulatorError::Bind {
                addr: config.listen,
                source,
            })?;
        let frame_log_path = config.frame_log.clone().or_else(|| {
            std::env::var_os(FRAME_LOG_ENV)
                .filter(|d| !d.is_empty())
                .map(|d| PathBuf::from(d).join(format!("{}.jsonl", uuid::Uuid::new_v4().simple())))
        });
        let frame_log = match frame_log_path {
            Some(p) => Some(frame_log::FrameLog::open(&p)?),
            None => None,
        };
        let (users, models) = state.public_lists();
        let info = ConnectionInfo {
            endpoint: endpoint.to_string(),
            ca_cert: material.ca_pem.clone(),
            controller_uuid: state.controller_uuid.clone(),
            users,
            models,
        };
        let faults = Faults::new();
        faults.set_checksums(config.checksums);
        let shared = Arc::new(Shared::new(
            state,
            state_path,
            faults.clone(),
            frame_log,
            endpoint.port(),
        ));
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        tokio::spawn(server::persist(shared.clone(), shutdown_rx.clone()));
        let server = tokio::spawn(server::serve(
            listener,
            tokio_rustls::TlsAcceptor::from(tls_config),
            shared.clone(),
            shutdown_rx,
        ));
        let text =
            serde_json::to_vec_pretty(&info).map_err(|e| EmulatorError::State(e.to_string()))?;
        state::write_private_atomically(&dir.join("connection.json"), &text)?;
        tracing::info!(%endpoint, juju_version = JUJU_VERSION, "juju emulator listening");
        Ok(Emulator {
            info,
            endpoint,
            faults,
            shared,
            shutdown_tx,
            server: Some(server),
        })
    }

    /// What clients need to connect: the content of `connection.json`, as written at start
    /// (applications added later are not reflected).
    pub fn connection_info(&self) -> &ConnectionInfo {
        &self.info
    }

    /// The listening address.
    pub fn endpoint(&self) -> SocketAddr {
        self.endpoint
    }

    /// The fault switches.
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Deploys an application (by name) in a model, so it can be granted secrets. Unknown
    /// models are ignored with a warning.
    pub fn add_application(&self, model_uuid: &str, app: &str) {
        if let Err(e) = add_application_to(&self.shared, model_uuid, app) {
            tracing::warn!(model_uuid, app, error = %e.message, "cannot add application");
        }
    }

    /// Number of calls of `facade.method` received so far (all connections).
    pub fn call_count(&self, facade: &str, method: &str) -> u64 {
        self.shared.call_count(facade, method)
    }

    /// Every call count so far, keyed `Facade.Method` (all connections).
    pub fn call_counts(&self) -> std::collections::HashMap<String, u64> {
        self.shared.call_counts()
    }

    /// Stops listening, closes every connection and writes the state out.
    pub async fn shutdown(mut self) {
        let _ = self.shutdown_tx.send(true);
        if let Some(server) = self.server.take()
            && let Err(e) = server.await
        {
            tracing::warn!(error = %e, "emulator server task failed");
        }
        self.shared.flush();
    }
}

/// Adds an application to a model; used by the API and the control facade.
pub(crate) fn add_application_to(
    shared: &Shared,
    model_uuid: &str,
    app: &str,
) -> Result<Value, RpcError> {
    shared.write(|state| {
        let model = state
            .model_mut(model_uuid)
            .ok_or_else(|| RpcError::not_found(format!("model {model_uuid:?} not found")))?;
        if !model.applications.iter().any(|a| a == app) {
            model.applications.push(app.to_owned());
        }
        Ok(rpc::empty())
    })
}
