//! Reaching Redis in each of its deployment forms: one server (plain, TLS, ACL user), a
//! Sentinel-managed primary, or a Cluster. Everything above this module sees a [`Conn`], which
//! speaks the `redis` crate's [`ConnectionLike`], and a [`Connector`], which makes them.
//!
//! Why the pool is ours and not `deadpool-redis`'s: its manager is built from a URL and cannot
//! take TLS certificates, a Sentinel client or a Cluster client. The pool itself stays
//! `deadpool`'s ([`Manager`] below is its manager trait over a [`Connector`]).

use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use deadpool::managed::{Metrics, RecycleError, RecycleResult};
use redis::aio::{ConnectionLike, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType};
use redis::{AsyncConnectionConfig, ConnectionAddr, IntoConnectionInfo, RedisFuture, Value};

use crate::config::{CacheConfig, RedisTopology};
use crate::error::{CacheError, Result};

/// A connection to the configured Redis, whatever its form. Cheap to clone (both kinds are
/// multiplexed handles).
#[derive(Clone)]
pub(crate) enum Conn {
    /// One server: a single Redis, or the current Sentinel primary.
    Node(MultiplexedConnection),
    /// A cluster: routes each command by its key's slot and follows `MOVED`/`ASK`.
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Node(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Node(c) => c.req_packed_commands(pipeline, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Node(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// TLS material read from the configured files (PEM). Without the `tls` feature it is only
/// read to refuse it ([`require_tls_match`]).
#[derive(Clone, Default)]
#[cfg_attr(not(feature = "tls"), allow(dead_code))]
struct Tls {
    root_cert: Option<Vec<u8>>,
    client: Option<(Vec<u8>, Vec<u8>)>,
}

impl Tls {
    fn from_config(config: &CacheConfig) -> Result<Option<Self>> {
        let read = |what: &str, p: &Path| {
            std::fs::read(p).map_err(|e| CacheError::Config(format!("{what} {}: {e}", p.display())))
        };
        let root_cert = config
            .redis_tls_ca_file
            .as_deref()
            .map(|p| read("redis_tls_ca_file", p))
            .transpose()?;
        // Half a pair never gets here: `CacheConfig::validate` refuses it before the tier is built.
        let client = match (&config.redis_tls_cert_file, &config.redis_tls_key_file) {
            (Some(c), Some(k)) => Some((read("redis_tls_cert_file", c)?, read("redis_tls_key_file", k)?)),
            _ => None,
        };
        Ok((root_cert.is_some() || client.is_some()).then_some(Tls { root_cert, client }))
    }

    #[cfg(feature = "tls")]
    fn certificates(&self) -> redis::TlsCertificates {
        redis::TlsCertificates {
            client_tls: self.client.as_ref().map(|(cert, key)| redis::ClientTlsConfig {
                client_cert: cert.clone(),
                client_key: key.clone(),
            }),
            root_cert: self.root_cert.clone(),
        }
    }
}

/// Installs rustls's ring provider as the process default unless the application installed one:
/// rustls cannot pick one by itself when both of its providers are compiled in (an application
/// that also uses aws-lc-rs), and would panic on the first TLS connection.
#[cfg(feature = "tls")]
fn tls_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Losing a race to another installer is fine: some provider is installed either way.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

enum Kind {
    Single(redis::Client),
    /// `async_get_client` asks the sentinels for the current primary on every new connection,
    /// and needs `&mut`.
    Sentinel(tokio::sync::Mutex<SentinelClient>),
    Cluster {
        client: redis::cluster::ClusterClient,
        /// One client per seed node: the invalidation bus subscribes on one of them (classic
        /// pub/sub is broadcast to every node of a cluster).
        seeds: Vec<redis::Client>,
    },
}

/// Makes connections to the configured Redis: the pool's factory and the pub/sub listener's.
pub(crate) struct Connector {
    kind: Kind,
    conn_config: AsyncConnectionConfig,
    display: String,
    db: i64,
    /// Which seed the next pub/sub attempt on a cluster uses.
    next_seed: AtomicU64,
}

impl Connector {
    /// Checks and prepares the configured form; nothing connects yet. A TLS setting without a
    /// TLS URL, or TLS without the `tls` feature, is an error here: never a silent plain-TCP
    /// connection.
    pub(crate) fn new(config: &CacheConfig) -> Result<Option<Self>> {
        let topology = config.redis_topology()?;
        let tls = Tls::from_config(config)?;
        let conn_config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.command_timeout));
        let cfg_err = |what: &str, e: redis::RedisError| CacheError::Config(format!("{what}: {e}"));
        let (kind, display, db) = match topology {
            RedisTopology::None => return Ok(None),
            RedisTopology::Single(url) => {
                let info =
                    node_info(url, config).map_err(|e| cfg_err(&format!("redis_url {}", mask(url)), e))?;
                let is_tls = matches!(info.addr(), ConnectionAddr::TcpTls { .. });
                require_tls_match(is_tls, tls.is_some(), "redis_url")?;
                let db = info.redis_settings().db();
                let client = open_client(info, tls.as_ref()).map_err(|e| cfg_err("redis_url", e))?;
                (Kind::Single(client), mask(url), db)
            }
            RedisTopology::Sentinel { urls, master } => {
                // Sentinels often run without a password while the data nodes have one (and a
                // password sent to a server without one is refused): the sentinels take the
                // credentials of their URLs, the data nodes `redis_username`/`redis_password`.
                let (infos, is_tls) = url_list(urls, "redis_sentinel_urls", tls.is_some(), |u| {
                    u.into_connection_info()
                })?;
                let first = infos[0].redis_settings();
                let mut b = SentinelClientBuilder::new(
                    infos.iter().map(|i| i.addr().clone()),
                    master,
                    SentinelServerType::Master,
                )
                .map_err(|e| cfg_err("sentinel", e))?
                .set_client_to_redis_db(first.db());
                if let Some(user) = first.username() {
                    b = b.set_client_to_sentinel_username(user);
                }
                if let Some(pw) = first.password() {
                    b = b.set_client_to_sentinel_password(pw);
                }
                if let Some(user) = &config.redis_username {
                    b = b.set_client_to_redis_username(user);
                }
                if let Some(pw) = &config.redis_password {
                    b = b.set_client_to_redis_password(pw.expose());
                }
                let db = first.db();
                #[cfg(feature = "tls")]
                if is_tls {
                    b = b
                        .set_client_to_redis_tls_mode(redis::TlsMode::Secure)
                        .set_client_to_sentinel_tls_mode(redis::TlsMode::Secure);
                    if let Some(t) = &tls {
                        b = b
                            .set_client_to_redis_certificates(t.certificates())
                            .set_client_to_sentinel_certificates(t.certificates());
                    }
                }
                let client = b.build().map_err(|e| cfg_err("sentinel", e))?;
                let display = format!("sentinel://{master}@{}", host_ports(urls));
                (Kind::Sentinel(tokio::sync::Mutex::new(client)), display, db)
            }
            RedisTopology::Cluster { urls } => {
                let (infos, is_tls) = url_list(urls, "redis_cluster_urls", tls.is_some(), |u| {
                    node_info(u, config)
                })?;
                let settings = infos[0].redis_settings();
                let mut b = redis::cluster::ClusterClientBuilder::new(infos.clone())
                    .connection_timeout(config.connect_timeout)
                    .response_timeout(config.command_timeout);
                if let Some(user) = settings.username() {
                    b = b.username(user);
                }
                if let Some(pw) = settings.password() {
                    b = b.password(pw);
                }
                if config.redis_read_from_replicas {
                    b = b.read_routing_strategy(redis::cluster_read_routing::RandomReplicaStrategy);
                }
                #[cfg(feature = "tls")]
                if is_tls {
                    b = b.tls(redis::TlsMode::Secure);
                    if let Some(t) = &tls {
                        b = b.certs(t.certificates());
                    }
                }
                let client = b.build().map_err(|e| cfg_err("redis_cluster_urls", e))?;
                let seeds = infos
                    .into_iter()
                    .map(|i| open_client(i, tls.as_ref()))
                    .collect::<redis::RedisResult<Vec<_>>>()
                    .map_err(|e| cfg_err("redis_cluster_urls", e))?;
                let display = format!("cluster://{}", host_ports(urls));
                (Kind::Cluster { client, seeds }, display, 0)
            }
        };
        #[cfg(feature = "tls")]
        tls_provider();
        Ok(Some(Connector {
            kind,
            conn_config,
            display,
            db,
            next_seed: AtomicU64::new(0),
        }))
    }

    /// Where it connects, credentials masked.
    pub(crate) fn display(&self) -> &str {
        &self.display
    }

    /// The logical database (0 on a cluster).
    pub(crate) fn db(&self) -> i64 {
        self.db
    }

    /// Whether keys are spread over hash slots (multi-key calls must be grouped by slot).
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self.kind, Kind::Cluster { .. })
    }

