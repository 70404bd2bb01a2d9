//! The hand-probe findings of the hardening issue, each against the real service:
//! inputs that used to panic a worker or slip past a guard, leaks, and resources
//! that must stay bounded. Every test here failed on the code before the fix.

mod common;

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use common::{READ_KEY, Reply, TestApp, WRITE_KEY, profile};

/// The service log must never say a handler panicked: panics drop connections.
async fn still_answers(app: &TestApp) {
    app.get("/health/live").await.assert_status(200);
}

#[tokio::test]
async fn non_ascii_regions_are_refused_not_panicked_on() {
    let app = TestApp::spawn().await;
    app.load_catalogue().await;
    for region in ["D%C3%B8", "%C3%B8%C3%B8", "DK%C3%B8", "%F0%9F%87%A9%F0%9F%87%B0"] {
        app.get(&format!("/v1/firms?region={region}")).await.assert_invalid("region");
        app.get(&format!("/v1/firms/dk-dairy/partners?region={region}")).await.assert_invalid("region");
    }
    app.query_json("/v1/shortlists", &json!({"opportunity": "dairy", "region": "Dø"})).await.assert_invalid("region");
    app.query_json("/v1/networks", &json!({"opportunity": "dairy", "regions": ["DK04", "Dø"]}))
        .await
        .assert_invalid("regions");
    let mut firm = profile("dk-dairy");
    firm["id"] = json!("fz-1");
    firm["region"] = json!("Dø");
    let reply = app.put_json("/v1/firms/fz-1", &firm).await;
    let error = reply.assert_error(422, "validation_failed");
    assert_eq!(error["field"], "region", "{}", reply.body);
    still_answers(&app).await;
}

#[tokio::test]
async fn percent_encoded_admin_paths_need_the_write_key() {
    let app = TestApp::builder().read_key().spawn().await;
    app.load_catalogue().await;
    for path in ["/v1/%61dmin/model", "/v1/admin/model", "/v1/%61%64%6D%69%6E/model", "/v1/admin/jobs/x"] {
        let anonymous = app.get(path).await;
        anonymous.assert_error(401, "unauthorized");
        let with_read_key = Reply::read(app.request(Method::GET, path).bearer_auth(READ_KEY).send().await).await;
        with_read_key.assert_error(403, "forbidden");
    }
    let with_write_key = Reply::read(app.authed(Method::GET, "/v1/%61dmin/model").send().await).await;
    with_write_key.assert_status(200);
}

#[tokio::test]
async fn readiness_says_states_not_the_model() {
    let app = TestApp::builder().read_key().spawn().await;
    app.load_catalogue().await;
    let ready = app.get("/health/ready").await;
    ready.assert_status(200);
    let body = ready.json();
    assert_eq!(body["status"], "ready");
    assert!(body["model"]["generation"].is_u64(), "{body}");
    let model = body["model"].as_object().expect("model state");
    assert!(model.keys().all(|key| key == "generation" || key == "current"), "only states: {body}");
    assert!(!ready.body.contains("weight"), "no weights without a key: {}", ready.body);
}

#[tokio::test]
async fn bearer_scheme_is_case_insensitive_and_keys_of_any_length_are_refused() {
    let app = TestApp::spawn().await;
    let firm = profile("dk-dairy");
    for scheme in ["bearer", "BEARER", "Bearer"] {
        let reply = Reply::read(
            app.request(Method::PUT, "/v1/firms/dk-dairy")
                .header("authorization", format!("{scheme} {WRITE_KEY}"))
                .json(&firm)
                .send()
                .await,
        )
        .await;
        reply.assert_status(200);
    }
    for key in ["x", "test-write-ke", "test-write-key-and-more", &"k".repeat(4000)] {
        let reply =
            Reply::read(app.request(Method::PUT, "/v1/firms/dk-dairy").bearer_auth(key).json(&firm).send().await).await;
        reply.assert_error(403, "forbidden");
    }
}

#[tokio::test]
async fn network_bodies_are_bounded_and_checked_field_by_field() {
    let app = TestApp::spawn().await;
    app.load_catalogue().await;
    let huge = json!({"opportunity": "dairy", "max_per_country": 9_223_372_036_854_775_808u64, "countries": ["DK"]});
    let reply = app.query_json("/v1/networks", &huge).await;
    assert!(reply.status == 200 || reply.status == 422, "{reply:?}");
    if reply.status == 422 {
        assert_ne!(reply.json()["error"]["field"], "max_per_country", "a huge cap caps nothing: {}", reply.body);
    }
    let stages: Vec<&str> = std::iter::repeat_n("manufacturing", 100_000).collect();
    app.query_json("/v1/networks", &json!({"opportunity": "dairy", "require": {"stages": stages}}))
        .await
        .assert_invalid("require.stages");
    let sectors: Vec<&str> = std::iter::repeat_n("C10", 100_000).collect();
    app.query_json("/v1/networks", &json!({"opportunity": "dairy", "require": {"sectors": sectors}}))
        .await
        .assert_invalid("require.sectors");
    // A type error names the field, not the value it got.
    app.query_json("/v1/networks", &json!({"opportunity": "dairy", "size": {"min": "five"}}))
        .await
        .assert_invalid("size.min");
    app.query_json("/v1/networks", &json!({"opportunity": "dairy", "alternatives": -1}))
        .await
        .assert_invalid("alternatives");
    // An unknown locked firm is blamed on `lock`.
    app.query_json("/v1/networks", &json!({"anchor": ["dk-dairy"], "lock": ["no-such-firm"]}))
        .await
        .assert_invalid("lock");
}

