//! What every Tasker process does with RabbitMQ: connect, declare the
//! topology, and read and write the properties every message carries.
//! Publishing is [`crate::publisher`]'s.
//!
//! Publishing and consuming use separate channels, so a slow consumer never
//! holds up a publish and a publisher's flow control never stalls delivery.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use lapin::message::Delivery;
use lapin::options::{ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::uri::AMQPUri;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use tasker_protocol::PROTOCOL_VERSION;
use tasker_protocol::topology::{self, headers};
use uuid::Uuid;

use crate::Error;
use crate::publisher::Publisher;

/// How often a Tasker process and the broker tell each other they are
/// alive, unless the URL says otherwise (`?heartbeat=`). RabbitMQ closes a
/// connection it has heard nothing on for about two and a half heartbeats
/// (13 s at 5 s, measured) and hands the unacked deliveries to other
/// consumers: this is what bounds how long a frozen process holds its work.
/// RabbitMQ's own default, 60 s, let a frozen process hold it for three
/// minutes.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(5);

/// What [`Broker::queue_counts`] tells of a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueCounts {
    /// Messages waiting to be delivered (not those delivered and unacked).
    pub ready: u32,
    /// Consumers now.
    pub consumers: u32,
}

/// A connection to RabbitMQ, and the URL it was made to, for messages.
pub struct Broker {
    connection: Connection,
    url: String,
}

impl Broker {
    /// Connects to `url` with the [`DEFAULT_HEARTBEAT`]; `name` shows in the
    /// broker's connection list.
    ///
    /// # Errors
    ///
    /// As [`Broker::connect_with_heartbeat`].
    pub async fn connect(url: &str, name: &str) -> Result<Self, Error> {
        Self::connect_with_heartbeat(url, name, DEFAULT_HEARTBEAT).await
    }

    /// Connects to `url`, asking for a heartbeat every `heartbeat` (whole
    /// seconds; zero turns heartbeats off) unless the URL asks for its own
    /// with `?heartbeat=`.
    ///
    /// `url` may name several nodes of a cluster, separated by commas
    /// ([`broker_urls`]). Each connection tries them in turn: a process
    /// starts at a random one, and each connection one further along the
    /// list than the process's previous one, so that connections spread
    /// over the nodes and a reconnection after a node died starts with
    /// another one.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Refused`] if a broker refuses the login or the
    /// vhost (the others would too: a cluster shares its users), and
    /// [`Error::Config`] if a URL is not an AMQP URL. Returns [`Error::Amqp`]
    /// if no broker can be reached, naming every URL tried and the last
    /// error.
    pub async fn connect_with_heartbeat(url: &str, name: &str, heartbeat: Duration) -> Result<Self, Error> {
        // Where this process starts in the list: random, so that processes
        // spread over the nodes; then one further along per connection.
        static START: OnceLock<usize> = OnceLock::new();
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let urls = broker_urls(url);
        if urls.is_empty() {
            return Err(Error::Config(
                "no RabbitMQ URL given: set TASKER_AMQP_URL, e.g. amqp://guest:guest@127.0.0.1:5672/%2f"
                    .to_owned(),
            ));
        }
        // A mistyped URL is a mistake now, not on the reconnection that
        // first reaches it.
        for url in &urls {
            url.parse::<AMQPUri>()
                .map_err(|e| Error::Config(format!("{} is not an AMQP URL: {e}", redact_url(url))))?;
        }
        let start = *START.get_or_init(|| rand::random_range(0..1024));
        let first = (start + NEXT.fetch_add(1, Ordering::Relaxed)) % urls.len();
        let mut unreachable = Vec::new();
        let mut last = None;
        for url in urls.iter().cycle().skip(first).take(urls.len()) {
            match Self::connect_one(url, name, heartbeat).await {
                Ok(broker) => return Ok(broker),
                Err(Error::Amqp { url, source }) => {
                    unreachable.push(url);
                    last = Some(source);
                }
                Err(refused_or_invalid) => return Err(refused_or_invalid),
            }
        }
        Err(Error::Amqp {
            url: unreachable.join(", "),
            source: last.expect("at least one URL was tried"),
        })
    }

