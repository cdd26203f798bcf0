//! Acknowledging a channel's deliveries in as few frames as is safe.
//!
//! RabbitMQ numbers a channel's deliveries 1, 2, 3, ... (the delivery tag),
//! across all the consumers on it, and one `basic.ack` with `multiple` set
//! settles every unsettled delivery up to its tag. [`Acks`] collects the
//! tags its callers are done with and, each time it sends, acks the
//! unbroken run above everything settled so far with one frame, and any
//! tag past a gap on its own. A delivery still being handled is a gap, so a
//! `multiple` ack never covers it, and a slow delivery never holds back the
//! acks of the ones after it.
//!
//! Acks are sent from one task per channel, so while it writes, the tags
//! that come in wait for the next round: the busier the channel, the more
//! deliveries share a frame; a lone ack goes at once.

use std::collections::BTreeMap;

use lapin::Channel;
use lapin::message::Delivery;
use lapin::options::BasicAckOptions;
use tokio::sync::{mpsc, oneshot};

/// The acks of one consuming channel. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Acks {
    requests: mpsc::UnboundedSender<Request>,
}

#[derive(Debug)]
enum Request {
    Ack(u64),
    /// Answered once every earlier ack has been sent.
    Flush(oneshot::Sender<()>),
}

impl Acks {
    /// Starts the task that acks on `channel`. It ends when every clone of
    /// the returned handle is dropped.
    #[must_use]
    pub fn start(channel: Channel) -> Self {
        let (requests, receiver) = mpsc::unbounded_channel();
        tokio::spawn(run(channel, receiver));
        Self { requests }
    }

    /// Acks `delivery`, one of this channel's. Call it once per delivery,
    /// when it has been fully handled. It does not wait: if the channel is
    /// gone, the delivery is redelivered, as if unacked.
    pub fn ack(&self, delivery: &Delivery) {
        // The task ends only after every sender is gone.
        let _ = self.requests.send(Request::Ack(delivery.delivery_tag));
    }

    /// Waits until every ack asked for before this call has been sent, for
    /// instance before closing the connection.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.requests.send(Request::Flush(done)).is_ok() {
            let _ = wait.await;
        }
    }
}

async fn run(channel: Channel, mut requests: mpsc::UnboundedReceiver<Request>) {
    let mut settled = Settled::default();
    let mut tags = Vec::new();
    let mut flushes = Vec::new();
    while let Some(first) = requests.recv().await {
        let mut next = Some(first);
        while let Some(request) = next {
            match request {
                Request::Ack(tag) => tags.push(tag),
                Request::Flush(done) => flushes.push(done),
            }
            next = requests.try_recv().ok();
        }
        for ack in settled.settle(&mut tags) {
            let options = BasicAckOptions {
                multiple: ack.multiple,
            };
            if let Err(e) = channel.basic_ack(ack.tag, options).await {
                // The channel is closed: every delivery on it that was not
                // acked yet goes back to its queue.
                tracing::debug!(error = %e, tag = ack.tag, "ack not sent");
            }
        }
        for done in flushes.drain(..) {
            let _ = done.send(());
        }
    }
}

/// One `basic.ack` frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Ack {
    tag: u64,
    multiple: bool,
}

/// What has been acked on a channel: every tag up to `floor`, and above it
/// the runs in `above`, each from its key to its value. There is a gap, a
/// delivery being handled, below each run, so `above` holds no more runs
/// than the channel has deliveries in hand.
#[derive(Debug, Default)]
struct Settled {
    floor: u64,
    above: BTreeMap<u64, u64>,
}

