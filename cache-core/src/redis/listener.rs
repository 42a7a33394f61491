//! The Redis side of the invalidation bus: one pub/sub subscription per cache, resubscribed
//! with backoff when it drops (messages: [`crate::bus`]).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use super::connect::Connector;
use crate::bus::Message;

/// Delays between attempts to (re)subscribe: doubling from [`Backoff::FIRST`] to
/// [`Backoff::MAX`] while attempts fail, back to the first once a subscription is up.
///
/// Why the reset matters: each drop of a working subscription is a new incident. Without it the
/// delay kept growing across drops that each recovered at once (57 → 99 → 208 → 406 → 802 ms
/// after repeated `CLIENT KILL TYPE pubsub`), and while unsubscribed an instance serves L1 copies
/// that others may have changed.
#[derive(Debug)]
struct Backoff {
    next: Duration,
}

impl Backoff {
    const FIRST: Duration = Duration::from_millis(50);
    const MAX: Duration = Duration::from_secs(1);

    fn new() -> Self {
        Backoff { next: Self::FIRST }
    }

    fn reset(&mut self) {
        self.next = Self::FIRST;
    }

    /// The delay to sleep now; the one after it doubles.
    fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (delay * 2).min(Self::MAX);
        delay
    }
}

/// What a listener has done so far: lets tests check its retries structurally rather than by
/// timing, and can feed statistics.
#[derive(Debug, Default)]
pub(crate) struct ListenerStats {
    subscriptions: AtomicU64,
    retries: AtomicU64,
    last_retry_delay_ms: AtomicU64,
}

// Read by this module's tests only so far; the engine may surface them in its stats.
#[cfg_attr(not(test), allow(dead_code))]
impl ListenerStats {
    /// Subscriptions that succeeded, the first included.
    pub(crate) fn subscriptions(&self) -> u64 {
        self.subscriptions.load(Ordering::Relaxed)
    }

    /// Failed or dropped subscriptions, each followed by a delay and a new attempt.
    pub(crate) fn retries(&self) -> u64 {
        self.retries.load(Ordering::Relaxed)
    }

    /// The delay slept before the latest attempt.
    pub(crate) fn last_retry_delay(&self) -> Duration {
        Duration::from_millis(self.last_retry_delay_ms.load(Ordering::Relaxed))
    }
}

/// Listens on `channel` until `alive()` turns false. `on_resubscribed` runs after each
/// subscription but the first, `on_message` for each message of another origin, `on_state`
/// with `true` after every subscription (after `on_resubscribed`) and `false` when one is lost.
/// Returns the listener's counters.
///
/// The first subscription does not clear: L1 filled before it completes (the first milliseconds
/// of an instance) is kept, and a write by another instance inside that window is the one case
/// this protocol does not cover.
#[allow(clippy::too_many_arguments)]
pub(crate) fn spawn_listener<A, S, M, T>(
    rt: &tokio::runtime::Handle,
    connector: Arc<Connector>,
    channel: String,
    origin: u64,
    security: Arc<crate::security::Security>,
    alive: A,
    on_subscribed: S,
    on_message: M,
    on_state: T,
) -> (tokio::task::JoinHandle<()>, Arc<ListenerStats>)
where
    A: Fn() -> bool + Send + Sync + 'static,
    S: Fn() + Send + Sync + 'static,
    M: Fn(Message) + Send + Sync + 'static,
    T: Fn(bool) + Send + Sync + 'static,
{
    let stats = Arc::new(ListenerStats::default());
    let on_resubscribed = on_subscribed;
    let counters = stats.clone();
    let task = rt.spawn(async move {
        let mut backoff = Backoff::new();
        let mut first = true;
        while alive() {
            let on_subscribed = || {
                // Up again: the next drop starts over from the shortest delay. Reset here, not
                // when `subscribe_once` returns: it returns `Ok` only when the cache is gone, and
                // a dropped subscription comes back as `Err` after it had been working.
                backoff.reset();
                counters.subscriptions.fetch_add(1, Ordering::Relaxed);
                if !std::mem::replace(&mut first, false) {
                    on_resubscribed();
                }
                on_state(true);
            };
            let result = subscribe_once(
                &connector,
                &channel,
                origin,
                &security,
                &alive,
                on_subscribed,
                &on_message,
            )
            .await;
            if let Err(e) = result {
                on_state(false);
                let delay = backoff.next_delay();
                counters.retries.fetch_add(1, Ordering::Relaxed);
                counters.last_retry_delay_ms.store(
                    u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    Ordering::Relaxed,
                );
                tracing::debug!(
                    error = %e,
                    retry_in_ms = delay.as_millis(),
                    "invalidation subscription down; retrying"
                );
                tokio::time::sleep(delay).await;
            }
        }
    });
    (task, stats)
}