    /// Connects to one node.
    async fn connect_one(url: &str, name: &str, heartbeat: Duration) -> Result<Self, Error> {
        let redacted = redact_url(url);
        let mut uri: AMQPUri = url
            .parse()
            .map_err(|e| Error::Config(format!("{redacted} is not an AMQP URL: {e}")))?;
        if uri.query.heartbeat.is_none() {
            uri.query.heartbeat = Some(u16::try_from(heartbeat.as_secs()).unwrap_or(u16::MAX));
        }
        let properties = ConnectionProperties::default().with_connection_name(name.into());
        let connection =
            Connection::connect_uri(uri, properties)
                .await
                .map_err(|source| match refusal(&source) {
                    Some(reason) => Error::Refused {
                        url: redacted.clone(),
                        reason,
                    },
                    None => Error::Amqp {
                        url: redacted.clone(),
                        source,
                    },
                })?;
        Ok(Self {
            connection,
            url: redacted,
        })
    }

    /// The URL of the node this connection reached, with any password
    /// masked.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Whether the connection is still usable.
    #[must_use]
    pub fn is_connected(&self) -> bool {
        self.connection.status().connected()
    }

    /// Opens a channel.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Amqp`] if the connection is gone.
    pub async fn channel(&self) -> Result<Channel, Error> {
        self.connection.create_channel().await.map_err(|e| self.error(e))
    }

    /// How many messages wait in `queue` (ready, not delivered) and how
    /// many consumers it has now; `None` if there is no such queue. The
    /// question has a channel of its own, since asking about a queue that
    /// does not exist closes the channel.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Amqp`] if the connection is gone.
    pub async fn queue_counts(&self, queue: &str) -> Result<Option<QueueCounts>, Error> {
        let channel = self.channel().await?;
        let passive = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        match channel
            .queue_declare(queue.into(), passive, FieldTable::default())
            .await
        {
            Ok(declared) => {
                let _ = channel.close(200, "done".into()).await;
                Ok(Some(QueueCounts {
                    ready: declared.message_count(),
                    consumers: declared.consumer_count(),
                }))
            }
            Err(e) if is_not_found(&e) => Ok(None),
            Err(e) => Err(self.error(e)),
        }
    }

    /// Opens the channels of a [`Publisher`], in confirm mode.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Amqp`] if the connection is gone.
    pub async fn publisher(&self) -> Result<Publisher, Error> {
        let channel = self.confirm_channel().await?;
        let mut lanes = Vec::with_capacity(crate::publisher::MANDATORY_LANES);
        for _ in 0..crate::publisher::MANDATORY_LANES {
            lanes.push(self.confirm_channel().await?);
        }
        Ok(Publisher::new(channel, lanes, self.url.clone()))
    }

