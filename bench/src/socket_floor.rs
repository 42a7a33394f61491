//! P2's shape on a hand-written transport: the least a call of that shape costs with Redis
//! answering it, without redis-rs. Each call queues its key with a oneshot and awaits it; one
//! task owns the socket and, each time it is free, sends everything queued as one `MGET` in one
//! write, reads the reply (a minimal RESP reader: one array of bulk strings), decodes each value
//! and answers its call. One task between the calls and the socket (not a leading call plus
//! redis-rs's connection task), no command or reply objects, no timers; one `MGET` out at a
//! time, so a batch is whatever queued while the last was out.
//!
//! Beside [`crate::L2Floor`] (the same calls over redis-rs) it tells whether what the P2 rows
//! lose is in the transport or in the shape: 64 calls awaited one at a time, each woken once.
// A bench's floor: a Redis error or a poisoned lock ends the run, as in the benches.
#![allow(clippy::unwrap_used)]

use std::io::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{oneshot, Notify};

use crate::Payload;

type Call = (u64, oneshot::Sender<Payload>);

/// Reads of `raw:{i}` ([`crate::write_raw`]'s values) answered by [`SocketFloor::serve`].
///
/// ```no_run
/// # async fn f(addr: String) {
/// let floor = std::sync::Arc::new(cache_bench::SocketFloor::new());
/// tokio::spawn(floor.clone().serve(addr));
/// assert_eq!(floor.get(7).await.id, 7);
/// # }
/// ```
#[derive(Default)]
pub struct SocketFloor {
    waiting: Mutex<Vec<Call>>,
    notify: Notify,
    mgets: AtomicU64,
}

impl SocketFloor {
    /// A floor with nothing queued; calls are answered once [`serve`](Self::serve) runs.
    pub fn new() -> Self {
        Self::default()
    }

    /// `MGET`s sent so far: with the calls made, how full they were.
    pub fn mgets(&self) -> u64 {
        self.mgets.load(Ordering::Relaxed)
    }

    /// The value of `raw:{i}`. Panics on a missing key: a bench's floor.
    pub async fn get(&self, i: u64) -> Payload {
        let (tx, rx) = oneshot::channel();
        self.waiting.lock().unwrap().push((i, tx));
        self.notify.notify_one();
        rx.await.unwrap()
    }

    /// Answers queued calls over one connection to `addr` (`host:port`) until its runtime
    /// shuts down or it is aborted.
    pub async fn serve(self: Arc<Self>, addr: String) {
        let mut socket = TcpStream::connect(addr).await.unwrap();
        socket.set_nodelay(true).unwrap();
        let mut request = Vec::new();
        let mut replies = Replies::default();
        loop {
            let batch = std::mem::take(&mut *self.waiting.lock().unwrap());
            if batch.is_empty() {
                self.notify.notified().await;
                continue;
            }
            self.mgets.fetch_add(1, Ordering::Relaxed);
            request.clear();
            write!(request, "*{}\r\n$4\r\nMGET\r\n", batch.len() + 1).unwrap();
            for (i, _) in &batch {
                // "raw:" and the digits, written straight into the request.
                let len = 4 + i.checked_ilog10().map_or(1, |d| d + 1);
                write!(request, "${len}\r\nraw:{i}\r\n").unwrap();
            }
            socket.write_all(&request).await.unwrap();
            let n = replies.header(&mut socket, b'*').await;
            assert_eq!(n, batch.len() as i64, "one value a key");
            for (_, tx) in batch {
                let len = replies.header(&mut socket, b'$').await;
                let value = replies.bulk(&mut socket, usize::try_from(len).unwrap()).await;
                let _ = tx.send(crate::decode(value));
            }
        }
    }
}

/// The bytes read from the socket and how far they are parsed.
#[derive(Default)]
struct Replies {
    buf: Vec<u8>,
    pos: usize,
}

impl Replies {
    /// Reads more, first dropping what is parsed.
    async fn more(&mut self, socket: &mut TcpStream) {
        self.buf.drain(..self.pos);
        self.pos = 0;
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(64 * 1024);
        }
        let n = socket.read_buf(&mut self.buf).await.unwrap();
        assert!(n > 0, "redis closed the connection");
    }

    /// The number of a `kind` line (`*` array, `$` bulk string).
    async fn header(&mut self, socket: &mut TcpStream, kind: u8) -> i64 {
        loop {
            let rest = &self.buf[self.pos..];
            if let Some(cr) = rest.iter().position(|&b| b == b'\r') {
                if cr + 1 < rest.len() {
                    assert_eq!(rest[0], kind, "unexpected reply");
                    let n = std::str::from_utf8(&rest[1..cr]).unwrap().parse().unwrap();
                    self.pos += cr + 2;
                    return n;
                }
            }
            self.more(socket).await;
        }
    }

    /// The next `len` bytes and their CRLF.
    async fn bulk(&mut self, socket: &mut TcpStream, len: usize) -> &[u8] {
        while self.buf.len() < self.pos + len + 2 {
            self.more(socket).await;
        }
        let start = self.pos;
        self.pos += len + 2;
        &self.buf[start..start + len]
    }
}
