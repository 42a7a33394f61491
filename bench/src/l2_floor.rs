//! The least an L2 hit can cost in P2's shape: 64 tasks, each awaiting one value a call, over
//! one multiplexed redis-rs connection. Concurrent reads share `MGET`s, as ours do; what no
//! design of this shape avoids is one task wake a call, since the value is not there when the
//! call is first polled. The peers bench reports it beside ours and the peers, so whether a P2
//! target is within reach of any cache on this transport is read off the same run.
// A bench's floor: a Redis error or a poisoned lock ends the run, as in the benches.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use redis::aio::MultiplexedConnection;
use tokio::sync::oneshot;

use crate::Payload;

/// Reads queued for the next `MGET`, and the `MGET`s out.
struct Queue {
    waiting: Vec<(u64, oneshot::Sender<Payload>)>,
    out: usize,
}

/// Reads `raw:{i}` (a [`Payload`] in bincode's standard form, as the bench writes it): a read
/// queues its key with a oneshot, and leads an `MGET` of the whole queue while fewer than
/// `max_out` are out, else waits for a leader to answer it.
///
/// ```no_run
/// # async fn f(conn: redis::aio::MultiplexedConnection) {
/// let floor = cache_bench::L2Floor::new(conn, 4);
/// let p = floor.get(7).await;
/// assert_eq!(p.id, 7);
/// # }
/// ```
pub struct L2Floor {
    conn: MultiplexedConnection,
    queue: Mutex<Queue>,
    max_out: usize,
    mgets: AtomicU64,
}

impl L2Floor {
    /// Reads over `conn`, at most `max_out` `MGET`s at a time (at least one).
    pub fn new(conn: MultiplexedConnection, max_out: usize) -> Self {
        L2Floor {
            conn,
            queue: Mutex::new(Queue {
                waiting: Vec::new(),
                out: 0,
            }),
            max_out: max_out.max(1),
            mgets: AtomicU64::new(0),
        }
    }

    /// `MGET`s sent so far: with the reads made, how full they were. With 64 tasks and 4 out,
    /// about 15 keys each (`l2_profile` `MODE=floor`), near the 16 that 64 reads in flight allow.
    pub fn mgets(&self) -> u64 {
        self.mgets.load(Ordering::Relaxed)
    }

    /// The value of `raw:{i}`. Panics on a Redis error or a missing key: a bench's floor.
    pub async fn get(&self, i: u64) -> Payload {
        let (tx, rx) = oneshot::channel();
        let lead = {
            let mut q = self.queue.lock().unwrap();
            q.waiting.push((i, tx));
            let lead = q.out < self.max_out;
            q.out += usize::from(lead);
            lead
        };
        if lead {
            // Until the queue is empty: reads that queued while this `MGET` was out go next.
            loop {
                let batch = {
                    let mut q = self.queue.lock().unwrap();
                    if q.waiting.is_empty() {
                        q.out -= 1;
                        break;
                    }
                    std::mem::take(&mut q.waiting)
                };
                self.mgets.fetch_add(1, Ordering::Relaxed);
                let keys: Vec<String> = batch.iter().map(|(i, _)| format!("raw:{i}")).collect();
                let values: Vec<Vec<u8>> = redis::cmd("MGET")
                    .arg(&keys)
                    .query_async(&mut self.conn.clone())
                    .await
                    .unwrap();
                for ((_, tx), v) in batch.into_iter().zip(values) {
                    let _ = tx.send(decode(&v));
                }
            }
        }
        rx.await.unwrap()
    }
}

/// A [`Payload`] in bincode's standard form: how the raw contenders store it.
///
/// ```
/// let p = cache_bench::payload(3);
/// assert_eq!(cache_bench::decode(&cache_bench::encode(&p)), p);
/// ```
pub fn encode(p: &Payload) -> Vec<u8> {
    bincode::serde::encode_to_vec(p, bincode::config::standard()).unwrap()
}

/// A [`Payload`] from bincode's standard form ([`encode`]).
pub fn decode(bytes: &[u8]) -> Payload {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .unwrap()
        .0
}

/// Writes `payload(i)` under `raw:{i}` ([`encode`]), as [`L2Floor`] and the raw contenders
/// read it.
///
/// ```no_run
/// # async fn f(mut conn: redis::aio::MultiplexedConnection) {
/// cache_bench::write_raw(&mut conn, 7).await;
/// assert_eq!(cache_bench::read_raw(&mut conn, 7).await, cache_bench::payload(7));
/// # }
/// ```
pub async fn write_raw<C: redis::aio::ConnectionLike>(c: &mut C, i: u64) {
    redis::cmd("SET")
        .arg(format!("raw:{i}"))
        .arg(encode(&crate::payload(i)))
        .query_async::<()>(c)
        .await
        .unwrap();
}

/// The raw contender of a read: `GET raw:{i}` and a decode, on any connection.
pub async fn read_raw<C: redis::aio::ConnectionLike>(c: &mut C, i: u64) -> Payload {
    let bytes: Vec<u8> = redis::cmd("GET")
        .arg(format!("raw:{i}"))
        .query_async(c)
        .await
        .unwrap();
    decode(&bytes)
}

/// One `MGET` of `raw:{i}` for each of `ids`, each value decoded: the transport with one task
/// wake per batch.
pub async fn read_raw_many<C: redis::aio::ConnectionLike>(
    c: &mut C,
    ids: impl IntoIterator<Item = u64>,
) -> Vec<Payload> {
    let keys: Vec<String> = ids.into_iter().map(|i| format!("raw:{i}")).collect();
    let values: Vec<Vec<u8>> = redis::cmd("MGET").arg(&keys).query_async(c).await.unwrap();
    values.iter().map(|v| decode(v)).collect()
}
