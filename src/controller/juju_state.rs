//! What the controllers know of Juju, shared between reconciles so that thousands of
//! objects cost few Juju round trips:
//!
//! - [`ModelDirectory`]: the model list, read once and kept briefly, to resolve the
//!   names users write to UUIDs;
//! - [`SecretListings`]: one `ListSecrets` per model serves the drift check of every
//!   JujuSecret in that model until it is older than the refresh interval; the
//!   operator's own writes are applied to it in place;
//! - [`WriteBatcher`]: creates and updates for one model that arrive while a call is
//!   in flight go out together in the next bulk call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::ownership::OwnershipRecord;

use juju_client::{
    self, ApiError, JujuClient, Model, NewSecret, SecretFilter, SecretInfo, SecretUpdate, SecretUri,
};

/// A Juju failure that can be handed to many waiters.
#[derive(Clone, Debug, thiserror::Error)]
#[error("{message}")]
pub struct SharedFailure {
    /// What kind of failure, for conditions.
    pub kind: FailureKind,
    /// The error text (never contains secret values).
    pub message: String,
}

/// Kinds of Juju failures the controllers distinguish.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// Unreachable, dropped, timed out: retry later.
    Unavailable,
    /// Credentials or permission refused.
    Unauthorized,
    /// The model does not exist or is not visible.
    ModelNotFound,
    /// Content refused before sending.
    InvalidContent,
    /// Juju answered that the model's secret backend (vault) cannot be reached: nothing
    /// was written; retry later.
    BackendUnreachable,
    /// Anything else Juju said.
    Other,
    /// The ownership record could not be written before the call (the apiserver, or a
    /// shard the operator will not overwrite): nothing was sent; retry later.
    Record,
}

/// Whether a Juju error text says a secret backend could not be reached (vault down,
/// sealed, refusing connections).
pub fn says_backend_unreachable(text: &str) -> bool {
    text.contains("not reachable") || text.contains("cannot ping") || text.contains("sealed")
}

impl From<&juju_client::Error> for SharedFailure {
    fn from(e: &juju_client::Error) -> Self {
        let kind = match e {
            juju_client::Error::ModelNotFound { .. }
            | juju_client::Error::AmbiguousModel { .. } => FailureKind::ModelNotFound,
            juju_client::Error::InvalidContent(_) => FailureKind::InvalidContent,
            e if e.is_transient() => FailureKind::Unavailable,
            e if e.is_unauthorized() => FailureKind::Unauthorized,
            e if says_backend_unreachable(&e.to_string()) => FailureKind::BackendUnreachable,
            e if e.code() == Some(&juju_client::ErrorCode::ModelNotFound) => {
                FailureKind::ModelNotFound
            }
            _ => FailureKind::Other,
        };
        Self {
            kind,
            message: e.to_string(),
        }
    }
}

impl From<juju_client::Error> for SharedFailure {
    fn from(e: juju_client::Error) -> Self {
        Self::from(&e)
    }
}

/// Resolves model names to models, from a model list kept for a short while.
pub struct ModelDirectory {
    juju: JujuClient,
    max_age: Duration,
    cache: tokio::sync::Mutex<Option<(Instant, Arc<Vec<Model>>)>>,
}

impl ModelDirectory {
    /// A directory that re-reads the model list when it is older than `max_age`.
    pub fn new(juju: JujuClient, max_age: Duration) -> Self {
        Self {
            juju,
            max_age,
            cache: tokio::sync::Mutex::new(None),
        }
    }

    async fn models(&self, force: bool) -> Result<Arc<Vec<Model>>, SharedFailure> {
        let mut cache = self.cache.lock().await;
        if let Some((at, models)) = cache.as_ref()
            && !force
            && at.elapsed() < self.max_age
        {
            return Ok(models.clone());
        }
        let models = Arc::new(self.juju.list_models().await?);
        *cache = Some((Instant::now(), models.clone()));
        Ok(models)
    }

