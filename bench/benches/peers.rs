//! Side-by-side benchmarks against the peers, in one run, reported as ratios.
//!
//! `cargo bench -p cache-bench` starts a private redis-server, prints a table and writes it to
//! `target/bench-report.md`. Set `BENCH_QUICK=1` for a shorter run, `BENCH_ONLY=p1,p2` (sections p1–p6,
//! memory, hitratio from [`hitratio`], p2one from [`one_worker`], p2tls, p2cluster, p3cluster from [`topologies`], p8 and p8b from [`tags`], p9 from [`disk`], p10 from [`security`]) to run only
//! some sections.
//!
//! Why this file is past ~600 lines: every section shares the one run's runtimes, server and
//! report table, and reads top to bottom as the report does; the TLS and cluster sections,
//! which start servers of their own, are a module beside it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

mod disk;
mod hitratio;
mod membound;
mod one_worker;
mod security;
mod tags;
mod topologies;

use std::alloc::System;
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, OnceLock};
use std::time::{Duration, Instant};

use cache_bench::{
    floor_head, floor_hit, floor_hit_rule, floor_hit_str, floor_key, payload, FloorAnyCache, FloorCache,
    FloorEntry, FloorStrCache, L2Floor, Payload, SocketFloor, WakeFloor,
};
use cache_core::{cache, Cache, CacheConfig};
use cache_test_harness::RedisServer;
use cached::macros::{cached, concurrent_cached};
use nix::sys::resource::{getrusage, UsageWho};
use stats_alloc::{Region, StatsAlloc, INSTRUMENTED_SYSTEM};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const KEYS: u64 = 1000;

// ---------- the functions under test ----------

static L1_CACHE: LazyLock<Cache> = LazyLock::new(|| {
    Cache::new(
        CacheConfig::builder()
            .max_memory_cache_size(10_000)
            .build()
            .unwrap(),
    )
    .unwrap()
});
static L2_CACHE: OnceLock<Cache> = OnceLock::new();
static DOWN_CACHE: OnceLock<Cache> = OnceLock::new();

fn l2_cache() -> &'static Cache {
    L2_CACHE.get().expect("set before use")
}
fn down_cache() -> &'static Cache {
    DOWN_CACHE.get().expect("set before use")
}

#[cache(prefix = "bench", cache = L1_CACHE)]
async fn ours_l1(id: u64) -> Arc<Payload> {
    Arc::new(payload(id))
}

// P1's other key shapes: only one-integer keys take the compile-time-hashed fast path.
#[cache(prefix = "bench2", cache = L1_CACHE)]
async fn ours_l1_pair(id: u64, part: u32) -> Arc<Payload> {
    Arc::new(payload(id + u64::from(part)))
}

#[cache(prefix = "bench3", cache = L1_CACHE)]
async fn ours_l1_str(name: &str) -> Arc<Payload> {
    Arc::new(payload(name.len() as u64))
}

/// The text of P1's string keys.
fn key_names() -> Vec<String> {
    (0..KEYS).map(|i| format!("customer-{i:06}")).collect()
}

#[cached(max_size = 10_000)]
async fn cached_l1(id: u64) -> Arc<Payload> {
    Arc::new(payload(id))
}

#[cache(prefix = "bench", cache = l2_cache(), l1 = false)]
async fn ours_l2(id: u64) -> Payload {
    payload(id)
}

#[concurrent_cached(redis = true, ttl_secs = 3600, map_error = |e| format!("{e:?}"))]
async fn cached_redis(id: u64) -> Result<Payload, String> {
    Ok(payload(id))
}

#[concurrent_cached(redis = true, ttl_secs = 3600, map_error = |e| format!("{e:?}"))]
async fn cached_redis_down(id: u64) -> Result<Payload, String> {
    Ok(payload(id))
}

static COLD_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cache(prefix = "bench", cache = l2_cache())]
async fn cold(id: u64) -> Payload {
    COLD_RUNS.fetch_add(1, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(50)).await;
    payload(id)
}

#[cache(prefix = "bench", cache = down_cache(), l1 = false)]
async fn ours_down(id: u64) -> Payload {
    payload(id)
}

// ---------- measurement helpers ----------

struct Row {
    section: &'static str,
    what: String,
    ours: f64,
    peer_name: String,
    peer: f64,
    unit: &'static str,
    higher_is_better: bool,
    target: String,
}

impl Row {
    fn ratio(&self) -> f64 {
        if self.higher_is_better {
            self.ours / self.peer
        } else {
            self.peer / self.ours
        }
    }
}

/// One row per peer for the same figure of ours: `(peer, its figure, target)`.
fn rows_against(
    section: &'static str,
    what: &str,
    ours: f64,
    unit: &'static str,
    higher_is_better: bool,
    peers: &[(&str, f64, &str)],
) -> Vec<Row> {
    peers
        .iter()
        .map(|&(peer_name, peer, target)| Row {
            section,
            what: what.into(),
            ours,
            peer_name: peer_name.into(),
            peer,
            unit,
            higher_is_better,
            target: target.into(),
        })
        .collect()
}

/// Whether a section runs: all of them, or those named in `BENCH_ONLY` (e.g. `p1,p2`).
fn section(name: &str) -> bool {
    std::env::var("BENCH_ONLY").map_or(true, |only| {
        only.split(',').any(|s| s.trim().eq_ignore_ascii_case(name))
    })
}

fn quick() -> bool {
    std::env::var_os("BENCH_QUICK").is_some()
}

