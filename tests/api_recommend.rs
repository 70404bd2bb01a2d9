//! End-to-end tests of recommendations against the real application: ranked,
//! explained and filtered partners of a firm, refits after writes, and
//! shortlists for an opportunity.

mod common;

use std::collections::HashSet;

use common::{Reply, TestApp, catalogue, catalogue_ids, collaborations, fixture_facts, ids_of};
use reqwest::Method;
use serde_json::{Value, json};

// ---------------------------------------------------------------------------
// Partners and shortlists
// ---------------------------------------------------------------------------

fn assert_ranked_partners(reply: &Reply, anchor: Option<&str>) -> Vec<Value> {
    reply.assert_status(200);
    let body = reply.json();
    let partners = body["partners"].as_array().unwrap_or_else(|| panic!("no partners list: {body}")).clone();
    assert!(!partners.is_empty(), "no partners: {body}");
    let scores: Vec<f64> = partners.iter().map(|p| p["score"].as_f64().expect("numeric score")).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "partners are ranked by score: {scores:?}");
    assert!(scores.iter().all(|s| s.is_finite() && (0.0..=1.0).contains(s)), "scores are 0..1: {scores:?}");
    let mut seen = HashSet::new();
    for partner in &partners {
        let id = partner["id"].as_str().expect("id");
        assert!(seen.insert(id.to_string()), "{id} proposed twice");
        assert_ne!(Some(id), anchor, "a firm is never its own partner");
        assert!(partner["name"].is_string() && partner["kind"].is_string(), "{partner}");
        let signals = partner["signals"].as_array().unwrap_or_else(|| panic!("no signals: {partner}"));
        assert!(!signals.is_empty());
        for signal in signals {
            assert!(signal["signal"].is_string(), "{signal}");
            assert!(signal["value"].as_f64().is_some_and(f64::is_finite), "{signal}");
            assert!(signal["contribution"].as_f64().is_some_and(f64::is_finite), "{signal}");
        }
        assert!(partner["reasons"].is_array(), "{partner}");
    }
    assert!(
        partners.iter().any(|p| p["reasons"].as_array().is_some_and(|r| !r.is_empty() && r[0]["text"].is_string())),
        "some partner is explained in words: {body}"
    );
    partners
}

