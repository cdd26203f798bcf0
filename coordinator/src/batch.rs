//! Task requests and step results go to Redis in batches: whatever arrives
//! while earlier calls are out shares the next script call.
//!
//! A request or result that arrives when nothing waits goes at once, alone,
//! so a batch never waits to fill. Under load, or when many branches of one
//! task finish together (a wide fan-in), they queue up behind the calls in
//! flight and share the next one: one round trip, one script start and one
//! reply for many, rather than one each.
//!
//! A batch is one script call; each item in it is applied as if alone. If a
//! batch fails, its items are tried again one by one, as redeliveries (the
//! failed call may have applied some of them), so that an item Redis
//! refuses only fails its own delivery.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc, oneshot};
use uuid::Uuid;

use crate::Error;

/// How many items one call takes at most.
const MAX_BATCH: usize = 128;

/// A call that many items can share: [`TaskToCreate`] and
/// [`ResultToRecord`], implemented beside their scripts in
/// [`crate::store`].
///
/// [`TaskToCreate`]: crate::store::TaskToCreate
/// [`ResultToRecord`]: crate::store::ResultToRecord
pub trait Batched: Send + Sync + Sized + 'static {
    /// What the call is made to.
    type Target: Clone + Send + Sync + 'static;
    /// What the call gives back for each item.
    type Output: Send + 'static;

    /// The task the item is for, for errors.
    fn task_id(&self) -> Uuid;

    /// Marks the item as delivered before: after a call that failed, since
    /// it may have been applied.
    fn set_redelivered(&mut self);

    /// Applies `items` in one call, in order.
    fn call(
        target: &Self::Target,
        items: &[Self],
    ) -> impl Future<Output = Result<Vec<Result<Self::Output, Error>>, Error>> + Send;
}

type Job<C> = (C, oneshot::Sender<Result<<C as Batched>::Output, Error>>);

/// Sends items of one kind to Redis through a few calls in flight at once.
/// Cloning shares the batches.
///
/// The queue of jobs is unbounded, but each job is one delivery in hand, so
/// the consumers' prefetch bounds it.
pub struct Batcher<C: Batched> {
    jobs: mpsc::UnboundedSender<Job<C>>,
}

impl<C: Batched> Clone for Batcher<C> {
    fn clone(&self) -> Self {
        Self {
            jobs: self.jobs.clone(),
        }
    }
}

impl<C: Batched> Batcher<C> {
    /// Starts sending to `target`, with at most `in_flight` calls out at
    /// once. The batching task ends when the last clone is dropped.
    pub fn start(target: C::Target, in_flight: usize) -> Self {
        let (jobs, queue) = mpsc::unbounded_channel();
        tokio::spawn(batch(target, queue, Arc::new(Semaphore::new(in_flight.max(1)))));
        Self { jobs }
    }

    /// Applies `item` with whatever else is waiting.
    ///
    /// # Errors
    ///
    /// As [`Batched::call`]: [`Store::create_tasks`] or
    /// [`Store::record_results`].
    ///
    /// [`Store::create_tasks`]: crate::store::Store::create_tasks
    /// [`Store::record_results`]: crate::store::Store::record_results
    pub async fn apply(&self, item: C) -> Result<C::Output, Error> {
        let (reply, output) = oneshot::channel();
        let task_id = item.task_id();
        let interrupted = || Error::Interrupted(format!("a change to task {task_id} was not sent to Redis"));
        self.jobs.send((item, reply)).map_err(|_| interrupted())?;
        output.await.map_err(|_| interrupted())?
    }
}

/// Takes a permit for a call, then every job waiting, up to [`MAX_BATCH`]:
/// jobs that arrive while the permits are taken wait for the next batch.
async fn batch<C: Batched>(
    target: C::Target,
    mut queue: mpsc::UnboundedReceiver<Job<C>>,
    permits: Arc<Semaphore>,
) {
    while let Some(first) = queue.recv().await {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let target = target.clone();
        tokio::spawn(async move {
            call(&target, jobs).await;
            drop(permit);
        });
    }
}

/// One call for all of `jobs`; if it fails, one call each.
async fn call<C: Batched>(target: &C::Target, jobs: Vec<Job<C>>) {
    let (mut items, replies): (Vec<_>, Vec<_>) = jobs.into_iter().unzip();
    match C::call(target, &items).await {
        Ok(outputs) => {
            for (reply, output) in replies.into_iter().zip(outputs) {
                let _ = reply.send(output);
            }
        }
        Err(e) if items.len() == 1 => {
            if let Some(reply) = replies.into_iter().next() {
                let _ = reply.send(Err(e));
            }
        }
        Err(_) => {
            for (item, reply) in items.iter_mut().zip(replies) {
                item.set_redelivered();
                let output = match C::call(target, std::slice::from_ref(item)).await {
                    Ok(mut outputs) => outputs.pop().expect("a call gives back one output for each item"),
                    Err(e) => Err(e),
                };
                let _ = reply.send(output);
            }
        }
    }
}