    /// Resolves a model as users write it (name, `owner/name`, UUID). A miss re-reads
    /// the list once, so models created a moment ago are found.
    pub async fn resolve(&self, spec: &str) -> Result<Model, SharedFailure> {
        let user = self.juju.options().username.clone();
        for force in [false, true] {
            let models = self.models(force).await?;
            match resolve_in(&models, spec, &user) {
                Ok(model) => return Ok(model),
                Err(e) if force => return Err(e.into()),
                Err(_) => {}
            }
        }
        Err(SharedFailure {
            kind: FailureKind::ModelNotFound,
            message: format!("model {spec:?} not found"),
        })
    }

    /// The model with UUID `uuid` in the list as last read (read again only when older
    /// than the directory's `max_age`); `None` when it is not there (a model destroyed).
    pub async fn known(&self, uuid: &str) -> Result<Option<Model>, SharedFailure> {
        let models = self.models(false).await?;
        Ok(models.iter().find(|m| m.uuid == uuid).cloned())
    }
}

/// The model-resolution rule of [`JujuClient::resolve_model`], on a list at hand.
fn resolve_in(models: &[Model], spec: &str, user: &str) -> Result<Model, juju_client::Error> {
    let not_found = || juju_client::Error::ModelNotFound {
        model: spec.to_owned(),
    };
    match juju_client::ModelSpec::parse(spec) {
        juju_client::ModelSpec::Uuid(uuid) => models
            .iter()
            .find(|m| m.uuid == uuid)
            .cloned()
            .ok_or_else(not_found),
        juju_client::ModelSpec::Qualified { owner, name } => models
            .iter()
            .find(|m| m.owner == owner && m.name == name)
            .cloned()
            .ok_or_else(not_found),
        juju_client::ModelSpec::Name(name) => {
            let matches: Vec<&Model> = models.iter().filter(|m| m.name == name).collect();
            if let Some(own) = matches.iter().find(|m| m.owner == user) {
                return Ok((*own).clone());
            }
            if matches.is_empty() {
                Err(not_found())
            } else {
                Err(juju_client::Error::AmbiguousModel {
                    model: spec.to_owned(),
                    candidates: matches.iter().map(|m| m.qualified_name()).collect(),
                })
            }
        }
    }
}

/// What the operator knows of one Juju secret, without its content.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretSummary {
    /// URI.
    pub uri: SecretUri,
    /// Label (name).
    pub label: Option<String>,
    /// Description.
    pub description: Option<String>,
    /// Latest revision.
    pub latest_revision: u64,
    /// Juju 3.6's checksum of the latest content.
    pub checksum: Option<String>,
    /// Applications with view access.
    pub applications: std::collections::BTreeSet<String>,
    /// The revisions Juju holds, sorted (as last listed, counting the operator's writes).
    pub revisions: Vec<u64>,
}

impl From<&SecretInfo> for SecretSummary {
    fn from(s: &SecretInfo) -> Self {
        Self {
            uri: s.uri.clone(),
            label: s.label.clone(),
            description: s.description.clone(),
            latest_revision: s.latest_revision,
            checksum: s.latest_revision_checksum.clone(),
            applications: s
                .access
                .iter()
                .filter_map(|a| a.application())
                .map(str::to_owned)
                .collect(),
            revisions: {
                let mut r: Vec<u64> = s.revisions.iter().map(|r| r.revision).collect();
                r.sort_unstable();
                r
            },
        }
    }
}

/// The user secrets of one model as last listed, with the operator's own writes
/// applied.
#[derive(Clone, Debug, Default)]
pub struct Listing {
    by_id: HashMap<String, SecretSummary>,
    /// Label → ID (labels are unique among a model's user secrets).
    by_label: HashMap<String, String>,
}

impl Listing {
    fn from_summaries(summaries: impl IntoIterator<Item = SecretSummary>) -> Self {
        let mut listing = Self::default();
        for s in summaries {
            listing.insert(s);
        }
        listing
    }

    fn insert(&mut self, secret: SecretSummary) {
        let id = secret.uri.id().to_owned();
        self.remove(&id);
        if let Some(label) = &secret.label {
            self.by_label.insert(label.clone(), id.clone());
        }
        self.by_id.insert(id, secret);
    }

