//! Single flight across instances, and the named locks of the public API: a lock in the remote
//! tier (`SET NX PX` with a random token) when there is one, else a lock in this process.

use std::time::Duration;

use crate::engine::{Engine, Live};
use crate::error::Result;
use crate::values::ValueOps;

/// How waiting for another instance's load ended.
pub(crate) enum Waited {
    /// Its value appeared in the remote tier.
    Value(Live),
    /// This instance holds the lock (`name`, `token`) and loads.
    Lead(String, String),
    /// Bound reached or the tier failed: load without the lock.
    GaveUp,
}

impl Engine {
    /// On a cold key: take the key's lock and load, or wait (bounded) for the instance that
    /// holds it to store its value. If that instance's lock goes away without a value (its load
    /// failed or it died), this one takes the lock and loads.
    pub(crate) async fn lead_across_instances(
        &self,
        key: &str,
        bound: Duration,
        ops: &'static ValueOps,
    ) -> Waited {
        let name = format!("flight:{key}");
        match self.try_lock(&name, bound).await {
            Ok(Some(token)) => return Waited::Lead(name, token),
            Ok(None) => {}
            Err(e) => {
                self.record_error("lock", key, &e);
                return Waited::GaveUp;
            }
        }
        let deadline = tokio::time::Instant::now() + bound;
        let mut pause = Duration::from_millis(5);
        while tokio::time::Instant::now() < deadline {
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(50));
            match self.remote_read(key, ops, true).await {
                Ok(Some(found)) => {
                    self.counters.coalesced_remote.incr();
                    return Waited::Value(found);
                }
                Ok(None) => {}
                Err(_) => return Waited::GaveUp,
            }
            match self.try_lock(&name, bound).await {
                Ok(Some(token)) => return Waited::Lead(name, token),
                Ok(None) => {}
                Err(_) => return Waited::GaveUp,
            }
        }
        Waited::GaveUp
    }

    /// Releases a load's lock (failures logged and counted: the lock expires anyway).
    pub(crate) async fn unlock_after_load(&self, key: &str, name: &str, token: &str) {
        if let Err(e) = self.release_lock(name, token).await {
            self.record_error("unlock", key, &e);
        }
    }

    /// Takes a named lock for `ttl` if nobody holds it; the token to release it with.
    pub(crate) async fn try_lock(&self, name: &str, ttl: Duration) -> Result<Option<String>> {
        let token = format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
        let key = format!("lock:{name}");
        if let Some(remote) = &self.remote {
            return Ok(remote.lock(&key, &token, ttl).await?.then_some(token));
        }
        let mut locks = self.local_locks.lock();
        let now = self.now();
        if locks.get(&key).is_some_and(|(_, until)| *until > now) {
            return Ok(None);
        }
        locks.insert(key, (token.clone(), now + ttl));
        Ok(Some(token))
    }

    /// Releases a named lock only if `token` still holds it.
    pub(crate) async fn release_lock(&self, name: &str, token: &str) -> Result<bool> {
        let key = format!("lock:{name}");
        if let Some(remote) = &self.remote {
            return remote.unlock(&key, token).await;
        }
        let mut locks = self.local_locks.lock();
        if locks.get(&key).is_some_and(|(t, _)| t == token) {
            locks.remove(&key);
            return Ok(true);
        }
        Ok(false)
    }
}
