//! Multi-instance L1 invalidation over Redis pub/sub.
//!
//! Every write, delete, pattern invalidation and clear is published on one channel per keyspace
//! (`invalidation_channel`, default `tiered-cache:invalidate:<db>`); every instance sharing the
//! Redis evicts the matching L1 entries, so no instance serves its old copy after another one
//! wrote. Messages lost while the subscription was down cannot be replayed, so each
//! (re)subscription clears L1 first: after a disconnect an instance re-reads from Redis.
//!
//! Message: `<origin:016x> <kind> <payload>`; kinds: `k` one key (the payload is the key, whatever
//! it contains), `m` several keys, each framed as `<byte length>:<key>` (`5:query3:a:b`), `f` keys
//! a load filled (framed like `m`; they drop L1 copies but invalidate nothing), `p` a pattern,
//! `c` clear. An instance ignores its own messages.
//!
//! Why `m` is length-prefixed: keys are arbitrary text, so no delimiter is safe; keys used to be
//! joined with `\n`, and a key containing a newline was split into two wrong keys and never
//! evicted. A malformed `m` payload (an older instance's `\n` list, a truncated message) names
//! keys this instance cannot trust, so it is read as `c`: dropping all of L1 costs re-reads,
//! keeping a stale copy costs correctness.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

/// An invalidation, as sent and received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Message {
    /// Written directly or deleted: other copies are stale, and loads in flight must not store.
    Keys(Vec<String>),
    /// Filled by a load: other instances drop their L1 copies, but nothing was invalidated, so
    /// their loads in flight may still store (see [`crate::guard`]).
    Filled(Vec<String>),
    Pattern(String),
    Clear,
}

pub(crate) fn encode(origin: u64, msg: &Message) -> String {
    match msg {
        Message::Keys(keys) if keys.len() == 1 => format!("{origin:016x} k {}", keys[0]),
        Message::Keys(keys) => framed(origin, "m", keys),
        Message::Filled(keys) => framed(origin, "f", keys),
        Message::Pattern(p) => format!("{origin:016x} p {p}"),
        Message::Clear => format!("{origin:016x} c "),
    }
}

/// `<origin> <kind> ` and each key as `<byte length>:<key>`.
fn framed(origin: u64, kind: &str, keys: &[String]) -> String {
    let mut text = format!("{origin:016x} {kind} ");
    text.reserve(keys.iter().map(|k| k.len() + 4).sum());
    let mut len = itoa::Buffer::new();
    for k in keys {
        text.push_str(len.format(k.len()));
        text.push(':');
        text.push_str(k);
    }
    text
}

/// `(origin, message)`, or `None` for text that is not ours.
pub(crate) fn decode(text: &str) -> Option<(u64, Message)> {
    let mut parts = text.splitn(3, ' ');
    let origin = u64::from_str_radix(parts.next()?, 16).ok()?;
    let kind = parts.next()?;
    let payload = parts.next().unwrap_or("");
    let msg = match kind {
        "k" => Message::Keys(vec![payload.to_owned()]),
        "m" => decode_keys(payload).map_or(Message::Clear, Message::Keys),
        "f" => decode_keys(payload).map_or(Message::Clear, Message::Filled),
        "p" => Message::Pattern(payload.to_owned()),
        "c" => Message::Clear,
        _ => return None,
    };
    Some((origin, msg))
}