    fn remove(&mut self, id: &str) {
        if let Some(old) = self.by_id.remove(id)
            && let Some(label) = old.label
            && self.by_label.get(&label).map(String::as_str) == Some(id)
        {
            self.by_label.remove(&label);
        }
    }

    /// The secret with this URI.
    pub fn by_uri(&self, uri: &SecretUri) -> Option<&SecretSummary> {
        self.by_id.get(uri.id())
    }

    /// The secret with this label.
    pub fn by_label(&self, label: &str) -> Option<&SecretSummary> {
        self.by_label.get(label).and_then(|id| self.by_id.get(id))
    }

    /// Number of secrets.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// True when the model has no user secrets.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }
}

#[derive(Default)]
struct ModelListing {
    fetched_at: Option<Instant>,
    /// Shared with the reconciles reading it; the operator's own writes copy it only
    /// while a reader still holds the old one.
    listing: Arc<Listing>,
}

/// Per-model secret listings shared by all reconciles.
pub struct SecretListings {
    juju: JujuClient,
    models: Mutex<HashMap<String, Arc<tokio::sync::Mutex<ModelListing>>>>,
}

impl SecretListings {
    /// Empty listings.
    pub fn new(juju: JujuClient) -> Self {
        Self {
            juju,
            models: Mutex::default(),
        }
    }

    fn entry(&self, model_uuid: &str) -> Arc<tokio::sync::Mutex<ModelListing>> {
        self.models
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(model_uuid.to_owned())
            .or_default()
            .clone()
    }

    /// The model's listing, read again from Juju when older than `max_age`.
    /// Concurrent callers wait for one read.
    pub async fn get(
        &self,
        model_uuid: &str,
        max_age: Duration,
    ) -> Result<Arc<Listing>, SharedFailure> {
        let entry = self.entry(model_uuid);
        let mut state = entry.lock().await;
        let fresh = state.fetched_at.is_some_and(|at| at.elapsed() < max_age);
        if !fresh {
            let listed = self
                .juju
                .list_secrets(model_uuid, &SecretFilter::user_secrets(model_uuid), false)
                .await?;
            state.listing = Arc::new(Listing::from_summaries(
                listed.iter().map(SecretSummary::from),
            ));
            state.fetched_at = Some(Instant::now());
        }
        Ok(state.listing.clone())
    }

    /// Records a secret the operator created or changed. Who may read it is kept as
    /// the listing knows it (the grant controller records that).
    pub async fn record(&self, model_uuid: &str, mut secret: SecretSummary) {
        let entry = self.entry(model_uuid);
        let mut state = entry.lock().await;
        if let Some(known) = state.listing.by_id.get(secret.uri.id()) {
            secret.applications.clone_from(&known.applications);
        }
        Arc::make_mut(&mut state.listing).insert(secret);
    }

    /// Records a change of who may read a secret.
    pub async fn record_access(
        &self,
        model_uuid: &str,
        uri: &SecretUri,
        applications: std::collections::BTreeSet<String>,
    ) {
        let entry = self.entry(model_uuid);
        let mut state = entry.lock().await;
        if state.listing.by_id.contains_key(uri.id())
            && let Some(s) = Arc::make_mut(&mut state.listing).by_id.get_mut(uri.id())
        {
            s.applications = applications;
        }
    }

    /// Records a removal.
    pub async fn forget(&self, model_uuid: &str, uri: &SecretUri) {
        let entry = self.entry(model_uuid);
        let mut state = entry.lock().await;
        Arc::make_mut(&mut state.listing).remove(uri.id());
    }

    /// Makes the next `get` read Juju again (after a surprise such as a name clash).
    pub async fn invalidate(&self, model_uuid: &str) {
        let entry = self.entry(model_uuid);
        entry.lock().await.fetched_at = None;
    }
}

type Reply<T> = oneshot::Sender<Result<Result<T, ApiError>, SharedFailure>>;

enum Write {
    Create(NewSecret, Reply<SecretUri>),
    Update(SecretUpdate, Reply<()>),
}

/// Most items one bulk call carries.
const MAX_BATCH: usize = 200;

