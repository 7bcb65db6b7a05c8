//! A pass gives its reconcile slot back once its Juju write is queued.
//!
//! From the moment a pass has recorded its claim and queued its create or update in the
//! model's write batch, it has nothing left to do but wait: for the batch to gather and
//! be answered, then for the record and the status to be written. Held in a reconcile
//! slot, that wait bounds how many writes a batch can gather (the slots divided by the
//! models) and makes new objects wait for slots behind it. So a pass that queued a
//! write ends with what is left of it as a future of its own ([`Step::Waiting`]), which
//! runs as a task (its *tail*) while the reconcile returns. The tail is small: it owns
//! only what finishing needs, not room for the steps before.
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
//!   finishes in its slot, as every pass did before.
//!
//! [`Controller::reconcile_on`]: kube::runtime::Controller::reconcile_on

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use kube::ResourceExt;
use kube::runtime::reflector::ObjectRef;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore, mpsc};
use tracing::warn;

use super::super::Error;
use crate::crd::secret::JujuSecret;

/// Tails running at once at most, per controller. Tails pile up when Juju answers
/// faster than the apiserver takes the statuses (a restart over thousands of objects),
/// each holding its outcome (~2 KB) until its status write may go; when every tail is
/// taken, passes wait for Juju in the reconciles again, and new objects wait for their
/// finalizer behind them (a GitOps apply of 10,000 with 2,048 tails: arrival to
/// finalizer p99 35 s; with 8,192: 0.7 s, but 127 MiB at the restart's peak).
pub const MAX_TAILS: usize = 4096;

/// How long a stopping operator waits for the running tails (their Juju answers and
/// status writes) before it exits; what is cut short is recovered from the record.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(20);

/// When the pass runs next: after a delay, or on the next change only.
pub type Next = Option<Duration>;

