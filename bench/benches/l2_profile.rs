//! Tasks of L2 hits (L1 off) on worker threads, the workload of the peers bench's P2 (64 tasks,
//! 2 threads), for `perf record`.
//! `cargo bench -p cache-bench --bench l2_profile`; `WORKERS` the runtime's worker threads
//! (default 2; 1 is the peers bench's `p2one`), `OPS` GETs a task, `IN_FLIGHT` the
//! coalescer's reads in flight (`l2_reads_in_flight`, default 4). `MODE=get` runs the same
//! loop as raw redis-rs `GET`s + decode on one multiplexed connection, `MODE=mget` as raw `MGET`s
//! of `BATCH` keys (default 16) + decode (one task wake per `BATCH` GETs), `MODE=floor` as
//! [`L2Floor`] reads (shared `MGET`s, one task wake a call: the least a call of this shape costs),
//! `MODE=socket` as [`SocketFloor`] reads (the same calls on a hand-written one-socket transport),
//! `MODE=wake` the same tasks answered in process instead of by Redis ([`WakeFloor`]: no
//! socket, no decode): what one task wake a call costs alone. `TASKS` the calling tasks
//! (default 64, P2's): more tasks keep more GETs outstanding, which tells whether a mode's
//! rate is bound by its round trip (it rises with the tasks) or by the CPU (it does not).
//! Every mode prints the client's CPU a GET, redis-server's (its `INFO cpu`, all its threads)
//! and how idle the machine's cores were over the run (`/proc/stat`).
#![allow(clippy::unwrap_used, clippy::print_stdout)]

use std::hint::black_box;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use cache_bench::{env_number, payload, server_cpu, L2Floor, Payload, RoundMeter, SocketFloor, WakeFloor};
use cache_core::{cache, Cache, CacheConfig};
use cache_test_harness::RedisServer;

static C: OnceLock<Cache> = OnceLock::new();

#[cache(prefix = "bench", cache = C.get().unwrap(), l1 = false)]
async fn hit(id: u64) -> Payload {
    payload(id)
}

fn main() {
    let redis = RedisServer::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(env_number("WORKERS").unwrap_or(2))
        .enable_all()
        .build()
        .unwrap();
    let ops: u64 = env_number("OPS").unwrap_or(5_000);
    rt.block_on(async {
        let _ = C.set(
            Cache::new(
                CacheConfig::builder()
                    .redis_url(redis.url())
                    .l1_enabled(false)
                    .l2_reads_in_flight(env_number("IN_FLIGHT").unwrap_or(4))
                    .build()
                    .unwrap(),
            )
            .unwrap(),
        );
        for i in 0..1000 {
            hit(i).await;
        }
        let mode = std::env::var("MODE").unwrap_or_default();
        if mode == "floor" {
            floor(&redis, ops).await;
            return;
        }
        if mode == "socket" {
            socket(&redis, ops).await;
            return;
        }
        if mode == "wake" {
            wake(ops).await;
            return;
        }
        if mode == "get" || mode == "mget" {
            raw(&redis, &mode, ops).await;
            return;
        }
        let (rate, cpu) = reads(Some(&redis), ops, hit).await;
        // How the GETs were answered: Redis read by this call, or shared from another task's
        // in-process flight for the same key (a clone of the shared value).
        let s = C.get().unwrap().stats().await;
        println!(
            "{rate:.0} ops/s, client CPU {cpu:.2} us/GET; L2 hits {} , joined another's flight {}",
            s.l2_hits, s.coalesced
        );
    });
}

/// [`tasks`] tasks of raw redis-rs reads of the values `hit` stores, written under `raw:{i}`: one
/// `GET` a call (`mode` "get") or one `MGET` of `BATCH` keys (`mode` "mget"), each value decoded.
async fn raw(redis: &RedisServer, mode: &str, ops: u64) {
    let c = raw_conn(redis).await;
    let batch: u64 = if mode == "get" {
        1
    } else {
        env_number("BATCH").unwrap_or(16)
    };
    let (rate, cpu) = run_tasks(Some(redis), ops, |task| {
        let mut c = c.clone();
        async move {
            for i in (0..ops).step_by(batch as usize) {
                if batch == 1 {
                    black_box(cache_bench::read_raw(&mut c, (task * 7919 + i) % 1000).await);
                } else {
                    let ids = (0..batch).map(|j| (task * 7919 + i + j) % 1000);
                    black_box(cache_bench::read_raw_many(&mut c, ids).await);
                }
            }
        }
    })
    .await;
    println!("raw {mode} (batch {batch}): {rate:.0} GETs/s, client CPU {cpu:.2} us/GET");
}

