//! The response cache: one interface, two back-ends. Redis (shared between
//! replicas) when `cache.redis_url` is set, otherwise an in-process moka cache.
//!
//! Redis is an optimisation, never a dependency: every Redis call has a timeout,
//! and any failure counts as a miss (reads) or is dropped (writes), so requests
//! are still answered, uncached, while Redis is down. The connection manager
//! reconnects by itself; when Redis was down at start-up a background task keeps
//! trying. Callers put the index/model generation into every key, so a change
//! makes old entries unreachable rather than stale.

use std::sync::Arc;
use std::time::Duration;

use moka::future::Cache as MemoryCache;
use redis::AsyncCommands;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use tokio::sync::RwLock;

use crate::settings::CacheSettings;

#[derive(Clone)]
pub struct Cache {
    backend: Backend,
    prefix: Arc<str>,
    ttl: Duration,
}

#[derive(Clone)]
enum Backend {
    Memory(MemoryCache<String, Arc<[u8]>>),
    Redis(Arc<RedisBackend>),
}

struct RedisBackend {
    client: redis::Client,
    manager: RwLock<Option<ConnectionManager>>,
    timeout: Duration,
}

/// What `/health/ready` reports about the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CacheState {
    Up,
    Down,
}

impl Cache {
    /// Builds the configured cache. With Redis configured this never fails for a
    /// missing server: it starts disconnected and connects in the background.
    pub async fn connect(settings: &CacheSettings) -> Cache {
        let ttl = Duration::from_secs(settings.ttl_seconds);
        let prefix: Arc<str> = settings.key_prefix.as_str().into();
        let Some(url) = &settings.redis_url else {
            let memory = MemoryCache::builder().max_capacity(settings.memory_capacity).time_to_live(ttl).build();
            return Cache { backend: Backend::Memory(memory), prefix, ttl };
        };
        let client = redis::Client::open(url.expose()).expect("checked when settings were loaded");
        let backend = Arc::new(RedisBackend {
            client,
            manager: RwLock::new(None),
            timeout: Duration::from_millis(settings.redis_timeout_ms),
        });
        if !backend.try_connect().await {
            tracing::warn!("redis is not reachable; answering uncached and reconnecting in the background");
            let background = Arc::downgrade(&backend);
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    let Some(backend) = background.upgrade() else {
                        return;
                    };
                    if backend.try_connect().await {
                        tracing::info!("redis connected");
                        return;
                    }
                }
            });
        }
        Cache { backend: Backend::Redis(backend), prefix, ttl }
    }

    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Memory(_) => "memory",
            Backend::Redis(_) => "redis",
        }
    }

    /// The full key of an entry: prefix, generation, kind, and the caller's key.
    pub fn key(&self, generation: impl std::fmt::Display, kind: &str, request_key: &str) -> String {
        format!("{}:g{generation}:{kind}:{request_key}", self.prefix)
    }

    pub async fn get(&self, key: &str) -> Option<Arc<[u8]>> {
        let value = match &self.backend {
            Backend::Memory(memory) => memory.get(key).await,
            Backend::Redis(redis) => redis.get(key).await.map(Arc::from),
        };
        metrics::counter!("klynge_cache_requests_total", "result" => if value.is_some() { "hit" } else { "miss" })
            .increment(1);
        value
    }

    pub async fn set(&self, key: String, value: Arc<[u8]>) {
        match &self.backend {
            Backend::Memory(memory) => memory.insert(key, value).await,
            Backend::Redis(redis) => redis.set(&key, &value, self.ttl).await,
        }
    }

    pub async fn state(&self) -> CacheState {
        match &self.backend {
            Backend::Memory(_) => CacheState::Up,
            Backend::Redis(redis) => redis.ping().await,
        }
    }
}

impl RedisBackend {
    async fn try_connect(&self) -> bool {
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.timeout.max(Duration::from_millis(500))))
            .set_response_timeout(Some(self.timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(2));
        let attempt = tokio::time::timeout(
            Duration::from_secs(2),
            ConnectionManager::new_with_config(self.client.clone(), config),
        )
        .await;
        match attempt {
            Ok(Ok(manager)) => {
                *self.manager.write().await = Some(manager);
                true
            }
            _ => false,
        }
    }

    async fn connection(&self) -> Option<ConnectionManager> {
        self.manager.read().await.clone()
    }

    async fn get(&self, key: &str) -> Option<Vec<u8>> {
        let mut connection = self.connection().await?;
        match tokio::time::timeout(self.timeout, connection.get::<_, Option<Vec<u8>>>(key)).await {
            Ok(Ok(value)) => value,
            Ok(Err(error)) => {
                tracing::debug!(%error, "redis get failed; treating as a miss");
                metrics::counter!("klynge_cache_errors_total").increment(1);
                None
            }
            Err(_) => {
                metrics::counter!("klynge_cache_errors_total").increment(1);
                None
            }
        }
    }

    async fn set(&self, key: &str, value: &[u8], ttl: Duration) {
        let Some(mut connection) = self.connection().await else {
            return;
        };
        let write = connection.set_ex::<_, _, ()>(key, value, ttl.as_secs());
        if !matches!(tokio::time::timeout(self.timeout, write).await, Ok(Ok(()))) {
            metrics::counter!("klynge_cache_errors_total").increment(1);
        }
    }

    async fn ping(&self) -> CacheState {
        let Some(mut connection) = self.connection().await else {
            return CacheState::Down;
        };
        let ping = redis::cmd("PING");
        match tokio::time::timeout(self.timeout, ping.query_async::<String>(&mut connection)).await {
            Ok(Ok(_)) => CacheState::Up,
            _ => CacheState::Down,
        }
    }
}