    async fn confirm_channel(&self) -> Result<Channel, Error> {
        let channel = self.channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| self.error(e))?;
        Ok(channel)
    }

    /// Closes the connection; unacked deliveries go back to their queues.
    pub async fn close(&self) {
        // The connection may already be gone; there is nothing to do then.
        let _ = self.connection.close(200, "closing".into()).await;
    }

    /// Wraps a lapin error with the broker's URL.
    #[must_use]
    pub fn error(&self, source: lapin::Error) -> Error {
        Error::Amqp {
            url: self.url.clone(),
            source,
        }
    }

    /// Declares what every process uses: the events exchange and the
    /// dead-letter exchange and queue.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Amqp`] if a declaration fails, for instance because
    /// an object exists with other settings.
    pub async fn declare_common(&self, channel: &Channel) -> Result<(), Error> {
        self.declare_exchange(
            channel,
            topology::EVENTS_EXCHANGE,
            ExchangeKind::Topic,
            FieldTable::default(),
        )
        .await?;
        self.declare_exchange(
            channel,
            topology::DEAD_LETTER_EXCHANGE,
            ExchangeKind::Fanout,
            FieldTable::default(),
        )
        .await?;
        self.declare_queue(topology::DEAD_LETTER_QUEUE).await?;
        self.bind(
            channel,
            topology::DEAD_LETTER_QUEUE,
            topology::DEAD_LETTER_EXCHANGE,
            "",
        )
        .await
    }

    /// Declares the queues of `namespace` that every process touching it
    /// shares, and their bindings: its task requests and its step results,
    /// and the steps exchange. Every process that touches a namespace
    /// declares them, so that no request or result to it is ever
    /// unroutable, whichever process starts first.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Amqp`] if a declaration fails.
    pub async fn declare_namespace(&self, channel: &Channel, namespace: &str) -> Result<(), Error> {
        self.declare_requests_exchange(channel).await?;
        let requests = topology::request_queue(namespace);
        self.declare_queue(&requests).await?;
        self.bind(channel, &requests, topology::REQUESTS_EXCHANGE, namespace)
            .await?;
        self.declare_steps_exchange(channel).await?;
        let results = topology::result_queue(namespace);
        self.declare_queue(&results).await?;
        self.bind(
            channel,
            &results,
            topology::EVENTS_EXCHANGE,
            &topology::step_result_routing_key(namespace),
        )
        .await
    }

    /// Declares `service`'s queue of `namespace`'s steps and binds it to the
    /// routing key of each of `callables`: from then on, those steps reach
    /// it, whether or not a worker of the service runs. Gives back the
    /// queue's name.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Amqp`] if a declaration fails.
    pub async fn declare_service(
        &self,
        channel: &Channel,
        namespace: &str,
        service: &str,
        callables: &[&str],
    ) -> Result<String, Error> {
        self.declare_steps_exchange(channel).await?;
        let queue = topology::service_queue(namespace, service);
        self.declare_queue(&queue).await?;
        for callable in callables {
            self.bind(
                channel,
                &queue,
                topology::STEPS_EXCHANGE,
                &topology::step_routing_key(namespace, callable),
            )
            .await?;
        }
        Ok(queue)
    }

    /// Declares the queue of workers' announcements, which coordinators
    /// consume.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Amqp`] if a declaration fails.
    pub async fn declare_workers_queue(&self, channel: &Channel) -> Result<(), Error> {
        self.declare_queue(topology::WORKERS_QUEUE).await?;
        self.bind(
            channel,
            topology::WORKERS_QUEUE,
            topology::EVENTS_EXCHANGE,
            topology::WORKER_ANNOUNCE_ROUTING_KEY,
        )
        .await
    }

    async fn declare_steps_exchange(&self, channel: &Channel) -> Result<(), Error> {
        self.declare_exchange(
            channel,
            topology::STEPS_EXCHANGE,
            ExchangeKind::Direct,
            FieldTable::default(),
        )
        .await
    }

    /// Declares a private queue (server-named, exclusive, deleted with the
    /// connection), binds it to `binding`'s exchange and routing key when
    /// given, and consumes it. For replies and for watching traffic, never
    /// for work: its messages die with the process.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Amqp`] if a declaration fails.
    pub async fn private_queue(
        &self,
        channel: &Channel,
        binding: Option<(&str, &str)>,
        no_ack: bool,
    ) -> Result<(String, lapin::Consumer), Error> {
        let queue = channel
            .queue_declare(
                "".into(),
                QueueDeclareOptions {
                    exclusive: true,
                    auto_delete: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| self.error(e))?;
        let name = queue.name().to_string();
        if let Some((exchange, key)) = binding {
            self.bind(channel, &name, exchange, key).await?;
        }
        let consumer = channel
            .basic_consume(
                name.as_str().into(),
                "".into(),
                lapin::options::BasicConsumeOptions {
                    no_ack,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| self.error(e))?;
        Ok((name, consumer))
    }

    /// Deletes the queues of `namespace` and of its `services`, with
    /// whatever they hold. For tests and benchmarks that made up a
    /// namespace; never for a real one.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Amqp`] if a deletion fails.
    pub async fn delete_namespace(
        &self,
        channel: &Channel,
        namespace: &str,
        services: &[&str],
    ) -> Result<(), Error> {
        let queues = [
            topology::request_queue(namespace),
            topology::result_queue(namespace),
        ]
        .into_iter()
        .chain(services.iter().map(|s| topology::service_queue(namespace, s)));
        for queue in queues {
            channel
                .queue_delete(
                    queue.as_str().into(),
                    lapin::options::QueueDeleteOptions::default(),
                )
                .await
                .map_err(|e| self.error(e))?;
        }
        Ok(())
    }

    /// Declares the exchange clients publish requests to, with its alternate
    /// exchange and the queue that catches requests for unknown namespaces.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Amqp`] if the declaration fails.
    pub async fn declare_requests_exchange(&self, channel: &Channel) -> Result<(), Error> {
        self.declare_exchange(
            channel,
            topology::UNROUTED_REQUESTS_EXCHANGE,
            ExchangeKind::Fanout,
            FieldTable::default(),
        )
        .await?;
        self.declare_queue(topology::UNROUTED_REQUESTS_QUEUE).await?;
        self.bind(
            channel,
            topology::UNROUTED_REQUESTS_QUEUE,
            topology::UNROUTED_REQUESTS_EXCHANGE,
            "",
        )
        .await?;
        let mut arguments = FieldTable::default();
        arguments.insert(
            topology::ALTERNATE_EXCHANGE_ARGUMENT.into(),
            AMQPValue::LongString(topology::UNROUTED_REQUESTS_EXCHANGE.into()),
        );
        self.declare_exchange(
            channel,
            topology::REQUESTS_EXCHANGE,
            ExchangeKind::Direct,
            arguments,
        )
        .await
    }

    async fn declare_exchange(
        &self,
        channel: &Channel,
        name: &str,
        kind: ExchangeKind,
        arguments: FieldTable,
    ) -> Result<(), Error> {
        channel
            .exchange_declare(
                name.into(),
                kind,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                arguments,
            )
            .await
            .map_err(|e| self.error(e))
    }

    /// Every Tasker queue is a durable quorum queue: it survives a broker
    /// restart, is replicated in a cluster, and counts redeliveries, up to
    /// [`topology::DELIVERY_LIMIT`]. A queue that an older Tasker declared
    /// without the limit refuses these arguments: it is used as it is, with
    /// a warning. The declaration goes on a channel of its own, since a
    /// refusal closes the channel it came on; the queue is the connection's
    /// from then on, whichever channel declared it.
    async fn declare_queue(&self, name: &str) -> Result<(), Error> {
        let mut arguments = FieldTable::default();
        arguments.insert(
            topology::QUEUE_TYPE_ARGUMENT.into(),
            AMQPValue::LongString("quorum".into()),
        );
        arguments.insert(
            topology::DELIVERY_LIMIT_ARGUMENT.into(),
            AMQPValue::LongUInt(topology::DELIVERY_LIMIT),
        );
        let own = self.channel().await?;
        match own
            .queue_declare(name.into(), QueueDeclareOptions::durable(), arguments)
            .await
        {
            Ok(_) => {
                let _ = own.close(200, "declared".into()).await;
                Ok(())
            }
            Err(e) if is_precondition_failed(&e) => {
                tracing::warn!(queue = name, error = %e,
                    "the queue exists with other arguments, likely declared by an older Tasker without \
                     x-delivery-limit; using it as it is. Give it a delivery-limit policy \
                     (rabbitmqctl set_policy --apply-to quorum_queues tasker-delivery-limit '^tasker\\.' \
                     '{{\"delivery-limit\":100}}') so RabbitMQ 4 never drops a message before Tasker dead-letters it");
                Ok(())
            }
            Err(e) => Err(self.error(e)),
        }
    }

    async fn bind(&self, channel: &Channel, queue: &str, exchange: &str, key: &str) -> Result<(), Error> {
        channel
            .queue_bind(
                queue.into(),
                exchange.into(),
                key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| self.error(e))
    }
}

/// Properties for a Tasker message: persistent, JSON, typed, with the
/// protocol version, the task id and the publish time in headers.
#[must_use]
pub fn properties(message_type: &str, task_id: Option<Uuid>) -> BasicProperties {
    let mut table = FieldTable::default();
    table.insert(
        headers::PROTOCOL_VERSION.into(),
        AMQPValue::LongUInt(PROTOCOL_VERSION),
    );
    table.insert(
        headers::PUBLISHED_AT_MS.into(),
        AMQPValue::LongLongInt(chrono::Utc::now().timestamp_millis()),
    );
    if let Some(id) = task_id {
        table.insert(
            headers::TASK_ID.into(),
            AMQPValue::LongString(id.to_string().into()),
        );
    }
    // The publishing span's trace context travels with the message.
    crate::telemetry::inject(&tracing::Span::current(), &mut table);
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type(topology::CONTENT_TYPE.into())
        .with_type(message_type.into())
        .with_message_id(Uuid::new_v4().to_string().into())
        .with_timestamp(u64::try_from(chrono::Utc::now().timestamp()).unwrap_or_default())
        .with_headers(table)
}

/// When the message was published, from its `x-tasker-published-at-ms` header.
#[must_use]
pub fn published_at(delivery: &Delivery) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp_millis(integer_header(delivery, headers::PUBLISHED_AT_MS)?)
}

