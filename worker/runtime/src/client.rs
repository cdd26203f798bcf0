//! Submitting tasks and waiting for their outcome.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use tasker_protocol::message::{self, DEFAULT_MAX_MESSAGE_BYTES};
use tasker_protocol::topology::{self, message_type};
use tasker_protocol::{CommandReply, TaskCommand, TaskFinished, TaskRejected, TaskRequest};
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::Error;
use crate::broker::{self, Broker};
use crate::publisher::{Outgoing, Publisher};
use crate::reconnect::Reconnect;

/// How long a request the broker nacks is published again before the
/// client gives up: longer than a quorum queue takes to elect a new leader
/// after its node died.
const NACK_RETRY_FOR: Duration = Duration::from_secs(15);

/// How the coordinator answered a request.
#[derive(Debug, Clone)]
pub enum Reply {
    /// The task ran to its end (complete or failed).
    Finished(TaskFinished),
    /// The request was refused.
    Rejected(TaskRejected),
    /// A coordinator's answer to an operator's command.
    Command(CommandReply),
}

// A std mutex: it guards a map for a few instructions and is never held
// across an await.
type Waiters = Arc<Mutex<HashMap<String, oneshot::Sender<Reply>>>>;

/// Publishes task requests and receives their replies on a private queue.
///
/// When its connection dies (its broker node died, say), the next request
/// connects again, to the next node of the URL's list, and goes out on the
/// new connection. A request waiting for its reply when the connection
/// died may not get it: the reply goes to the private queue that died with
/// the connection, and [`Submitted::wait`] times out.
pub struct Client {
    url: String,
    session: tokio::sync::RwLock<Arc<Session>>,
    waiters: Waiters,
}

/// One connection's worth of a [`Client`]: replaced when it dies.
struct Session {
    broker: Broker,
    publisher: Publisher,
    reply_queue: String,
    replies: tokio::task::JoinHandle<()>,
    /// How many sessions came before this one.
    generation: u64,
}

/// A submitted request, to wait on.
pub struct Submitted {
    /// The request's id; replies carry it as their correlation id.
    pub request_id: Uuid,
    /// The task's id, as derived from the request.
    pub task_id: Uuid,
    reply: oneshot::Receiver<Reply>,
    waiters: Waiters,
}

impl Client {
    /// Connects to the broker and opens a private reply queue.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Amqp`] if the broker cannot be reached.
    pub async fn connect(amqp_url: &str) -> Result<Self, Error> {
        let waiters: Waiters = Arc::default();
        let session = Session::open(amqp_url, waiters.clone(), 0).await?;
        Ok(Self {
            url: amqp_url.to_owned(),
            session: tokio::sync::RwLock::new(Arc::new(session)),
            waiters,
        })
    }

    /// Replaces the session `dead` with a new connection, unless another
    /// request did so already.
    async fn reconnect(&self, dead: &Session) -> Result<(), Error> {
        let mut session = self.session.write().await;
        if session.generation != dead.generation {
            return Ok(());
        }
        let fresh = Session::open(&self.url, self.waiters.clone(), dead.generation + 1).await?;
        tracing::info!(broker = fresh.broker.url(), "client connected again");
        session.replies.abort();
        *session = Arc::new(fresh);
        Ok(())
    }

    /// Asks for a task of the highest version of `namespace/name`.
    ///
    /// # Errors
    ///
    /// Returns an error if the request cannot be published and confirmed.
    pub async fn create_task(
        &self,
        namespace: &str,
        name: &str,
        context: serde_json::Value,
    ) -> Result<Submitted, Error> {
        self.submit(TaskRequest::new(namespace, name, context)).await
    }

    /// Publishes `request` and returns a handle to wait for its outcome.
    ///
    /// # Errors
    ///
    /// Returns an error if the request cannot be published and confirmed.
    pub async fn submit(&self, mut request: TaskRequest) -> Result<Submitted, Error> {
        let request_id = *request.request_id.get_or_insert_with(Uuid::new_v4);
        let task_id = request.task_id().unwrap_or(request_id);
        self.publish_request(
            message_type::TASK_REQUEST,
            &request.namespace,
            message::encode(&request),
            request_id,
            Some(task_id),
        )
        .await
    }

    /// Sends an operator's command for a task of `namespace` to the
    /// coordinators serving it; its [`Submitted::wait`] gives their
    /// [`Reply::Command`].
    ///
    /// # Errors
    ///
    /// Returns an error if the command cannot be published and confirmed.
    pub async fn command(&self, namespace: &str, command: &TaskCommand) -> Result<Submitted, Error> {
        let id = Uuid::new_v4();
        self.publish_request(
            message_type::TASK_COMMAND,
            namespace,
            message::encode(command),
            id,
            Some(command.task_id),
        )
        .await
    }

    /// Publishes raw bytes as a task request for `namespace`, for tests of
    /// bad input.
    ///
    /// # Errors
    ///
    /// Returns an error if the publish is not confirmed.
    pub async fn submit_raw(&self, namespace: &str, payload: Vec<u8>) -> Result<Submitted, Error> {
        self.publish_request(
            message_type::TASK_REQUEST,
            namespace,
            payload,
            Uuid::new_v4(),
            None,
        )
        .await
    }