/// How many rounds each contender runs. The contenders of one row take their rounds in turn
/// (ours, peer, ours, peer, ...) and each keeps its best, so a slow spell of the machine
/// (a neighbour, frequency scaling) falls on all of them rather than on whoever ran then.
fn rounds(quick_rounds: usize, full_rounds: usize) -> usize {
    if quick() {
        quick_rounds
    } else {
        full_rounds
    }
}

/// Each contender's best over `rounds` rounds; one call of `round` times every contender once,
/// in turn. `better` picks the better of two figures (`f64::min` for times, `f64::max` for rates).
fn best_of<const N: usize>(
    rounds: usize,
    better: fn(f64, f64) -> f64,
    mut round: impl FnMut() -> [f64; N],
) -> [f64; N] {
    let mut best = round();
    for _ in 1..rounds {
        for (b, r) in best.iter_mut().zip(round()) {
            *b = better(*b, r);
        }
    }
    best
}

/// ns/op of one round of a synchronous loop.
fn ns_per_op(ops: u64, mut f: impl FnMut(u64)) -> f64 {
    let t = Instant::now();
    for i in 0..ops {
        f(i % KEYS);
    }
    t.elapsed().as_nanos() as f64 / ops as f64
}

/// ns/op of one round of an async loop on a current-thread runtime.
fn ns_per_op_async<F, Fut>(rt: &tokio::runtime::Runtime, ops: u64, f: F) -> f64
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future,
{
    rt.block_on(async {
        let t = Instant::now();
        for i in 0..ops {
            black_box(f(i % KEYS).await);
        }
        t.elapsed().as_nanos() as f64 / ops as f64
    })
}

/// Throughput (ops/s) of one round of `tasks` tasks each running `ops` calls.
fn throughput<F, Fut>(rt: &tokio::runtime::Runtime, tasks: u64, ops: u64, f: F) -> f64
where
    F: Fn(u64) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future + Send,
    Fut::Output: Send,
{
    rt.block_on(async {
        let t = Instant::now();
        let handles: Vec<_> = (0..tasks)
            .map(|task| {
                let f = f.clone();
                tokio::spawn(async move {
                    for i in 0..ops {
                        black_box(f((task * 7919 + i) % KEYS).await);
                    }
                })
            })
            .collect();
        for h in handles {
            h.await.unwrap();
        }
        (tasks * ops) as f64 / t.elapsed().as_secs_f64()
    })
}

/// Stores every key through `ours` and `cached` (each function's first call, on `rt`, makes its
/// connection there) and writes the raw contenders' copies; the connection they were written on.
fn preload_l2<O, C>(
    rt: &tokio::runtime::Runtime,
    redis: &RedisServer,
    ours: impl Fn(u64) -> O,
    cached: impl Fn(u64) -> C,
) -> redis::aio::MultiplexedConnection
where
    O: std::future::Future<Output = Payload>,
    C: std::future::Future<Output = Result<Payload, String>>,
{
    rt.block_on(async {
        let mut c = redis.conn().await;
        for i in 0..KEYS {
            ours(i).await;
            cached(i).await.unwrap();
            cache_bench::write_raw(&mut c, i).await;
        }
        c
    })
}

/// CPU time (user + sys) used so far by this process (`Self_`) or by its waited-for children.
fn cpu_time(who: UsageWho) -> Duration {
    let u = getrusage(who).unwrap();
    let tv = |t: nix::sys::time::TimeVal| Duration::new(t.tv_sec() as u64, t.tv_usec() as u32 * 1000);
    tv(u.user_time()) + tv(u.system_time())
}

/// `f`'s result and this process's CPU time per op (µs) while it ran `ops` ops.
fn with_cpu<R>(ops: u64, f: impl FnOnce() -> R) -> (R, f64) {
    let before = cpu_time(UsageWho::RUSAGE_SELF);
    let r = f();
    let used = cpu_time(UsageWho::RUSAGE_SELF) - before;
    (r, used.as_secs_f64() * 1e6 / ops as f64)
}

/// What one round cost besides the client's own CPU: redis-server's CPU a GET (µs) and the
/// share of the machine's cores left idle (idle cores suggest a round that waited on round
/// trips and wake-ups; none idle, one bound by CPU).
///
/// The two `INFO` calls that read the server's CPU fall inside the client's measured CPU: two
/// round trips against a round's hundreds of thousands of GETs.
#[derive(Clone, Copy, Default)]
struct Costs {
    server: f64,
    idle: f64,
}

/// `f`'s result and [`Costs`] over its `ops` GETs; `server_now` reads redis-server's CPU so far.
fn with_costs<R>(ops: u64, server_now: &mut impl FnMut() -> Duration, f: impl FnOnce() -> R) -> (R, Costs) {
    let meter = cache_bench::RoundMeter::start(server_now());
    let r = f();
    let idle = meter.idle();
    let server = meter.server_us_per_op(server_now(), ops);
    (r, Costs { server, idle })
}

/// A contender's fastest round: its rate, the client's CPU a GET (µs) and [`Costs`].
#[derive(Clone, Copy, Default)]
struct Fastest {
    tp: f64,
    client: f64,
    costs: Costs,
}

impl Fastest {
    /// Keeps this round if it is the fastest so far.
    fn keep(&mut self, tp: f64, client: f64, costs: Costs) {
        if tp > self.tp {
            *self = Fastest { tp, client, costs };
        }
    }
}

/// `redis-benchmark`'s run: GET/s, its own CPU a GET (µs), and the server's and machine's share.
struct BenchRun {
    tp: f64,
    cpu: f64,
    costs: Costs,
}

