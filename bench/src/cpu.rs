//! What a round of L2 reads cost the machine besides the client's own CPU: redis-server's CPU
//! and the share of the machine's cores left idle. Idle cores suggest a round that waited
//! (round trips, wake-ups); none idle, one bound by CPU.

use std::time::Duration;

/// redis-server's user + system CPU so far, all its threads (`INFO cpu`).
///
/// ```no_run
/// # async fn f(c: &mut redis::aio::MultiplexedConnection) -> redis::RedisResult<()> {
/// let before = cache_bench::server_cpu(c).await?;
/// // ... the round ...
/// let used = cache_bench::server_cpu(c).await? - before;
/// # Ok(()) }
/// ```
pub async fn server_cpu(c: &mut redis::aio::MultiplexedConnection) -> redis::RedisResult<Duration> {
    let info: String = redis::cmd("INFO").arg("cpu").query_async(c).await?;
    let secs: f64 = info
        .lines()
        .filter_map(|l| l.split_once(':'))
        .filter(|(k, _)| *k == "used_cpu_sys" || *k == "used_cpu_user")
        .filter_map(|(_, v)| v.trim().parse::<f64>().ok())
        .sum();
    Ok(Duration::from_secs_f64(secs))
}

/// The machine's CPU time so far, in jiffies summed over its cores (`/proc/stat`'s first line).
///
/// ```
/// let before = cache_bench::Jiffies::now();
/// let idle = cache_bench::Jiffies::now().idle_share_since(before);
/// assert!((0.0..=1.0).contains(&idle));
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct Jiffies {
    idle: u64,
    all: u64,
}

impl Jiffies {
    /// Now; all zero where `/proc/stat` cannot be read (not Linux), so shares come out 0.
    pub fn now() -> Self {
        let Ok(stat) = std::fs::read_to_string("/proc/stat") else {
            return Self::default();
        };
        let fields: Vec<u64> = stat
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal; the guest fields after them are
        // already inside user and nice. Steal (time the hypervisor gave elsewhere) counts as
        // not idle: these cores were not free for the client or the server either.
        let fields = &fields[..fields.len().min(8)];
        Self {
            idle: fields.iter().skip(3).take(2).sum(),
            all: fields.iter().sum(),
        }
    }

    /// The share of all cores' time since `earlier` that was idle, 0 to 1.
    pub fn idle_share_since(self, earlier: Jiffies) -> f64 {
        let all = self.all.saturating_sub(earlier.all);
        if all == 0 {
            return 0.0;
        }
        self.idle.saturating_sub(earlier.idle) as f64 / all as f64
    }
}

/// One round's measure of what [`server_cpu`] and [`Jiffies`] read: started with redis-server's
/// CPU so far, it gives the round's idle share and the server's CPU an op. Read [`Self::idle`]
/// before asking the server again, so that the `INFO` round trip falls outside the round.
///
/// ```
/// use std::time::Duration;
/// let meter = cache_bench::RoundMeter::start(Duration::from_millis(10));
/// assert!((0.0..=1.0).contains(&meter.idle()));
/// assert_eq!(meter.server_us_per_op(Duration::from_millis(30), 1000), 20.0);
/// ```
#[derive(Debug, Clone, Copy)]
pub struct RoundMeter {
    server0: Duration,
    machine0: Jiffies,
}

impl RoundMeter {
    /// Starts the round; `server_cpu` is redis-server's CPU so far (zero where there is none).
    pub fn start(server_cpu: Duration) -> Self {
        Self {
            server0: server_cpu,
            machine0: Jiffies::now(),
        }
    }

    /// The share of all cores' time since the start that was idle, 0 to 1.
    pub fn idle(&self) -> f64 {
        Jiffies::now().idle_share_since(self.machine0)
    }

    /// redis-server's CPU since the start (`server_cpu` its CPU so far), in µs an op over `ops`.
    pub fn server_us_per_op(&self, server_cpu: Duration, ops: u64) -> f64 {
        server_cpu.saturating_sub(self.server0).as_secs_f64() * 1e6 / ops as f64
    }
}