/// How long the first write of a batch waits for others when the model's queue is idle:
/// one edit goes out at once.
const BATCH_LINGER: Duration = Duration::from_millis(25);

/// How long the first write of a batch waits for others while writes keep coming
/// together (a cold start, a mass edit): items for one model arrive at the rate the whole
/// operator converges divided by the number of models (the apiserver bounds that rate),
/// so batches fill only over seconds. The waiting passes hold no reconcile slot (they
/// wait as tails, see `jujusecret::tail`), and the last batch of a burst goes
/// [`BUSY_QUIET`] after its last write whatever this says: a long linger costs the
/// secrets in the middle of a burst some seconds, not the burst's end.
const BATCH_LINGER_BUSY: Duration = Duration::from_secs(10);

/// While busy, a batch goes out early when no write came for this long.
const BUSY_QUIET: Duration = Duration::from_millis(1500);

/// A queue whose last batch carried several writes, less than this long ago, counts as
/// busy (edits one after another make one-write batches and stay fast).
const BUSY_WITHIN: Duration = Duration::from_secs(2);

/// Writes queued over all models within the last [`ARRIVALS_WINDOW`] or two from which
/// every queue counts as busy: a burst over many models (a cold start) brings each model
/// only a write now and then, which alone would go out one by one.
const BUSY_ARRIVALS: usize = 64;

/// The window [`Arrivals`] counts in.
const ARRIVALS_WINDOW: Duration = Duration::from_secs(1);

/// How many writes were queued lately, over all models: in the current window and the
/// one before.
#[derive(Debug, Default)]
struct Arrivals {
    windows: Mutex<ArrivalWindows>,
}

#[derive(Debug, Default)]
struct ArrivalWindows {
    started: Option<Instant>,
    current: usize,
    previous: usize,
}

impl ArrivalWindows {
    fn roll(&mut self, now: Instant) {
        let Some(started) = self.started else {
            self.started = Some(now);
            return;
        };
        let elapsed = now.saturating_duration_since(started);
        if elapsed >= 2 * ARRIVALS_WINDOW {
            *self = Self {
                started: Some(now),
                ..Self::default()
            };
        } else if elapsed >= ARRIVALS_WINDOW {
            self.previous = std::mem::take(&mut self.current);
            self.started = Some(started + ARRIVALS_WINDOW);
        }
    }
}

impl Arrivals {
    fn add(&self, now: Instant) {
        let mut w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        w.roll(now);
        w.current += 1;
    }

    fn recent(&self, now: Instant) -> usize {
        let mut w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        w.roll(now);
        w.current + w.previous
    }
}

/// Sends the creates and updates of one model in bulk calls.
pub struct WriteBatcher {
    juju: JujuClient,
    queues: Mutex<HashMap<String, mpsc::UnboundedSender<Write>>>,
    record: Arc<OwnershipRecord>,
    /// Writes queued lately, over every model.
    arrivals: Arc<Arrivals>,
}

impl WriteBatcher {
    /// A batcher over `juju` whose ownership record is kept in memory only.
    pub fn new(juju: JujuClient) -> Self {
        Self::with_record(juju, Arc::new(OwnershipRecord::in_memory()))
    }

    /// A batcher over `juju` that makes the ownership `record` durable before every
    /// bulk write: the claims a create covers, and the confirmations an update of an
    /// owned secret rests on.
    pub fn with_record(juju: JujuClient, record: Arc<OwnershipRecord>) -> Self {
        Self {
            juju,
            queues: Mutex::default(),
            record,
            arrivals: Arc::default(),
        }
    }

    fn queue(&self, model_uuid: &str) -> mpsc::UnboundedSender<Write> {
        let mut queues = self.queues.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = queues.get(model_uuid).filter(|tx| !tx.is_closed()) {
            return tx.clone();
        }
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(drain(
            self.juju.clone(),
            self.record.clone(),
            self.arrivals.clone(),
            model_uuid.to_owned(),
            rx,
        ));
        queues.insert(model_uuid.to_owned(), tx.clone());
        tx
    }

