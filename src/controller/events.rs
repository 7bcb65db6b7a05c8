//! Kubernetes Events, sent best-effort and behind the status writes.
//!
//! A reconcile hands its event to [`EventSink::send`] and goes on: the event does not
//! hold the reconcile (nor the object's Ready status) back. One task delivers the queue
//! with kube-runtime's [`Recorder`], a few at a time, and only while no status write
//! waits for the apiserver: when thousands of objects converge at once, the statuses
//! users watch go first and the events follow.
//!
//! As in client-go, events are best-effort: at most [`MAX_QUEUED_EVENTS`] wait; one more
//! is dropped and counted in the `events_dropped` metric, and a failed delivery is
//! logged, never retried.
//!
//! Each event is published by a fresh [`Recorder`]: a shared one keeps every event it
//! published for six minutes (to count repeats as a series) and scans that cache on each
//! publish, which at a 10,000-object cold start held about 10,000 events in memory and
//! made delivery quadratic. The operator publishes an event when something changes
//! (a write, a condition that flips), not on every retry, so there are no repeats to
//! count.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, Recorder, Reporter};
use tokio::sync::{Semaphore, TryAcquireError, mpsc};
use tracing::{debug, warn};

use super::context::KubeWrites;
use super::metrics::Metrics;

/// Events waiting for delivery at most (client-go keeps 1,000 too).
pub const MAX_QUEUED_EVENTS: usize = 1000;

/// Events in flight to the apiserver at most.
const MAX_EVENTS_IN_FLIGHT: usize = 4;

/// How long the deliverer waits before it looks again for a free apiserver write slot.
const YIELD_TO_STATUS: Duration = Duration::from_millis(20);

struct Pending {
    event: Event,
    reference: ObjectReference,
}

/// The queue of events to publish. Cheap to clone.
#[derive(Clone)]
pub struct EventSink {
    tx: mpsc::Sender<Pending>,
    metrics: Metrics,
}

impl EventSink {
    /// Starts the deliverer. `writes` bounds every apiserver write of the operator; an
    /// event takes one of its permits only when no other writer waits for one, and is
    /// dropped once `writes` has closed (the process no longer leads).
    pub fn start(
        client: kube::Client,
        reporter: Reporter,
        writes: KubeWrites,
        metrics: Metrics,
    ) -> Self {
        let (tx, rx) = mpsc::channel(MAX_QUEUED_EVENTS);
        tokio::spawn(deliver(rx, client, reporter, writes, metrics.clone()));
        Self { tx, metrics }
    }

    /// A sink that publishes nothing (a plan, which writes nowhere): every event is
    /// dropped.
    pub fn discard(metrics: Metrics) -> Self {
        let (tx, _) = mpsc::channel(1);
        Self { tx, metrics }
    }

    /// Queues `event` about `reference`; drops it when the queue is full.
    pub fn send(&self, event: Event, reference: ObjectReference) {
        match self.tx.try_send(Pending { event, reference }) {
            Ok(()) => self.metrics.event_queued(1),
            Err(mpsc::error::TrySendError::Full(p)) => {
                let dropped = self.metrics.event_dropped();
                // One log line per thousand drops is enough to say what happens.
                if dropped % 1000 == 1 {
                    warn!(
                        reason = %p.event.reason,
                        dropped,
                        "event queue full ({MAX_QUEUED_EVENTS} waiting); dropping events"
                    );
                }
            }
            Err(mpsc::error::TrySendError::Closed(p)) => {
                debug!(reason = %p.event.reason, "event deliverer stopped; event dropped");
            }
        }
    }
}

