//! The response cache end to end: a real `redis-server` per test (started,
//! killed and restarted on the same port), and the in-process cache.

mod common;

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use common::{RedisServer, Reply, TestApp, catalogue, collaborations, profile};

const PARTNERS: &str = "/v1/firms/dk-dairy/partners?k=10";
const SEARCH: &str = "/v1/firms?q=organic%20dairy&country=DK";

/// The keys the service stored in Redis, read with a client of our own.
fn redis_keys(redis: &RedisServer) -> Vec<String> {
    let client = redis::Client::open(redis.url()).expect("redis url");
    let mut connection = client.get_connection_with_timeout(Duration::from_secs(2)).expect("connect to redis");
    let mut keys: Vec<String> = redis::cmd("KEYS").arg("*").query(&mut connection).expect("KEYS");
    keys.sort();
    keys
}

fn flush_redis(redis: &RedisServer) {
    let client = redis::Client::open(redis.url()).expect("redis url");
    let mut connection = client.get_connection_with_timeout(Duration::from_secs(2)).expect("connect to redis");
    let () = redis::cmd("FLUSHALL").query(&mut connection).expect("FLUSHALL");
}

/// Two identical requests: the first computes (`miss`), the second is served
/// from the cache (`hit`) with the same body.
async fn assert_miss_then_hit(app: &TestApp, path: &str) -> Reply {
    let first = app.get(path).await;
    first.assert_status(200);
    assert_eq!(first.cache(), "miss", "first GET {path}");
    let second = app.get(path).await;
    second.assert_status(200);
    assert_eq!(second.cache(), "hit", "second GET {path}");
    assert_eq!(first.body, second.body, "a hit answers what the miss computed");
    second
}

async fn cache_state(app: &TestApp) -> Value {
    let ready = app.get("/health/ready").await;
    ready.assert_status(200);
    let ready = ready.json();
    assert_eq!(ready["status"], "ready", "the service stays ready whatever the cache does: {ready}");
    ready["cache"].clone()
}