    /// Creates one secret, in a bulk call with whatever else is waiting. The write is
    /// queued when this is called; the future waits for Juju's answer.
    pub fn create(
        &self,
        model_uuid: &str,
        secret: NewSecret,
    ) -> impl Future<Output = Result<Result<SecretUri, ApiError>, SharedFailure>> + use<> {
        let (tx, rx) = oneshot::channel();
        let queued = self.send(model_uuid, Write::Create(secret, tx));
        async move {
            queued?;
            rx.await.map_err(|_| closed())?
        }
    }

    /// Updates one secret, in a bulk call with whatever else is waiting. The write is
    /// queued when this is called; the future waits for Juju's answer.
    pub fn update(
        &self,
        model_uuid: &str,
        update: SecretUpdate,
    ) -> impl Future<Output = Result<Result<(), ApiError>, SharedFailure>> + use<> {
        let (tx, rx) = oneshot::channel();
        let queued = self.send(model_uuid, Write::Update(update, tx));
        async move {
            queued?;
            rx.await.map_err(|_| closed())?
        }
    }

    fn send(&self, model_uuid: &str, write: Write) -> Result<(), SharedFailure> {
        self.queue(model_uuid).send(write).map_err(|_| closed())?;
        self.arrivals.add(Instant::now());
        Ok(())
    }
}

fn closed() -> SharedFailure {
    SharedFailure {
        kind: FailureKind::Unavailable,
        message: "the Juju write queue is shut down".into(),
    }
}

/// The batching rule of one model's queue, apart from the clock: how long the first
/// write of a batch waits for others.
#[derive(Debug, Default)]
struct Pace {
    /// When the last batch went out, if it carried several writes.
    last_multi: Option<Instant>,
}

/// How one batch waits for more writes.
#[derive(Debug, PartialEq, Eq)]
struct Linger {
    /// The batch goes out at the latest then.
    deadline: Instant,
    /// While busy: the batch goes out early when no write came for this long.
    quiet: Option<Duration>,
}

impl Pace {
    /// How a batch whose first write arrived at `now` waits: briefly when the queue is
    /// idle, longer while busy (a batch of several writes went out within
    /// [`BUSY_WITHIN`], or `arrivals` writes came over all models lately, at least
    /// [`BUSY_ARRIVALS`]).
    fn linger(&self, now: Instant, arrivals: usize) -> Linger {
        let busy = arrivals >= BUSY_ARRIVALS
            || self
                .last_multi
                .is_some_and(|t| now.saturating_duration_since(t) < BUSY_WITHIN);
        if busy {
            Linger {
                deadline: now + BATCH_LINGER_BUSY,
                quiet: Some(BUSY_QUIET),
            }
        } else {
            Linger {
                deadline: now + BATCH_LINGER,
                quiet: None,
            }
        }
    }

    /// A batch of `len` writes went out at `now`; one-write batches leave the queue
    /// idle.
    fn sent(&mut self, now: Instant, len: usize) {
        self.last_multi = (len > 1).then_some(now);
    }
}

impl Linger {
    /// How long to wait for the next write at `now`; `None` once the batch must go.
    fn wait(&self, now: Instant) -> Option<Duration> {
        let left = self.deadline.saturating_duration_since(now);
        if left.is_zero() {
            return None;
        }
        Some(self.quiet.map_or(left, |q| left.min(q)))
    }
}

