//! [`RedisL2`] as the engine's [`RemoteTier`] and [`Bus`]: each call boxed, nothing else.

use std::sync::Weak;
use std::time::Duration;

use super::{listener, RedisL2};
use crate::bus::Message;
use crate::error::Result;
use crate::guard::Seen;
use crate::stats::RedisInfo;
use crate::tier::breaker::BreakerState;
use crate::tier::{Bus, BusHandler, GuardedItem, Item, Notice, PoolStatus, RemoteTier, TierFuture};

impl RemoteTier for RedisL2 {
    fn display_url(&self) -> String {
        RedisL2::display_url(self)
    }
    fn breaker_state(&self) -> BreakerState {
        RedisL2::breaker_state(self)
    }
    fn breaker_transitions(&self) -> u64 {
        self.breaker.transitions()
    }
    fn pool_status(&self) -> PoolStatus {
        RedisL2::pool_status(self)
    }
    fn marker_ttl(&self) -> Duration {
        RedisL2::marker_ttl(self)
    }
    fn channel_name(&self, configured: Option<&str>) -> String {
        match configured {
            Some(name) => RedisL2::channel_name(self, name),
            // One channel per logical database: instances on other databases are other caches.
            None => RedisL2::channel_name(self, &format!("tiered-cache:invalidate:{}", self.db())),
        }
    }
    fn bus(&self) -> Option<&dyn Bus> {
        Some(self)
    }
    fn get<'a>(&'a self, key: &'a str) -> TierFuture<'a, Option<Vec<u8>>> {
        Box::pin(RedisL2::get_coalesced(self, key))
    }
    fn mget<'a>(&'a self, keys: &'a [&'a str]) -> TierFuture<'a, Vec<Option<Vec<u8>>>> {
        Box::pin(RedisL2::mget(self, keys))
    }
    fn set_many<'a>(&'a self, items: &'a [Item<'a>], notice: Option<&'a Notice>) -> TierFuture<'a, ()> {
        Box::pin(RedisL2::mset(self, items, notice))
    }
    fn set_plain<'a>(&'a self, items: &'a [Item<'a>], notice: Option<&'a Notice>) -> TierFuture<'a, ()> {
        Box::pin(RedisL2::set_plain(self, items, notice))
    }
    fn init_plain<'a>(&'a self, items: &'a [Item<'a>]) -> TierFuture<'a, Vec<Option<Vec<u8>>>> {
        Box::pin(RedisL2::init_plain(self, items))
    }
    fn guarded_set<'a>(
        &'a self,
        items: &'a [GuardedItem<'a>],
        notice: Option<&'a Notice>,
    ) -> TierFuture<'a, Vec<bool>> {
        Box::pin(RedisL2::guarded_set(self, items, notice))
    }
    fn guard_seen<'a>(&'a self, keys: &'a [&'a str]) -> TierFuture<'a, Vec<Seen>> {
        Box::pin(RedisL2::guard_seen(self, keys))
    }
    fn bump_epoch(&self) -> TierFuture<'_, ()> {
        Box::pin(RedisL2::bump_epoch(self))
    }
    fn delete<'a>(&'a self, keys: &'a [&'a str], notice: Option<&'a Notice>) -> TierFuture<'a, u64> {
        Box::pin(RedisL2::unlink_notify(self, keys, notice))
    }
    fn delete_matching<'a>(&'a self, pattern: &'a str) -> TierFuture<'a, u64> {
        Box::pin(RedisL2::unlink_matching(self, pattern))
    }
    fn exists<'a>(&'a self, key: &'a str) -> TierFuture<'a, bool> {
        Box::pin(RedisL2::exists(self, key))
    }
    fn pttl<'a>(&'a self, key: &'a str) -> TierFuture<'a, Option<Duration>> {
        Box::pin(RedisL2::pttl(self, key))
    }
    fn head<'a>(&'a self, key: &'a str, n: usize) -> TierFuture<'a, Option<Vec<u8>>> {
        Box::pin(RedisL2::head(self, key, n))
    }
    fn lock<'a>(&'a self, key: &'a str, token: &'a str, ttl: Duration) -> TierFuture<'a, bool> {
        Box::pin(RedisL2::set_nx(self, key, token, ttl))
    }
    fn unlock<'a>(&'a self, key: &'a str, token: &'a str) -> TierFuture<'a, bool> {
        Box::pin(RedisL2::del_if_eq(self, key, token))
    }
    fn ping(&self) -> TierFuture<'_, Duration> {
        Box::pin(RedisL2::ping(self))
    }
    fn info(&self) -> TierFuture<'_, RedisInfo> {
        Box::pin(RedisL2::info(self))
    }
    fn sample_memory<'a>(&'a self, pattern: &'a str, n: usize) -> TierFuture<'a, (u64, u64)> {
        Box::pin(RedisL2::sample_memory(self, pattern, n))
    }
}

impl Bus for RedisL2 {
    fn publish<'a>(&'a self, notice: &'a Notice) -> TierFuture<'a, ()> {
        Box::pin(RedisL2::publish(self, notice))
    }

    fn listen(
        &self,
        rt: &tokio::runtime::Handle,
        channel: String,
        origin: u64,
        handler: Weak<dyn BusHandler>,
    ) -> Result<tokio::task::JoinHandle<()>> {
        let connector = self.connector();
        let (alive, on_sub, on_msg, on_state) = (handler.clone(), handler.clone(), handler.clone(), handler);
        let (task, _stats) = listener::spawn_listener(
            rt,
            connector,
            channel,
            origin,
            self.security.clone(),
            move || alive.strong_count() > 0,
            move || {
                if let Some(h) = on_sub.upgrade() {
                    h.resubscribed();
                }
            },
            move |msg: Message| {
                if let Some(h) = on_msg.upgrade() {
                    h.message(msg);
                }
            },
            move |on: bool| {
                if let Some(h) = on_state.upgrade() {
                    h.listening(on);
                }
            },
        );
        Ok(task)
    }
}