/// Polls until two identical GETs give a hit again (the cache works), for at most `seconds`.
async fn wait_until_cached(app: &TestApp, path: &str, seconds: u64) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        let first = app.get(path).await;
        first.assert_status(200);
        let second = app.get(path).await;
        second.assert_status(200);
        if second.cache() == "hit" {
            assert_eq!(first.body, second.body);
            return;
        }
        assert!(Instant::now() < deadline, "GET {path} was not cached again within {seconds} s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Asks `path` until the (restarted, empty) Redis holds an entry of `kind`:
/// the breaker has closed and answers are written there again.
async fn wait_for_redis_entry(app: &TestApp, redis: &RedisServer, path: &str, kind: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        app.get(path).await.assert_status(200);
        if redis_keys(redis).iter().any(|key| key.contains(kind)) {
            return;
        }
        assert!(Instant::now() < deadline, "no {kind} entry reached Redis within 30 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn wait_for_cache_state(app: &TestApp, state: &str, seconds: u64) {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        let cache = cache_state(app).await;
        if cache["state"] == state {
            assert_eq!(cache["backend"], "redis");
            return;
        }
        assert!(Instant::now() < deadline, "the cache did not report `{state}` within {seconds} s: {cache}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn redis_caches_answers_and_survives_an_outage() {
    let mut redis = RedisServer::start();
    let app = TestApp::builder().redis(redis.url()).spawn().await;
    assert_eq!(cache_state(&app).await, json!({"backend": "redis", "state": "up"}));
    app.load_catalogue().await;

    assert_miss_then_hit(&app, PARTNERS).await;
    assert_miss_then_hit(&app, SEARCH).await;
    let shortlist = json!({"opportunity": "cold-chain logistics for dairy", "k": 5});
    let (first, second) =
        (app.query_json("/v1/shortlists", &shortlist).await, app.query_json("/v1/shortlists", &shortlist).await);
    assert_eq!((first.cache(), second.cache()), ("miss", "hit"));
    let keys = redis_keys(&redis);
    for kind in [":partners:", ":search:", ":shortlist:"] {
        assert!(keys.iter().any(|k| k.starts_with("klynge:g") && k.contains(kind)), "no {kind} entry in {keys:?}");
    }

    // The answers really live in Redis: emptying it makes the next request a miss.
    flush_redis(&redis);
    assert_miss_then_hit(&app, PARTNERS).await;

    // A profile change moves the generation, so old entries are not served.
    let mut changed = profile("dk-dairy");
    changed["description"] = json!("Organic dairy now also making skyr and plant-based cheese.");
    app.put_json("/v1/firms/dk-dairy", &changed).await.assert_status(200);
    assert_miss_then_hit(&app, PARTNERS).await;
    assert_miss_then_hit(&app, SEARCH).await;
    let generations: std::collections::BTreeSet<String> =
        redis_keys(&redis).iter().filter_map(|k| k.split(':').nth(1).map(str::to_string)).collect();
    assert!(generations.len() >= 2, "entries of two generations: {generations:?}");

    // Redis goes away: answers still come, from the in-process standby that
    // every answer was also written to, and readiness says so.
    redis.stop();
    for path in [PARTNERS, SEARCH] {
        let reply = app.get(path).await;
        reply.assert_status(200);
        assert_eq!(reply.cache(), "hit", "GET {path}: the standby answers while Redis is down");
    }
    let new_question = json!({"opportunity": "whey protein from cheese-making by-products", "k": 5});
    let (first, second) =
        (app.query_json("/v1/shortlists", &new_question).await, app.query_json("/v1/shortlists", &new_question).await);
    assert_eq!((first.cache(), second.cache()), ("miss", "hit"), "new answers are cached in the standby");
    app.put_json("/v1/firms/while-down", &json!({"name": "Written while Redis is down"})).await.assert_status(200);
    app.get("/v1/firms/while-down").await.assert_status(200);
    assert_miss_then_hit(&app, SEARCH).await;
    let cache = cache_state(&app).await;
    assert_eq!(cache, json!({"backend": "redis", "state": "down"}));

    // Redis is back on the same port: caching resumes by itself.
    redis.start_again();
    wait_for_cache_state(&app, "up", 30).await;
    wait_for_redis_entry(&app, &redis, PARTNERS, ":partners:").await;
    wait_for_redis_entry(&app, &redis, SEARCH, ":search:").await;
    wait_until_cached(&app, PARTNERS, 30).await;
}

#[tokio::test]
async fn redis_down_at_start_is_connected_later() {
    let mut redis = RedisServer::start();
    redis.stop();
    let app = TestApp::builder().redis(redis.url()).spawn().await;
    assert_eq!(cache_state(&app).await, json!({"backend": "redis", "state": "down"}));
    app.upsert(&catalogue()).await;
    app.collaborate(&collaborations()).await;
    app.train().await;
    assert_miss_then_hit(&app, SEARCH).await;

    redis.start_again();
    wait_for_cache_state(&app, "up", 30).await;
    wait_for_redis_entry(&app, &redis, PARTNERS, ":partners:").await;
    assert_miss_then_hit(&app, "/v1/firms/dk-dairy/partners?k=3").await;
}

#[tokio::test]
async fn in_process_cache_without_redis() {
    let app = TestApp::spawn().await;
    assert_eq!(cache_state(&app).await, json!({"backend": "memory", "state": "up"}));
    app.load_catalogue().await;

    assert_miss_then_hit(&app, PARTNERS).await;
    assert_miss_then_hit(&app, SEARCH).await;
    // Different parameters are different entries.
    assert_miss_then_hit(&app, "/v1/firms/dk-dairy/partners?k=5").await;
    let request =
        json!({"opportunity": "recyclable packaging for cheese", "size": {"min": 5, "max": 6}, "alternatives": 1});
    let (first, second) =
        (app.query_json("/v1/networks", &request).await, app.query_json("/v1/networks", &request).await);
    first.assert_status(200);
    assert_eq!((first.cache(), second.cache()), ("miss", "hit"));
    assert_eq!(first.body, second.body);

    // A write invalidates by generation; a refit does too.
    app.put_json("/v1/firms/newcomer", &json!({"name": "Newcomer", "country": "DK"})).await.assert_status(200);
    assert_miss_then_hit(&app, PARTNERS).await;
    assert_miss_then_hit(&app, SEARCH).await;
    app.train().await;
    assert_miss_then_hit(&app, PARTNERS).await;
    let reply = app.get(SEARCH).await;
    assert_eq!(reply.cache(), "hit", "a refit leaves search (index only) cached");
}