    /// A new connection.
    pub(crate) async fn connect(&self) -> redis::RedisResult<Conn> {
        match &self.kind {
            Kind::Single(client) => client
                .get_multiplexed_async_connection_with_config(&self.conn_config)
                .await
                .map(Conn::Node),
            Kind::Sentinel(sentinel) => {
                // Held across the sentinel round trip: concurrent refills ask once each, in turn.
                let client = sentinel.lock().await.async_get_client().await?;
                client
                    .get_multiplexed_async_connection_with_config(&self.conn_config)
                    .await
                    .map(Conn::Node)
            }
            Kind::Cluster { client, .. } => client.get_async_connection().await.map(Conn::Cluster),
        }
    }

    /// A client for a pub/sub connection: the server itself, the current primary, or the next
    /// seed node of a cluster (each attempt tries another, so a dead node is left behind).
    pub(crate) async fn pubsub_client(&self) -> redis::RedisResult<redis::Client> {
        match &self.kind {
            Kind::Single(client) => Ok(client.clone()),
            Kind::Sentinel(sentinel) => sentinel.lock().await.async_get_client().await,
            Kind::Cluster { seeds, .. } => {
                let i = self.next_seed.fetch_add(1, Ordering::Relaxed) as usize % seeds.len();
                Ok(seeds[i].clone())
            }
        }
    }
}

