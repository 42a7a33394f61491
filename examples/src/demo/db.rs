//! The demo's SQLite database: created and seeded on first start. Queries run on the blocking
//! pool; one connection behind a mutex is plenty for a demo.
//!
//! Every query is counted ([`queries`]: what the load test divides by requests), and waits
//! [`latency`] first, outside the lock: SQLite in the same process answers in microseconds,
//! where the database a cache stands in front of is a network round trip away (1–5 ms for
//! Postgres or MySQL in the same zone). `DEMO_DB_LATENCY_MS` sets it (default 2; 0 turns it off).

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use super::service::DemoError;

static DB: OnceLock<Arc<Mutex<Connection>>> = OnceLock::new();

/// Queries run since the process started.
static QUERIES: AtomicU64 = AtomicU64::new(0);

/// The round trip each query waits, from `DEMO_DB_LATENCY_MS`.
static LATENCY: OnceLock<Duration> = OnceLock::new();

/// Database queries run since the process started (each statement the demo sends counts once).
pub fn queries() -> u64 {
    QUERIES.load(Ordering::Relaxed)
}

/// The simulated network round trip of every query (`DEMO_DB_LATENCY_MS`, default 2 ms).
pub fn latency() -> Duration {
    *LATENCY.get_or_init(|| {
        let ms = match std::env::var("DEMO_DB_LATENCY_MS") {
            Err(_) => 2.0,
            Ok(v) => match v.trim().parse::<f64>() {
                Ok(ms) if ms.is_finite() && (0.0..=10_000.0).contains(&ms) => ms,
                _ => {
                    tracing::warn!(value = %v, "DEMO_DB_LATENCY_MS is not a number of milliseconds (0 to 10000); using 2");
                    2.0
                }
            },
        };
        Duration::from_secs_f64(ms / 1000.0)
    })
}

/// A user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct User {
    /// Id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Email.
    pub email: String,
}

/// An order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Order {
    /// Id.
    pub id: i64,
    /// Owner.
    pub user_id: i64,
    /// Amount in cents.
    pub total_cents: i64,
    /// `YYYY-MM`.
    pub month: String,
}

/// A freight resource.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Freight {
    /// Id.
    pub id: i64,
    /// From.
    pub origin: String,
    /// To.
    pub destination: String,
    /// Weight.
    pub weight_kg: i64,
    /// `in_transit`, `delivered`, ...
    pub status: String,
}

const CITIES: [&str; 8] = [
    "Hamburg",
    "Rotterdam",
    "Antwerp",
    "Gdansk",
    "Genoa",
    "Lyon",
    "Vienna",
    "Prague",
];

/// Opens the database, creating and seeding it when empty. Later calls keep the first one.
pub fn open(path: &Path) -> Result<(), DemoError> {
    if DB.get().is_some() {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| DemoError::Setup(format!("{}: {e}", dir.display())))?;
    }
    let mut conn = Connection::open(path)?;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS users (id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL);
         CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, user_id INTEGER NOT NULL, total_cents INTEGER NOT NULL, month TEXT NOT NULL);
         CREATE INDEX IF NOT EXISTS orders_user ON orders(user_id);
         CREATE TABLE IF NOT EXISTS freight (id INTEGER PRIMARY KEY, origin TEXT NOT NULL, destination TEXT NOT NULL, weight_kg INTEGER NOT NULL, status TEXT NOT NULL);",
    )?;
    let users: i64 = conn.query_row("SELECT COUNT(*) FROM users", [], |r| r.get(0))?;
    if users == 0 {
        let tx = conn.transaction()?;
        for id in 1..=100i64 {
            tx.execute(
                "INSERT INTO users (id, name, email) VALUES (?1, ?2, ?3)",
                params![id, format!("User {id}"), format!("user{id}@example.com")],
            )?;
        }
        for id in 1..=2000i64 {
            let month = format!("2025-{:02}", id % 12 + 1);
            tx.execute(
                "INSERT INTO orders (id, user_id, total_cents, month) VALUES (?1, ?2, ?3, ?4)",
                params![id, id % 100 + 1, (id * 7919) % 50_000 + 500, month],
            )?;
        }
        for id in 1..=500i64 {
            let status = if id % 3 == 0 { "delivered" } else { "in_transit" };
            tx.execute(
                "INSERT INTO freight (id, origin, destination, weight_kg, status) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![id, CITIES[id as usize % 8], CITIES[(id as usize * 3 + 1) % 8], id * 37 % 20_000, status],
            )?;
        }
        tx.commit()?;
        tracing::info!(path = %path.display(), "demo database created and seeded");
    }
    let _ = DB.set(Arc::new(Mutex::new(conn)));
    Ok(())
}