/// The keys of an `m` payload: `<len>:<key>` repeated; `None` when it is not exactly that.
fn decode_keys(mut rest: &str) -> Option<Vec<String>> {
    let mut keys = Vec::new();
    while !rest.is_empty() {
        let (len, tail) = rest.split_once(':')?;
        // Digits only: `usize::from_str` would also take a leading `+`.
        if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let len: usize = len.parse().ok()?;
        // `get` is `None` past the end or inside a UTF-8 character.
        let key = tail.get(..len)?;
        keys.push(key.to_owned());
        rest = tail.get(len..)?;
    }
    Some(keys)
}

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
/// subscription but the first, `on_message` for each message of another origin. Returns the
/// listener's counters.
///
/// The first subscription does not clear: L1 filled before it completes (the first milliseconds
/// of an instance) is kept, and a write by another instance inside that window is the one case
/// this protocol does not cover.
pub(crate) fn spawn_listener<A, S, M>(
    client: redis::Client,
    channel: String,
    origin: u64,
    alive: A,
    on_subscribed: S,
    on_message: M,
) -> Arc<ListenerStats>
where
    A: Fn() -> bool + Send + Sync + 'static,
    S: Fn() + Send + Sync + 'static,
    M: Fn(Message) + Send + Sync + 'static,
{
    let stats = Arc::new(ListenerStats::default());
    let on_resubscribed = on_subscribed;
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        tracing::warn!("no tokio runtime: cross-instance L1 invalidation is off for this cache");
        return stats;
    };
    let counters = stats.clone();
    rt.spawn(async move {
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
            };
            let result = subscribe_once(&client, &channel, origin, &alive, on_subscribed, &on_message).await;
            if let Err(e) = result {
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
    stats
}

async fn subscribe_once<A, S, M>(
    client: &redis::Client,
    channel: &str,
    origin: u64,
    alive: &A,
    on_subscribed: S,
    on_message: &M,
) -> redis::RedisResult<()>
where
    A: Fn() -> bool,
    S: FnOnce(),
    M: Fn(Message),
{
    let mut pubsub = client.get_async_pubsub().await?;
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
                match decode(&text) {
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
    fn messages_round_trip() {
        for m in [
            Message::Keys(vec!["query:a b:1".into()]),
            Message::Keys(vec!["a".into(), "b c".into()]),
            Message::Filled(vec!["a\nb".into(), "".into(), "c".into()]),
            Message::Filled(vec!["one".into()]),
            Message::Pattern("resource:*".into()),
            Message::Clear,
        ] {
            assert_eq!(decode(&encode(42, &m)), Some((42, m)));
        }
        assert_eq!(decode("hello"), None);
        assert_eq!(decode("zz k x"), None);
    }

    /// Keys are arbitrary text: none of these may be split, merged or lost on the way.
    #[test]
    fn keys_with_any_characters_round_trip() {
        let awkward = [
            "query:a\nb",
            "\n",
            "\n\n",
            "trailing\n",
            "with space",
            " ",
            "a:b:c",
            ":",
            "5:abcde",
            "3:",
            "0:",
            "*",
            "resource:[x]",
            "[",
            "\\",
            "é:ü:𝄞",
            "",
            "tab\tand\rreturn",
            "k m p c",
        ];
        let mut cases: Vec<Vec<String>> = awkward.iter().map(|k| vec![(*k).to_owned()]).collect();
        cases.push(awkward.iter().map(|k| (*k).to_owned()).collect());
        cases.push(vec![String::new(), String::new()]);
        cases.push(vec!["query:a".into(), "b".into()]); // once the same bytes as one key "query:a\nb"
        cases.push(vec![]);
        cases.push(
            (0..2000)
                .map(|i| format!("query:{i}\n{}", "é".repeat(i % 7)))
                .collect(),
        );
        for keys in cases {
            let m = Message::Keys(keys);
            assert_eq!(decode(&encode(7, &m)), Some((7, m.clone())), "{m:?}");
        }
        assert_ne!(
            encode(1, &Message::Keys(vec!["query:a\nb".into(), "c".into()])),
            encode(1, &Message::Keys(vec!["query:a".into(), "b".into(), "c".into()])),
        );
        for p in ["a\nb*", " ", "[*]\n"] {
            let m = Message::Pattern(p.into());
            assert_eq!(decode(&encode(9, &m)), Some((9, m.clone())));
        }
    }

    /// A key list that is not exactly `<len>:<key>...` cannot be trusted: drop all of L1.
    #[test]
    fn malformed_key_lists_clear() {
        let origin = "000000000000002a";
        for payload in [
            "a\nb",  // an older instance's newline-joined list
            "3:ab",  // truncated
            "x:abc", // no length
            "+1:a",  // a sign is not a digit
            "1:é",   // length inside a character
            "2:ab3", // length without a key
            "99999999999999999999999:a",
        ] {
            assert_eq!(
                decode(&format!("{origin} m {payload}")),
                Some((42, Message::Clear)),
                "{payload:?}"
            );
        }
    }

    #[test]
    fn backoff_doubles_to_its_cap_and_resets() {
        let mut b = Backoff::new();
        let delays: Vec<u128> = (0..7).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(delays, [50, 100, 200, 400, 800, 1000, 1000]);
        b.reset();
        assert_eq!(b.next_delay(), Backoff::FIRST);
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
        let stats = spawn_listener(
            redis.client(),
            "test:invalidate".into(),
            1,
            move || a.load(Ordering::Relaxed),
            move || {
                r.fetch_add(1, Ordering::Relaxed);
            },
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