fn require_tls_match(url_tls: bool, files: bool, setting: &str) -> Result<()> {
    if files && !url_tls {
        return Err(CacheError::Config(format!(
            "TLS files are set but {setting} is not `rediss://`: refusing to connect in plain text"
        )));
    }
    if url_tls && !cfg!(feature = "tls") {
        return Err(CacheError::Config(format!(
            "{setting} is `rediss://` but cache-core was built without its `tls` feature"
        )));
    }
    Ok(())
}

/// The connection info of one URL with the configured user and password applied (the URL's
/// own win: they are the more specific setting).
fn node_info(url: &str, config: &CacheConfig) -> redis::RedisResult<redis::ConnectionInfo> {
    let info = url.into_connection_info()?;
    let mut settings = info.redis_settings().clone();
    if settings.username().is_none() {
        if let Some(user) = &config.redis_username {
            settings = settings.set_username(user);
        }
    }
    if settings.password().is_none() {
        if let Some(pw) = &config.redis_password {
            settings = settings.set_password(pw.expose());
        }
    }
    Ok(info.set_redis_settings(settings))
}

fn open_client(info: redis::ConnectionInfo, tls: Option<&Tls>) -> redis::RedisResult<redis::Client> {
    match tls {
        #[cfg(feature = "tls")]
        Some(t) => redis::Client::build_with_tls(info, t.certificates()),
        _ => redis::Client::open(info),
    }
}

/// Parses a list of node URLs (`setting` names them in errors); whether they use TLS, checked
/// against the TLS files as [`require_tls_match`] does.
fn url_list(
    urls: &[String],
    setting: &str,
    tls_files: bool,
    parse: impl Fn(&str) -> redis::RedisResult<redis::ConnectionInfo>,
) -> Result<(Vec<redis::ConnectionInfo>, bool)> {
    let infos = urls
        .iter()
        .map(|u| parse(u).map_err(|e| CacheError::Config(format!("{setting} {}: {e}", mask(u)))))
        .collect::<Result<Vec<_>>>()?;
    let is_tls = infos
        .iter()
        .any(|i| matches!(i.addr(), ConnectionAddr::TcpTls { .. }));
    require_tls_match(is_tls, tls_files, setting)?;
    Ok((infos, is_tls))
}

/// `host:port,host:port` of a URL list, for display.
fn host_ports(urls: &[String]) -> String {
    urls.iter().map(|u| host_port(u)).collect::<Vec<_>>().join(",")
}

/// `host:port` of a URL, for display.
fn host_port(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    rest.split('/').next().unwrap_or(rest).to_owned()
}

/// A URL with any password masked.
pub(crate) fn mask(url: &str) -> String {
    match url.split_once('@') {
        Some((scheme_user, host)) => match scheme_user.rsplit_once(':') {
            Some((head, _pw)) if head.contains("//") && !head.ends_with(':') => format!("{head}:***@{host}"),
            _ => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// `deadpool`'s manager over a [`Connector`]: creates connections, and pings one before the
/// pool hands it out again.
pub(crate) struct Manager {
    pub(crate) connector: std::sync::Arc<Connector>,
    ping: AtomicU64,
}

impl Manager {
    pub(crate) fn new(connector: std::sync::Arc<Connector>) -> Self {
        Manager {
            connector,
            ping: AtomicU64::new(0),
        }
    }
}

impl deadpool::managed::Manager for Manager {
    type Type = Conn;
    type Error = redis::RedisError;

    fn create(&self) -> impl Future<Output = redis::RedisResult<Conn>> + Send {
        self.connector.connect()
    }

    async fn recycle(&self, conn: &mut Conn, _: &Metrics) -> RecycleResult<redis::RedisError> {
        let n = self.ping.fetch_add(1, Ordering::Relaxed).to_string();
        let echoed: String = redis::cmd("PING").arg(&n).query_async(conn).await?;
        if echoed == n {
            Ok(())
        } else {
            Err(RecycleError::message("unexpected PING reply"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_masks_passwords() {
        assert_eq!(mask("redis://u:secret@h:1/0"), "redis://u:***@h:1/0");
        assert_eq!(mask("redis://:secret@h:1"), "redis://:***@h:1");
        assert_eq!(mask("redis://h:1"), "redis://h:1");
        assert_eq!(host_port("rediss://u:p@h:6380/2"), "h:6380");
    }
}
