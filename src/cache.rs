//! The response cache: an in-process moka cache, bounded in bytes, and Redis
//! (shared between replicas) in front of it when `cache.redis_url` is set.
//!
//! Redis is an optimisation, never a dependency: every Redis call has a timeout,
//! and a failure opens a circuit breaker, so requests skip Redis at once (no
//! timeout to wait out) while a background probe pings it every half second and
//! closes the breaker when it answers. When Redis was down at start-up a
//! background task keeps connecting. While Redis is unavailable, the in-process
//! cache answers: every answer is also written there (a warm standby), so an
//! outage costs neither errors nor the hit rate. While Redis is up it alone is
//! read, so replicas share one cache and flushing Redis really empties it.
//!
//! Callers put the index/model generation into every key, so a change makes old
//! entries unreachable rather than stale. The in-process cache counts keys and
//! bodies against its bound, and drops a kind's entries of past generations as
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
    /// The whole cache without Redis; the standby with it.
    memory: MemoryCache<String, Arc<[u8]>>,
    /// False when `cache.memory_capacity` is 0: nothing is kept in process.
    memory_on: bool,
    redis: Option<Arc<RedisBackend>>,
    prefix: Arc<str>,
    ttl: Duration,
    /// The newest generation asked for, per kind of entry.
    generations: Arc<Mutex<HashMap<String, String>>>,
}

/// Bytes counted per in-process entry beyond its key and body (moka's node, the
/// `Arc`, the hash map slot), so that many tiny entries cannot overrun the bound.
const ENTRY_OVERHEAD: usize = 160;

/// How often a tripped breaker pings Redis to see whether it is back.
const PROBE_EVERY: Duration = Duration::from_millis(500);

struct RedisBackend {
    client: redis::Client,
    manager: RwLock<Option<ConnectionManager>>,
    timeout: Duration,
    /// The circuit breaker: false from a failure until a probe's ping succeeds.
    healthy: AtomicBool,
    /// False until the first connection is made.
    connected: AtomicBool,
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
        let memory = MemoryCache::builder()
            .max_capacity(settings.memory_bytes)
            .weigher(|key: &String, value: &Arc<[u8]>| {
                u32::try_from(key.len() + value.len() + ENTRY_OVERHEAD).unwrap_or(u32::MAX)
            })
            .support_invalidation_closures()
            .time_to_live(ttl)
            .build();
        let mut cache = Cache {
            memory,
            memory_on: settings.memory_capacity != Some(0),
            redis: None,
            prefix: settings.key_prefix.as_str().into(),
            ttl,
            generations: Arc::default(),
        };
        let Some(url) = &settings.redis_url else {
            return cache;
        };
        let client = redis::Client::open(url.expose()).expect("checked when settings were loaded");
        let backend = Arc::new(RedisBackend {
            client,
            manager: RwLock::new(None),
            timeout: Duration::from_millis(settings.redis_timeout_ms),
            healthy: AtomicBool::new(true),
            connected: AtomicBool::new(false),
        });
        if !backend.try_connect().await {
            tracing::warn!(
                "redis is not reachable; answering from the in-process cache and reconnecting in the background"
            );
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
        cache.redis = Some(backend);
        cache
    }