async fn with_db<T: Send + 'static>(
    f: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
) -> Result<T, DemoError> {
    let db = DB
        .get()
        .ok_or_else(|| DemoError::Setup("database not opened".into()))?
        .clone();
    QUERIES.fetch_add(1, Ordering::Relaxed);
    let rtt = latency();
    tokio::task::spawn_blocking(move || {
        // A thread sleep, on the blocking pool and before the lock: tokio's timer rounds up to
        // whole milliseconds, which would make the round trip 2–3 ms rather than 2.
        if !rtt.is_zero() {
            std::thread::sleep(rtt);
        }
        let conn = db
            .lock()
            .map_err(|_| DemoError::Setup("database lock poisoned".into()))?;
        f(&conn).map_err(DemoError::from)
    })
    .await
    .map_err(|e| DemoError::Setup(e.to_string()))?
}

/// One user.
pub async fn user(id: i64) -> Result<Option<User>, DemoError> {
    with_db(move |c| {
        c.query_row("SELECT id, name, email FROM users WHERE id = ?1", [id], |r| {
            Ok(User {
                id: r.get(0)?,
                name: r.get(1)?,
                email: r.get(2)?,
            })
        })
        .optional()
    })
    .await
}

/// Applies a change to a user; `None` when there is no such user.
pub async fn update_user(
    id: i64,
    name: Option<String>,
    email: Option<String>,
) -> Result<Option<User>, DemoError> {
    let changed = with_db(move |c| {
        c.execute(
            "UPDATE users SET name = COALESCE(?2, name), email = COALESCE(?3, email) WHERE id = ?1",
            params![id, name, email],
        )
    })
    .await?;
    if changed == 0 {
        return Ok(None);
    }
    user(id).await
}

/// A user's orders.
pub async fn orders(user_id: i64) -> Result<Vec<Order>, DemoError> {
    with_db(move |c| {
        let mut stmt =
            c.prepare("SELECT id, user_id, total_cents, month FROM orders WHERE user_id = ?1 ORDER BY id")?;
        let rows = stmt.query_map([user_id], |r| {
            Ok(Order {
                id: r.get(0)?,
                user_id: r.get(1)?,
                total_cents: r.get(2)?,
                month: r.get(3)?,
            })
        })?;
        rows.collect()
    })
    .await
}

/// One freight resource.
pub async fn freight(id: i64) -> Result<Option<Freight>, DemoError> {
    with_db(move |c| {
        c.query_row(
            "SELECT id, origin, destination, weight_kg, status FROM freight WHERE id = ?1",
            [id],
            |r| {
                Ok(Freight {
                    id: r.get(0)?,
                    origin: r.get(1)?,
                    destination: r.get(2)?,
                    weight_kg: r.get(3)?,
                    status: r.get(4)?,
                })
            },
        )
        .optional()
    })
    .await
}

/// Order count, revenue and the top users of one month.
pub async fn month_totals(month: String) -> Result<(i64, i64, Vec<(i64, i64)>), DemoError> {
    // Two statements in one round trip: the second one counted here.
    QUERIES.fetch_add(1, Ordering::Relaxed);
    with_db(move |c| {
        let (count, revenue) = c.query_row(
            "SELECT COUNT(*), COALESCE(SUM(total_cents), 0) FROM orders WHERE month = ?1",
            [&month],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let mut stmt = c.prepare(
            "SELECT user_id, SUM(total_cents) AS s FROM orders WHERE month = ?1 GROUP BY user_id ORDER BY s DESC LIMIT 5",
        )?;
        let top = stmt.query_map([&month], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<rusqlite::Result<_>>()?;
        Ok((count, revenue, top))
    })
    .await
}

/// The `n` most recent months with orders.
pub async fn latest_months(n: usize) -> Result<Vec<String>, DemoError> {
    with_db(move |c| {
        let mut stmt = c.prepare("SELECT DISTINCT month FROM orders ORDER BY month DESC LIMIT ?1")?;
        let rows = stmt.query_map([n as i64], |r| r.get(0))?;
        rows.collect()
    })
    .await
}