async fn subscribe_once<A, S, M>(
    connector: &Connector,
    channel: &str,
    origin: u64,
    security: &crate::security::Security,
    alive: &A,
    on_subscribed: S,
    on_message: &M,
) -> redis::RedisResult<()>
where
    A: Fn() -> bool,
    S: FnOnce(),
    M: Fn(Message),
{
    // Asked anew on each attempt: the Sentinel primary of now, or the next cluster seed.
    let mut pubsub = connector.pubsub_client().await?.get_async_pubsub().await?;
    pubsub.subscribe(channel).await?;
    on_subscribed();
    let mut stream = pubsub.on_message();
    loop {
        // Wake up now and then to notice that the cache was dropped.
        let next = tokio::time::timeout(Duration::from_secs(1), stream.next()).await;
        if !alive() {
            return Ok(());
        }
        match next {
            Err(_) => continue,
            Ok(None) => {
                return Err(redis::RedisError::from((
                    redis::ErrorKind::Io,
                    "pub/sub connection closed",
                )))
            }
            Ok(Some(msg)) => {
                let Ok(text) = msg.get_payload::<String>() else {
                    continue;
                };
                match crate::bus::open(&text, security.obfuscator()) {
                    Some((from, m)) if from != origin => on_message(m),
                    Some(_) => {}
                    None => {
                        tracing::debug!(payload = %text, "ignoring a foreign message on the invalidation channel")
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_its_cap_and_resets() {
        let mut b = Backoff::new();
        let delays: Vec<u128> = (0..7).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(delays, [50, 100, 200, 400, 800, 1000, 1000]);
        b.reset();
        assert_eq!(b.next_delay(), Backoff::FIRST);
    }

    fn connector_for(url: &str) -> Arc<Connector> {
        let config = crate::CacheConfig::builder().redis_url(url).build().unwrap();
        Arc::new(Connector::new(&config).unwrap().unwrap())
    }

    async fn wait_for(what: &str, cond: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Each drop of a working subscription is retried after the first delay, not after one that
    /// kept doubling across drops (the old listener slept 50, 100, 200, 400, 800 ms... before
    /// resubscribing after the 1st, 2nd, 3rd... `CLIENT KILL TYPE pubsub`). Checked on the
    /// listener's own counters, not on timings.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn backoff_resets_after_every_resubscription() {
        let redis = cache_test_harness::RedisServer::start();
        let alive = Arc::new(std::sync::atomic::AtomicBool::new(true));
        let resubscribed = Arc::new(AtomicU64::new(0));
        let (a, r) = (alive.clone(), resubscribed.clone());
        let (_task, stats) = spawn_listener(
            &tokio::runtime::Handle::current(),
            connector_for(&redis.url()),
            "test:invalidate".into(),
            1,
            Arc::default(),
            move || a.load(Ordering::Relaxed),
            move || {
                r.fetch_add(1, Ordering::Relaxed);
            },
            |_| {},
            |_| {},
        );
        wait_for("the first subscription", || stats.subscriptions() == 1).await;
        let mut conn = redis.conn().await;
        for drop in 1..=6u64 {
            let killed: u64 = redis::cmd("CLIENT")
                .arg("KILL")
                .arg("TYPE")
                .arg("pubsub")
                .query_async(&mut conn)
                .await
                .unwrap();
            assert_eq!(killed, 1, "drop {drop}: the listener's connection");
            wait_for("the resubscription", || stats.subscriptions() == drop + 1).await;
            assert_eq!(stats.retries(), drop, "one attempt per drop");
            assert_eq!(
                stats.last_retry_delay(),
                Backoff::FIRST,
                "drop {drop}: the delay grew across drops that each recovered"
            );
            assert_eq!(
                resubscribed.load(Ordering::Relaxed),
                drop,
                "L1 cleared on each resubscription"
            );
        }
        alive.store(false, Ordering::Relaxed);
    }
}