    pub fn backend_name(&self) -> &'static str {
        match self.redis {
            None => "memory",
            Some(_) => "redis",
        }
    }

    /// The full key of an entry: prefix, generation, kind, and the caller's key.
    pub fn key(&self, generation: impl std::fmt::Display, kind: &str, request_key: &str) -> String {
        let generation = generation.to_string();
        self.forget_past_generations(&generation, kind);
        format!("{}:g{generation}:{kind}:{request_key}", self.prefix)
    }

    /// Entries of a kind's older generations can never be asked for again (keys
    /// carry the generation): drop them now rather than when the byte bound or
    /// their TTL pushes them out.
    fn forget_past_generations(&self, generation: &str, kind: &str) {
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
        if let Err(error) = self.memory.invalidate_entries_if(move |key, _| key.starts_with(&stale)) {
            tracing::debug!(%error, "cannot drop past generations' entries");
        }
    }

    /// Bytes held by the in-process cache (keys, bodies and per-entry overhead).
    pub fn memory_bytes(&self) -> u64 {
        self.memory.weighted_size()
    }

    /// Lets the in-process cache finish pending evictions and invalidations now
    /// (they otherwise run as a side effect of later reads and writes).
    pub async fn run_pending_tasks(&self) {
        self.memory.run_pending_tasks().await;
    }

    pub async fn get(&self, key: &str) -> Option<Arc<[u8]>> {
        let value = match self.available_redis() {
            Some(redis) => match redis.get(key).await {
                Ok(value) => value.map(Arc::from),
                // The call just failed and tripped the breaker: the standby answers.
                Err(()) => self.memory_get(key).await,
            },
            None => self.memory_get(key).await,
        };
        metrics::counter!("klynge_cache_requests_total", "result" => if value.is_some() { "hit" } else { "miss" })
            .increment(1);
        value
    }

    pub async fn set(&self, key: String, value: Arc<[u8]>) {
        if let Some(redis) = self.available_redis() {
            redis.set(&key, &value, self.ttl).await;
        }
        if !self.memory_on {
            return;
        }
        self.memory.insert(key, value).await;
        metrics::gauge!("klynge_cache_memory_bytes").set(self.memory.weighted_size() as f64);
    }

    async fn memory_get(&self, key: &str) -> Option<Arc<[u8]>> {
        if self.memory_on { self.memory.get(key).await } else { None }
    }

    pub async fn state(&self) -> CacheState {
        match &self.redis {
            None => CacheState::Up,
            Some(redis) => redis.ping().await,
        }
    }

    /// Redis when it is configured, connected and its breaker is closed.
    fn available_redis(&self) -> Option<&Arc<RedisBackend>> {
        self.redis
            .as_ref()
            .filter(|redis| redis.connected.load(Ordering::Acquire) && redis.healthy.load(Ordering::Acquire))
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
                self.connected.store(true, Ordering::Release);
                true
            }
            _ => false,
        }
    }

    async fn connection(&self) -> Option<ConnectionManager> {
        self.manager.read().await.clone()
    }

    /// `Err` when the call failed (and tripped the breaker), so the caller can
    /// ask the standby instead of counting a miss.
    async fn get(self: &Arc<Self>, key: &str) -> Result<Option<Vec<u8>>, ()> {
        let Some(mut connection) = self.connection().await else {
            return Err(());
        };
        match tokio::time::timeout(self.timeout, connection.get::<_, Option<Vec<u8>>>(key)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(error)) => {
                tracing::debug!(%error, "redis get failed; answering from the standby");
                self.trip();
                Err(())
            }
            Err(_) => {
                self.trip();
                Err(())
            }
        }
    }

    async fn set(self: &Arc<Self>, key: &str, value: &[u8], ttl: Duration) {
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
            memory_capacity: None,
            redis_timeout_ms: 250,
        }
    }

    #[tokio::test]
    async fn a_capacity_of_zero_keeps_nothing_in_process() {
        let cache = Cache::connect(&CacheSettings { memory_capacity: Some(0), ..memory_settings(1 << 20) }).await;
        cache.set("t:g1:partners:a".into(), Arc::from(&b"body"[..])).await;
        assert_eq!(cache.get("t:g1:partners:a").await, None);
        let on = Cache::connect(&CacheSettings { memory_capacity: Some(10), ..memory_settings(1 << 20) }).await;
        on.set("t:g1:partners:a".into(), Arc::from(&b"body"[..])).await;
        assert!(on.get("t:g1:partners:a").await.is_some());
    }

    #[tokio::test]
    async fn the_memory_cache_is_bounded_in_bytes() {
        let cache = Cache::connect(&memory_settings(1024 * 1024)).await;
        for i in 0..200 {
            let key = cache.key(1, "partners", &format!("request-{i}"));
            cache.set(key, vec![7u8; 64 * 1024].into()).await;
        }
        cache.run_pending_tasks().await;
        let held = cache.memory_bytes();
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