/// How a pass ended.
pub enum Step {
    /// Done, with when it runs next.
    Done(Next),
    /// Its Juju write is queued; the rest of it waits for the answer.
    Waiting(BoxFuture<'static, Result<Next, Error>>),
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

    /// Runs `pass` of `js` once no earlier pass of the object runs; what is left of it
    /// after its Juju write was queued runs as a task, and the reconcile asks to run
    /// next `handed_off`.
    pub async fn run(
        self: &Arc<Self>,
        js: &Arc<JujuSecret>,
        handed_off: Next,
        pass: impl Future<Output = Result<Step, Error>>,
    ) -> Result<Next, Error> {
        let uid = js.uid().unwrap_or_default();
        self.wait_idle(&uid).await;
        let tail = match pass.await? {
            Step::Done(next) => return Ok(next),
            Step::Waiting(tail) => tail,
        };
        let Ok(permit) = self.permits.clone().try_acquire_owned() else {
            return tail.await;
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
        let (tails, js) = (self.clone(), js.clone());
        tokio::spawn(async move {
            let result = tail.await;
            tails.follow_up(&js, handed_off, result);
            drop(running);
        });
        Ok(handed_off)
    }

    /// Asks for the object's next pass when the tail's result wants it sooner than the
    /// reconcile that handed off did. (A tail turns its own errors into a backoff; any
    /// other is retried after a second.)
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

    /// Waits up to `timeout` for the running tails to finish; whether they all did.
    pub async fn drain(&self, timeout: Duration) -> bool {
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
            return false;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::sync::oneshot;

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

    /// A pass whose rest waits for `answer`, then ends with `next`.
    async fn waiting(
        answer: oneshot::Receiver<()>,
        next: Next,
        log: Option<(Arc<Mutex<Vec<&'static str>>>, &'static str)>,
    ) -> Result<Step, Error> {
        Ok(Step::Waiting(Box::pin(async move {
            let _ = answer.await;
            if let Some((log, line)) = log {
                log.lock().unwrap().push(line);
            }
            Ok(next)
        })))
    }

    #[tokio::test]
    async fn the_reconcile_returns_once_the_write_is_queued_and_the_tail_finishes_alone() {
        let (tails, _rx) = tails(4);
        let (answer_tx, answer_rx) = oneshot::channel::<()>();
        let finished = Arc::new(AtomicUsize::new(0));
        let done = finished.clone();
        let pass = async move {
            Ok(Step::Waiting(Box::pin(async move {
                // The Juju answer comes later.
                let _ = answer_rx.await;
                done.fetch_add(1, Ordering::SeqCst);
                Ok(REFRESH)
            })))
        };
        let next = tails.run(&object("a"), REFRESH, pass).await.unwrap();
        assert_eq!(next, REFRESH);
        assert_eq!(finished.load(Ordering::SeqCst), 0, "the tail still waits");
        answer_tx.send(()).unwrap();
        tails.wait_idle("a").await;
        assert_eq!(finished.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_pass_that_writes_nothing_keeps_its_answer() {
        let (tails, _rx) = tails(4);
        let pass = async { Ok(Step::Done(Some(Duration::from_secs(4)))) };
        let next = tails.run(&object("a"), REFRESH, pass).await.unwrap();
        assert_eq!(next, Some(Duration::from_secs(4)));
        let error = tails
            .run(&object("a"), REFRESH, async { Err(Error::NotNamespaced) })
            .await;
        assert!(matches!(error, Err(Error::NotNamespaced)));
    }

    #[tokio::test]
    async fn the_next_pass_of_an_object_waits_for_its_tail() {
        let (tails, _rx) = tails(4);
        let (answer_tx, answer_rx) = oneshot::channel::<()>();
        let order = Arc::new(Mutex::new(Vec::new()));
        let pass = waiting(answer_rx, REFRESH, Some((order.clone(), "first tail")));
        tails.run(&object("a"), REFRESH, pass).await.unwrap();
        // Another object is not held up.
        tails
            .run(&object("b"), REFRESH, async { Ok(Step::Done(REFRESH)) })
            .await
            .unwrap();
        let second = order.clone();
        let next = tokio::spawn({
            let tails = tails.clone();
            async move {
                let pass = async move {
                    second.lock().unwrap().push("second pass");
                    Ok(Step::Done(REFRESH))
                };
                tails.run(&object("a"), REFRESH, pass).await
            }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(order.lock().unwrap().is_empty(), "the second pass waits");
        answer_tx.send(()).unwrap();
        next.await.unwrap().unwrap();
        assert_eq!(*order.lock().unwrap(), ["first tail", "second pass"]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_tail_that_ends_sooner_than_expected_asks_for_the_next_pass() {
        let (tails, mut rx) = tails(4);
        let (answer_tx, answer_rx) = oneshot::channel::<()>();
        // A transient problem: back off 2 s.
        let pass = waiting(answer_rx, Some(Duration::from_secs(2)), None);
        tails.run(&object("a"), REFRESH, pass).await.unwrap();
        answer_tx.send(()).unwrap();
        let asked = tokio::time::timeout(Duration::from_secs(3), rx.recv())
            .await
            .expect("the next pass is asked for after the backoff")
            .unwrap();
        assert_eq!(asked.name, "a");
        // A tail that ends as the reconcile expected asks for nothing.
        let (answer_tx, answer_rx) = oneshot::channel::<()>();
        let pass = waiting(answer_rx, REFRESH, None);
        tails.run(&object("b"), REFRESH, pass).await.unwrap();
        answer_tx.send(()).unwrap();
        tails.wait_idle("b").await;
        assert!(
            tokio::time::timeout(Duration::from_secs(600), rx.recv())
                .await
                .is_err()
        );
    }

    #[tokio::test]
    async fn with_every_tail_taken_a_pass_finishes_in_its_slot() {
        let (tails, _rx) = tails(1);
        let (answer_tx, answer_rx) = oneshot::channel::<()>();
        tails
            .run(&object("a"), REFRESH, waiting(answer_rx, REFRESH, None))
            .await
            .unwrap();
        let (queued_tx, queued_rx) = oneshot::channel::<()>();
        let kept = tokio::spawn({
            let tails = tails.clone();
            let pass = waiting(queued_rx, Some(Duration::from_secs(7)), None);
            async move { tails.run(&object("b"), REFRESH, pass).await }
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