/// Takes everything queued, sends creates and updates as one call each, answers each
/// waiter, and repeats.
async fn drain(
    juju: JujuClient,
    record: Arc<OwnershipRecord>,
    arrivals: Arc<Arrivals>,
    model_uuid: String,
    mut rx: mpsc::UnboundedReceiver<Write>,
) {
    let mut pace = Pace::default();
    while let Some(first) = rx.recv().await {
        // Writes of many objects reconciled together arrive a few milliseconds apart:
        // wait a moment for them so they share one round trip; longer while busy.
        let now = Instant::now();
        let linger = pace.linger(now, arrivals.recent(now));
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            let Some(wait) = linger.wait(Instant::now()) else {
                break;
            };
            match tokio::time::timeout(wait, rx.recv()).await {
                Ok(Some(w)) => batch.push(w),
                Ok(None) | Err(_) => break,
            }
        }
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(w) => batch.push(w),
                Err(_) => break,
            }
        }
        pace.sent(Instant::now(), batch.len());
        let mut creates = Vec::new();
        let mut updates = Vec::new();
        for w in batch {
            match w {
                Write::Create(s, reply) => creates.push((s, reply)),
                Write::Update(u, reply) => updates.push((u, reply)),
            }
        }
        // The record must hold the claims of these creates and the ownership these
        // updates rest on before Juju is asked (one write covers every model's batch).
        if let Err(message) = record.persist().await {
            let failure = SharedFailure {
                kind: FailureKind::Record,
                message,
            };
            for (_, reply) in creates {
                let _ = reply.send(Err(failure.clone()));
            }
            for (_, reply) in updates {
                let _ = reply.send(Err(failure.clone()));
            }
            continue;
        }
        if !creates.is_empty() {
            let (items, replies): (Vec<_>, Vec<_>) = creates.into_iter().unzip();
            match juju.create_secrets(&model_uuid, &items).await {
                // One bad item may fail a bulk create as a whole (Juju 3.6.15+);
                // labels are unique, so sending the items one by one cannot
                // duplicate any.
                Err(e) if items.len() > 1 && !e.is_transient() => {
                    for (item, reply) in items.into_iter().zip(replies) {
                        let one = juju
                            .create_secrets(&model_uuid, std::slice::from_ref(&item))
                            .await;
                        answer(one, vec![reply]);
                    }
                }
                outcome => answer(outcome, replies),
            }
        }
        if !updates.is_empty() {
            let (items, replies): (Vec<_>, Vec<_>) = updates.into_iter().unzip();
            let outcome = juju.update_secrets(&model_uuid, &items).await;
            match outcome {
                // One bad item may fail a bulk update as a whole (Juju 3.6.15+); send
                // the items one by one so the others still go through.
                Err(e) if items.len() > 1 && !e.is_transient() => {
                    for (item, reply) in items.into_iter().zip(replies) {
                        let one = juju
                            .update_secrets(&model_uuid, std::slice::from_ref(&item))
                            .await;
                        answer(one, vec![reply]);
                    }
                }
                outcome => answer(outcome, replies),
            }
        }
    }
}

