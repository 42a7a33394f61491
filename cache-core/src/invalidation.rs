//! Multi-instance L1 invalidation over Redis pub/sub.
//!
//! Every write, delete, pattern invalidation and clear is published on one channel per keyspace
//! (`invalidation_channel`, default `tiered-cache:invalidate:<db>`); every instance sharing the
//! Redis evicts the matching L1 entries, so no instance serves its old copy after another one
//! wrote. Messages lost while the subscription was down cannot be replayed, so each
//! (re)subscription clears L1 first: after a disconnect an instance re-reads from Redis.
//!
//! Message: `<origin:016x> <kind> <payload>`; kinds: `k` one key, `m` keys separated by `\n`,
//! `p` a pattern, `c` clear. An instance ignores its own messages.

use std::time::Duration;

use futures::StreamExt;

/// An invalidation, as sent and received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Message {
    Keys(Vec<String>),
    Pattern(String),
    Clear,
}

pub(crate) fn encode(origin: u64, msg: &Message) -> String {
    match msg {
        Message::Keys(keys) if keys.len() == 1 => format!("{origin:016x} k {}", keys[0]),
        Message::Keys(keys) => format!("{origin:016x} m {}", keys.join("\n")),
        Message::Pattern(p) => format!("{origin:016x} p {p}"),
        Message::Clear => format!("{origin:016x} c "),
    }
}

/// `(origin, message)`, or `None` for text that is not ours.
pub(crate) fn decode(text: &str) -> Option<(u64, Message)> {
    let mut parts = text.splitn(3, ' ');
    let origin = u64::from_str_radix(parts.next()?, 16).ok()?;
    let kind = parts.next()?;
    let payload = parts.next().unwrap_or("");
    let msg = match kind {
        "k" => Message::Keys(vec![payload.to_owned()]),
        "m" => Message::Keys(payload.split('\n').map(str::to_owned).collect()),
        "p" => Message::Pattern(payload.to_owned()),
        "c" => Message::Clear,
        _ => return None,
    };
    Some((origin, msg))
}

/// Listens on `channel` until `alive()` turns false. `on_resubscribed` runs after each
/// subscription but the first, `on_message` for each message of another origin.
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
) where
    A: Fn() -> bool + Send + Sync + 'static,
    S: Fn() + Send + Sync + 'static,
    M: Fn(Message) + Send + Sync + 'static,
{
    let on_resubscribed = on_subscribed;
    let Ok(rt) = tokio::runtime::Handle::try_current() else {
        tracing::warn!("no tokio runtime: cross-instance L1 invalidation is off for this cache");
        return;
    };
    rt.spawn(async move {
        let mut backoff = Duration::from_millis(50);
        let mut first = true;
        while alive() {
            let on_subscribed = || {
                if !std::mem::replace(&mut first, false) {
                    on_resubscribed();
                }
            };
            match subscribe_once(&client, &channel, origin, &alive, on_subscribed, &on_message).await {
                Ok(()) => backoff = Duration::from_millis(50),
                Err(e) => {
                    tracing::debug!(error = %e, "invalidation subscription down; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                }
            }
        }
    });
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
            Message::Pattern("resource:*".into()),
            Message::Clear,
        ] {
            assert_eq!(decode(&encode(42, &m)), Some((42, m)));
        }
        assert_eq!(decode("hello"), None);
        assert_eq!(decode("zz k x"), None);
    }
}
