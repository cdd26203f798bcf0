//! Publishing with confirms: one message or many at once, each waited for
//! until the broker has stored it, and dead-lettering what a consumer
//! cannot use, never dropping it.

use std::collections::BTreeMap;

use lapin::message::Delivery;
use lapin::options::BasicPublishOptions;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, PublisherConfirm};
use tasker_protocol::DeadLetterReason;
use tasker_protocol::topology::{self, headers};

use crate::Error;
use crate::acks::Acks;

/// A message written to the broker: its exchange and routing key (for
/// errors) and its pending confirm.
type Sent = (String, String, PublisherConfirm);

/// A message to publish.
#[derive(Debug, Clone)]
pub struct Outgoing {
    /// The exchange; `""` is the default exchange, which routes by queue name.
    pub exchange: String,
    /// The routing key.
    pub routing_key: String,
    /// The JSON body.
    pub payload: Vec<u8>,
    /// Properties and headers.
    pub properties: BasicProperties,
    /// Whether the message must reach a queue. A mandatory message that no
    /// queue takes is returned by the broker, and the publish fails with
    /// [`Error::Unroutable`] instead of the message vanishing.
    pub mandatory: bool,
}

/// A channel in confirm mode. Cloning it shares the channel.
#[derive(Clone)]
pub struct Publisher {
    channel: Channel,
    url: String,
}

impl Publisher {
    /// A publisher on `channel`, which is in confirm mode; `url` names the
    /// broker in errors.
    pub(crate) fn new(channel: Channel, url: String) -> Self {
        Self { channel, url }
    }

    /// Publishes one message and waits for the broker's confirm.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Amqp`] if the channel is gone and [`Error::Nacked`]
    /// if the broker refused the message.
    pub async fn publish(&self, message: Outgoing) -> Result<(), Error> {
        let sent = self.send(message).await?;
        self.confirmed(sent).await
    }

    /// Publishes every message, then waits for all of their confirms: one
    /// round trip for the batch instead of one per message.
    ///
    /// # Errors
    ///
    /// As [`Self::publish`]; some messages may have been stored.
    pub async fn publish_all(&self, mut messages: Vec<Outgoing>) -> Result<(), Error> {
        if messages.len() == 1 {
            return self.publish(messages.remove(0)).await;
        }
        // A publish hands its frames to the connection's I/O loop and waits
        // until they are written. Started together, many messages go out in
        // one write, rather than one message per round trip to the loop.
        let sent = futures::future::try_join_all(messages.into_iter().map(|m| self.send(m))).await?;
        for one in sent {
            self.confirmed(one).await?;
        }
        Ok(())
    }

    /// Publishes every message as [`Self::publish_all`] does, and gives back
    /// how each went, in order: for a caller that treats an
    /// [`Error::Unroutable`] message apart from the others.
    ///
    /// # Errors
    ///
    /// Returns the first error of writing a message (the channel is gone);
    /// then none has been confirmed.
    pub async fn publish_each(&self, messages: Vec<Outgoing>) -> Result<Vec<Result<(), Error>>, Error> {
        let sent = futures::future::try_join_all(messages.into_iter().map(|m| self.send(m))).await?;
        let mut outcomes = Vec::with_capacity(sent.len());
        for one in sent {
            outcomes.push(self.confirmed(one).await);
        }
        Ok(outcomes)
    }

    /// Waits for the confirm of a message [`Self::send`] wrote.
    async fn confirmed(&self, (exchange, routing_key, confirm): Sent) -> Result<(), Error> {
        match confirm.await.map_err(|e| self.error(e))? {
            Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
            Confirmation::Ack(Some(_)) => Err(Error::Unroutable {
                exchange,
                routing_key,
            }),
            Confirmation::Nack(_) => Err(Error::Nacked {
                exchange,
                routing_key,
            }),
        }
    }

    /// Writes one message; returns where it went and its pending confirm.
    async fn send(&self, m: Outgoing) -> Result<Sent, Error> {
        let confirm = self
            .channel
            .basic_publish(
                m.exchange.as_str().into(),
                m.routing_key.as_str().into(),
                BasicPublishOptions {
                    mandatory: m.mandatory,
                    ..Default::default()
                },
                &m.payload,
                m.properties,
            )
            .await
            .map_err(|e| self.error(e))?;
        Ok((m.exchange, m.routing_key, confirm))
    }

    /// Moves `delivery` to the dead-letter queue with `<reason>: <detail>`
    /// in a header, then acks it through `acks`, its channel's. The message
    /// is never dropped: if the dead-letter publish fails, the delivery
    /// stays unacked and comes back. `reason` labels the dead-letter metric.
    ///
    /// # Errors
    ///
    /// Returns an error if the publish fails.
    pub async fn dead_letter(
        &self,
        delivery: &Delivery,
        acks: &Acks,
        queue: &str,
        reason: DeadLetterReason,
        detail: &str,
    ) -> Result<(), Error> {
        let header = format!("{reason}: {detail}");
        let mut table: BTreeMap<ShortString, AMQPValue> = delivery
            .properties
            .headers()
            .as_ref()
            .map(|h| h.inner().clone())
            .unwrap_or_default();
        let text = |s: &str| AMQPValue::LongString(LongString::from(s));
        table.insert(headers::DEAD_LETTER_REASON.into(), text(&header));
        table.insert(headers::DEAD_LETTER_QUEUE.into(), text(queue));
        table.insert(
            headers::DEAD_LETTER_EXCHANGE.into(),
            text(delivery.exchange.as_str()),
        );
        table.insert(
            headers::DEAD_LETTER_ROUTING_KEY.into(),
            text(delivery.routing_key.as_str()),
        );
        let properties = delivery
            .properties
            .clone()
            .with_headers(FieldTable::from(table))
            .with_delivery_mode(2);
        self.publish(Outgoing {
            exchange: topology::DEAD_LETTER_EXCHANGE.to_owned(),
            routing_key: queue.to_owned(),
            payload: delivery.data.clone(),
            properties,
            mandatory: true,
        })
        .await?;
        acks.ack(delivery);
        tracing::warn!(queue, reason = %header, "message moved to the dead-letter queue");
        crate::metrics::global()
            .dead_letters
            .get_or_create(&crate::metrics::DeadLetterLabels {
                queue: queue.to_owned(),
                reason: reason.as_str().to_owned(),
            })
            .inc();
        Ok(())
    }

    fn error(&self, source: lapin::Error) -> Error {
        Error::Amqp {
            url: self.url.clone(),
            source,
        }
    }
}