#[tokio::test]
async fn query_strings_must_be_utf8_and_short() {
    let app = TestApp::spawn().await;
    app.load_catalogue().await;
    app.get("/v1/firms?q=%FF%FE").await.assert_error(400, "bad_query");
    app.get("/v1/firms?q=caf%C3%A9").await.assert_status(200);
    let long = "a".repeat(10_000);
    app.get(&format!("/v1/firms?q={long}")).await.assert_error(414, "query_too_long");
}

#[tokio::test]
async fn a_new_firm_is_answered_from_its_text_before_the_refit() {
    // Refits only on demand: the new firm is not in the serving model.
    let app = TestApp::spawn().await;
    app.load_catalogue().await;
    let mut firm = profile("dk-dairy");
    firm["id"] = json!("new-dairy");
    firm["name"] = json!("Nye Mejeri ApS");
    app.put_json("/v1/firms/new-dairy", &firm).await.assert_status(200);
    let reply = app.get("/v1/firms/new-dairy/partners?k=5").await;
    reply.assert_status(200);
    let partners = reply.json()["partners"].as_array().expect("partners").clone();
    assert!(!partners.is_empty(), "{}", reply.body);
    assert!(partners.iter().all(|p| p["id"] != "new-dairy"), "{}", reply.body);
    app.get("/v1/firms/no-such-firm/partners").await.assert_error(404, "not_found");

    // Its network too: it sits at the table as the anchor, described from its profile,
    // and the rest is assembled around its text.
    let reply = app.get("/v1/firms/new-dairy/network").await;
    reply.assert_status(200);
    let network = &reply.json()["network"];
    let members = network["members"].as_array().expect("members").clone();
    assert!(members.len() >= 5, "{}", reply.body);
    let newcomer = members.iter().find(|m| m["id"] == "new-dairy").expect("the new firm is a member");
    assert_eq!(newcomer["status"], "anchor", "{newcomer}");
    assert_eq!(newcomer["stage"], "manufacturing", "a dairy (C10.51) makes food: {newcomer}");
    assert!(newcomer["reasons"].to_string().contains("since the model's last fit"), "{newcomer}");
    assert_eq!(members.iter().filter(|m| m["id"] == "new-dairy").count(), 1, "{}", reply.body);
    let in_chain = network["chain"].as_array().expect("chain").iter().any(|stage| {
        stage["stage"] == "manufacturing"
            && stage["members"].as_array().is_some_and(|m| m.contains(&json!("new-dairy")))
    });
    assert!(in_chain, "the chain places it: {}", network["chain"]);
    // Locked rather than anchored, the same.
    let body = json!({"opportunity": "organic cheese for export", "lock": ["new-dairy"], "size": {"min": 5, "max": 6}});
    let reply = app.post_json("/v1/networks", &body).await;
    reply.assert_status(200);
    let members = reply.json()["network"]["members"].as_array().expect("members").clone();
    assert!((5..=6).contains(&members.len()), "{}", reply.body);
    assert!(members.iter().any(|m| m["id"] == "new-dairy" && m["status"] == "locked"), "{}", reply.body);
    // Excluding it (as a rejection does) is no reason to wait for the refit either.
    let body = json!({"opportunity": "organic cheese for export", "exclude": ["new-dairy"]});
    app.post_json("/v1/networks", &body).await.assert_status(200);
}

#[tokio::test]
async fn steady_writes_cannot_starve_the_refit() {
    // A debounce of 2 s with a write every second would never fire; the bound does.
    let app = TestApp::builder().retrain_after(2).retrain_max_wait(4).spawn().await;
    app.load_catalogue().await;
    let before = app.get("/health/ready").await.json()["model"]["generation"].as_u64().expect("generation");
    let started = std::time::Instant::now();
    let mut refitted = false;
    for round in 0..20 {
        let mut firm = profile("dk-dairy");
        firm["description"] = json!(format!("Organic dairy, revision {round}."));
        app.put_json("/v1/firms/dk-dairy", &firm).await.assert_status(200);
        tokio::time::sleep(Duration::from_millis(900)).await;
        let now = app.get("/health/ready").await.json()["model"]["generation"].as_u64().expect("generation");
        if now > before {
            refitted = true;
            break;
        }
    }
    assert!(refitted, "no refit within {:?} of steady writes", started.elapsed());
}

#[tokio::test]
async fn rate_limits_answer_429_with_retry_after_per_key() {
    let app = TestApp::builder().rate_limit(1, 3).spawn().await;
    let mut refused = None;
    for _ in 0..10 {
        let reply = app.get("/v1/firms?q=dairy").await;
        if reply.status == 429 {
            refused = Some(reply);
            break;
        }
    }
    let refused = refused.expect("a burst over the limit is refused");
    refused.assert_error(429, "rate_limited");
    let retry: u64 = refused.header("retry-after").expect("Retry-After").parse().expect("seconds");
    assert!((1..=2).contains(&retry), "{refused:?}");
    // Another key has its own allowance; health stays open.
    let reply = Reply::read(app.authed(Method::GET, "/v1/firms?q=dairy").send().await).await;
    reply.assert_status(200);
    app.get("/health/live").await.assert_status(200);
}
