//! One connection to the broker: declare what the coordinator consumes,
//! hand each delivery to its handler, and on the way out let the handlers
//! finish and flush their acks.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use tasker_protocol::TemplateRegistry;
use tasker_protocol::topology;
use tasker_runtime::acks::Acks;
use tasker_runtime::broker::Broker;
use tasker_runtime::health::{self, Health};
use tasker_runtime::{Error as BrokerError, Reconnect};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{Instrument, info, warn};

use super::{CALLS_IN_FLIGHT, Coordinator, CoordinatorConfig, Input, span, sweeper};
use crate::Error;
use crate::batch::Batcher;
use crate::store::Store;

/// How long in-flight deliveries may take to finish when a session ends,
/// before they are left to be redelivered.
const DRAIN: Duration = Duration::from_secs(10);

/// Runs one session until `shutdown` is cancelled (`Ok`) or the connection
/// fails (`Err`, to reconnect after a pause if it is retryable).
pub(super) async fn run(
    config: &CoordinatorConfig,
    templates: &Arc<TemplateRegistry>,
    store: &Store,
    health: &Health,
    shutdown: &CancellationToken,
    backoff: &mut Reconnect,
) -> Result<(), Error> {
    let broker =
        Arc::new(Broker::connect_with_heartbeat(&config.amqp_url, &config.name, config.heartbeat).await?);
    let publisher = broker.publisher().await?;
    let channel = broker.channel().await?;
    broker.declare_common().await?;
    broker.declare_requests_exchange().await?;
    channel
        .basic_qos(config.prefetch, BasicQosOptions::default())
        .await
        .map_err(|e| broker.error(e))?;
    broker.declare_workers_queue().await?;
    let mut inputs = vec![
        (Input::Request, topology::UNROUTED_REQUESTS_QUEUE.to_owned()),
        (Input::Announcement, topology::WORKERS_QUEUE.to_owned()),
    ];
    for namespace in templates.namespaces() {
        broker.declare_namespace(namespace).await?;
        // The namespace's steps reach its services' queues through its own
        // exchange, which the services bind to.
        let callables: std::collections::BTreeSet<&str> = templates
            .iter()
            .filter(|t| t.namespace == namespace)
            .flat_map(|t| t.steps.iter().map(|s| s.callable.as_str()))
            .collect();
        let callables: Vec<&str> = callables.into_iter().collect();
        broker.route_namespace_steps(namespace, &callables, true).await?;
        inputs.push((Input::Request, topology::request_queue(namespace)));
        inputs.push((Input::Result, topology::result_queue(namespace)));
    }
    // Before consuming: a request for one of these namespaces that reaches
    // the unrouted queue of another coordinator now waits for its queue.
    store
        .note_served(&templates.namespaces(), chrono::Utc::now().timestamp_millis())
        .await?;
    let mut consumers = Vec::with_capacity(inputs.len());
    for (input, queue) in inputs {
        let consumer = channel
            .basic_consume(
                queue.as_str().into(),
                format!("{}-{queue}", config.name).into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| broker.error(e))?;
        let queue: Arc<str> = queue.into();
        consumers.push(consumer.map(move |d| (input, queue.clone(), d)));
    }
    backoff.succeeded();
    health.up(health::RABBITMQ);
    let stop = shutdown.child_token();
    info!(
        broker = broker.url(),
        templates = templates.iter().count(),
        "coordinator ready"
    );

    let coordinator = Arc::new(Coordinator {
        config: config.clone(),
        templates: templates.clone(),
        store: store.clone(),
        creator: Batcher::start(store.clone(), CALLS_IN_FLIGHT),
        recorder: Batcher::start(store.clone(), CALLS_IN_FLIGHT),
        publisher,
        broker: broker.clone(),
        acks: Acks::start(channel.clone()),
        health: health.clone(),
        stop: stop.clone(),
    });
    let tracker = TaskTracker::new();
    tracker.spawn(sweeper::run(coordinator.clone(), stop.clone()));

    let mut deliveries = futures::stream::select_all(consumers);
    let outcome = loop {
        tokio::select! {
            () = shutdown.cancelled() => break Ok(()),
            next = deliveries.next() => match next {
                Some((input, queue, Ok(delivery))) => {
                    let coordinator = coordinator.clone();
                    let span = span::delivery(input, &queue, &delivery);
                    tracker.spawn(async move { coordinator.handle(input, &queue, delivery).instrument(span).await });
                }
                Some((_, _, Err(e))) => break Err(Error::Broker(broker.error(e))),
                None => break Err(Error::Broker(BrokerError::ConsumerCancelled)),
            }
        }
    };
    stop.cancel();
    drop(deliveries);
    tracker.close();
    if tokio::time::timeout(DRAIN, tracker.wait()).await.is_err() {
        warn!("in-flight deliveries did not finish in time; they will be redelivered");
    }
    coordinator.acks.flush().await;
    broker.close().await;
    outcome
}