/// `redis-benchmark -c 64 -P 16 -t get` over `n` GETs of a `size`-byte value on `redis`;
/// `None` (and a note) when it is not installed.
fn redis_benchmark(
    redis: &RedisServer,
    size: usize,
    n: u64,
    server_now: &mut impl FnMut() -> Duration,
) -> Option<BenchRun> {
    let run = |test: &str, n: u64| {
        std::process::Command::new("redis-benchmark")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &redis.port().to_string(),
                "-c",
                "64",
                "-P",
                "16",
            ])
            .args(["-t", test, "-n", &n.to_string(), "-d", &size.to_string(), "-q"])
            .output()
    };
    // GET reads `key:__rand_int__`: written once first, at the size of our values.
    if let Err(e) = run("set", 1000) {
        println!("redis-benchmark not run: {e}");
        return None;
    }
    let before = cpu_time(UsageWho::RUSAGE_CHILDREN);
    let (out, costs) = with_costs(n, server_now, || run("get", n));
    let cpu = (cpu_time(UsageWho::RUSAGE_CHILDREN) - before).as_secs_f64() * 1e6 / n as f64;
    let text = String::from_utf8_lossy(&out.ok()?.stdout).into_owned();
    // `-q` prints progress lines ending in '\r', then "GET: 1063829.75 requests per second, ...".
    let tp = text
        .rsplit(['\r', '\n'])
        .find_map(|l| l.trim().strip_prefix("GET: ")?.split(' ').next()?.parse().ok());
    if tp.is_none() {
        println!("redis-benchmark output not understood: {text}");
    }
    Some(BenchRun { tp: tp?, cpu, costs })
}

fn p99(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[(samples.len() * 99 / 100).min(samples.len() - 1)]
}