#[tokio::test]
async fn partners_are_ranked_explained_and_filtered() {
    let app = TestApp::spawn().await;
    app.upsert(&catalogue()).await;
    app.collaborate(&collaborations()).await;
    // Before any fit there is nothing to rank with.
    app.get("/v1/firms/dk-dairy/partners").await.assert_error(503, "unavailable");
    app.train().await;

    let reply = app.get("/v1/firms/dk-dairy/partners?k=10").await;
    let partners = assert_ranked_partners(&reply, Some("dk-dairy"));
    assert!(partners.len() <= 10);
    assert_eq!(reply.json()["firm"], "dk-dairy");
    let top: Vec<String> = partners.iter().map(|p| p["id"].as_str().unwrap().to_string()).collect();
    // The dairy needs raw milk: a dairy farm (its value-chain supplier, offering raw milk) ranks
    // high. Since the LSA embeddings the other dairies (closest texts) come first, then the farms.
    assert!(
        top[..5].iter().any(|id| ["dk-farm-ostergaard", "de-farm-huber"].contains(&id.as_str())),
        "a raw-milk farm is among the top five: {top:?}"
    );
    // A large k returns every retrieved candidate, and the reasons say why in words.
    let everyone = assert_ranked_partners(&app.get("/v1/firms/dk-dairy/partners?k=200").await, Some("dk-dairy"));
    assert!(everyone.len() > 20 && everyone.len() < catalogue_ids().len(), "{}", everyone.len());
    let cold_chain = everyone.iter().find(|p| p["id"] == "dk-coldchain").expect("dk-coldchain is ranked");
    let reasons = cold_chain["reasons"].to_string();
    assert!(reasons.contains("cold-chain logistics"), "the need it meets is named: {cold_chain}");
    let offer_need =
        cold_chain["signals"].as_array().unwrap().iter().find(|s| s["signal"] == "offer_need").expect("signal");
    assert!(offer_need["contribution"].as_f64().unwrap() > 0.0, "{cold_chain}");

    let facts = fixture_facts();
    let fact = |id: &str| *facts.iter().find(|f| f.id == id).expect("fixture id");
    let universities =
        assert_ranked_partners(&app.get("/v1/firms/dk-dairy/partners?kind=university").await, Some("dk-dairy"));
    assert!(
        universities.iter().all(|p| p["kind"] == "university" && fact(p["id"].as_str().unwrap()).kind == "university")
    );
    let swedish =
        assert_ranked_partners(&app.get("/v1/firms/dk-dairy/partners?country=se&k=50").await, Some("dk-dairy"));
    assert!(swedish.iter().all(|p| p["country"] == "SE"), "{swedish:?}");
    let food =
        assert_ranked_partners(&app.get("/v1/firms/dk-coldchain/partners?sector=C10").await, Some("dk-coldchain"));
    assert!(
        food.iter().all(|p| p["sectors"].as_array().unwrap().iter().any(|s| s.as_str().unwrap().starts_with("C10")))
    );
    let few = assert_ranked_partners(&app.get("/v1/firms/dk-dairy/partners?k=3").await, Some("dk-dairy"));
    assert_eq!(few.len(), 3);
    assert_eq!(ids_of(&json!(few)), top[..3].to_vec(), "k cuts the same ranking");
    let excluded = format!("/v1/firms/dk-dairy/partners?k=10&exclude={},{}", top[0], top[1]);
    let rest = assert_ranked_partners(&app.get(&excluded).await, Some("dk-dairy"));
    let rest_ids = ids_of(&json!(rest));
    assert!(!rest_ids.contains(&top[0]) && !rest_ids.contains(&top[1]), "{rest_ids:?}");
    assert_eq!(rest_ids[0], top[2], "excluding the first two moves the third up");
    let strict = app.get("/v1/firms/dk-dairy/partners?min_score=1").await.json();
    assert!(strict["partners"].as_array().unwrap().iter().all(|p| p["score"].as_f64().unwrap() >= 1.0 - 1e-6));

    app.get("/v1/firms/no-such-firm/partners").await.assert_error(404, "not_found");
    for (query, field) in [
        ("k=0", "k"),
        ("k=201", "k"),
        ("kind=robot", "kind"),
        ("country=XX", "country"),
        ("sector=Z99", "sector"),
        ("size=giant", "size"),
        ("min_score=2", "min_score"),
        ("exclude=bad%20id", "exclude"),
    ] {
        app.get(&format!("/v1/firms/dk-dairy/partners?{query}")).await.assert_invalid(field);
    }
    app.get("/v1/firms/dk-dairy/partners?k=200").await.assert_status(200);
    app.get("/v1/firms/dk-dairy/partners?colour=red").await.assert_error(400, "bad_query");

    let model = Reply::read(app.authed(Method::GET, "/v1/admin/model").send().await).await;
    model.assert_status(200);
    let model = model.json();
    assert_eq!(model["firms"], catalogue_ids().len());
    assert!(model["weights"].as_object().is_some_and(|w| !w.is_empty()), "{model}");
}

