//! The response cache: one interface, two back-ends. Redis (shared between
//! replicas) when `cache.redis_url` is set, otherwise an in-process moka cache.
//!
//! Redis is an optimisation, never a dependency: every Redis call has a timeout,
//! and any failure counts as a miss (reads) or is dropped (writes), so requests
//! are still answered, uncached, while Redis is down. A failure opens a circuit
//! breaker: requests skip Redis at once (no timeout to wait out) while a
//! background probe pings it every half second and closes the breaker when it
//! answers. When Redis was down at start-up a background task keeps connecting.
//!
//! Callers put the index/model generation into every key, so a change makes old
//! entries unreachable rather than stale. The in-process cache is bounded in
//! bytes (keys and bodies), and drops a kind's entries of past generations as
//! soon as a newer generation of that kind is asked for.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
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
    /// The newest generation asked for, per kind of entry (in-process cache only).
    generations: Arc<Mutex<HashMap<String, String>>>,
}

/// Bytes counted per in-process entry beyond its key and body (moka's node, the
/// `Arc`, the hash map slot), so that many tiny entries cannot overrun the bound.
const ENTRY_OVERHEAD: usize = 160;

/// How often a tripped breaker pings Redis to see whether it is back.
const PROBE_EVERY: Duration = Duration::from_millis(500);

#[derive(Clone)]
enum Backend {
    Memory(MemoryCache<String, Arc<[u8]>>),
    Redis(Arc<RedisBackend>),
}

struct RedisBackend {
    client: redis::Client,
    manager: RwLock<Option<ConnectionManager>>,
    timeout: Duration,
    /// The circuit breaker: false from a failure until a probe's ping succeeds.
    healthy: AtomicBool,
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
        let generations = Arc::default();
        let Some(url) = &settings.redis_url else {
            let memory = MemoryCache::builder()
                .max_capacity(settings.memory_bytes)
                .weigher(|key: &String, value: &Arc<[u8]>| {
                    u32::try_from(key.len() + value.len() + ENTRY_OVERHEAD).unwrap_or(u32::MAX)
                })
                .support_invalidation_closures()
                .time_to_live(ttl)
                .build();
            return Cache { backend: Backend::Memory(memory), prefix, ttl, generations };
        };
        let client = redis::Client::open(url.expose()).expect("checked when settings were loaded");
        let backend = Arc::new(RedisBackend {
            client,
            manager: RwLock::new(None),
            timeout: Duration::from_millis(settings.redis_timeout_ms),
            healthy: AtomicBool::new(true),
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
        Cache { backend: Backend::Redis(backend), prefix, ttl, generations }
    }

    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Memory(_) => "memory",
            Backend::Redis(_) => "redis",
        }
    }

    /// The full key of an entry: prefix, generation, kind, and the caller's key.
    pub fn key(&self, generation: impl std::fmt::Display, kind: &str, request_key: &str) -> String {
        let generation = generation.to_string();
        if let Backend::Memory(memory) = &self.backend {
            self.forget_past_generations(memory, &generation, kind);
        }
        format!("{}:g{generation}:{kind}:{request_key}", self.prefix)
    }

    /// Entries of a kind's older generations can never be asked for again (keys
    /// carry the generation): drop them now rather than when the byte bound or
    /// their TTL pushes them out.
    fn forget_past_generations(&self, memory: &MemoryCache<String, Arc<[u8]>>, generation: &str, kind: &str) {
        let mut newest = self.generations.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let previous = match newest.get_mut(kind) {
            Some(known) if known == generation => return,
            Some(known) => std::mem::replace(known, generation.to_string()),
            None => {
                newest.insert(kind.to_string(), generation.to_string());
                return;
            }
        };
        drop(newest);
        let stale = format!("{}:g{previous}:{kind}:", self.prefix);
        if let Err(error) = memory.invalidate_entries_if(move |key, _| key.starts_with(&stale)) {
            tracing::debug!(%error, "cannot drop past generations' entries");
        }
    }

    /// Bytes held by the in-process cache (keys, bodies and per-entry overhead);
    /// `None` for Redis.
    pub fn memory_bytes(&self) -> Option<u64> {
        match &self.backend {
            Backend::Memory(memory) => Some(memory.weighted_size()),
            Backend::Redis(_) => None,
        }
    }

    /// Lets the in-process cache finish pending evictions and invalidations now
    /// (they otherwise run as a side effect of later reads and writes).
    pub async fn run_pending_tasks(&self) {
        if let Backend::Memory(memory) = &self.backend {
            memory.run_pending_tasks().await;
        }
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

    async fn get(self: &Arc<Self>, key: &str) -> Option<Vec<u8>> {
        if !self.healthy.load(Ordering::Acquire) {
            return None;
        }
        let mut connection = self.connection().await?;
        match tokio::time::timeout(self.timeout, connection.get::<_, Option<Vec<u8>>>(key)).await {
            Ok(Ok(value)) => value,
            Ok(Err(error)) => {
                tracing::debug!(%error, "redis get failed; treating as a miss");
                self.trip();
                None
            }
            Err(_) => {
                self.trip();
                None
            }
        }
    }

    async fn set(self: &Arc<Self>, key: &str, value: &[u8], ttl: Duration) {
        if !self.healthy.load(Ordering::Acquire) {
            return;
        }
        let Some(mut connection) = self.connection().await else {
            return;
        };
        let write = connection.set_ex::<_, _, ()>(key, value, ttl.as_secs());
        if !matches!(tokio::time::timeout(self.timeout, write).await, Ok(Ok(()))) {
            self.trip();
        }
    }

    /// Opens the breaker after a failed call: until a probe's ping succeeds, every
    /// request skips Redis at once instead of waiting out its own timeout.
    fn trip(self: &Arc<Self>) {
        metrics::counter!("klynge_cache_errors_total").increment(1);
        if !self.healthy.swap(false, Ordering::AcqRel) {
            return;
        }
        tracing::warn!("redis failed; skipping it until it answers a ping");
        metrics::gauge!("klynge_cache_breaker_open").set(1.0);
        let backend = Arc::downgrade(self);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(PROBE_EVERY).await;
                let Some(backend) = backend.upgrade() else {
                    return;
                };
                if backend.ping().await == CacheState::Up {
                    backend.healthy.store(true, Ordering::Release);
                    metrics::gauge!("klynge_cache_breaker_open").set(0.0);
                    tracing::info!("redis answers again; using it");
                    return;
                }
            }
        });
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

