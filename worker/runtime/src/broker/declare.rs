//! The exchanges, queues and bindings a Tasker process declares.

use lapin::Channel;
use lapin::ExchangeKind;
use lapin::options::{ExchangeBindOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use tasker_protocol::topology;

use super::{Broker, is_access_refused, is_not_found, is_precondition_failed};
use crate::Error;

impl Broker {
    /// Declares what every process uses: the events exchange and the
    /// dead-letter exchange and queue.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Amqp`] if a declaration fails, for instance because
    /// an object exists with other settings.
    pub async fn declare_common(&self) -> Result<(), Error> {
        self.declare_exchange(
            topology::EVENTS_EXCHANGE,
            ExchangeKind::Topic,
            FieldTable::default(),
        )
        .await?;
        self.declare_exchange(
            topology::DEAD_LETTER_EXCHANGE,
            ExchangeKind::Fanout,
            FieldTable::default(),
        )
        .await?;
        self.declare_shared_queue(topology::DEAD_LETTER_QUEUE).await?;
        self.bind_shared(topology::DEAD_LETTER_QUEUE, topology::DEAD_LETTER_EXCHANGE, "")
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
    pub async fn declare_namespace(&self, namespace: &str) -> Result<(), Error> {
        self.declare_requests_exchange().await?;
        let requests = topology::request_queue(namespace);
        self.declare_shared_queue(&requests).await?;
        self.bind_shared(&requests, topology::REQUESTS_EXCHANGE, namespace)
            .await?;
        self.declare_steps_exchange().await?;
        let results = topology::result_queue(namespace);
        self.declare_shared_queue(&results).await?;
        self.bind_shared(
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
        self.route_namespace_steps(namespace, callables, false).await?;
        let queue = topology::service_queue(namespace, service);
        self.declare_queue(&queue).await?;
        let steps = topology::namespace_steps_exchange(namespace);
        for callable in callables {
            self.bind(
                channel,
                &queue,
                &steps,
                &topology::step_routing_key(namespace, callable),
            )
            .await?;
        }
        Ok(queue)
    }

    /// Declares `namespace`'s steps exchange and binds it to the steps
    /// exchange with the key of each of `callables`, so that their steps
    /// reach it. A coordinator does so for every callable of its templates,
    /// `strict`ly; a worker for its own callables, going on without them
    /// when its user may not (it has no `read` on `tasker.steps`), since the
    /// coordinators bind them.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Amqp`] if a declaration or, when `strict`, a binding
    /// fails.
    pub async fn route_namespace_steps(
        &self,
        namespace: &str,
        callables: &[&str],
        strict: bool,
    ) -> Result<(), Error> {
        self.declare_steps_exchange().await?;
        let steps = topology::namespace_steps_exchange(namespace);
        self.declare_exchange(&steps, ExchangeKind::Direct, FieldTable::default())
            .await?;
        for callable in callables {
            let key = topology::step_routing_key(namespace, callable);
            let bind = async |own: &Channel| {
                own.exchange_bind(
                    steps.as_str().into(),
                    topology::STEPS_EXCHANGE.into(),
                    key.as_str().into(),
                    ExchangeBindOptions::default(),
                    FieldTable::default(),
                )
                .await
            };
            if strict {
                let channel = self.channel().await?;
                bind(&channel).await.map_err(|e| self.error(e))?;
                let _ = channel.close(200, "bound".into()).await;
            } else {
                self.shared(&steps, bind).await?;
            }
        }
        Ok(())
    }

    /// Declares where `service`'s steps of `namespace` wait, split over
    /// `partitions` queues, and gives back the queues to consume.
    ///
    /// One partition is the service's queue, as [`Broker::declare_service`]
    /// declares it; refused while the service's steps are split (its
    /// exchange exists), since a step would then reach both.
    ///
    /// More are a consistent-hash exchange of the service's, bound to the
    /// steps exchange with the callables' keys, and the
    /// [`topology::partition_queue`]s behind it. A queue the service had
    /// before it was split stops receiving steps and comes last in the list,
    /// so that what it holds still runs.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Config`] if the split does not match the service's,
    /// or the broker lacks the consistent-hash exchange; [`Error::Amqp`] if
    /// a declaration fails.
    pub async fn declare_partitions(
        &self,
        channel: &Channel,
        namespace: &str,
        service: &str,
        callables: &[&str],
        partitions: u32,
    ) -> Result<Vec<String>, Error> {
        let exchange = topology::service_exchange(namespace, service);
        if partitions <= 1 {
            if self.exchange_exists(&exchange).await? {
                return Err(Error::Config(format!(
                    "the steps of service {service:?} in namespace {namespace:?} are split over several queues \
                     (the exchange {exchange} exists): start this worker with TASKER_PARTITIONS set to the number \
                     the service's other workers use"
                )));
            }
            return Ok(vec![
                self.declare_service(channel, namespace, service, callables)
                    .await?,
            ]);
        }
        self.route_namespace_steps(namespace, callables, false).await?;
        let steps = topology::namespace_steps_exchange(namespace);
        let mut arguments = FieldTable::default();
        arguments.insert(
            topology::HASH_HEADER_ARGUMENT.into(),
            AMQPValue::LongString(topology::headers::TASK_ID.into()),
        );
        self.declare_partitioned_exchange(&exchange, arguments).await?;
        let mut queues: Vec<String> = (0..partitions)
            .map(|i| topology::partition_queue(namespace, service, i))
            .collect();
        // The queues first: a step that reached the exchange before them
        // would be returned.
        for queue in &queues {
            self.declare_queue(queue).await?;
            self.bind(channel, queue, &exchange, topology::PARTITION_WEIGHT)
                .await?;
        }
        for callable in callables {
            channel
                .exchange_bind(
                    exchange.as_str().into(),
                    steps.as_str().into(),
                    topology::step_routing_key(namespace, callable).as_str().into(),
                    ExchangeBindOptions::default(),
                    FieldTable::default(),
                )
                .await
                .map_err(|e| self.error(e))?;
        }
        let former = topology::service_queue(namespace, service);
        if self.queue_counts(&former).await?.is_some() {
            for callable in callables {
                let key = topology::step_routing_key(namespace, callable);
                channel
                    .queue_unbind(
                        former.as_str().into(),
                        steps.as_str().into(),
                        key.as_str().into(),
                        FieldTable::default(),
                    )
                    .await
                    .map_err(|e| self.error(e))?;
                // Where earlier versions bound it; a user without `read` on
                // tasker.steps never could have.
                self.shared(&former, async |own| {
                    own.queue_unbind(
                        former.as_str().into(),
                        topology::STEPS_EXCHANGE.into(),
                        key.as_str().into(),
                        FieldTable::default(),
                    )
                    .await
                })
                .await?;
            }
            tracing::info!(queue = %former, partitions,
                "draining the service's former single queue: new steps go to its {partitions} queues; \
                 delete it once it is empty");
            queues.push(former);
        }
        Ok(queues)
    }

    /// Whether exchange `name` exists, asked on a channel of its own, since
    /// asking about one that does not closes the channel.
    async fn exchange_exists(&self, name: &str) -> Result<bool, Error> {
        let own = self.channel().await?;
        let passive = ExchangeDeclareOptions {
            passive: true,
            ..Default::default()
        };
        match own
            .exchange_declare(name.into(), ExchangeKind::Direct, passive, FieldTable::default())
            .await
        {
            Ok(()) => {
                let _ = own.close(200, "done".into()).await;
                Ok(true)
            }
            Err(e) if is_not_found(&e) => Ok(false),
            Err(e) => Err(self.error(e)),
        }
    }

    /// Declares a service's consistent-hash exchange. A broker without the
    /// plugin closes the whole connection over the unknown type, so the
    /// error says how to get it.
    async fn declare_partitioned_exchange(&self, name: &str, arguments: FieldTable) -> Result<(), Error> {
        let own = self.channel().await?;
        let declared = own
            .exchange_declare(
                name.into(),
                ExchangeKind::Custom(topology::PARTITIONED_EXCHANGE_TYPE.into()),
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                arguments,
            )
            .await;
        match declared {
            Ok(()) => {
                let _ = own.close(200, "declared".into()).await;
                Ok(())
            }
            // RabbitMQ says "invalid exchange type" or "unknown exchange type".
            Err(e) if e.to_string().contains("exchange type") => Err(Error::Config(format!(
                "rabbitmq at {} has no {} exchange, which splitting a service's steps over several queues \
                 (TASKER_PARTITIONS) needs: enable it with `rabbitmq-plugins enable rabbitmq_consistent_hash_exchange` \
                 on every node ({e})",
                self.url(),
                topology::PARTITIONED_EXCHANGE_TYPE
            ))),
            Err(e) => Err(self.error(e)),
        }
    }

    /// Declares the queue of workers' announcements, which coordinators
    /// consume.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Amqp`] if a declaration fails.
    pub async fn declare_workers_queue(&self) -> Result<(), Error> {
        self.declare_shared_queue(topology::WORKERS_QUEUE).await?;
        self.bind_shared(
            topology::WORKERS_QUEUE,
            topology::EVENTS_EXCHANGE,
            topology::WORKER_ANNOUNCE_ROUTING_KEY,
        )
        .await
    }

    async fn declare_steps_exchange(&self) -> Result<(), Error> {
        self.declare_exchange(
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
    /// whatever they hold, and the namespace's steps exchange. For tests and
    /// benchmarks that made up a namespace; never for a real one.
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
        channel
            .exchange_delete(
                topology::namespace_steps_exchange(namespace).as_str().into(),
                lapin::options::ExchangeDeleteOptions::default(),
            )
            .await
            .map_err(|e| self.error(e))
    }

    /// Declares the exchange clients publish requests to, with its alternate
    /// exchange and the queue that catches requests for unknown namespaces.
    ///
    /// # Errors
    ///
    /// Returns [`Error::Amqp`] if the declaration fails.
    pub async fn declare_requests_exchange(&self) -> Result<(), Error> {
        self.declare_exchange(
            topology::UNROUTED_REQUESTS_EXCHANGE,
            ExchangeKind::Fanout,
            FieldTable::default(),
        )
        .await?;
        self.declare_shared_queue(topology::UNROUTED_REQUESTS_QUEUE)
            .await?;
        self.bind_shared(
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
        self.declare_exchange(topology::REQUESTS_EXCHANGE, ExchangeKind::Direct, arguments)
            .await
    }

    /// Declares an exchange that every Tasker process shares ([`Broker::shared`]).
    async fn declare_exchange(
        &self,
        name: &str,
        kind: ExchangeKind,
        arguments: FieldTable,
    ) -> Result<(), Error> {
        self.shared(name, async |own| {
            own.exchange_declare(
                name.into(),
                kind,
                ExchangeDeclareOptions {
                    durable: true,
                    ..Default::default()
                },
                arguments,
            )
            .await
        })
        .await
    }

    /// Binds a queue that every Tasker process shares ([`Broker::shared`]).
    async fn bind_shared(&self, queue: &str, exchange: &str, key: &str) -> Result<(), Error> {
        self.shared(queue, async |own| queue_bind(own, queue, exchange, key).await)
            .await
    }

    /// Runs `declare`, of something every Tasker process shares, on a
    /// channel of its own. A user without the right to declare it (an
    /// `ACCESS_REFUSED`, as a worker's own user gets: docs/security.md) goes
    /// on without it: the coordinators declare it. The refusal closes the
    /// channel, hence its own.
    async fn shared(
        &self,
        what: &str,
        declare: impl AsyncFnOnce(&Channel) -> Result<(), lapin::Error>,
    ) -> Result<(), Error> {
        let own = self.channel().await?;
        match declare(&own).await {
            Ok(()) => {
                let _ = own.close(200, "declared".into()).await;
                Ok(())
            }
            Err(e) if is_access_refused(&e) => {
                tracing::debug!(what, "not allowed to declare it; the coordinators declare it");
                Ok(())
            }
            Err(e) => Err(self.error(e)),
        }
    }

    /// [`Broker::declare_queue`] for a queue every Tasker process shares:
    /// a user without the right to declare it goes on without it.
    async fn declare_shared_queue(&self, name: &str) -> Result<(), Error> {
        self.declare_queue_as(name, true).await
    }

    /// Every Tasker queue is a durable quorum queue: it survives a broker
    /// restart, is replicated in a cluster, and counts redeliveries, up to
    /// [`topology::DELIVERY_LIMIT`]. A queue that an older Tasker declared
    /// without the limit refuses these arguments: it is used as it is, with
    /// a warning. The declaration goes on a channel of its own, since a
    /// refusal closes the channel it came on; the queue is the connection's
    /// from then on, whichever channel declared it.
    async fn declare_queue(&self, name: &str) -> Result<(), Error> {
        self.declare_queue_as(name, false).await
    }

    async fn declare_queue_as(&self, name: &str, shared: bool) -> Result<(), Error> {
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
            Err(e) if shared && is_access_refused(&e) => {
                tracing::debug!(
                    queue = name,
                    "not allowed to declare it; the coordinators declare it"
                );
                Ok(())
            }
            Err(e) => Err(self.error(e)),
        }
    }

    async fn bind(&self, channel: &Channel, queue: &str, exchange: &str, key: &str) -> Result<(), Error> {
        queue_bind(channel, queue, exchange, key)
            .await
            .map_err(|e| self.error(e))
    }
}

/// Binds `queue` to `exchange` with `key`, durably, on `channel`.
async fn queue_bind(channel: &Channel, queue: &str, exchange: &str, key: &str) -> Result<(), lapin::Error> {
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
}
