//! Pod events (`--events`) written with kube-rs's `events.k8s.io/v1` recorder, which folds
//! a repeated event of a pod into one Event with a series count, as Kubernetes' own
//! recorders do. A mount only queues: a bounded channel feeds one task that writes, each
//! write bounded in time, so a slow API server costs dropped events (counted), never a
//! slower mount.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tokio::sync::mpsc;

use crate::adapters::metrics::{DroppedEventLabels, EventLabels, Metrics};
use crate::domain::pod_events::{EventLimiter, EventLimits, PodEvent, Refused, Severity};
use crate::ports::{EventSink, PodRef};

/// Events waiting to be written; beyond, new ones are dropped.
const QUEUE: usize = 256;
/// Longest one write may take.
const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// The `reportingController` of our events.
pub const CONTROLLER: &str = "secrets-store-csi-driver-provider-aws";

pub struct KubeEvents {
    queue: mpsc::Sender<(PodRef, PodEvent)>,
    limiter: Mutex<EventLimiter>,
    metrics: Arc<Metrics>,
}

impl KubeEvents {
    /// Starts the writer on the current runtime. `node` names the reporting instance.
    pub fn start(client: kube::Client, node: Option<String>, metrics: Arc<Metrics>) -> Arc<Self> {
        let (queue, mut pending) = mpsc::channel::<(PodRef, PodEvent)>(QUEUE);
        let recorder = Recorder::new(
            client,
            Reporter {
                controller: CONTROLLER.into(),
                instance: node,
            },
        );
        let writer_metrics = metrics.clone();
        tokio::spawn(async move {
            while let Some((pod, event)) = pending.recv().await {
                let reason = event.reason;
                let written = tokio::time::timeout(
                    WRITE_TIMEOUT,
                    recorder.publish(&to_kube(&event), &reference(&pod)),
                )
                .await;
                match written {
                    Ok(Ok(())) => {
                        writer_metrics
                            .events_recorded
                            .get_or_create(&EventLabels {
                                reason: reason.to_string(),
                            })
                            .inc();
                    }
                    Ok(Err(e)) => {
                        tracing::debug!(error = %e, %reason, pod = %pod.name, namespace = %pod.namespace, "event not recorded");
                        dropped(&writer_metrics, "api_error");
                    }
                    Err(_) => {
                        tracing::debug!(%reason, pod = %pod.name, namespace = %pod.namespace, "event not recorded: the API server was too slow");
                        dropped(&writer_metrics, "api_error");
                    }
                }
            }
        });
        Arc::new(KubeEvents {
            queue,
            limiter: Mutex::new(EventLimiter::new(EventLimits::default(), Instant::now())),
            metrics,
        })
    }
}

impl EventSink for KubeEvents {
    fn record(&self, pod: &PodRef, event: PodEvent) {
        let admitted = self
            .limiter
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .admit(&pod.uid, Instant::now());
        if let Err(refused) = admitted {
            dropped(
                &self.metrics,
                match refused {
                    Refused::Pod => "pod_limit",
                    Refused::Node => "node_limit",
                    Refused::TooManyPods => "too_many_pods",
                },
            );
            return;
        }
        if self.queue.try_send((pod.clone(), event)).is_err() {
            dropped(&self.metrics, "queue_full");
        }
    }
}

fn dropped(metrics: &Metrics, why: &str) {
    metrics
        .events_dropped
        .get_or_create(&DroppedEventLabels {
            why: why.to_string(),
        })
        .inc();
}

fn to_kube(event: &PodEvent) -> Event {
    Event {
        type_: match event.severity {
            Severity::Normal => EventType::Normal,
            Severity::Warning => EventType::Warning,
        },
        reason: event.reason.to_string(),
        note: Some(event.note.clone()),
        action: "MountSecrets".to_string(),
        secondary: None,
    }
}

/// What `kubectl describe pod` matches events on: kind, namespace, name and uid.
fn reference(pod: &PodRef) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Pod".into()),
        namespace: Some(pod.namespace.clone()),
        name: Some(pod.name.clone()),
        uid: Some(pod.uid.clone()),
        ..Default::default()
    }
}