#[cfg(test)]
mod tests {
    use super::*;

    fn memory_settings(bytes: u64) -> CacheSettings {
        CacheSettings {
            redis_url: None,
            key_prefix: "t".into(),
            ttl_seconds: 3600,
            memory_bytes: bytes,
            redis_timeout_ms: 250,
        }
    }

    #[tokio::test]
    async fn the_memory_cache_is_bounded_in_bytes() {
        let cache = Cache::connect(&memory_settings(1024 * 1024)).await;
        for i in 0..200 {
            let key = cache.key(1, "partners", &format!("request-{i}"));
            cache.set(key, vec![7u8; 64 * 1024].into()).await;
        }
        cache.run_pending_tasks().await;
        let held = cache.memory_bytes().expect("memory cache");
        assert!(held <= 1024 * 1024, "{held} bytes held");
        assert!(held > 0);
    }

    #[tokio::test]
    async fn a_newer_generation_drops_the_older_ones_of_its_kind() {
        let cache = Cache::connect(&memory_settings(64 * 1024 * 1024)).await;
        let old = cache.key("3m2", "partners", "a");
        cache.set(old.clone(), vec![1u8; 10].into()).await;
        let search = cache.key(3, "search", "a");
        cache.set(search.clone(), vec![1u8; 10].into()).await;
        assert!(cache.get(&old).await.is_some());
        let new = cache.key("4m2", "partners", "a");
        cache.set(new.clone(), vec![2u8; 10].into()).await;
        cache.run_pending_tasks().await;
        assert!(cache.get(&old).await.is_none(), "past generation dropped");
        assert!(cache.get(&new).await.is_some());
        assert!(cache.get(&search).await.is_some(), "other kinds keep theirs");
    }
}