    /// Registers a waiter for the reply, then publishes: a reply can never
    /// arrive before its waiter.
    async fn publish_request(
        &self,
        kind: &str,
        namespace: &str,
        payload: Vec<u8>,
        request_id: Uuid,
        task_id: Option<Uuid>,
    ) -> Result<Submitted, Error> {
        let (tx, reply) = oneshot::channel();
        self.waiters
            .lock()
            .expect("reply map poisoned")
            .insert(request_id.to_string(), tx);
        let submitted = Submitted {
            request_id,
            task_id: task_id.unwrap_or(request_id),
            reply,
            waiters: self.waiters.clone(),
        };
        // A broker nacks what it cannot take now, as a quorum queue does
        // while it elects a leader after a node died; a connection that
        // died is replaced. The same request again is safe: the coordinator
        // knows it by its request id.
        let deadline = tokio::time::Instant::now() + NACK_RETRY_FOR;
        let mut backoff = Reconnect::default();
        loop {
            let session = self.session.read().await.clone();
            let properties = broker::properties(kind, task_id)
                .with_message_id(request_id.to_string().into())
                .with_correlation_id(request_id.to_string().into())
                .with_reply_to(session.reply_queue.as_str().into());
            let outgoing = Outgoing {
                exchange: topology::REQUESTS_EXCHANGE.to_owned(),
                routing_key: namespace.to_owned(),
                payload: payload.clone(),
                properties,
                mandatory: true,
            };
            match session.publisher.publish(outgoing).await {
                Err(Error::Nacked { .. }) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                // Its channel or its connection is gone: a new session
                // replaces both.
                Err(Error::Amqp { .. }) if tokio::time::Instant::now() < deadline => {
                    self.reconnect(&session).await?;
                }
                result => break result?,
            }
        }
        Ok(submitted)
    }

    /// The publisher this client uses now, for sending other messages.
    pub async fn publisher(&self) -> Publisher {
        self.session.read().await.publisher.clone()
    }

    /// Closes the connection.
    pub async fn close(self) {
        let session = self.session.into_inner();
        session.replies.abort();
        if let Ok(session) = Arc::try_unwrap(session) {
            session.broker.close().await;
        }
    }
}

impl Session {
    /// Connects, declares the requests exchange and a private reply queue,
    /// and routes each reply to its waiter in `waiters`.
    async fn open(amqp_url: &str, waiters: Waiters, generation: u64) -> Result<Self, Error> {
        let broker = Broker::connect(amqp_url, "tasker-client").await?;
        let publisher = broker.publisher().await?;
        let channel = broker.channel().await?;
        broker.declare_requests_exchange().await?;
        // Replies are notifications to this process only: a private queue
        // that disappears with the connection.
        let (reply_queue, consumer) = broker.private_queue(&channel, None, true).await?;
        let replies = tokio::spawn(route_replies(consumer, waiters));
        Ok(Self {
            broker,
            publisher,
            reply_queue,
            replies,
            generation,
        })
    }
}

/// Hands each reply on `consumer` to the waiter of its correlation id.
async fn route_replies(mut consumer: lapin::Consumer, routing: Waiters) {
    while let Some(Ok(delivery)) = consumer.next().await {
        let Some(correlation) = delivery
            .properties
            .correlation_id()
            .as_ref()
            .map(ToString::to_string)
        else {
            continue;
        };
        let kind = delivery.properties.kind().as_ref().map(ToString::to_string);
        let reply = match kind.as_deref() {
            Some(message_type::TASK_FINISHED) => message::decode(&delivery.data, DEFAULT_MAX_MESSAGE_BYTES)
                .ok()
                .map(Reply::Finished),
            Some(message_type::TASK_REJECTED) => message::decode(&delivery.data, DEFAULT_MAX_MESSAGE_BYTES)
                .ok()
                .map(Reply::Rejected),
            Some(message_type::COMMAND_REPLY) => message::decode(&delivery.data, DEFAULT_MAX_MESSAGE_BYTES)
                .ok()
                .map(Reply::Command),
            _ => None,
        };
        if reply.is_none() {
            // Replies are notifications on a private queue; one that cannot
            // be read is reported, not dead-lettered.
            tracing::warn!(
                correlation,
                ?kind,
                "unreadable reply from the coordinator; ignoring it"
            );
        }
        let waiter = routing.lock().expect("reply map poisoned").remove(&correlation);
        if let (Some(reply), Some(waiter)) = (reply, waiter) {
            // The waiter may have given up; that is its choice.
            let _ = waiter.send(reply);
        }
    }
}

impl Submitted {
    /// Waits for the task to finish or be rejected.
    ///
    /// # Errors
    ///
    /// Returns [`Error::ReplyTimeout`] if no reply comes within `timeout`.
    pub async fn wait(mut self, timeout: Duration) -> Result<Reply, Error> {
        match tokio::time::timeout(timeout, &mut self.reply).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(_)) | Err(_) => Err(Error::ReplyTimeout {
                request_id: self.request_id,
                waited: timeout,
            }),
        }
    }
}

impl Drop for Submitted {
    fn drop(&mut self) {
        if let Ok(mut waiters) = self.waiters.lock() {
            waiters.remove(&self.request_id.to_string());
        }
    }
}