/// How many times RabbitMQ says this message was delivered before.
#[must_use]
pub fn delivery_count(delivery: &Delivery) -> u64 {
    integer_header(delivery, headers::DELIVERY_COUNT)
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or(0)
}

/// What the publisher's `x-tasker-protocol-version` header says: `None`
/// without one, `Some(None)` for one that is not an integer.
#[must_use]
pub fn protocol_version_header(delivery: &Delivery) -> Option<Option<i64>> {
    header(delivery, headers::PROTOCOL_VERSION)?;
    Some(integer_header(delivery, headers::PROTOCOL_VERSION))
}

fn header(delivery: &Delivery, name: &str) -> Option<AMQPValue> {
    delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(name).cloned())
}

/// Header `name` as an integer, whichever AMQP integer type carries it.
fn integer_header(delivery: &Delivery, name: &str) -> Option<i64> {
    match header(delivery, name)? {
        AMQPValue::LongLongInt(n) => Some(n),
        AMQPValue::LongInt(n) => Some(i64::from(n)),
        AMQPValue::LongUInt(n) => Some(i64::from(n)),
        AMQPValue::ShortInt(n) => Some(i64::from(n)),
        AMQPValue::ShortUInt(n) => Some(i64::from(n)),
        AMQPValue::ShortShortInt(n) => Some(i64::from(n)),
        AMQPValue::ShortShortUInt(n) => Some(i64::from(n)),
        _ => None,
    }
}

