//! The nightly batch refresh end to end: the job API over HTTP (202, progress,
//! 409 while running, failure when Redis is down), the precomputed answers it
//! leaves behind, and resuming after a kill with the same final bytes.

mod common;

use std::sync::Arc;

use common::{RedisServer, TestApp, catalogue, collaborations};
use klynge::engine::Engine;
use klynge::refresh::{self, Progress, RefreshOptions};
use klynge_index::FirmIndex;
use reqwest::Method;
use serde_json::Value;

async fn start_refresh(app: &TestApp) -> String {
    let reply = common::Reply::read(app.authed(Method::POST, "/v1/admin/refresh").send().await).await;
    reply.assert_status(202);
    let job = reply.json();
    assert_eq!(job["status"], "running", "{job}");
    job["id"].as_str().expect("job id").to_string()
}

async fn wait_for_job(app: &TestApp, id: &str) -> Value {
    let path = format!("/v1/admin/jobs/{id}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let reply = common::Reply::read(app.authed(Method::GET, &path).send().await).await;
        reply.assert_status(200);
        let job = reply.json();
        if job["status"] != "running" {
            return job;
        }
        assert!(std::time::Instant::now() < deadline, "the refresh did not finish: {job}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_refresh_on_an_empty_index_finishes_at_once_with_zero_firms() {
    let app = TestApp::spawn().await;
    let id = start_refresh(&app).await;
    let job = wait_for_job(&app, &id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["outcome"]["firms"], 0, "{job}");
}

#[tokio::test]
async fn partners_are_served_from_the_refresh_and_match_the_live_ranking() {
    let app = TestApp::spawn().await;
    app.load_catalogue().await;
    let live = app.get("/v1/firms/dk-dairy/partners?k=10").await;
    live.assert_status(200);
    assert_eq!(live.cache(), "miss");

    let id = start_refresh(&app).await;
    let job = wait_for_job(&app, &id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    assert_eq!(job["outcome"]["firms"], catalogue().len(), "{job}");
    assert_eq!(job["progress"]["firms_done"], catalogue().len(), "{job}");

    let precomputed = app.get("/v1/firms/dk-dairy/partners?k=10").await;
    precomputed.assert_status(200);
    assert_eq!(precomputed.cache(), "precomputed");
    assert_eq!(precomputed.json()["partners"], live.json()["partners"], "same ranking, scores and reasons");

    // A filtered request is not what the refresh computed: answered live.
    let filtered = app.get("/v1/firms/dk-dairy/partners?k=10&country=DK").await;
    filtered.assert_status(200);
    assert_ne!(filtered.cache(), "precomputed");

    // A profile change makes the precomputed results stale until the next refresh.
    app.put_json("/v1/firms/dk-pack", &common::profile("dk-pack")).await.assert_status(200);
    app.train().await;
    let after = app.get("/v1/firms/dk-dairy/partners?k=10").await;
    after.assert_status(200);
    assert_ne!(after.cache(), "precomputed");
}

#[tokio::test]
async fn networks_around_firms_are_served_from_the_refresh_and_match_live_assembly() {
    let app = TestApp::builder().refresh_networks().spawn().await;
    app.load_catalogue().await;
    let live = app.get("/v1/firms/dk-dairy/network").await;
    live.assert_status(200);
    assert_eq!(live.cache(), "miss");
    assert_eq!(app.get("/v1/firms/dk-dairy/network").await.cache(), "hit");
    let members = |reply: &common::Reply| -> Vec<Value> {
        reply.json()["network"]["members"].as_array().expect("members").iter().map(|m| m["id"].clone()).collect()
    };
    assert!(members(&live).len() >= 5, "{}", live.json());
    assert_eq!(members(&live)[0], "dk-dairy", "the firm leads its own network");

    let id = start_refresh(&app).await;
    let job = wait_for_job(&app, &id).await;
    assert_eq!(job["status"], "succeeded", "{job}");
    let precomputed = app.get("/v1/firms/dk-dairy/network").await;
    precomputed.assert_status(200);
    assert_eq!(precomputed.cache(), "precomputed");
    assert_eq!(precomputed.json()["network"], live.json()["network"], "same members, explanations and score");

    let csv = app.request(Method::GET, "/v1/firms/dk-dairy/network").header("accept", "text/csv").send().await;
    let csv = common::Reply::read(csv).await;
    csv.assert_status(200);
    assert!(csv.body.starts_with("network,network_score,status,id"), "{}", csv.body);
    assert_eq!(csv.body.lines().count(), members(&live).len() + 1, "{}", csv.body);

    app.get("/v1/firms/no-such-firm/network").await.assert_error(404, "not_found");
    app.get("/v1/firms/bad%20id/network").await.assert_status(422);
    app.get("/v1/firms/dk-dairy/network?size=9").await.assert_error(400, "bad_query");
}

#[tokio::test]
async fn a_network_that_cannot_be_built_is_422_with_the_reason() {
    let app = TestApp::spawn().await;
    // Three firms cannot make a network of at least five.
    app.upsert(&[common::profile("dk-dairy"), common::profile("dk-pack"), common::profile("dk-coldchain")]).await;
    app.train().await;
    let reply = app.get("/v1/firms/dk-dairy/network").await;
    let error = reply.assert_error(422, "validation_failed");
    assert!(!error["details"]["reason"].as_str().unwrap_or_default().is_empty(), "{}", reply.body);
}

#[tokio::test]
async fn unknown_jobs_are_404_and_jobs_need_the_write_key() {
    let app = TestApp::spawn().await;
    common::Reply::read(app.authed(Method::GET, "/v1/admin/jobs/nope").send().await)
        .await
        .assert_error(404, "not_found");
    let reply = common::Reply::read(app.request(Method::POST, "/v1/admin/refresh").send().await).await;
    assert_eq!(reply.status, 401, "{reply:?}");
}

#[tokio::test]
async fn a_refresh_fails_cleanly_when_redis_is_down_and_serving_goes_on() {
    let mut redis = RedisServer::start();
    let app = TestApp::builder().redis(redis.url()).spawn().await;
    app.load_catalogue().await;
    let first = start_refresh(&app).await;
    assert_eq!(wait_for_job(&app, &first).await["status"], "succeeded");
    assert_eq!(app.get("/v1/firms/dk-dairy/partners").await.cache(), "precomputed");

    redis.stop();
    app.put_json("/v1/firms/dk-pack", &common::profile("dk-pack")).await.assert_status(200);
    app.train().await;
    let failed = start_refresh(&app).await;
    let job = wait_for_job(&app, &failed).await;
    assert_eq!(job["status"], "failed", "{job}");
    assert!(job["error"].as_str().unwrap_or_default().contains("redis"), "the reason names Redis: {job}");
    let reply = app.get("/v1/firms/dk-dairy/partners").await;
    reply.assert_status(200);
}

fn engine_over(dir: &std::path::Path) -> Engine {
    let index = FirmIndex::open(&dir.join("index")).expect("index");
    let store = klynge::store::ModelStore::new(klynge::engine::model_dir(dir));
    Engine::new(Arc::new(index), Some(store), Default::default())
}

fn options(chunk: usize) -> RefreshOptions {
    RefreshOptions { k: 20, redis_url: None, key_prefix: "test".into(), export: None, chunk, networks: false }
}

#[test]
fn a_killed_refresh_resumes_from_its_checkpoint_with_identical_results() {
    let data = tempfile::tempdir().expect("tempdir");
    {
        let engine = engine_over(data.path());
        let updated_at = klynge::ingest::now_rfc3339();
        let ndjson: Vec<String> = catalogue().iter().map(Value::to_string).collect();
        let items = klynge::ingest::parse_items(ndjson.join("\n").as_bytes(), klynge::ingest::Format::Ndjson).unwrap();
        let (firms, rejected) = klynge::ingest::validate_items(&items, &updated_at);
        assert!(rejected.is_empty());
        engine.upsert_firms(&firms).unwrap();
        let ties: Vec<_> = collaborations().iter().map(|c| klynge_models::validate_collaboration(c).unwrap()).collect();
        engine.upsert_collaborations(&ties).unwrap();
    }
    let dir = refresh::refresh_dir(data.path());
    let engine = engine_over(data.path());
    let full = refresh::run(&engine, &dir, &options(10), &Progress::default()).expect("refresh");
    let results = full.results.clone().expect("results file");
    let uninterrupted = std::fs::read(&results).unwrap();
    drop(engine);

    // A run killed after two of its five chunks: those two are on disk, nothing else.
    let generation = full.generation;
    let work = dir.join(format!("work-{generation}"));
    std::fs::create_dir_all(&work).unwrap();
    let lines: Vec<&str> = std::str::from_utf8(&uninterrupted).unwrap().lines().collect();
    for (chunk, part) in lines.chunks(10).take(2).enumerate() {
        std::fs::write(work.join(format!("chunk-{chunk:06}.jsonl")), part.join("\n") + "\n").unwrap();
    }
    std::fs::remove_file(dir.join("CURRENT")).unwrap();
    std::fs::remove_file(&results).unwrap();

    let engine = engine_over(data.path());
    let progress = Progress::default();
    let resumed = refresh::run(&engine, &dir, &options(10), &progress).expect("resumed refresh");
    assert_eq!(resumed.resumed, 20, "two chunks of ten came from the checkpoint");
    assert_eq!(resumed.firms, catalogue().len());
    assert_eq!(std::fs::read(&results).unwrap(), uninterrupted, "same bytes as the uninterrupted run");
    assert!(!work.exists(), "the work directory is removed once the results are switched in");
}