impl Settled {
    /// The frames that ack `tags` (each not acked before), in the order to
    /// send them; empties `tags`.
    fn settle(&mut self, tags: &mut Vec<u64>) -> Vec<Ack> {
        tags.sort_unstable();
        let mut run_end = None;
        let mut acks = Vec::new();
        for tag in tags.drain(..) {
            if tag == self.floor + 1 {
                run_end = Some(tag);
                self.floor = match self.above.first_key_value() {
                    Some((&start, &end)) if start == tag + 1 => {
                        self.above.remove(&start);
                        end
                    }
                    _ => tag,
                };
            } else {
                self.insert_above(tag);
                acks.push(Ack { tag, multiple: false });
            }
        }
        // The run's frame names its last new tag, which the broker still
        // holds; any tags above it in the run were acked on their own.
        if let Some(tag) = run_end {
            acks.insert(0, Ack { tag, multiple: true });
        }
        acks
    }

    fn insert_above(&mut self, tag: u64) {
        let joins_below = self
            .above
            .range(..tag)
            .next_back()
            .filter(|&(_, &end)| end + 1 == tag)
            .map(|(&start, _)| start);
        let end = match self.above.remove(&(tag + 1)) {
            Some(end) => end,
            None => tag,
        };
        self.above.insert(joins_below.unwrap_or(tag), end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settle(s: &mut Settled, tags: &[u64]) -> Vec<(u64, bool)> {
        s.settle(&mut tags.to_vec())
            .into_iter()
            .map(|a| (a.tag, a.multiple))
            .collect()
    }

    #[test]
    fn an_unbroken_run_is_one_frame() {
        let mut s = Settled::default();
        assert_eq!(settle(&mut s, &[3, 1, 2]), [(3, true)]);
        assert_eq!(settle(&mut s, &[4]), [(4, true)]);
        assert_eq!(s.floor, 4);
        assert!(s.above.is_empty());
    }

    #[test]
    fn a_tag_past_a_gap_is_acked_alone_and_never_covered() {
        let mut s = Settled::default();
        // 2 is still being handled.
        assert_eq!(settle(&mut s, &[1, 3, 4]), [(1, true), (3, false), (4, false)]);
        assert_eq!(s.floor, 1);
        // 2 is done: its ack must not name 3 or 4 again, which would be an
        // unknown tag to the broker, and the floor moves past them.
        assert_eq!(settle(&mut s, &[2]), [(2, true)]);
        assert_eq!(s.floor, 4);
        assert!(s.above.is_empty());
        assert_eq!(settle(&mut s, &[5, 6]), [(6, true)]);
    }

    #[test]
    fn runs_above_the_floor_join_up() {
        let mut s = Settled::default();
        settle(&mut s, &[3, 7, 5]);
        settle(&mut s, &[6]);
        assert_eq!(s.above, BTreeMap::from([(3, 3), (5, 7)]));
        settle(&mut s, &[4]);
        assert_eq!(s.above, BTreeMap::from([(3, 7)]));
        assert_eq!(settle(&mut s, &[1, 2, 9]), [(2, true), (9, false)]);
        assert_eq!(s.floor, 7);
        assert_eq!(s.above, BTreeMap::from([(9, 9)]));
    }

    #[test]
    fn a_run_ends_at_its_last_new_tag() {
        let mut s = Settled::default();
        assert_eq!(settle(&mut s, &[5]), [(5, false)]);
        // 1..=4 arrive: the run's frame names 4, the last tag not yet
        // acked; 5 was acked alone before.
        assert_eq!(settle(&mut s, &[4, 2, 3, 1]), [(4, true)]);
        assert_eq!(s.floor, 5);
    }

    #[test]
    fn a_delivery_never_acked_holds_the_floor_but_nothing_else() {
        let mut s = Settled::default();
        assert_eq!(settle(&mut s, &[1]), [(1, true)]);
        // 2 is left unacked for good (say, handed back on shutdown).
        for tag in 3..100 {
            assert_eq!(settle(&mut s, &[tag]), [(tag, false)]);
        }
        assert_eq!(s.floor, 1);
        // Held as one run, however many there are.
        assert_eq!(s.above, BTreeMap::from([(3, 99)]));
        assert_eq!(settle(&mut s, &[2]), [(2, true)]);
        assert_eq!(s.floor, 99);
        assert!(s.above.is_empty());
    }
}
