//! Juju before the finalizer: the finisher.
//!
//! A new JujuSecret (no finalizer yet) is written to Juju first: its pass claims the
//! name in the ownership record (marked with where the object is and its deletion
//! policy, see [`ownership::Unfinalized`]), the record is made durable, Juju is written,
//! and only then does the object get the operator's finalizer and its status, from this
//! finisher. In a GitOps apply of thousands of objects, one finalizer patch per object
//! before each Juju write would cost the apiserver as much as the apply itself and
//! stretch it; here the finisher yields to arriving objects: it writes once no new
//! object has arrived for [`QUIET`], or once an object has waited [`MAX_WAIT`].
//!
//! What keeps deletion safe in the meantime:
//! - an object deleted before its finalizer is added goes at once; the watch reports it
//!   and the record's entry makes [`super::deleted`] clean up;
//! - an object deleted while no operator ran is cleaned up by the start-up sweep
//!   ([`super::sweep`]), from the mark;
//! - a terminating object without the finalizer (held by another one) is cleaned up by
//!   its next pass.
//!
//! The finisher holds one small item per object (where it is, the status to write),
//! never a pass, and at most [`MAX_WAITING`] of them. What it has not written when the process stops is written by the next
//! leader's passes, which find the object still without the finalizer.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use kube::api::{Patch, PatchParams};
use kube::runtime::reflector::ObjectRef;
use kube::{Api, ResourceExt};
use serde_json::json;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tracing::{debug, warn};

use super::super::{Context, Error, mutants, outcome};
use super::FINALIZER;
use crate::crd::secret::{JujuSecret, JujuSecretStatus};

/// How long no new object must have arrived before the finisher writes.
pub const QUIET: Duration = Duration::from_millis(300);

/// The longest an object waits for its finalizer and status while objects keep arriving.
pub const MAX_WAIT: Duration = Duration::from_secs(20);

/// Objects waiting at most; beyond it a pass waits for room (and holds its tail or
/// reconcile slot, which slows new passes as before the finisher). A GitOps apply of
/// 10,000 never fills it; a cold start over 100,000 objects would hold ~2 KB per object.
pub const MAX_WAITING: usize = 16_384;

/// Objects finished at once at most (each: the finalizer patch, then the status write,
/// which also takes one of the bounded kube writes).
const IN_FLIGHT: usize = 128;

/// Whether `js` carries the operator's finalizer.
pub fn has_finalizer(js: &JujuSecret) -> bool {
    js.finalizers().iter().any(|f| f == FINALIZER)
}

/// One object's finalizer and status, waiting.
#[derive(Debug)]
struct Item {
    namespace: String,
    name: String,
    uid: String,
    /// The object's finalizers when its pass ran (the patch tests them).
    finalizers: Vec<String>,
    /// The status to write once the finalizer is there, if it changed.
    status: Option<JujuSecretStatus>,
    queued: Instant,
}

/// The objects waiting, in the order they came, one item per object.
#[derive(Debug, Default)]
struct Queue {
    order: VecDeque<String>,
    items: HashMap<String, Item>,
    /// When the last new object arrived.
    last_arrival: Option<Instant>,
}

impl Queue {
    /// Queues `item`; an object already waiting keeps its place and takes the newer
    /// status.
    fn push(&mut self, item: Item) {
        match self.items.get_mut(&item.uid) {
            Some(waiting) => {
                if item.status.is_some() {
                    waiting.status = item.status;
                }
                waiting.finalizers = item.finalizers;
            }
            None => {
                self.order.push_back(item.uid.clone());
                self.items.insert(item.uid.clone(), item);
            }
        }
    }

    /// The first object, if it may be finished `now`: no object arrived for [`QUIET`],
    /// or it waited [`MAX_WAIT`]. `Err(())` when objects wait but may not go yet.
    fn take(&mut self, now: Instant) -> Result<Option<Item>, ()> {
        let Some(first) = self.order.front().and_then(|uid| self.items.get(uid)) else {
            return Ok(None);
        };
        let quiet = self
            .last_arrival
            .is_none_or(|at| now.saturating_duration_since(at) >= QUIET);
        if !quiet && now.saturating_duration_since(first.queued) < MAX_WAIT {
            return Err(());
        }
        Ok(self
            .order
            .pop_front()
            .and_then(|uid| self.items.remove(&uid)))
    }
}