/// What the broker said when it refused a connection's login
/// (`ACCESS_REFUSED`) or vhost (`NOT_ALLOWED`); `None` for any other error,
/// which may pass.
fn refusal(error: &lapin::Error) -> Option<String> {
    use lapin::protocol::{AMQPErrorKind, AMQPHardError, AMQPSoftError};
    let lapin::ErrorKind::ProtocolError(amqp) = error.kind() else {
        return None;
    };
    match amqp.kind() {
        AMQPErrorKind::Soft(AMQPSoftError::ACCESSREFUSED)
        | AMQPErrorKind::Hard(AMQPHardError::NOTALLOWED) => Some(amqp.get_message().to_string()),
        AMQPErrorKind::Soft(_) | AMQPErrorKind::Hard(_) => None,
    }
}

/// Whether the broker answered that what was asked for does not exist.
fn is_precondition_failed(error: &lapin::Error) -> bool {
    use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
    matches!(error.kind(), lapin::ErrorKind::ProtocolError(amqp)
        if matches!(amqp.kind(), AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED)))
}

fn is_not_found(error: &lapin::Error) -> bool {
    use lapin::protocol::{AMQPErrorKind, AMQPSoftError};
    matches!(error.kind(), lapin::ErrorKind::ProtocolError(amqp)
        if matches!(amqp.kind(), AMQPErrorKind::Soft(AMQPSoftError::NOTFOUND)))
}

/// The URLs of the nodes that `urls` names: one URL, or several separated
/// by commas (`amqp://n1:5672/%2f,amqp://n2:5672/%2f`), each the URL of a
/// node of one cluster. Spaces around them are ignored. A comma in a
/// password must be written `%2C`.
#[must_use]
pub fn broker_urls(urls: &str) -> Vec<&str> {
    urls.split(',').map(str::trim).filter(|u| !u.is_empty()).collect()
}

/// `url` with its password replaced by `***`, for logs and messages; each
/// of them, for several URLs separated by commas.
#[must_use]
pub fn redact_url(url: &str) -> String {
    if url.contains(',') {
        return broker_urls(url)
            .into_iter()
            .map(redact_url)
            .collect::<Vec<_>>()
            .join(",");
    }
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            // Only fails for URLs that cannot have a password, which this one has.
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(parsed) => parsed.to_string(),
        Err(_) => "<unparseable url>".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact_url("amqp://guest:secret@host:5672/%2f"),
            "amqp://guest:***@host:5672/%2f"
        );
        assert_eq!(redact_url("rediss://:pw@cache:6380"), "rediss://:***@cache:6380");
        assert_eq!(redact_url("amqp://host"), "amqp://host");
        assert!(!redact_url("not a url with secret").contains("secret"));
        assert_eq!(
            redact_url("amqp://u:pw@n1:5672/%2f, amqp://u:pw@n2:5673/%2f"),
            "amqp://u:***@n1:5672/%2f,amqp://u:***@n2:5673/%2f"
        );
    }

    #[test]
    fn several_urls_name_a_cluster_s_nodes() {
        assert_eq!(
            broker_urls("amqp://n1:5672/%2f, amqp://n2:5672/%2f,"),
            ["amqp://n1:5672/%2f", "amqp://n2:5672/%2f"]
        );
        assert_eq!(broker_urls("amqp://host"), ["amqp://host"]);
        assert!(broker_urls(" ").is_empty());
    }
}
