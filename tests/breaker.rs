//! The Redis circuit breaker, in a test binary of its own so that the process's
//! metrics count only this test's Redis failures: once Redis has failed, requests
//! skip it (no per-request timeout) until a ping finds it back.

mod common;

use common::{RedisServer, TestApp};

fn cache_errors(metrics: &str) -> f64 {
    metrics
        .lines()
        .find(|line| line.starts_with("klynge_cache_errors_total"))
        .and_then(|line| line.split_whitespace().last())
        .and_then(|value| value.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn redis_down_is_skipped_until_it_answers_again() {
    let mut redis = RedisServer::start();
    let app = TestApp::builder().redis(redis.url()).spawn().await;
    app.load_catalogue().await;
    app.get("/v1/firms?q=dairy").await.assert_status(200);
    assert_eq!(app.get("/v1/firms?q=dairy").await.cache(), "hit");

    redis.stop();
    // The first request after the outage trips the breaker ...
    app.get("/v1/firms?q=dairy&limit=3").await.assert_status(200);
    let tripped = cache_errors(&app.get("/metrics").await.body);
    assert!(tripped >= 1.0, "the failure is counted");
    // ... and the next ones do not touch Redis at all: the in-process standby
    // answers (misses first, then hits for repeated questions).
    for i in 0..30 {
        let reply = app.get(&format!("/v1/firms?q=dairy&limit={}", 4 + i % 10)).await;
        reply.assert_status(200);
        assert_eq!(reply.cache(), if i < 10 { "miss" } else { "hit" }, "request {i}");
    }
    let after = cache_errors(&app.get("/metrics").await.body);
    assert!(after - tripped <= 2.0, "30 requests with Redis down cost {} Redis failures", after - tripped);

    redis.start_again();
    // The restarted Redis is empty: once the breaker closes, answers go there again.
    let client = redis::Client::open(redis.url()).expect("redis url");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        app.get("/v1/firms?q=dairy&limit=20").await.assert_status(200);
        let mut connection = client.get_connection_with_timeout(std::time::Duration::from_secs(2)).expect("connect");
        let keys: Vec<String> = redis::cmd("KEYS").arg("*:search:*").query(&mut connection).expect("KEYS");
        if !keys.is_empty() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "Redis is used again once it answers");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}
