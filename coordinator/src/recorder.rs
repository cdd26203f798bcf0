//! Step results go to Redis in batches: whatever arrives while earlier
//! calls are out is recorded together, in one script call.
//!
//! A result that arrives when nothing is out goes at once, alone, so a
//! batch never waits to fill. Under load, or when many branches of one
//! task finish together (a wide fan-in), the results queue up behind the
//! calls in flight and share the next one: one round trip, one script
//! start and one reply for many results, rather than one each.
//!
//! A batch is one script call; each result in it is applied as if alone.
//! If a batch fails, its results are tried again one by one, as
//! redeliveries (the failed call may have recorded some of them), so that a
//! result Redis refuses only fails its own delivery.

use std::sync::Arc;

use tokio::sync::{Semaphore, mpsc, oneshot};

use crate::Error;
use crate::store::{Recorded, ResultToRecord, Store};

/// How many results one call takes at most.
const MAX_BATCH: usize = 128;

type Job = (ResultToRecord, oneshot::Sender<Result<Recorded, Error>>);

/// Records step results through a few calls in flight at once. Cloning
/// shares the batches.
#[derive(Clone)]
pub struct Recorder {
    jobs: mpsc::UnboundedSender<Job>,
}

impl Recorder {
    /// Starts recording into `store`, with at most `in_flight` calls out at
    /// once. The batching task ends when the last clone is dropped.
    pub fn start(store: Store, in_flight: usize) -> Self {
        let (jobs, queue) = mpsc::unbounded_channel();
        tokio::spawn(batch(store, queue, Arc::new(Semaphore::new(in_flight.max(1)))));
        Self { jobs }
    }

    /// Records `result` with whatever else is waiting.
    ///
    /// # Errors
    ///
    /// As [`Store::record_results`].
    pub async fn record(&self, result: ResultToRecord) -> Result<Recorded, Error> {
        let (reply, recorded) = oneshot::channel();
        let task_id = result.task_id();
        let interrupted =
            || Error::Interrupted(format!("the result of a step of task {task_id} was not recorded"));
        self.jobs.send((result, reply)).map_err(|_| interrupted())?;
        recorded.await.map_err(|_| interrupted())?
    }
}

/// Takes a permit for a call, then every job waiting, up to [`MAX_BATCH`]:
/// jobs that arrive while the permits are taken wait for the next batch.
async fn batch(store: Store, mut queue: mpsc::UnboundedReceiver<Job>, permits: Arc<Semaphore>) {
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
        let store = store.clone();
        tokio::spawn(async move {
            record(&store, jobs).await;
            drop(permit);
        });
    }
}

/// One call for all of `jobs`; if it fails, one call each.
async fn record(store: &Store, jobs: Vec<Job>) {
    let (mut results, replies): (Vec<_>, Vec<_>) = jobs.into_iter().unzip();
    match store.record_results(&results).await {
        Ok(recorded) => {
            for (reply, recorded) in replies.into_iter().zip(recorded) {
                let _ = reply.send(recorded);
            }
        }
        Err(e) if results.len() == 1 => {
            if let Some(reply) = replies.into_iter().next() {
                let _ = reply.send(Err(e));
            }
        }
        Err(_) => {
            for (result, reply) in results.iter_mut().zip(replies) {
                result.set_redelivered();
                let _ = reply.send(store.record_result(result).await);
            }
        }
    }
}
