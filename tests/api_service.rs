//! End-to-end tests of what every resource shares, against the real application:
//! error bodies, body limits, API keys, readiness, restarts, request ids,
//! health, metrics and the API docs.

mod common;

use std::time::Duration;

use common::{
    READ_KEY, Reply, TestApp, WRITE_KEY, assert_round_trip, catalogue, catalogue_ids, collaborations, profile,
};
use reqwest::Method;
use serde_json::json;

// ---------------------------------------------------------------------------
// Errors
// ---------------------------------------------------------------------------

#[tokio::test]
async fn client_errors_have_status_code_and_field() {
    let app = TestApp::spawn().await;

    let reply = app.post_raw("/v1/firms", "application/json", r#"[{"id": "x", "name": }]"#).await;
    reply.assert_error(400, "malformed_body");
    app.put_raw("/v1/firms/x", r#"{"id": "x""#).await.assert_error(400, "malformed_body");
    let reply = app.post_raw("/v1/firms", "application/x-ndjson", "{\"id\":\"a\",\"name\":\"A\"}\n{oops\n").await;
    let error = reply.assert_error(400, "malformed_body");
    assert_eq!(error["details"]["line"], 2, "{}", reply.body);
    app.post_raw("/v1/firms", "application/json", vec![b'[', 0xff, 0xfe, b']'])
        .await
        .assert_error(400, "malformed_body");

    app.post_raw("/v1/firms", "text/plain", "id,name\n").await.assert_error(415, "unsupported_media_type");
    app.post_raw("/v1/firms", "application/xml", "<firm/>").await.assert_error(415, "unsupported_media_type");
    let reply = Reply::read(
        app.authed(Method::PUT, "/v1/firms/x").header("content-type", "text/csv").body("id,name\nx,X\n").send().await,
    )
    .await;
    reply.assert_error(415, "unsupported_media_type");

    let reply = app.put_json("/v1/firms/x", &json!({"id": "x", "name": "X", "colour": "red"})).await;
    let error = reply.assert_invalid("colour");
    assert_eq!(error["details"][0]["code"], "unknown_field");
    let error =
        app.put_json("/v1/firms/x", &json!({"id": "x", "name": "X", "country": "XX"})).await.assert_invalid("country");
    assert_eq!(error["details"][0]["code"], "invalid_country");
    app.put_json("/v1/firms/x", &json!({"id": "x", "name": "X", "country": "DK", "region": "SE11"}))
        .await
        .assert_invalid("region");
    let error = app
        .put_json("/v1/firms/x", &json!({"id": "x", "name": "X", "sectors": ["C99"]}))
        .await
        .assert_invalid("sectors[0]");
    assert_eq!(error["details"][0]["code"], "invalid_sector");
    app.put_json("/v1/firms/x", &json!({"id": "x", "name": "X", "kind": "robot"})).await.assert_invalid("kind");
    app.put_json("/v1/firms/x", &json!({"id": "x"})).await.assert_invalid("name");
    app.put_json("/v1/firms/x", &json!(["not", "an", "object"])).await.assert_invalid("body");
    app.get("/v1/firms/x").await.assert_error(404, "not_found");

    let long_id = "a".repeat(129);
    app.put_json(&format!("/v1/firms/{long_id}"), &json!({"name": "Long"})).await.assert_invalid("id");
    app.get(&format!("/v1/firms/{long_id}")).await.assert_invalid("id");
    let reply = app.post_json("/v1/firms", &json!([{"id": long_id, "name": "Long"}])).await;
    let error = reply.assert_error(422, "validation_failed");
    assert_eq!(error["details"][0]["errors"][0]["field"], "id", "{}", reply.body);
    assert_eq!(error["details"][0]["errors"][0]["code"], "invalid_id");
    let max_id = "b".repeat(128);
    app.put_json(&format!("/v1/firms/{max_id}"), &json!({"name": "Longest"})).await.assert_status(200);
    app.get(&format!("/v1/firms/{max_id}")).await.assert_status(200);
    app.get("/v1/firms/bad%20id").await.assert_invalid("id");

    app.get("/v1/firms/no-such-firm").await.assert_error(404, "not_found");
    app.get("/v1/collaborations/no-such-project").await.assert_error(404, "not_found");
    let reply = app.get("/v1/nothing-here").await;
    let error = reply.assert_error(404, "not_found");
    assert!(error["message"].as_str().unwrap().contains("/v1/nothing-here"), "{}", reply.body);
    app.get("/nowhere").await.assert_error(404, "not_found");
}

#[tokio::test]
async fn oversized_bodies_are_refused_with_413() {
    let app = TestApp::spawn().await;
    // 20 MB of otherwise valid NDJSON, over the default limit of 16 MiB.
    let line = format!("{}\n", json!({"id": "big", "name": "x".repeat(200)}));
    let body = line.repeat(20_000_000 / line.len() + 1);
    assert!(body.len() > 20_000_000);
    let reply = app.post_raw("/v1/firms", "application/x-ndjson", body).await;
    reply.assert_error(413, "payload_too_large");
    let reply =
        app.put_raw("/v1/firms/big", &format!("{{\"id\":\"big\",\"name\":\"{}\"}}", "x".repeat(20_000_000))).await;
    reply.assert_error(413, "payload_too_large");
    app.get("/v1/firms/big").await.assert_error(404, "not_found");
    // The service is still well after refusing them.
    app.put_json("/v1/firms/small", &json!({"name": "Small"})).await.assert_status(200);
}

#[tokio::test]
async fn writes_need_the_write_key() {
    let app = TestApp::spawn().await;
    let profile = json!({"id": "k-1", "name": "Keyed"});

    let reply = Reply::read(app.request(Method::PUT, "/v1/firms/k-1").json(&profile).send().await).await;
    reply.assert_error(401, "unauthorized");
    let reply =
        Reply::read(app.request(Method::PUT, "/v1/firms/k-1").bearer_auth("wrong-key-123").json(&profile).send().await)
            .await;
    reply.assert_error(403, "forbidden");
    let reply = Reply::read(
        app.request(Method::POST, "/v1/firms")
            .header("authorization", format!("Basic {WRITE_KEY}"))
            .json(&[&profile])
            .send()
            .await,
    )
    .await;
    reply.assert_error(401, "unauthorized");
    Reply::read(app.request(Method::DELETE, "/v1/firms/k-1").send().await).await.assert_error(401, "unauthorized");
    Reply::read(app.request(Method::POST, "/v1/admin/train").send().await).await.assert_error(401, "unauthorized");
    Reply::read(app.request(Method::GET, "/v1/admin/model").send().await).await.assert_error(401, "unauthorized");
    let reply = Reply::read(
        app.request(Method::POST, "/v1/collaborations").json(&json!({"id": "c", "members": ["a", "b"]})).send().await,
    )
    .await;
    reply.assert_error(401, "unauthorized");
    app.get("/v1/firms/k-1").await.assert_error(404, "not_found");

    // With the key the same write succeeds; reads are open while no read key is configured.
    app.put_json("/v1/firms/k-1", &profile).await.assert_status(200);
    app.get("/v1/firms/k-1").await.assert_status(200);
    app.get("/v1/firms").await.assert_status(200);
}

#[tokio::test]
async fn read_keys_guard_reads_when_configured() {
    let app = TestApp::builder().read_key().spawn().await;
    app.put_json("/v1/firms/r-1", &json!({"name": "Guarded"})).await.assert_status(200);

    app.get("/v1/firms/r-1").await.assert_error(401, "unauthorized");
    app.get("/v1/firms?q=guarded").await.assert_error(401, "unauthorized");
    let reply =
        Reply::read(app.request(Method::POST, "/v1/shortlists").json(&json!({"opportunity": "x"})).send().await).await;
    reply.assert_error(401, "unauthorized");
    let reply =
        Reply::read(app.request(Method::GET, "/v1/firms/r-1").bearer_auth("not-a-known-key").send().await).await;
    reply.assert_error(403, "forbidden");
    let reply = Reply::read(app.request(Method::GET, "/v1/firms/r-1").bearer_auth(READ_KEY).send().await).await;
    reply.assert_status(200);
    let reply = Reply::read(app.authed(Method::GET, "/v1/firms/r-1").send().await).await;
    reply.assert_status(200);
    // A read key does not write.
    let reply = Reply::read(
        app.request(Method::PUT, "/v1/firms/r-1").bearer_auth(READ_KEY).json(&json!({"name": "Changed"})).send().await,
    )
    .await;
    reply.assert_error(403, "forbidden");
    // Health, metrics and docs stay open.
    app.get("/health/live").await.assert_status(200);
    app.get("/health/ready").await.assert_status(200);
    app.get("/openapi.json").await.assert_status(200);
}

/// A catalogue without a model (here: written with a long refit debounce, then
/// restarted) is fitted at once on start-up, and until then readiness says
/// 503 `starting`, never 200 with recommendations that would answer 503.
#[tokio::test]
async fn readiness_waits_for_the_first_model() {
    let mut app = TestApp::builder().retrain_after(300).spawn().await;
    app.upsert(&catalogue()).await;
    app.collaborate(&collaborations()).await;
    let before = app.get("/health/ready").await;
    before.assert_status(200);
    assert!(before.json()["model"].is_null(), "no fit within the debounce: {}", before.json());

    app.restart().await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    let ready = loop {
        let reply = app.get("/health/ready").await;
        let body = reply.json();
        if reply.status == 200 {
            break body;
        }
        reply.assert_status(503);
        assert_eq!(body["status"], "starting", "{body}");
        assert!(std::time::Instant::now() < deadline, "no model a minute after start-up: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["model"]["current"], true, "ready only with a model, fitted without waiting 300 s: {ready}");
    app.get("/v1/firms/dk-dairy/partners?k=3").await.assert_status(200);
}

#[tokio::test]
async fn data_survives_a_restart() {
    let mut app = TestApp::spawn().await;
    app.load_catalogue().await;
    let sent = r#"{"id":"keep-me","name":"Persistent 🗄️","sectors":["C10.51"],"country":"DK","region":"DK04"}"#;
    app.put_raw("/v1/firms/keep-me", sent).await.assert_status(200);
    app.delete("/v1/firms/de-solar").await.assert_status(204);
    let before = app.get("/v1/firms/keep-me").await.body;
    let trained = app.train().await;
    let ready_before = app.get("/health/ready").await.json();

    app.restart().await;
    assert_ne!(app.port, 0);
    let after = app.get("/v1/firms/keep-me").await;
    after.assert_status(200);
    assert_eq!(after.body, before, "the profile reads back identically after a restart");
    assert_round_trip(sent, &after.body);
    app.get("/v1/firms/de-solar").await.assert_error(404, "not_found");
    assert_eq!(app.get("/v1/firms").await.json()["total"], catalogue_ids().len());
    let ready = app.get("/health/ready").await.json();
    assert_eq!(ready["index"], ready_before["index"], "generation and count survive: {ready}");
    let ties = app.get("/v1/firms/dk-dairy").await.json()["ties"].clone();
    assert_eq!(ties.as_array().unwrap().len(), 2, "collaborations survive: {ties}");
    // The fitted model was saved and is served without a refit.
    assert_eq!(ready["model"]["generation"], trained["generation"], "{ready}");
    assert_eq!(ready["model"]["current"], true);
    app.get("/v1/firms/keep-me/partners?k=5").await.assert_status(200);
    // And the restarted service accepts writes.
    app.put_json("/v1/firms/after-restart", &json!({"name": "New"})).await.assert_status(200);
}

// ---------------------------------------------------------------------------
// Operations: request ids, health, metrics, docs
// ---------------------------------------------------------------------------

#[tokio::test]
async fn request_ids_are_echoed_or_generated() {
    let app = TestApp::spawn().await;
    let reply =
        Reply::read(app.request(Method::GET, "/health/live").header("x-request-id", "trace-abc-123").send().await)
            .await;
    assert_eq!(reply.header("x-request-id"), Some("trace-abc-123"));
    // Also on errors.
    let reply =
        Reply::read(app.request(Method::GET, "/v1/firms/missing").header("x-request-id", "trace-404").send().await)
            .await;
    reply.assert_status(404);
    assert_eq!(reply.header("x-request-id"), Some("trace-404"));

    let first = app.get("/health/live").await;
    let second = app.get("/health/live").await;
    let (a, b) = (first.header("x-request-id").expect("generated id"), second.header("x-request-id").expect("id"));
    assert!(uuid::Uuid::parse_str(a).is_ok(), "a generated id is a UUID: {a}");
    assert_ne!(a, b, "every request gets its own id");
    // Unusable ids are replaced.
    let reply =
        Reply::read(app.request(Method::GET, "/health/live").header("x-request-id", "has spaces").send().await).await;
    let id = reply.header("x-request-id").expect("id");
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
}

#[tokio::test]
async fn health_metrics_and_docs() {
    let app = TestApp::spawn().await;
    let live = app.get("/health/live").await;
    live.assert_status(200);
    assert_eq!(live.json()["status"], "live");

    let ready = app.get("/health/ready").await;
    ready.assert_status(200);
    let ready = ready.json();
    assert_eq!(ready["status"], "ready");
    assert_eq!(ready["cache"], json!({"backend": "memory", "state": "up"}));
    assert_eq!(ready["index"]["firms"], 0);
    assert!(ready["model"].is_null(), "no model before any profile: {ready}");

    app.put_json("/v1/firms/metric-firm-1", &json!({"name": "M"})).await.assert_status(200);
    app.get("/v1/firms/metric-firm-1").await.assert_status(200);
    app.get("/v1/firms/metric-firm-404").await.assert_status(404);
    let ready = app.get("/health/ready").await.json();
    assert_eq!(ready["index"]["firms"], 1);
    assert!(ready["index"]["generation"].as_u64().unwrap() >= 1);

    let metrics = app.get("/metrics").await;
    metrics.assert_status(200);
    assert!(metrics.header("content-type").unwrap_or_default().starts_with("text/plain"));
    let text = &metrics.body;
    let counter_lines: Vec<&str> = text.lines().filter(|l| l.starts_with("klynge_http_requests_total{")).collect();
    assert!(
        counter_lines.iter().any(|l| l.contains("route=\"/v1/firms/{id}\"") && l.contains("method=\"GET\"")),
        "request counter by route pattern:\n{text}"
    );
    assert!(counter_lines.iter().any(|l| l.contains("route=\"/v1/firms/{id}\"") && l.contains("status=\"404\"")));
    assert!(!text.contains("metric-firm-1"), "ids must not become labels:\n{text}");
    assert!(text.contains("klynge_http_request_duration_seconds"), "{text}");
    assert!(text.contains("klynge_index_firms"), "{text}");

    let openapi = app.get("/openapi.json").await;
    openapi.assert_status(200);
    let openapi = openapi.json();
    assert!(openapi["openapi"].as_str().unwrap_or_default().starts_with('3'), "{openapi}");
    for path in [
        "/v1/firms",
        "/v1/firms/{id}",
        "/v1/firms/{id}/partners",
        "/v1/firms/{id}/network",
        "/v1/shortlists",
        "/v1/networks",
        "/v1/collaborations",
        "/health/ready",
    ] {
        assert!(openapi["paths"].get(path).is_some(), "openapi lacks {path}");
    }
    assert!(openapi["components"]["securitySchemes"].get("bearer").is_some());

    let docs = app.get("/docs/").await;
    docs.assert_status(200);
    assert!(docs.header("content-type").unwrap_or_default().starts_with("text/html"), "{docs:?}");
    assert!(docs.body.to_lowercase().contains("swagger"), "{}", docs.body);
    let redirected = app.get("/docs").await;
    redirected.assert_status(200);
    assert!(redirected.body.to_lowercase().contains("swagger"));
}

/// Training is a job (issue 18): 202 with the job and its `Location`, 409
/// `train_running` naming the running job while it runs, and an outcome that is
/// the model then serving. A firm written after that fit anchors its network at
/// once (no 503 until the refit).
#[tokio::test]
async fn training_is_a_job_and_a_firm_newer_than_the_model_is_told_apart() {
    let app = TestApp::spawn().await;
    app.upsert(&catalogue()).await;
    app.collaborate(&collaborations()).await;
    app.get("/v1/firms/dk-dairy/network").await.assert_error(503, "unavailable");

    let first = Reply::read(app.authed(Method::POST, "/v1/admin/train").send().await).await;
    first.assert_status(202);
    let job = first.json();
    let id = job["id"].as_str().expect("job id").to_string();
    assert_eq!((job["kind"].as_str(), job["status"].as_str()), (Some("train"), Some("running")), "{job}");
    assert_eq!(first.header("location"), Some(format!("/v1/admin/jobs/{id}").as_str()));
    let second = Reply::read(app.authed(Method::POST, "/v1/admin/train").send().await).await;
    let mut started = vec![id.clone()];
    if second.status == 409 {
        let refused = second.assert_error(409, "train_running");
        assert_eq!(refused["details"]["job_id"], id.as_str(), "{refused}");
    } else {
        // The first fit ended before the second request came: a new job started.
        second.assert_status(202);
        let again = second.json()["id"].as_str().expect("job id").to_string();
        assert_ne!(again, id);
        started.push(again);
    }
    for job in started {
        let path = format!("/v1/admin/jobs/{job}");
        let deadline = std::time::Instant::now() + Duration::from_secs(300);
        let done = loop {
            let reply = Reply::read(app.authed(Method::GET, &path).send().await).await;
            reply.assert_status(200);
            if reply.json()["status"] != "running" {
                break reply.json();
            }
            assert!(std::time::Instant::now() < deadline, "the fit did not finish: {}", reply.body);
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        assert_eq!(done["status"], "succeeded", "{done}");
        assert!(done["outcome"]["generation"].is_u64(), "the outcome is the model serving: {done}");
    }
    // Nothing runs now: a new fit is accepted at once.
    app.train().await;

    let mut newcomer = profile("dk-dairy");
    newcomer["id"] = json!("dk-dairy-newcomer");
    app.put_json("/v1/firms/dk-dairy-newcomer", &newcomer).await.assert_status(200);
    let reply = app.get("/v1/firms/dk-dairy-newcomer/network").await;
    // Not a 503 until the refit: it is at the table, described from its profile.
    reply.assert_status(200);
    let members = reply.json()["network"]["members"].as_array().expect("members").clone();
    assert!(members.iter().any(|m| m["id"] == "dk-dairy-newcomer" && m["status"] == "anchor"), "{}", reply.body);
}