fn answer<T>(outcome: juju_client::Result<Vec<Result<T, ApiError>>>, replies: Vec<Reply<T>>) {
    match outcome {
        Ok(results) => {
            for (result, reply) in results.into_iter().zip(replies) {
                let _ = reply.send(Ok(result));
            }
        }
        Err(e) => {
            let failure = SharedFailure::from(&e);
            for reply in replies {
                let _ = reply.send(Err(failure.clone()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(id: &str, label: &str) -> SecretSummary {
        SecretSummary {
            uri: SecretUri::parse(&format!("secret:{id}")).unwrap(),
            label: Some(label.into()),
            description: None,
            latest_revision: 1,
            checksum: None,
            applications: Default::default(),
            revisions: vec![1],
        }
    }

    #[test]
    fn an_idle_queue_sends_a_lone_write_after_the_short_linger() {
        let t0 = Instant::now();
        let pace = Pace::default();
        let linger = pace.linger(t0, 0);
        assert_eq!(linger.wait(t0), Some(BATCH_LINGER));
        assert_eq!(linger.wait(t0 + BATCH_LINGER), None);
    }

    #[test]
    fn a_busy_queue_waits_longer_but_goes_out_once_writes_stop_coming() {
        let t0 = Instant::now();
        let mut pace = Pace::default();
        pace.sent(t0, 50);
        // 200 ms after a burst the queue is busy: the next batch may wait up to the
        // busy linger, but never longer than the quiet interval at a time.
        let start = t0 + Duration::from_millis(200);
        let linger = pace.linger(start, 0);
        assert_eq!(linger.deadline, start + BATCH_LINGER_BUSY);
        assert_eq!(linger.wait(start), Some(BUSY_QUIET));
        let late = start + BATCH_LINGER_BUSY - Duration::from_millis(300);
        assert_eq!(linger.wait(late), Some(Duration::from_millis(300)));
        assert_eq!(linger.wait(start + BATCH_LINGER_BUSY), None);
    }

    #[test]
    fn the_busy_state_ends_with_the_burst() {
        let t0 = Instant::now();
        let mut pace = Pace::default();
        pace.sent(t0, 5);
        assert_eq!(pace.linger(t0 + BUSY_WITHIN, 0).quiet, None);
        // Writes one after another make one-write batches: never busy.
        let mut pace = Pace::default();
        for i in 0..10 {
            let now = t0 + Duration::from_millis(100 * i);
            assert_eq!(pace.linger(now, 1).quiet, None, "write {i}");
            pace.sent(now, 1);
        }
        // A one-write batch after a burst ends the busy state at once.
        let mut pace = Pace::default();
        pace.sent(t0, 5);
        pace.sent(t0 + Duration::from_millis(10), 1);
        assert_eq!(pace.linger(t0 + Duration::from_millis(20), 0).quiet, None);
    }

    #[test]
    fn arrivals_count_the_last_second_or_two() {
        let t0 = Instant::now();
        let a = Arrivals::default();
        for _ in 0..40 {
            a.add(t0);
        }
        let later = t0 + Duration::from_millis(1500);
        for _ in 0..30 {
            a.add(later);
        }
        // The first second's 40 and the current second's 30.
        assert_eq!(a.recent(later), 70);
        // A second on, only the 30 remain; two seconds of silence forget everything.
        assert_eq!(a.recent(t0 + Duration::from_millis(2100)), 30);
        assert_eq!(a.recent(t0 + Duration::from_secs(5)), 0);
    }

    #[test]
    fn a_burst_over_many_models_makes_every_queue_busy() {
        let t0 = Instant::now();
        // The model's own queue saw nothing yet, but writes came to others lately.
        let pace = Pace::default();
        assert_eq!(pace.linger(t0, BUSY_ARRIVALS - 1).quiet, None);
        let busy = pace.linger(t0, BUSY_ARRIVALS);
        assert_eq!(busy.deadline, t0 + BATCH_LINGER_BUSY);
        assert_eq!(busy.quiet, Some(BUSY_QUIET));
    }

    #[test]
    fn the_label_index_follows_renames_and_removals() {
        let a = "9fvb66662rqormfsip9g";
        let b = "9fvb66662rqormfsip80";
        let mut l = Listing::from_summaries([summary(a, "db"), summary(b, "api")]);
        assert_eq!(l.by_label("db").map(|s| s.uri.id()), Some(a));
        l.insert(summary(a, "db-renamed"));
        assert!(l.by_label("db").is_none());
        assert_eq!(l.by_label("db-renamed").map(|s| s.uri.id()), Some(a));
        l.remove(b);
        assert!(l.by_label("api").is_none());
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn model_names_resolve_like_the_cli() {
        let m = |owner: &str, name: &str, uuid: &str| Model {
            name: name.into(),
            owner: owner.into(),
            uuid: uuid.into(),
            model_type: "iaas".into(),
        };
        let models = vec![
            m("admin", "dev", "26e9b4dd-e657-4a2c-8f25-222c879fd45d"),
            m("bob", "dev", "36e9b4dd-e657-4a2c-8f25-222c879fd45d"),
            m("bob", "prod", "46e9b4dd-e657-4a2c-8f25-222c879fd45d"),
        ];
        assert_eq!(resolve_in(&models, "dev", "admin").unwrap().owner, "admin");
        assert_eq!(
            resolve_in(&models, "bob/dev", "admin").unwrap().owner,
            "bob"
        );
        assert!(matches!(
            resolve_in(&models, "prod", "admin"),
            Err(juju_client::Error::AmbiguousModel { .. })
        ));
        assert!(matches!(
            resolve_in(&models, "nope", "admin"),
            Err(juju_client::Error::ModelNotFound { .. })
        ));
        assert_eq!(
            resolve_in(&models, "46E9B4DD-e657-4a2c-8f25-222c879fd45d", "admin")
                .unwrap()
                .name,
            "prod"
        );
    }
}