fn main() {
    let redis = RedisServer::start();
    std::env::set_var("CACHED_REDIS_CONNECTION_STRING", redis.url());
    let single = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let multi = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut rows: Vec<Row> = Vec::new();
    let hit_ops = if quick() { 200_000 } else { 2_000_000 };

    // ---------- P1: L1 hit ----------
    if section("p1") {
        single.block_on(async {
            for i in 0..KEYS {
                ours_l1(i).await;
                cached_l1(i).await;
            }
        });
        let qc: quick_cache::sync::Cache<u64, Arc<Payload>> = quick_cache::sync::Cache::new(10_000);
        let floor: FloorCache<Arc<Payload>> = quick_cache::sync::Cache::new(10_000);
        let moka_sync: moka::sync::Cache<u64, Arc<Payload>> = moka::sync::Cache::new(10_000);
        let moka_future: moka::future::Cache<u64, Arc<Payload>> = moka::future::Cache::new(10_000);
        for i in 0..KEYS {
            let v = Arc::new(payload(i));
            qc.insert(i, v.clone());
            floor.insert(i, FloorEntry::new(v.clone()));
            moka_sync.insert(i, v.clone());
            single.block_on(moka_future.insert(i, v));
        }
        // Best ns/op of: ours, cached, raw quick_cache, raw quick_cache in the async loop, raw
        // moka sync, raw moka future, the floor of a hit with stats and expiry.
        let [ours, cached, raw_qc, raw_qc_async, raw_moka, raw_moka_f, floor_ns] =
            best_of(rounds(3, 7), f64::min, || {
                [
                    ns_per_op_async(&single, hit_ops, ours_l1),
                    ns_per_op_async(&single, hit_ops, cached_l1),
                    ns_per_op(hit_ops, |k| {
                        black_box(qc.get(&k));
                    }),
                    // The same get inside the async loop that times our fn and `cached`'s: what is
                    // left of the gap is the cache's own work, not the harness's.
                    ns_per_op_async(&single, hit_ops, |k| {
                        let qc = &qc;
                        async move { qc.get(&k) }
                    }),
                    ns_per_op(hit_ops, |k| {
                        black_box(moka_sync.get(&k));
                    }),
                    ns_per_op_async(&single, hit_ops, |k| {
                        let m = &moka_future;
                        async move { m.get(&k).await }
                    }),
                    ns_per_op_async(&single, hit_ops, |k| floor_hit(&floor, k)),
                ]
            });
        rows.extend(rows_against(
            "P1 L1 hit, 1 task",
            "#[cache] fn hit (ns/op)",
            ours,
            "ns",
            false,
            &[
                ("cached #[cached]", cached, "≥ 3×"),
                ("raw quick_cache get", raw_qc, "≥ 0.8×"),
                ("raw quick_cache get, same async loop", raw_qc_async, "-"),
                ("raw moka sync get", raw_moka, "-"),
                ("raw moka future get", raw_moka_f, "-"),
                ("floor: raw quick_cache + expiry + hit count", floor_ns, "-"),
            ],
        ));
        // How near raw quick_cache any hit with stats and expiry gets (`floor_hit`): the bound
        // on P1's 0.8× target.
        rows.extend(rows_against(
            "P1 L1 hit, 1 task",
            "floor: raw quick_cache + expiry + hit count, async fn (ns/op)",
            floor_ns,
            "ns",
            false,
            &[("raw quick_cache get", raw_qc, "-")],
        ));

        // Multi-argument and string keys, beside raw quick_cache with a `String` key of the
        // same text (`get(&str)`, no allocation on its side either).
        let names = key_names();
        let qc_str: quick_cache::sync::Cache<String, Arc<Payload>> = quick_cache::sync::Cache::new(10_000);
        let floor_str: FloorStrCache<Arc<Payload>> = quick_cache::sync::Cache::new(10_000);
        let head = floor_head(concat!("bench:", module_path!(), "::ours_l1_str:"));
        static RULE_HEAD: cache_core::key::KeyHead =
            cache_core::key::KeyHead::new(concat!("bench:", module_path!(), "::ours_l1_str:"));
        let floor_rule: FloorAnyCache = quick_cache::sync::Cache::new(10_000);
        single.block_on(async {
            for i in 0..KEYS {
                ours_l1_pair(i, 7).await;
                ours_l1_str(&names[i as usize]).await;
                qc_str.insert(names[i as usize].clone(), Arc::new(payload(i)));
                let key = floor_key(head, &names[i as usize]);
                floor_str.insert(key, FloorEntry::new(Arc::new(payload(i))));
                let erased: Arc<dyn std::any::Any + Send + Sync> = Arc::new(Arc::new(payload(i)));
                floor_rule.insert(
                    RULE_HEAD.text_key(&names[i as usize]).fingerprint().0,
                    FloorEntry::new(erased),
                );
            }
        });
        let [pair, string, raw_str, floor_str_ns, floor_rule_ns] = best_of(rounds(3, 7), f64::min, || {
            [
                ns_per_op_async(&single, hit_ops, |k| ours_l1_pair(k, 7)),
                ns_per_op_async(&single, hit_ops, |k| ours_l1_str(&names[k as usize])),
                ns_per_op(hit_ops, |k| {
                    black_box(qc_str.get(names[k as usize].as_str()));
                }),
                ns_per_op_async(&single, hit_ops, |k| {
                    floor_hit_str(&floor_str, head, &names[k as usize])
                }),
                ns_per_op_async(&single, hit_ops, |k| {
                    floor_hit_rule::<Arc<Payload>>(&floor_rule, &RULE_HEAD, &names[k as usize])
                }),
            ]
        });
        rows.extend(rows_against(
            "P1 L1 hit, 1 task",
            "#[cache] fn(u64, u32) hit (ns/op)",
            pair,
            "ns",
            false,
            &[("raw quick_cache get, u64 key", raw_qc, "-")],
        ));
        rows.extend(rows_against(
            "P1 L1 hit, 1 task",
            "#[cache] fn(&str) hit (ns/op)",
            string,
            "ns",
            false,
            &[
                (
                    "raw quick_cache get, String key of the same text",
                    raw_str,
                    "≥ 0.5×",
                ),
                (
                    "floor: head hash ^ text hash + expiry + hit count",
                    floor_str_ns,
                    "-",
                ),
            ],
        ));
        rows.extend(rows_against(
            "P1 L1 hit, 1 task",
            "floor, text key: head hash ^ text hash + expiry + hit count, async fn (ns/op)",
            floor_str_ns,
            "ns",
            false,
            &[("raw quick_cache get, String key of the same text", raw_str, "-")],
        ));
        // The same floor with what a shared L1 with a text API must add: the key rule (escape
        // check and all) and the type check of an erased value.
        rows.extend(rows_against(
            "P1 L1 hit, 1 task",
            "floor, text key + the key rule + type check, async fn (ns/op)",
            floor_rule_ns,
            "ns",
            false,
            &[("raw quick_cache get, String key of the same text", raw_str, "-")],
        ));

        let per_task = if quick() { 100_000 } else { 1_000_000 };
        // Raw quick_cache beside them: how far two threads scale on this machine at all, for a
        // cache whose hit also returns a clone of a stored `Arc`.
        // Leaked for a `'static` the tasks can share without an `Arc` of their own to count.
        let qc: &'static quick_cache::sync::Cache<u64, Arc<Payload>> = Box::leak(Box::new(qc));
        // And the limit of any cache whose hit hands out an owned clone of a stored `Arc`: the
        // clone and the drop alone, of the same values in the same order, no lookup at all.
        let arcs: &'static [Arc<Payload>] =
            (0..KEYS).map(|i| Arc::new(payload(i))).collect::<Vec<_>>().leak();
        let [ours_mt, cached_mt, raw_qc_mt, arc_mt] = best_of(rounds(2, 3), f64::max, || {
            [
                throughput(&multi, 4, per_task, ours_l1),
                throughput(&multi, 4, per_task, cached_l1),
                throughput(&multi, 4, per_task, move |k| async move { qc.get(&k) }),
                throughput(&multi, 4, per_task, move |k| async move {
                    Arc::clone(&arcs[k as usize])
                }),
            ]
        });
        rows.extend(rows_against(
            "P1 L1 hit, 4 tasks / 2 threads",
            "#[cache] fn hit (ops/s)",
            ours_mt,
            "ops/s",
            true,
            &[
                ("cached #[cached]", cached_mt, "≥ 8×"),
                ("raw quick_cache get", raw_qc_mt, "-"),
            ],
        ));
        rows.extend(rows_against(
            "P1 L1 hit, 4 tasks / 2 threads",
            "limit: clone + drop of the stored Arc, no lookup (ops/s)",
            arc_mt,
            "ops/s",
            true,
            &[("cached #[cached]", cached_mt, "-")],
        ));
    }

    // ---------- P2: L2 hit, 64 tasks ----------
    // On the runtime it serves: its background tasks (the invalidation listener, which tags
    // rely on to trust the tokens they know) run there.
    let l2 = Cache::with_runtime(
        CacheConfig::builder()
            .redis_url(redis.url())
            .l1_enabled(false)
            .build()
            .unwrap(),
        multi.handle(),
    )
    .unwrap();
    let _ = L2_CACHE.set(l2);
    if section("p2") {
        let raw_conn = preload_l2(&multi, &redis, ours_l2, cached_redis);
        let l2_ops = if quick() { 300 } else { 4000 };
        // The floor of this shape: shared MGETs, one task wake a call (`L2Floor`), as many out
        // as ours lets out (`l2_reads_in_flight`'s default).
        let floor = Arc::new(L2Floor::new(raw_conn.clone(), 4));
        let floor = move |i: u64| {
            let floor = floor.clone();
            async move { floor.get(i).await }
        };
        // What the transport does with one task wake per 16 GETs instead: each call an MGET of
        // 16 keys (its rate below counts GETs).
        let mget_conn = raw_conn.clone();
        let mget16 = move |i: u64| {
            let mut c = mget_conn.clone();
            async move { cache_bench::read_raw_many(&mut c, (0..16).map(|j| (i * 16 + j) % KEYS)).await }
        };
        let raw = move |i: u64| {
            let mut c = raw_conn.clone();
            async move { cache_bench::read_raw(&mut c, i).await }
        };
        let pool = deadpool_redis::Config::from_url(redis.url())
            .create_pool(Some(deadpool_redis::Runtime::Tokio1))
            .unwrap();
        let deadpool = move |i: u64| {
            let pool = pool.clone();
            async move {
                let mut c = pool.get().await.unwrap();
                let bytes: Vec<u8> = redis::cmd("GET")
                    .arg(format!("raw:{i}"))
                    .query_async(&mut c)
                    .await
                    .unwrap();
                bytes.len()
            }
        };
        // The same calls on a hand-written transport (`SocketFloor`: one socket, one `MGET` out
        // at a time, a minimal reply reader): whether what the rows above lose is redis-rs's.
        let socket = Arc::new(SocketFloor::new());
        let serving = multi.spawn(socket.clone().serve(format!("127.0.0.1:{}", redis.port())));
        let socket_call = move |i: u64| {
            let socket = socket.clone();
            async move { socket.get(i).await }
        };
        // The shape without Redis: each call answered in process (`WakeFloor`), what one task
        // wake a call costs on its own.
        let wake = Arc::new(WakeFloor::new());
        let answering = multi.spawn(wake.clone().answer());
        let wake_call = move |_: u64| {
            let wake = wake.clone();
            async move { wake.get().await }
        };
        // Best ops/s of: ours, raw multiplexed, the MGET floor, raw MGETs of 16, cached,
        // deadpool, the wake floor, the socket floor; and the least CPU per GET of ours, raw and
        // the three floors (the whole process: both runtime threads).
        let (mut cpu_ours, mut cpu_raw, mut cpu_floor, mut cpu_wake, mut cpu_socket) =
            (f64::MAX, f64::MAX, f64::MAX, f64::MAX, f64::MAX);
        // The client's and the server's CPU a GET and the machine's idle share, all three from
        // the contender's fastest round, for ours and the socket floor (redis-benchmark's
        // figures are one run's too).
        let mut info = multi.block_on(redis.conn());
        let mut server_now = || multi.block_on(cache_bench::server_cpu(&mut info)).unwrap();
        let (mut fastest_ours, mut fastest_socket) = (Fastest::default(), Fastest::default());
        let [ours_l2_tp, raw_tp, floor_tp, mget_tp, cached_tp, dp_tp, wake_tp, socket_tp] =
            best_of(rounds(2, 3), f64::max, || {
                let ((ours_tp, costs), cpu) = with_cpu(64 * l2_ops, || {
                    with_costs(64 * l2_ops, &mut server_now, || {
                        throughput(&multi, 64, l2_ops, ours_l2)
                    })
                });
                cpu_ours = cpu_ours.min(cpu);
                fastest_ours.keep(ours_tp, cpu, costs);
                let (raw_tp, cpu) = with_cpu(64 * l2_ops, || throughput(&multi, 64, l2_ops, raw.clone()));
                cpu_raw = cpu_raw.min(cpu);
                let (floor_tp, cpu) = with_cpu(64 * l2_ops, || throughput(&multi, 64, l2_ops, floor.clone()));
                cpu_floor = cpu_floor.min(cpu);
                let (wake_tp, cpu) =
                    with_cpu(64 * l2_ops, || throughput(&multi, 64, l2_ops, wake_call.clone()));
                cpu_wake = cpu_wake.min(cpu);
                let ((socket_tp, costs), cpu) = with_cpu(64 * l2_ops, || {
                    with_costs(64 * l2_ops, &mut server_now, || {
                        throughput(&multi, 64, l2_ops, socket_call.clone())
                    })
                });
                cpu_socket = cpu_socket.min(cpu);
                fastest_socket.keep(socket_tp, cpu, costs);
                [
                    ours_tp,
                    raw_tp,
                    floor_tp,
                    16.0 * throughput(&multi, 64, l2_ops.div_ceil(16), mget16.clone()),
                    throughput(
                        &multi,
                        64,
                        l2_ops,
                        |i| async move { cached_redis(i).await.unwrap() },
                    ),
                    throughput(&multi, 64, l2_ops, deadpool.clone()),
                    wake_tp,
                    socket_tp,
                ]
            });
        // redis-benchmark below keeps 64 × 16 = 1 024 GETs outstanding; the same calls from
        // 1 024 tasks keep as many (ours shares most of these reads by single flight: 1 024
        // tasks walk 1 000 keys).
        let wide_ops = l2_ops.div_ceil(16);
        let [ours_wide, socket_wide] = best_of(rounds(1, 2), f64::max, || {
            [
                throughput(&multi, 1024, wide_ops, ours_l2),
                throughput(&multi, 1024, wide_ops, socket_call.clone()),
            ]
        });
        answering.abort();
        serving.abort();
        rows.extend(rows_against(
            "P2 L2 hit, 64 tasks",
            "#[cache(l1 = false)] hit (ops/s)",
            ours_l2_tp,
            "ops/s",
            true,
            &[
                ("raw multiplexed GET + decode", raw_tp, "≥ 0.9×"),
                ("cached #[concurrent_cached(redis)]", cached_tp, "≥ 2×"),
                ("deadpool-redis GET, checkout per call", dp_tp, "-"),
                ("floor: shared MGETs, one task wake a call", floor_tp, "-"),
                (
                    "floor: hand-written MGETs on one socket, one task wake a call",
                    socket_tp,
                    "-",
                ),
            ],
        ));
        rows.extend(rows_against(
            "P2 L2 hit, 64 tasks",
            "floor: hand-written MGETs on one socket, one task wake a call (ops/s)",
            socket_tp,
            "ops/s",
            true,
            &[("cached #[concurrent_cached(redis)]", cached_tp, "-")],
        ));
        // Whether the P2 targets are within reach of any cache of this shape on this transport.
        rows.extend(rows_against(
            "P2 L2 hit, 64 tasks",
            "floor: shared MGETs, one task wake a call (ops/s)",
            floor_tp,
            "ops/s",
            true,
            &[("cached #[concurrent_cached(redis)]", cached_tp, "-")],
        ));
        // The server's own limit here: redis-benchmark pipelining 16 GETs deep on 64
        // connections, for a value of the raw keys' size, against the same server.
        let size = cache_bench::encode(&payload(0)).len();
        let n = if quick() { 200_000 } else { 2_000_000 };
        if let Some(bench) = redis_benchmark(&redis, size, n, &mut server_now) {
            let (bench_tp, bench_cpu) = (bench.tp, bench.cpu);
            for (what, value, target) in [
                ("#[cache(l1 = false)] hit (ops/s)", ours_l2_tp, "≥ 0.6×"),
                ("floor: shared MGETs, one task wake a call (ops/s)", floor_tp, "-"),
                (
                    "floor: hand-written MGETs on one socket, one task wake a call (ops/s)",
                    socket_tp,
                    "-",
                ),
                (
                    "raw MGET of 16 + decode, one task wake per 16 GETs (GETs/s)",
                    mget_tp,
                    "-",
                ),
                (
                    "one task wake a call, answered in process, no Redis (calls/s)",
                    wake_tp,
                    "-",
                ),
            ] {
                rows.extend(rows_against(
                    "P2 L2 hit, 64 tasks",
                    what,
                    value,
                    "ops/s",
                    true,
                    &[("redis-benchmark -c 64 -P 16 -t get", bench_tp, target)],
                ));
            }
            rows.push(Row {
                section: "P2 client CPU per GET",
                what: format!("ours (µs/GET; raw redis-rs {cpu_raw:.2} µs)"),
                ours: cpu_ours,
                peer_name: "redis-benchmark's own client".into(),
                peer: bench_cpu,
                unit: "µs",
                higher_is_better: false,
                target: "-".into(),
            });
            for (what, value) in [
                (
                    "ours, 1 024 tasks (ops/s; single flight shares most of its reads)",
                    ours_wide,
                ),
                (
                    "floor: hand-written MGETs on one socket, 1 024 tasks (ops/s)",
                    socket_wide,
                ),
            ] {
                rows.extend(rows_against(
                    "P2 L2 hit, 1 024 calls outstanding (redis-benchmark keeps 64 × 16 GETs)",
                    what,
                    value,
                    "ops/s",
                    true,
                    &[("redis-benchmark -c 64 -P 16 -t get", bench_tp, "-")],
                ));
            }
            // What the machine spends a GET, client and server, and whether the cores were
            // busy: a round that leaves them idle waited; one that leaves none hit the CPU.
            let idle = |c: Costs| format!("machine idle {:.0} %", c.idle * 100.0);
            let bench_total = bench_cpu + bench.costs.server;
            let ours_total = fastest_ours.client + fastest_ours.costs.server;
            let socket_total = fastest_socket.client + fastest_socket.costs.server;
            let peer = format!(
                "redis-benchmark (server {:.2} µs; {})",
                bench.costs.server,
                idle(bench.costs)
            );
            rows.extend(rows_against(
                "P2 client + server CPU per GET",
                &format!(
                    "ours (µs/GET; server {:.2} µs; {})",
                    fastest_ours.costs.server,
                    idle(fastest_ours.costs)
                ),
                ours_total,
                "µs",
                false,
                &[(peer.as_str(), bench_total, "-")],
            ));
            rows.extend(rows_against(
                "P2 client + server CPU per GET",
                &format!(
                    "floor: hand-written MGETs on one socket (µs/GET; server {:.2} µs; {})",
                    fastest_socket.costs.server,
                    idle(fastest_socket.costs)
                ),
                socket_total,
                "µs",
                false,
                &[(peer.as_str(), bench_total, "-")],
            ));
            // At this CPU a GET, how many cores 0.6× redis-benchmark's rate would take.
            let cores = std::thread::available_parallelism().map_or(1.0, |n| n.get() as f64);
            for (what, total) in [
                ("ours: cores needed at 0.6× redis-benchmark's rate", ours_total),
                (
                    "floor: hand-written MGETs on one socket: cores needed at 0.6× redis-benchmark's rate",
                    socket_total,
                ),
            ] {
                rows.extend(rows_against(
                    "P2 client + server CPU per GET",
                    what,
                    0.6 * bench_tp * total / 1e6,
                    "cores",
                    false,
                    &[("the machine's cores", cores, "-")],
                ));
            }
        } else {
            println!(
                "P2's 1 024-task and CPU-budget rows need redis-benchmark's run beside them: not reported"
            );
        }
        rows.extend(rows_against(
            "P2 client CPU per GET",
            "ours (µs/GET, user + sys of the whole process)",
            cpu_ours,
            "µs",
            false,
            &[
                ("raw multiplexed GET + decode", cpu_raw, "-"),
                ("floor: shared MGETs, one task wake a call", cpu_floor, "-"),
                (
                    "floor: hand-written MGETs on one socket, one task wake a call",
                    cpu_socket,
                    "-",
                ),
                (
                    "one task wake a call, answered in process, no Redis",
                    cpu_wake,
                    "-",
                ),
            ],
        ));
    }

    // ---------- P2 on one runtime thread ----------
    // Before P5, which points `cached`'s connection string at a server that is down.
    rows.extend(one_worker::rows(&redis));

    // ---------- P3: batch ----------
    if section("p3") {
        let keys: Vec<String> = (0..100).map(|i| format!("batch:{i}")).collect();
        let items: Vec<(String, Payload)> = keys.iter().cloned().zip((0..100).map(payload)).collect();
        let cache_l2 = l2_cache().clone();
        let rounds = if quick() { 50 } else { 300 };
        let (mset_us, mget_us, seq_get_us, seq_set_us) = multi.block_on(async {
            let mut c = redis.conn().await;
            let t = Instant::now();
            for _ in 0..rounds {
                cache_l2.mset(&items, None).await.unwrap();
            }
            let mset = t.elapsed().as_secs_f64() * 1e6 / rounds as f64;
            let t = Instant::now();
            for _ in 0..rounds {
                black_box(cache_l2.mget::<Payload, _>(&keys).await.unwrap());
            }
            let mget = t.elapsed().as_secs_f64() * 1e6 / rounds as f64;
            let t = Instant::now();
            for _ in 0..rounds {
                for k in &keys {
                    black_box(
                        redis::cmd("GET")
                            .arg(k)
                            .query_async::<Vec<u8>>(&mut c)
                            .await
                            .unwrap(),
                    );
                }
            }
            let seq_get = t.elapsed().as_secs_f64() * 1e6 / rounds as f64;
            let t = Instant::now();
            for _ in 0..rounds {
                for (k, v) in &items {
                    redis::cmd("SET")
                        .arg(k)
                        .arg(cache_bench::encode(v))
                        .arg("PX")
                        .arg(300_000)
                        .query_async::<()>(&mut c)
                        .await
                        .unwrap();
                }
            }
            let seq_set = t.elapsed().as_secs_f64() * 1e6 / rounds as f64;
            (mset, mget, seq_get, seq_set)
        });
        rows.push(Row {
            section: "P3 batch of 100",
            what: "mget (µs/batch)".into(),
            ours: mget_us,
            peer_name: "100 sequential GETs".into(),
            peer: seq_get_us,
            unit: "µs",
            higher_is_better: false,
            target: "≥ 10×".into(),
        });
        rows.push(Row {
            section: "P3 batch of 100",
            what: "mset (µs/batch)".into(),
            ours: mset_us,
            peer_name: "100 sequential SETs".into(),
            peer: seq_set_us,
            unit: "µs",
            higher_is_better: false,
            target: "≥ 10×".into(),
        });
    }

    // ---------- P4: 1000 cold callers ----------
    if section("p4") {
        let (runs, p99_wait) = multi.block_on(async {
            let handles: Vec<_> = (0..1000)
                .map(|_| {
                    tokio::spawn(async {
                        let t = Instant::now();
                        black_box(cold(424_242).await);
                        t.elapsed()
                    })
                })
                .collect();
            let mut waits = Vec::new();
            for h in handles {
                waits.push(h.await.unwrap());
            }
            (COLD_RUNS.load(Ordering::SeqCst), p99(&mut waits))
        });
        rows.push(Row {
            section: "P4 1000 cold callers",
            what: format!("p99 wait (ms), function ran {runs}×"),
            ours: p99_wait.as_secs_f64() * 1000.0,
            peer_name: "the function's own time".into(),
            peer: 50.0,
            unit: "ms",
            higher_is_better: false,
            target: "≈ 1×, runs = 1".into(),
        });
    }

    // ---------- P5: Redis down ----------
    if section("p5") {
        let mut dead = RedisServer::start();
        let dead_url = dead.url();
        dead.stop();
        let down = Cache::new(
            CacheConfig::builder()
                .redis_url(dead_url.clone())
                .build()
                .unwrap(),
        )
        .unwrap();
        let _ = DOWN_CACHE.set(down);
        let (ours_p99, fn_p99) = multi.block_on(async {
            for i in 0..20 {
                ours_down(i).await; // lets the breaker see the failure
            }
            let mut with_cache = Vec::new();
            let mut bare = Vec::new();
            for i in 0..2000u64 {
                let t = Instant::now();
                black_box(ours_down(i % KEYS).await);
                with_cache.push(t.elapsed());
                let t = Instant::now();
                black_box(payload(i % KEYS));
                bare.push(t.elapsed());
            }
            (p99(&mut with_cache), p99(&mut bare))
        });
        std::env::set_var("CACHED_REDIS_CONNECTION_STRING", &dead_url);
        let cached_down = multi.block_on(async {
            match tokio::spawn(async { cached_redis_down(1).await }).await {
                Err(e) if e.is_panic() => "panicked on its first call".to_owned(),
                Err(e) => format!("task failed: {e}"),
                Ok(Err(e)) => format!("returned Err: {}", e.chars().take(60).collect::<String>()),
                Ok(Ok(_)) => "answered".to_owned(),
            }
        });
        let added = ours_p99.saturating_sub(fn_p99);
        rows.push(Row {
            section: "P5 Redis stopped",
            what: "added p99 latency (µs)".into(),
            ours: added.as_secs_f64() * 1e6,
            peer_name: format!("target 1000 µs; cached redis: {cached_down}"),
            peer: 1000.0,
            unit: "µs",
            higher_is_better: false,
            target: "≤ 1 ms".into(),
        });
    }

    // ---------- P6: compression ----------
    if section("p6") {
        let records: Vec<serde_json::Value> = (0..80)
        .map(|i| serde_json::json!({"id": i, "origin": "Hamburg", "destination": "Rotterdam", "status": if i % 3 == 0 {"delivered"} else {"in_transit"}, "weight_kg": i * 37 % 20000, "tags": ["freight", "eu", "priority"]}))
        .collect();
        let doc = serde_json::to_string(&records).unwrap();
        let codec = cache_core::codec::Codec::new(1024, 1, 16 << 20);
        let enc = codec.encode(&doc, 0).unwrap();
        let n = if quick() { 500 } else { 5000 };
        let t = Instant::now();
        for _ in 0..n {
            black_box(codec.encode(&doc, 0).unwrap());
        }
        let enc_mbs = (doc.len() * n) as f64 / t.elapsed().as_secs_f64() / 1e6;
        let t = Instant::now();
        for _ in 0..n {
            black_box(codec.decode::<String>(&enc.bytes).unwrap());
        }
        let dec_mbs = (doc.len() * n) as f64 / t.elapsed().as_secs_f64() / 1e6;
        let small = codec.encode(&payload(1), 0).unwrap();
        rows.push(Row {
            section: "P6 compression, 10 KB JSON",
            what: format!(
                "stored bytes (raw {} B; 150 B value compressed: {})",
                doc.len(),
                small.compressed
            ),
            ours: enc.bytes.len() as f64,
            peer_name: "uncompressed".into(),
            peer: doc.len() as f64,
            unit: "B",
            higher_is_better: false,
            target: "≥ 3.3× (70 % smaller)".into(),
        });
        rows.push(Row {
            section: "P6 compression, 10 KB JSON",
            what: "encode / decode (MB/s)".into(),
            ours: enc_mbs,
            peer_name: "decode".into(),
            peer: dec_mbs,
            unit: "MB/s",
            higher_is_better: true,
            target: "-".into(),
        });
    }

    // ---------- memory per L1 entry ----------
    if section("memory") {
        let ours_mem = single.block_on(async {
            let c = Cache::new(
                CacheConfig::builder()
                    .max_memory_cache_size(20_000)
                    .build()
                    .unwrap(),
            )
            .unwrap();
            let values: Vec<Arc<Payload>> = (0..10_000).map(|i| Arc::new(payload(i))).collect();
            let keys: Vec<String> = (0..10_000).map(|i| format!("bench:mem:{i}")).collect();
            let region = Region::new(GLOBAL);
            for (k, v) in keys.iter().zip(&values) {
                c.set(k, v, None).await.unwrap();
            }
            let s = region.change();
            (s.bytes_allocated as f64 - s.bytes_deallocated as f64) / 10_000.0
        });
        let moka_mem = {
            let m: moka::sync::Cache<String, Arc<Payload>> = moka::sync::Cache::new(20_000);
            let values: Vec<Arc<Payload>> = (0..10_000).map(|i| Arc::new(payload(i))).collect();
            let keys: Vec<String> = (0..10_000).map(|i| format!("bench:mem:{i}")).collect();
            let region = Region::new(GLOBAL);
            for (k, v) in keys.iter().zip(&values) {
                m.insert(k.clone(), v.clone());
            }
            m.run_pending_tasks();
            let s = region.change();
            (s.bytes_allocated as f64 - s.bytes_deallocated as f64) / 10_000.0
        };
        rows.push(Row {
            section: "Memory",
            what: "bytes per L1 entry (key + Arc value, excl. the value)".into(),
            ours: ours_mem,
            peer_name: "raw moka sync (String key)".into(),
            peer: moka_mem,
            unit: "B",
            higher_is_better: false,
            target: "≥ 1× (no more than moka)".into(),
        });
        rows.extend(membound::rows(&single));
    }

    // ---------- P2 over TLS, P2 and P3 on a cluster ----------
    rows.extend(topologies::rows(&multi));

    // ---------- P8 tag invalidation, P8b the cost of tags on a hit ----------
    rows.extend(tags::rows(&multi, &redis));

    // ---------- P9 the disk tier ----------
    rows.extend(disk::rows(&multi, &redis));

    // ---------- P10 encryption and key obfuscation ----------
    rows.extend(security::rows(&multi, &redis));

    // ---------- L1 hit ratio over synthetic traces ----------
    let (hit_rows, hit_table) = hitratio::rows();
    rows.extend(hit_rows);

    // ---------- report ----------
    let mut md = String::from("| section | ours | peer | peer value | ratio (ours vs peer, >1 = better) | target |\n|---|---|---|---|---|---|\n");
    for r in &rows {
        md.push_str(&format!(
            "| {} | {}: {:.1} {} | {} | {:.1} {} | {:.2}× | {} |\n",
            r.section,
            r.what,
            r.ours,
            r.unit,
            r.peer_name,
            r.peer,
            r.unit,
            r.ratio(),
            r.target
        ));
    }
    md.push('\n');
    md.push_str(&hit_table);
    println!("\n{md}");
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench-report.md");
    let header = format!(
        "# Benchmark report\n\nOne run, same machine ({} cores), private redis-server on loopback.\n\n",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    std::fs::write(&path, header + &md).unwrap();
    println!("written to {}", path.display());
    drop(redis);
}
