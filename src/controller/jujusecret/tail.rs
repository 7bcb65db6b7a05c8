//! A pass gives its reconcile slot back once its Juju write is queued.
//!
//! From the moment a pass has recorded its claim and queued its create or update in the
//! model's write batch, it has nothing left to do but wait: for the batch to gather and
//! be answered, then for the record and the status to be written. Held in a reconcile
//! slot, that wait bounds how many writes a batch can gather (the slots divided by the
//! models) and makes new objects wait for slots behind it. So the pass runs as a task
//! of its own, and the reconcile returns as soon as the write is queued ([`Handoff`]);
//! the rest of the pass (its *tail*) runs unchanged beside the controller.
//!
//! What stays as it was:
//! - one pass per object at a time: a pass or a cleanup of an object whose tail still
//!   runs waits for that tail first ([`Tails::wait_idle`]);
//! - order: the claim is in the record before the write is queued, and the batcher
//!   makes the record durable before Juju is asked;
//! - retries: the reconcile that handed off asked for the object's usual refresh; a tail
//!   that ends in a transient problem or an error triggers the object's next pass after
//!   its backoff ([`Controller::reconcile_on`]);
//! - bounds: at most [`MAX_TAILS`] tails run at once; a pass that finds them all taken
//!   keeps its slot to the end, as every pass did before.
//!
//! [`Controller::reconcile_on`]: kube::runtime::Controller::reconcile_on

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tracing::warn;

use super::super::Error;
use crate::crd::secret::JujuSecret;

/// Tails running at once at most, per controller.
pub const MAX_TAILS: usize = 8192;

/// How long a stopping operator waits for the running tails (their Juju answers and
/// status writes) before it exits; what is cut short is recovered from the record.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

/// When the pass runs next: after a delay, or on the next change only.
pub type Next = Option<Duration>;

/// Lets a pass tell its reconcile that its Juju write is queued.
#[derive(Debug, Default)]
pub struct Handoff {
    tx: Option<oneshot::Sender<()>>,
    handed: bool,
}

impl Handoff {
    /// A pass that keeps its slot to the end.
    pub fn keep() -> Self {
        Self::default()
    }

    fn to(tx: oneshot::Sender<()>) -> Self {
        Self {
            tx: Some(tx),
            handed: false,
        }
    }

    /// The pass's Juju write is queued: its reconcile may return.
    pub fn now(&mut self) {
        if let Some(tx) = self.tx.take() {
            self.handed = tx.send(()).is_ok();
        }
    }

    /// Whether the pass's reconcile has returned (what is left of the pass is a tail:
    /// its errors are its own to retry).
    pub fn handed(&self) -> bool {
        self.handed
    }
}

/// The tails of one JujuSecret controller.
pub struct Tails {
    /// Objects with a pass running as a task, and how to wake who waits for it.
    running: Mutex<HashMap<String, Arc<Notify>>>,
    permits: Arc<Semaphore>,
    capacity: usize,
    retrigger: mpsc::UnboundedSender<ObjectRef<JujuSecret>>,
}

/// An object's running pass; dropping it lets the object's next pass go.
struct Running {
    tails: Arc<Tails>,
    uid: String,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Running {
    fn drop(&mut self) {
        let notify = self
            .tails
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.uid);
        if let Some(notify) = notify {
            notify.notify_waiters();
        }
    }
}

impl Tails {
    /// Tails whose follow-up passes are asked for on `retrigger` (the controller's
    /// `reconcile_on` stream).
    pub fn new(retrigger: mpsc::UnboundedSender<ObjectRef<JujuSecret>>) -> Self {
        Self::with_capacity(retrigger, MAX_TAILS)
    }

    fn with_capacity(
        retrigger: mpsc::UnboundedSender<ObjectRef<JujuSecret>>,
        capacity: usize,
    ) -> Self {
        Self {
            running: Mutex::default(),
            permits: Arc::new(Semaphore::new(capacity)),
            capacity,
            retrigger,
        }
    }

    /// Waits until no pass of the object `uid` runs as a task.
    pub async fn wait_idle(&self, uid: &str) {
        loop {
            let notified = {
                let running = self.running.lock().unwrap_or_else(|p| p.into_inner());
                let Some(notify) = running.get(uid) else {
                    return;
                };
                // Registered before the lock goes, so the wake-up cannot be missed.
                let notify = notify.clone();
                let mut notified = Box::pin(notify.notified_owned());
                notified.as_mut().enable();
                notified
            };
            notified.await;
        }
    }