#[tokio::test]
async fn writes_are_refitted_after_the_debounce() {
    let app = TestApp::builder().retrain_after(1).spawn().await;
    app.upsert(&catalogue()).await;
    app.collaborate(&collaborations()).await;
    // No explicit training: the debounced retrainer fits the model by itself.
    let reply = app.poll_until("/v1/firms/dk-dairy/partners?k=5", 60, |r| r.status == 200).await;
    assert_ranked_partners(&reply, Some("dk-dairy"));

    app.put_json("/v1/firms/newcomer", &json!({
        "name": "Newcomer Cold Storage", "description": "Cold storage and cold-chain logistics for dairy producers.",
        "offers": ["cold-chain logistics"], "sectors": ["H52.10"], "country": "DK", "region": "DK04"
    }))
    .await
    .assert_status(200);
    // Answered at once from its text and the serving model, before the refit ...
    let reply = app.get("/v1/firms/newcomer/partners?k=5").await;
    assert_ranked_partners(&reply, Some("newcomer"));
    // ... which then takes it in.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let model = Reply::read(app.authed(Method::GET, "/v1/admin/model").send().await).await.json();
        if model["firms"] == catalogue_ids().len() + 1 && model["current"] == true {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not refitted: {model}");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn shortlists_rank_firms_for_an_opportunity() {
    let app = TestApp::spawn().await;
    app.load_catalogue().await;

    let body =
        json!({"opportunity": "refrigerated transport and cold-chain logistics for organic dairy products", "k": 5});
    let reply = app.query_json("/v1/shortlists", &body).await;
    let partners = assert_ranked_partners(&reply, None);
    assert!(partners.len() <= 5);
    for partner in &partners {
        assert!(
            partner["reasons"].as_array().is_some_and(|r| !r.is_empty()),
            "every firm shortlisted has a reason: {partner}"
        );
    }
    let ids = ids_of(&json!(partners));
    assert!(
        ids.iter().any(|id| ["dk-coldchain", "de-logistics", "se-coldlog", "dk-warehouse"].contains(&id.as_str())),
        "a cold-chain firm is shortlisted: {ids:?}"
    );

    let anchored = json!({"opportunity": "recyclable dairy packaging", "anchor": ["dk-dairy"], "kind": "company", "country": "DK"});
    let partners = assert_ranked_partners(&app.query_json("/v1/shortlists", &anchored).await, Some("dk-dairy"));
    assert!(partners.iter().all(|p| p["kind"] == "company" && p["country"] == "DK"));
    let excluded = json!({"opportunity": "recyclable dairy packaging", "exclude": ["dk-pack", "se-fibre"], "k": 20});
    let ids = ids_of(&json!(assert_ranked_partners(&app.query_json("/v1/shortlists", &excluded).await, None)));
    assert!(!ids.contains(&"dk-pack".to_string()) && !ids.contains(&"se-fibre".to_string()));

    app.query_json("/v1/shortlists", &json!({"opportunity": "   "})).await.assert_invalid("opportunity");
    app.query_json("/v1/shortlists", &json!({"k": 5})).await.assert_invalid("opportunity");
    app.query_json("/v1/shortlists", &json!({"opportunity": "x".repeat(5001)})).await.assert_invalid("opportunity");
    let padded = format!("dairy{}", " ".repeat(5000));
    app.query_json("/v1/shortlists", &json!({"opportunity": padded})).await.assert_invalid("opportunity");
    app.query_json("/v1/shortlists", &json!({"opportunity": "dairy", "budget": 5})).await.assert_invalid("budget");
    app.query_json("/v1/shortlists", &json!({"opportunity": "dairy", "k": 0})).await.assert_invalid("k");
    app.query_json("/v1/shortlists", &json!({"opportunity": "dairy", "kind": "robot"})).await.assert_invalid("kind");
    let reply = app.query_json("/v1/shortlists", &json!({"opportunity": "dairy", "anchor": ["ghost-firm"]})).await;
    let error = reply.assert_invalid("anchor");
    assert_eq!(error["details"]["unknown_ids"], json!(["ghost-firm"]));
    app.query_json("/v1/shortlists", &json!({"opportunity": "dairy", "anchor": ["bad id"]}))
        .await
        .assert_invalid("anchor");
    let reply = Reply::read(
        app.request(Method::POST, "/v1/shortlists").header("content-type", "text/plain").body("dairy").send().await,
    )
    .await;
    reply.assert_error(415, "unsupported_media_type");
    let reply = Reply::read(
        app.request(Method::POST, "/v1/shortlists")
            .header("content-type", "application/json")
            .body("{\"opportunity\":")
            .send()
            .await,
    )
    .await;
    reply.assert_error(400, "malformed_body");
}
