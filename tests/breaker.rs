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
    // ... and the next ones do not touch Redis at all.
    for i in 0..30 {
        let reply = app.get(&format!("/v1/firms?q=dairy&limit={}", 4 + i % 10)).await;
        reply.assert_status(200);
        assert_eq!(reply.cache(), "miss");
    }
    let after = cache_errors(&app.get("/metrics").await.body);
    assert!(after - tripped <= 2.0, "30 requests with Redis down cost {} Redis failures", after - tripped);

    redis.start_again();
    let back = app.poll_until("/v1/firms?q=dairy", 20, |reply| reply.header("x-cache") == Some("hit")).await;
    assert_eq!(back.cache(), "hit", "Redis is used again once it answers");
}