/// [`tasks`] tasks of `ops` reads each through `get`, over the keys in P2's order.
async fn reads<G, Fut>(server: Option<&RedisServer>, ops: u64, get: G) -> (f64, f64)
where
    G: Fn(u64) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = Payload> + Send,
{
    run_tasks(server, ops, |task| {
        let get = get.clone();
        async move {
            for i in 0..ops {
                black_box(get((task * 7919 + i) % 1000).await);
            }
        }
    })
    .await
}

/// User + system CPU seconds of this process so far.
fn cpu_seconds() -> f64 {
    let u = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_SELF).unwrap();
    let secs = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    secs(u.user_time()) + secs(u.system_time())
}

/// [`tasks`] tasks of [`L2Floor`] reads.
async fn floor(redis: &RedisServer, ops: u64) {
    let max: usize = env_number("IN_FLIGHT").unwrap_or(4);
    let floor = std::sync::Arc::new(L2Floor::new(raw_conn(redis).await, max));
    let f = floor.clone();
    let (rate, cpu) = reads(Some(redis), ops, move |i| {
        let f = f.clone();
        async move { f.get(i).await }
    })
    .await;
    let n = tasks() * ops;
    let mgets = floor.mgets();
    println!(
        "floor (queued MGETs, {max} out): {rate:.0} GETs/s, client CPU {cpu:.2} us/GET, {:.1} GETs an MGET",
        n as f64 / mgets as f64
    );
}

/// [`tasks`] tasks of [`SocketFloor`] reads.
async fn socket(redis: &RedisServer, ops: u64) {
    // Only the raw keys it writes are wanted: the floor makes its own connection.
    drop(raw_conn(redis).await);
    let floor = std::sync::Arc::new(SocketFloor::new());
    let serving = tokio::spawn(floor.clone().serve(format!("127.0.0.1:{}", redis.port())));
    let f = floor.clone();
    let (rate, cpu) = reads(Some(redis), ops, move |i| {
        let f = f.clone();
        async move { f.get(i).await }
    })
    .await;
    serving.abort();
    println!(
        "socket (hand-written MGETs, one out): {rate:.0} GETs/s, client CPU {cpu:.2} us/GET, {:.1} GETs an MGET",
        (tasks() * ops) as f64 / floor.mgets() as f64
    );
}

/// [`tasks`] tasks of [`WakeFloor`] calls: P2's shape answered in process, without Redis.
async fn wake(ops: u64) {
    let floor = std::sync::Arc::new(WakeFloor::new());
    let answering = tokio::spawn(floor.clone().answer());
    let (rate, cpu) = run_tasks(None, ops, |_| {
        let floor = floor.clone();
        async move {
            for _ in 0..ops {
                black_box(floor.get().await);
            }
        }
    })
    .await;
    answering.abort();
    println!("wake (in-process answers, no Redis): {rate:.0} calls/s, CPU {cpu:.2} us/call");
}

/// A connection to `redis`, with `hit`'s values written under `raw:{i}`.
async fn raw_conn(redis: &RedisServer) -> redis::aio::MultiplexedConnection {
    let mut c = redis.conn().await;
    for i in 0..1000u64 {
        cache_bench::write_raw(&mut c, i).await;
    }
    c
}

/// The calling tasks: `TASKS`, default 64 (P2's).
fn tasks() -> u64 {
    env_number("TASKS").unwrap_or(64)
}

/// Runs `task(0..tasks())` as that many tasks of `ops` GETs each; their GETs a second and the
/// process's CPU time per GET (µs, user + sys). Also prints what the server and the machine
/// spent over the same time (`server`: the Redis the GETs went to; `None` for the wake floor).
async fn run_tasks<F, Fut>(server: Option<&RedisServer>, ops: u64, task: F) -> (f64, f64)
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut info = match server {
        Some(r) => Some(r.conn().await),
        None => None,
    };
    let meter = RoundMeter::start(match info.as_mut() {
        Some(c) => server_cpu(c).await.unwrap(),
        None => Duration::ZERO,
    });
    let cpu0 = cpu_seconds();
    let t = Instant::now();
    let handles: Vec<_> = (0..tasks()).map(|i| tokio::spawn(task(i))).collect();
    for h in handles {
        h.await.unwrap();
    }
    let elapsed = t.elapsed().as_secs_f64();
    let client = cpu_seconds() - cpu0;
    let idle = meter.idle();
    let n = (tasks() * ops) as f64;
    let server = match info.as_mut() {
        Some(c) => format!(
            "{:.2}",
            meter.server_us_per_op(server_cpu(c).await.unwrap(), tasks() * ops)
        ),
        None => "-".into(),
    };
    println!(
        "  {} tasks: client {:.2} cores, server CPU {server} us/GET, machine idle {:.0} %",
        tasks(),
        client / elapsed,
        idle * 100.0
    );
    (n / elapsed, client * 1e6 / n)
}