    /// Runs `pass` for `js`: in the reconcile's slot until the pass hands off, then as
    /// a task. Returns the pass's own answer if it ended before handing off, else
    /// `handed_off` (when the reconcile asks to run next).
    pub async fn run<F, Fut>(
        self: &Arc<Self>,
        js: Arc<JujuSecret>,
        handed_off: Next,
        pass: F,
    ) -> Result<Next, Error>
    where
        F: FnOnce(Handoff) -> Fut,
        Fut: Future<Output = Result<Next, Error>> + Send + 'static,
    {
        let uid = js.uid().unwrap_or_default();
        self.wait_idle(&uid).await;
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            return pass(Handoff::keep()).await;
        };
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(uid.clone(), Arc::new(Notify::new()));
        let running = Running {
            tails: self.clone(),
            uid,
            _permit: permit,
        };
        let (handed_tx, mut handed_rx) = oneshot::channel();
        let (result_tx, mut result_rx) = oneshot::channel();
        let pass = pass(Handoff::to(handed_tx));
        let tails = self.clone();
        tokio::spawn(async move {
            let result = pass.await;
            // The reconcile has returned already: what it would have done with the
            // result falls to the tail.
            if let Err(result) = result_tx.send(result) {
                tails.follow_up(&js, handed_off, result);
            }
            drop(running);
        });
        tokio::select! {
            biased;
            result = &mut result_rx => return result.unwrap_or(Err(Error::Interrupted)),
            Ok(()) = &mut handed_rx => {}
        }
        // Handed off. A result sent meanwhile is still this reconcile's to return;
        // after `close`, none can be sent any more.
        result_rx.close();
        match result_rx.try_recv() {
            Ok(result) => result,
            Err(_) => Ok(handed_off),
        }
    }

    /// Asks for the object's next pass when the tail's result wants it sooner than the
    /// reconcile that handed off did. (A pass turns its own errors after the handoff
    /// into a backoff; one that ended without an answer is retried after a second.)
    fn follow_up(&self, js: &JujuSecret, handed_off: Next, result: Result<Next, Error>) {
        let delay = match result {
            Ok(next) if next == handed_off => return,
            Ok(None) => return,
            Ok(Some(delay)) => delay,
            Err(error) => {
                let delay = Duration::from_secs(1);
                warn!(
                    namespace = js.namespace().unwrap_or_default(),
                    name = js.name_any(),
                    %error,
                    retry_in = ?delay,
                    "reconcile error after the Juju write"
                );
                delay
            }
        };
        let object = ObjectRef::from_obj(js);
        let retrigger = self.retrigger.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let _ = retrigger.send(object);
        });
    }

    /// Waits up to `timeout` for the running tails to finish.
    pub async fn drain(&self, timeout: Duration) {
        let all = u32::try_from(self.capacity).unwrap_or(u32::MAX);
        if tokio::time::timeout(timeout, self.permits.acquire_many(all))
            .await
            .is_err()
        {
            warn!(
                running = self
                    .capacity
                    .saturating_sub(self.permits.available_permits()),
                "stopping with passes still waiting for Juju; the record resumes them"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn object(uid: &str) -> Arc<JujuSecret> {
        let mut js: JujuSecret = serde_json::from_value(serde_json::json!({
            "apiVersion": "secrets.juju.is/v1alpha1", "kind": "JujuSecret",
            "metadata": {"name": uid, "namespace": "ns", "uid": uid},
            "spec": {"model": "dev", "data": {"k": "v"}}
        }))
        .unwrap();
        js.metadata.uid = Some(uid.into());
        Arc::new(js)
    }

    fn tails(capacity: usize) -> (Arc<Tails>, mpsc::UnboundedReceiver<ObjectRef<JujuSecret>>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Arc::new(Tails::with_capacity(tx, capacity)), rx)
    }

    const REFRESH: Next = Some(Duration::from_secs(300));

    #[tokio::test]
    async fn the_reconcile_returns_once_the_write_is_queued_and_the_tail_finishes_alone() {
        let (tails, _rx) = tails(4);
        let (answer_tx, answer_rx) = oneshot::channel::<()>();
        let finished = Arc::new(AtomicUsize::new(0));
        let done = finished.clone();
        let next = tails
            .run(object("a"), REFRESH, |mut handoff| async move {
                handoff.now();
                // The Juju answer comes later.
                let _ = answer_rx.await;
                done.fetch_add(1, Ordering::SeqCst);
                Ok(REFRESH)
            })
            .await
            .unwrap();
        assert_eq!(next, REFRESH);
        assert_eq!(finished.load(Ordering::SeqCst), 0, "the tail still waits");
        answer_tx.send(()).unwrap();
        tails.wait_idle("a").await;
        assert_eq!(finished.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_pass_that_writes_nothing_keeps_its_answer() {
        let (tails, _rx) = tails(4);
        let next = tails
            .run(object("a"), REFRESH, |_| async {
                Ok(Some(Duration::from_secs(4)))
            })
            .await
            .unwrap();
        assert_eq!(next, Some(Duration::from_secs(4)));
        let error = tails
            .run(object("a"), REFRESH, |_| async {
                Err(Error::NotNamespaced)
            })
            .await;
        assert!(matches!(error, Err(Error::NotNamespaced)));
    }

    #[tokio::test]
    async fn the_next_pass_of_an_object_waits_for_its_tail() {
        let (tails, _rx) = tails(4);
        let (answer_tx, answer_rx) = oneshot::channel::<()>();
        let order = Arc::new(Mutex::new(Vec::new()));
        let first = order.clone();
        tails
            .run(object("a"), REFRESH, |mut handoff| async move {
                handoff.now();
                let _ = answer_rx.await;
                first.lock().unwrap().push("first tail");
                Ok(REFRESH)
            })
            .await
            .unwrap();
        // Another object is not held up.
        tails
            .run(object("b"), REFRESH, |_| async { Ok(REFRESH) })
            .await
            .unwrap();
        let second = order.clone();
        let next = tokio::spawn({
            let tails = tails.clone();
            async move {
                tails
                    .run(object("a"), REFRESH, |_| async move {
                        second.lock().unwrap().push("second pass");
                        Ok(REFRESH)
                    })
                    .await
            }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(order.lock().unwrap().is_empty(), "the second pass waits");
        answer_tx.send(()).unwrap();
        next.await.unwrap().unwrap();
        assert_eq!(*order.lock().unwrap(), ["first tail", "second pass"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_tail_that_fails_after_the_handoff_asks_for_the_next_pass() {
        let (tails, mut rx) = tails(4);
        tails
            .run(object("a"), REFRESH, |mut handoff| async move {
                handoff.now();
                tokio::task::yield_now().await;
                // A transient problem: back off 2 s.
                Ok(Some(Duration::from_secs(2)))
            })
            .await
            .unwrap();
        let asked = tokio::time::timeout(Duration::from_secs(3), rx.recv())
            .await
            .expect("the next pass is asked for after the backoff")
            .unwrap();
        assert_eq!(asked.name, "a");
        // A tail that ends as the reconcile expected asks for nothing.
        tails
            .run(object("b"), REFRESH, |mut handoff| async move {
                handoff.now();
                tokio::task::yield_now().await;
                Ok(REFRESH)
            })
            .await
            .unwrap();
        tails.wait_idle("b").await;
        assert!(
            tokio::time::timeout(Duration::from_secs(600), rx.recv())
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn with_every_tail_taken_a_pass_keeps_its_slot() {
        let (tails, _rx) = tails(1);
        let (answer_tx, answer_rx) = oneshot::channel::<()>();
        tails
            .run(object("a"), REFRESH, |mut handoff| async move {
                handoff.now();
                let _ = answer_rx.await;
                Ok(REFRESH)
            })
            .await
            .unwrap();
        let (queued_tx, queued_rx) = oneshot::channel::<()>();
        let kept = tokio::spawn({
            let tails = tails.clone();
            async move {
                tails
                    .run(object("b"), REFRESH, |mut handoff| async move {
                        handoff.now();
                        let _ = queued_rx.await;
                        Ok(Some(Duration::from_secs(7)))
                    })
                    .await
            }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !kept.is_finished(),
            "no tail free: the reconcile waits for its pass"
        );
        queued_tx.send(()).unwrap();
        assert_eq!(kept.await.unwrap().unwrap(), Some(Duration::from_secs(7)));
        answer_tx.send(()).unwrap();
        tails.drain(Duration::from_secs(5)).await;
        assert_eq!(tails.permits.available_permits(), 1);
    }
}
