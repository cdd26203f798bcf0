//! The dead-letter queue, for operators: what is parked there and why, and
//! putting a message back where it was first sent.
//!
//! RabbitMQ has no way to read a queue without taking its messages. So
//! every pass over `tasker.dead_letters` takes each message, publishes a
//! copy back to the end of the queue (or, for a replay, to where it was
//! first sent), waits for the broker's confirm, and only then acks the
//! original. A message is never only in the client's hands: if the client
//! dies midway, the unacked original is redelivered, and at worst a copy
//! exists twice.

use lapin::message::Delivery;
use lapin::options::BasicGetOptions;
use lapin::types::AMQPValue;
use serde::Serialize;
use tasker_protocol::topology::{self, headers};
use tasker_runtime::broker::Broker;
use tasker_runtime::publisher::{Outgoing, Publisher};

use crate::Error;

/// One parked message, as `tasker dlq list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    /// The message id (AMQP `message_id`), by which `show` and `replay`
    /// name it.
    pub id: String,
    /// The AMQP `type`, e.g. `tasker.task_request`.
    pub kind: Option<String>,
    /// The task it belongs to, when known.
    pub task_id: Option<String>,
    /// Why it was dead-lettered.
    pub reason: Option<String>,
    /// The queue it was taken from.
    pub queue: Option<String>,
    /// The exchange and routing key it was first published with.
    pub exchange: Option<String>,
    /// See `exchange`.
    pub routing_key: Option<String>,
    /// The body, as text (lossy for bytes that are not UTF-8).
    pub body: String,
}

impl DeadLetter {
    fn of(delivery: &Delivery, position: usize) -> Self {
        let header = |name: &str| {
            delivery
                .properties
                .headers()
                .as_ref()
                .and_then(|h| h.inner().get(name).cloned())
                .and_then(|v| match v {
                    AMQPValue::LongString(s) => Some(s.to_string()),
                    AMQPValue::ShortString(s) => Some(s.to_string()),
                    _ => None,
                })
        };
        let id = delivery
            .properties
            .message_id()
            .as_ref()
            .map_or_else(|| format!("#{position}"), ToString::to_string);
        Self {
            id,
            kind: delivery.properties.kind().as_ref().map(ToString::to_string),
            task_id: header(headers::TASK_ID),
            reason: header(headers::DEAD_LETTER_REASON),
            queue: header(headers::DEAD_LETTER_QUEUE),
            exchange: header(headers::DEAD_LETTER_EXCHANGE),
            routing_key: header(headers::DEAD_LETTER_ROUTING_KEY),
            body: String::from_utf8_lossy(&delivery.data).into_owned(),
        }
    }
}

/// What a pass does with each message.
enum Pass<'a> {
    /// Keep every message; report them.
    Read,
    /// Send the message called `id` back where it came from; keep the rest.
    Replay(&'a str),
}

/// The operator's view of the dead-letter queue.
pub struct DeadLetters {
    broker: Broker,
    publisher: Publisher,
}

impl DeadLetters {
    /// Connects to the broker.
    ///
    /// # Errors
    ///
    /// If the broker cannot be reached.
    pub async fn connect(amqp_url: &str) -> Result<Self, Error> {
        let broker = Broker::connect(amqp_url, "tasker-dlq").await?;
        broker.declare_common().await?;
        let publisher = broker.publisher().await?;
        Ok(Self { broker, publisher })
    }

    /// Every parked message, oldest first.
    ///
    /// # Errors
    ///
    /// If the broker fails midway; no message is lost then.
    pub async fn list(&self) -> Result<Vec<DeadLetter>, Error> {
        Ok(self.pass(Pass::Read).await?.0)
    }

    /// Publishes the message called `id` back to the exchange and routing
    /// key it was first published with, and takes it off the queue. Returns
    /// it, or `None` if no message has that id.
    ///
    /// # Errors
    ///
    /// If the broker fails midway; no message is lost then.
    pub async fn replay(&self, id: &str) -> Result<Option<DeadLetter>, Error> {
        Ok(self.pass(Pass::Replay(id)).await?.1)
    }

    /// Drops every parked message; returns how many there were.
    ///
    /// # Errors
    ///
    /// If the broker fails.
    pub async fn purge(&self) -> Result<u32, Error> {
        let channel = self.broker.channel().await?;
        let purged = channel
            .queue_purge(topology::DEAD_LETTER_QUEUE.into(), Default::default())
            .await
            .map_err(|e| self.broker.error(e))?;
        Ok(purged)
    }

    /// One pass over the queue, as many messages as it held at the start.
    async fn pass(&self, what: Pass<'_>) -> Result<(Vec<DeadLetter>, Option<DeadLetter>), Error> {
        let channel = self.broker.channel().await?;
        let queue = channel
            .queue_declare(
                topology::DEAD_LETTER_QUEUE.into(),
                lapin::options::QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                Default::default(),
            )
            .await
            .map_err(|e| self.broker.error(e))?;
        let count = queue.message_count() as usize;
        let (mut kept, mut replayed) = (Vec::with_capacity(count), None);
        for position in 0..count {
            let Some(message) = channel
                .basic_get(
                    topology::DEAD_LETTER_QUEUE.into(),
                    BasicGetOptions { no_ack: false },
                )
                .await
                .map_err(|e| self.broker.error(e))?
            else {
                break;
            };
            let delivery = &message.delivery;
            let letter = DeadLetter::of(delivery, position);
            let replay = matches!(what, Pass::Replay(id) if id == letter.id) && replayed.is_none();
            let (exchange, routing_key) = if replay {
                (
                    letter.exchange.clone().unwrap_or_default(),
                    letter
                        .routing_key
                        .clone()
                        .or_else(|| letter.queue.clone())
                        .unwrap_or_default(),
                )
            } else {
                (String::new(), topology::DEAD_LETTER_QUEUE.to_owned())
            };
            // The copy first, confirmed; then the original goes.
            self.publisher
                .publish(Outgoing {
                    exchange,
                    routing_key,
                    payload: delivery.data.clone(),
                    properties: delivery.properties.clone(),
                    mandatory: true,
                })
                .await?;
            delivery
                .ack(Default::default())
                .await
                .map_err(|e| self.broker.error(e))?;
            if replay {
                replayed = Some(letter);
            } else {
                kept.push(letter);
            }
        }
        Ok((kept, replayed))
    }

    /// Closes the connection.
    pub async fn close(self) {
        self.broker.close().await;
    }
}