/// Writes new objects' finalizers and statuses after their Juju writes.
#[derive(Debug, Default)]
pub struct Finisher {
    queue: Mutex<Queue>,
    notify: Notify,
    /// Woken when an object leaves the queue (passes waiting for room).
    room: Notify,
    running: AtomicBool,
}

impl Finisher {
    fn queue(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the finisher runs (the JujuSecret controller started it).
    pub fn running(&self) -> bool {
        self.running.load(Ordering::Acquire)
    }

    /// A new object (without the finalizer) arrived: the finisher waits for quiet.
    pub fn arrived(&self) {
        self.queue().last_arrival = Some(Instant::now());
    }

    /// Queues `js`'s finalizer and, if `status` is given, its status after it.
    pub async fn push(&self, js: &JujuSecret, status: Option<JujuSecretStatus>) {
        self.push_within(js, status, MAX_WAITING).await;
    }

    /// [`push`](Self::push) with room for `capacity` objects; an object already queued
    /// never waits.
    async fn push_within(
        &self,
        js: &JujuSecret,
        status: Option<JujuSecretStatus>,
        capacity: usize,
    ) {
        let uid = js.uid().unwrap_or_default();
        loop {
            let room = {
                let q = self.queue();
                if q.items.len() < capacity || q.items.contains_key(&uid) {
                    break;
                }
                // Registered before the lock goes, so the wake-up cannot be missed.
                let mut room = Box::pin(self.room.notified());
                room.as_mut().enable();
                room
            };
            room.await;
        }
        self.queue().push(Item {
            namespace: js.namespace().unwrap_or_default(),
            name: js.name_any(),
            uid: js.uid().unwrap_or_default(),
            finalizers: js.finalizers().to_vec(),
            status,
            queued: Instant::now(),
        });
        self.notify.notify_one();
    }

    /// Runs until the process ends: finishes queued objects when they may go. An object
    /// whose finalizer patch fails is passed again (`retrigger`) after its backoff.
    pub async fn run(
        &self,
        ctx: &Context,
        retrigger: mpsc::UnboundedSender<ObjectRef<JujuSecret>>,
    ) {
        self.running.store(true, Ordering::Release);
        let mut finishing = FuturesUnordered::new();
        loop {
            let next = if finishing.len() < IN_FLIGHT {
                self.queue().take(Instant::now())
            } else {
                Err(())
            };
            match next {
                Ok(Some(item)) => {
                    self.room.notify_one();
                    let retrigger = retrigger.clone();
                    finishing.push(async move {
                        let key = format!("finisher {}/{}", item.namespace, item.name);
                        if let Err(error) = finish(ctx, &item).await {
                            let delay = ctx.backoff.next(&key);
                            warn!(object = %key, %error, retry_in = ?delay, "finalizer or status not written");
                            tokio::spawn(async move {
                                tokio::time::sleep(delay).await;
                                let _ = retrigger
                                    .send(ObjectRef::new(&item.name).within(&item.namespace));
                            });
                        } else {
                            ctx.backoff.reset(&key);
                        }
                    });
                }
                Ok(None) if finishing.is_empty() => self.notify.notified().await,
                Ok(None) => {
                    tokio::select! {
                        _ = finishing.next() => {}
                        () = self.notify.notified() => {}
                    }
                }
                // Objects wait for quiet (or for a slot): look again shortly.
                Err(()) => {
                    let _ = tokio::time::timeout(Duration::from_millis(50), async {
                        if finishing.is_empty() {
                            std::future::pending::<()>().await;
                        }
                        finishing.next().await;
                    })
                    .await;
                }
            }
        }
    }
}

/// Adds the finalizer (unless the object has it), then writes the status. Nothing once
/// the process no longer leads.
async fn finish(ctx: &Context, item: &Item) -> Result<(), Error> {
    if !ctx.kube_writes.open() {
        return Ok(());
    }
    let api: Api<JujuSecret> = Api::namespaced(ctx.client.clone(), &item.namespace);
    if !item.finalizers.iter().any(|f| f == FINALIZER)
        && !mutants::active(mutants::FINALIZER_NEVER_ADDED)
    {
        // As kube-runtime's finalizer helper does it: the patch applies only to this
        // object (UID) with the finalizers it had (a deletion in between refuses it).
        let ops = if item.finalizers.is_empty() {
            json!([
                {"op": "test", "path": "/metadata/uid", "value": item.uid},
                {"op": "test", "path": "/metadata/finalizers", "value": null},
                {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]},
            ])
        } else {
            json!([
                {"op": "test", "path": "/metadata/uid", "value": item.uid},
                {"op": "test", "path": "/metadata/finalizers", "value": item.finalizers},
                {"op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER},
            ])
        };
        let patch =
            serde_json::from_value(ops).map_err(|e| Error::Kube(kube::Error::SerdeError(e)))?;
        match api
            .patch(
                &item.name,
                &PatchParams::default(),
                &Patch::<()>::Json(patch),
            )
            .await
        {
            Ok(_) => ctx.ownership.finalized(&item.uid),
            // Gone: its deletion is the watch's to report, and the record's entry
            // makes it clean up.
            Err(kube::Error::Api(e)) if e.code == 404 => {
                debug!(object = item.name, "gone before its finalizer was added");
                return Ok(());
            }
            Err(e) => return Err(Error::Kube(e)),
        }
    }
    if let Some(status) = &item.status {
        let Some(_permit) = ctx.kube_writes.acquire().await else {
            return Ok(());
        };
        match outcome::apply_status(&api, &item.name, status).await {
            Err(Error::Kube(kube::Error::Api(e))) if e.code == 404 => return Ok(()),
            written => written?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    fn item(uid: &str, status: Option<u64>) -> Item {
        Item {
            namespace: "ns".into(),
            name: format!("n-{uid}"),
            uid: uid.into(),
            finalizers: Vec::new(),
            status: status.map(|revision| JujuSecretStatus {
                revision: Some(revision),
                ..JujuSecretStatus::default()
            }),
            queued: Instant::now(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn objects_wait_while_others_arrive_and_go_in_order_once_quiet() {
        let mut q = Queue::default();
        q.push(item("a", Some(1)));
        q.push(item("b", Some(1)));
        // The same object again: one item, the newer status, its first place.
        q.push(item("a", Some(2)));
        q.push(item("a", None));
        assert_eq!(q.items.len(), 2);
        // Nothing arrived yet: they may go at once.
        let a = q.take(Instant::now()).unwrap().unwrap();
        assert_eq!((a.uid.as_str(), a.status.unwrap().revision), ("a", Some(2)));
        // An object arrived just now: the rest waits for quiet.
        q.last_arrival = Some(Instant::now());
        assert!(q.take(Instant::now()).is_err());
        tokio::time::advance(QUIET - Duration::from_millis(1)).await;
        assert!(q.take(Instant::now()).is_err());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(q.take(Instant::now()).unwrap().unwrap().uid, "b");
        assert!(q.take(Instant::now()).unwrap().is_none());
    }

    fn object(uid: &str) -> JujuSecret {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "secrets.juju.is/v1alpha1", "kind": "JujuSecret",
            "metadata": {"name": uid, "namespace": "ns", "uid": uid},
            "spec": {"model": "m", "data": {"k": "v"}}
        }))
        .unwrap()
    }

    #[tokio::test(start_paused = true)]
    async fn a_pass_waits_for_room_once_the_queue_is_full() {
        let f = std::sync::Arc::new(Finisher::default());
        f.push_within(&object("a"), None, 2).await;
        f.push_within(&object("b"), None, 2).await;
        // Full: an object already queued takes its newer status at once ...
        f.push_within(&object("a"), Some(JujuSecretStatus::default()), 2)
            .await;
        // ... a new one waits until one leaves.
        let waiting = tokio::spawn({
            let f = f.clone();
            async move { f.push_within(&object("c"), None, 2).await }
        });
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!waiting.is_finished());
        let first = f.queue().take(Instant::now()).unwrap().unwrap();
        assert_eq!(first.uid, "a");
        assert!(first.status.is_some());
        f.room.notify_one();
        waiting.await.unwrap();
        assert_eq!(f.queue().items.len(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn an_object_waits_at_most_max_wait_while_objects_keep_arriving() {
        let mut q = Queue::default();
        q.push(item("a", Some(1)));
        let mut waited = Duration::ZERO;
        loop {
            q.last_arrival = Some(Instant::now());
            if q.take(Instant::now()).unwrap_or(None).is_some() {
                break;
            }
            tokio::time::advance(Duration::from_millis(100)).await;
            waited += Duration::from_millis(100);
            assert!(waited <= MAX_WAIT, "waited {waited:?}");
        }
        assert_eq!(waited, MAX_WAIT);
    }
}