async fn deliver(
    mut rx: mpsc::Receiver<Pending>,
    client: kube::Client,
    reporter: Reporter,
    writes: KubeWrites,
    metrics: Metrics,
) {
    let slots = Arc::new(Semaphore::new(MAX_EVENTS_IN_FLIGHT));
    while let Some(pending) = rx.recv().await {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        // A permit is free only when no status write waits (the semaphore hands
        // released permits to its waiters first): events yield to them.
        let permit = loop {
            match writes.try_acquire_owned() {
                Ok(permit) => break permit,
                Err(TryAcquireError::NoPermits) => tokio::time::sleep(YIELD_TO_STATUS).await,
                Err(TryAcquireError::Closed) => return,
            }
        };
        if !writes.open() {
            debug!(reason = %pending.event.reason, "event not sent: this process no longer leads");
            metrics.event_queued(-1);
            continue;
        }
        let recorder = Recorder::new(client.clone(), reporter.clone());
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let Pending { event, reference } = pending;
            if let Err(e) = recorder.publish(&event, &reference).await {
                warn!(error = %e, reason = %event.reason, "cannot publish event");
            }
            metrics.event_queued(-1);
            drop((permit, slot));
        });
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::Mutex;

    use juju_client::Fence;
    use kube::runtime::events::{EventType, Reporter};

    use super::*;

    /// A fake apiserver that answers every request with an empty Event and records
    /// them.
    fn fake_client(seen: Arc<Mutex<Vec<String>>>) -> kube::Client {
        super::super::test_support::fake_client(
            seen,
            serde_json::json!({
                "apiVersion": "events.k8s.io/v1", "kind": "Event",
                "metadata": {"name": "e", "namespace": "ns"}, "eventTime": null
            }),
        )
    }

    fn event(i: usize) -> (Event, ObjectReference) {
        let event = Event {
            type_: EventType::Normal,
            reason: "Created".into(),
            note: Some(format!("created secret {i}")),
            action: "Create".into(),
            secondary: None,
        };
        let reference = ObjectReference {
            api_version: Some("secrets.juju.is/v1alpha1".into()),
            kind: Some("JujuSecret".into()),
            name: Some(format!("s{i}")),
            namespace: Some("ns".into()),
            uid: Some(format!("uid-{i}")),
            ..Default::default()
        };
        (event, reference)
    }

    async fn wait_for(seen: &Arc<Mutex<Vec<String>>>, n: usize) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while seen.lock().unwrap().len() < n {
            assert!(
                tokio::time::Instant::now() < deadline,
                "events not delivered"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn events_wait_while_status_writes_hold_every_permit() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (client, reporter) = (fake_client(seen.clone()), Reporter::from("test"));
        let writes = KubeWrites::new(2, None);
        let sink = EventSink::start(client, reporter, writes.clone(), Metrics::new());
        // Status writes hold both permits, and one more waits for a permit.
        let held = writes.hold(2).await.unwrap();
        let waiter = tokio::spawn({
            let writes = writes.clone();
            async move { writes.acquire().await.map(drop) }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        let (e, r) = event(1);
        sink.send(e, r);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            seen.lock().unwrap().is_empty(),
            "an event went before the status writes"
        );
        // The waiting writer gets the first permit released; then the event goes.
        drop(held);
        waiter.await.unwrap().unwrap();
        wait_for(&seen, 1).await;
        assert_eq!(
            seen.lock().unwrap().as_slice(),
            ["POST /apis/events.k8s.io/v1/namespaces/ns/events"]
        );
    }

    #[tokio::test]
    async fn no_event_goes_out_once_the_fence_has_closed() {
        // A leader woken past its Lease: its passes' events (a Juju call refused by the
        // fence, reported as JujuError) are not sent; with the fence open again, they are.
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (client, reporter) = (fake_client(seen.clone()), Reporter::from("test"));
        let fence = Fence::new(tokio::time::Instant::now());
        let writes = KubeWrites::new(8, Some(fence.clone()));
        let metrics = Metrics::new();
        let sink = EventSink::start(client, reporter, writes, metrics.clone());
        for i in 0..3 {
            let (e, r) = event(i);
            sink.send(e, r);
        }
        // The deliverer has taken all three off the queue (queued 0): none was sent.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !metrics
            .render()
            .contains("juju_secrets_operator_events_queued 0")
        {
            assert!(tokio::time::Instant::now() < deadline, "events not taken");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            seen.lock().unwrap().is_empty(),
            "an event went out through a closed fence"
        );
        fence.open_until(tokio::time::Instant::now() + Duration::from_secs(60));
        let (e, r) = event(3);
        sink.send(e, r);
        wait_for(&seen, 1).await;
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (client, reporter) = (fake_client(seen.clone()), Reporter::from("test"));
        let writes = KubeWrites::new(8, None);
        let metrics = Metrics::new();
        let sink = EventSink::start(client, reporter, writes.clone(), metrics.clone());
        let held = writes.hold(8).await.unwrap();
        // The deliverer takes the first event off the queue and waits with it; the
        // queue then holds MAX_QUEUED_EVENTS more; the 5 after them are dropped.
        let total = MAX_QUEUED_EVENTS + 1 + 5;
        for i in 0..total {
            let (e, r) = event(i);
            sink.send(e, r);
            if i == 0 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let text = metrics.render();
        assert!(
            text.contains("juju_secrets_operator_events_dropped_total 5"),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "juju_secrets_operator_events_queued {}",
                MAX_QUEUED_EVENTS + 1
            )),
            "{text}"
        );
        drop(held);
        wait_for(&seen, MAX_QUEUED_EVENTS + 1).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(seen.lock().unwrap().len(), MAX_QUEUED_EVENTS + 1);
        assert!(
            metrics
                .render()
                .contains("juju_secrets_operator_events_queued 0")
        );
    }
}
