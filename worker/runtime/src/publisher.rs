//! Publishing with confirms: one message or many at once, each waited for
//! until the broker has stored it, and dead-lettering what a consumer
//! cannot use, never dropping it.
//!
//! A mandatory message that no queue takes comes back (`basic.return`)
//! before its confirm. The AMQP client hands a returned message to the
//! next confirm it resolves, which need not be that message's: under a
//! multiple ack, or with other publishes in flight on the channel, it
//! lands on another. So mandatory messages go out on lanes of their own,
//! one batch at a time per lane, and a returned message is matched to its
//! batch's message by its `message_id`, whichever confirm carried it.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

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

/// How many channels carry mandatory messages, each one batch at a time.
pub(crate) const MANDATORY_LANES: usize = 8;

/// Channels in confirm mode: one for messages that need not reach a queue,
/// and [`MANDATORY_LANES`] for those that must. Cloning it shares them.
#[derive(Clone)]
pub struct Publisher {
    channel: Channel,
    lanes: Arc<[tokio::sync::Mutex<Channel>]>,
    next_lane: Arc<AtomicUsize>,
    url: String,
}

impl Publisher {
    /// A publisher on `channel` and the mandatory `lanes`, all in confirm
    /// mode; `url` names the broker in errors.
    pub(crate) fn new(channel: Channel, lanes: Vec<Channel>, url: String) -> Self {
        Self {
            channel,
            lanes: lanes.into_iter().map(tokio::sync::Mutex::new).collect(),
            next_lane: Arc::default(),
            url,
        }
    }

    /// Publishes one message and waits for the broker's confirm.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Amqp`] if the channel is gone, [`Error::Nacked`]
    /// if the broker refused the message, and [`Error::Unroutable`] if it
    /// is mandatory and reached no queue.
    pub async fn publish(&self, message: Outgoing) -> Result<(), Error> {
        if message.mandatory {
            return self.on_lane(vec![message]).await?.remove(0);
        }
        let sent = self.send(&self.channel, message).await?;
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
        if messages.iter().any(|m| m.mandatory) {
            return self.on_lane(messages).await?.into_iter().collect();
        }
        // A publish hands its frames to the connection's I/O loop and waits
        // until they are written. Started together, many messages go out in
        // one write, rather than one message per round trip to the loop.
        let sent =
            futures::future::try_join_all(messages.into_iter().map(|m| self.send(&self.channel, m))).await?;
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
        self.on_lane(messages).await
    }

    /// Publishes `messages` on a mandatory lane, alone on it until every
    /// confirm is in, and gives back how each went. A message is
    /// [`Error::Unroutable`] if a message with its `message_id` came back,
    /// whichever of the batch's confirms carried it; one without a
    /// `message_id` is judged by its own confirm.
    async fn on_lane(&self, messages: Vec<Outgoing>) -> Result<Vec<Result<(), Error>>, Error> {
        let lane = self.next_lane.fetch_add(1, Ordering::Relaxed) % self.lanes.len();
        let channel = self.lanes[lane].lock().await;
        let ids: Vec<Option<String>> = messages
            .iter()
            .map(|m| m.properties.message_id().as_ref().map(ToString::to_string))
            .collect();
        let sent =
            futures::future::try_join_all(messages.into_iter().map(|m| self.send(&channel, m))).await?;
        let mut confirms = Vec::with_capacity(sent.len());
        let mut returned = HashSet::new();
        for (exchange, routing_key, confirm) in sent {
            let confirmation = confirm.await.map_err(|e| self.error(e))?;
            let (Confirmation::Ack(Some(back)) | Confirmation::Nack(Some(back))) = &confirmation else {
                confirms.push((exchange, routing_key, confirmation));
                continue;
            };
            if let Some(id) = back.properties.message_id() {
                returned.insert(id.to_string());
            }
            confirms.push((exchange, routing_key, confirmation));
        }
        Ok(confirms
            .into_iter()
            .zip(ids)
            .map(|((exchange, routing_key, confirmation), id)| {
                let came_back = match &id {
                    Some(id) => returned.contains(id),
                    None => matches!(confirmation, Confirmation::Ack(Some(_))),
                };
                match confirmation {
                    Confirmation::Nack(_) => Err(Error::Nacked {
                        exchange,
                        routing_key,
                    }),
                    _ if came_back => Err(Error::Unroutable {
                        exchange,
                        routing_key,
                    }),
                    _ => Ok(()),
                }
            })
            .collect())
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

    /// Writes one message on `channel`; returns where it went and its
    /// pending confirm.
    async fn send(&self, channel: &Channel, m: Outgoing) -> Result<Sent, Error> {
        let confirm = channel
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
        let properties = dead_letter_properties(&delivery.properties).with_headers(FieldTable::from(table));
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

/// The original's properties for its dead letter, persistent, without its
/// expiration, which would let the dead letter expire, and its user id,
/// which RabbitMQ refuses from any other user.
fn dead_letter_properties(original: &BasicProperties) -> BasicProperties {
    let mut p = BasicProperties::default().with_delivery_mode(2);
    if let Some(v) = original.content_type() {
        p = p.with_content_type(v.clone());
    }
    if let Some(v) = original.content_encoding() {
        p = p.with_content_encoding(v.clone());
    }
    if let Some(v) = original.priority() {
        p = p.with_priority(*v);
    }
    if let Some(v) = original.correlation_id() {
        p = p.with_correlation_id(v.clone());
    }
    if let Some(v) = original.reply_to() {
        p = p.with_reply_to(v.clone());
    }
    if let Some(v) = original.message_id() {
        p = p.with_message_id(v.clone());
    }
    if let Some(v) = original.timestamp() {
        p = p.with_timestamp(*v);
    }
    if let Some(v) = original.kind() {
        p = p.with_type(v.clone());
    }
    if let Some(v) = original.app_id() {
        p = p.with_app_id(v.clone());
    }
    if let Some(v) = original.cluster_id() {
        p = p.with_cluster_id(v.clone());
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_letter_keeps_the_originals_properties_but_its_expiration_and_user() {
        let original = BasicProperties::default()
            .with_content_type("application/json".into())
            .with_correlation_id("c-1".into())
            .with_reply_to("amq.gen-1".into())
            .with_message_id("m-1".into())
            .with_type("tasker.task_request".into())
            .with_timestamp(1_700_000_000)
            .with_expiration("60000".into())
            .with_user_id("billing".into())
            .with_delivery_mode(1);
        let p = dead_letter_properties(&original);
        assert_eq!(p.expiration(), &None);
        assert_eq!(p.user_id(), &None);
        assert_eq!(p.delivery_mode(), &Some(2));
        assert_eq!(p.correlation_id(), original.correlation_id());
        assert_eq!(p.reply_to(), original.reply_to());
        assert_eq!(p.message_id(), original.message_id());
        assert_eq!(p.kind(), original.kind());
        assert_eq!(p.timestamp(), original.timestamp());
        assert_eq!(p.content_type(), original.content_type());
    }
}
