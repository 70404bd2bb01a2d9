//! End-to-end tests of the HTTP API against the real application: tantivy on disk
//! in a temporary directory, the in-process cache, real model fits.

mod common;

use std::collections::{BTreeSet, HashSet};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use common::{
    Fact, READ_KEY, Reply, TestApp, WRITE_KEY, catalogue, catalogue_ids, collaborations, fixture_facts, profile,
};

fn ids_of(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|item| item["id"].as_str().expect("id").to_string())
        .collect()
}

fn is_rfc3339(text: &str) -> bool {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).is_ok()
}

/// The bytes a stored profile comes back with: exactly as sent, with the
/// service's fields appended before the closing brace.
fn assert_round_trip(sent: &str, returned: &str) -> Value {
    let prefix = sent.trim_end().strip_suffix('}').expect("sent an object").trim_end();
    assert!(returned.starts_with(prefix), "profile not returned byte-for-byte\nsent:     {sent}\nreturned: {returned}");
    let rest = &returned[prefix.len()..];
    assert!(rest.starts_with(",\"updated_at\":\""), "service fields follow the sent text directly: {rest}");
    let value: Value = serde_json::from_str(returned).expect("returned profile is JSON");
    assert!(is_rfc3339(value["updated_at"].as_str().unwrap_or_default()), "updated_at: {returned}");
    value
}

// ---------------------------------------------------------------------------
// Profiles
// ---------------------------------------------------------------------------

#[tokio::test]
async fn put_get_delete_round_trip() {
    let app = TestApp::spawn().await;
    // Odd spacing, key order and a lower-case country: all kept as sent.
    let sent = r#"{ "name":"Acme Foods",  "id":"acme-1","kind":"company", "country":"dk","region":"DK04",
        "sectors":["10.51"], "offers":["cheese","yoghurt"], "employees": 40 }"#;
    let put = app.put_raw("/v1/firms/acme-1", sent).await;
    put.assert_status(200);
    let stored = assert_round_trip(sent, &put.body);
    assert!(stored.get("ties").is_none(), "PUT answers the profile without ties: {}", put.body);

    let get = app.get("/v1/firms/acme-1").await;
    get.assert_status(200);
    let value = assert_round_trip(sent, &get.body);
    assert_eq!(value["ties"], json!([]));
    assert_eq!(value["updated_at"], stored["updated_at"]);
    assert_eq!(value["country"], "dk", "the stored profile is the caller's text, not the normalised form");

    // Replace: the new text wins entirely.
    let replaced = r#"{"id":"acme-1","name":"Acme Dairy","sectors":["C10.51"]}"#;
    app.put_raw("/v1/firms/acme-1", replaced).await.assert_status(200);
    let value = assert_round_trip(replaced, &app.get("/v1/firms/acme-1").await.body);
    assert_eq!(value["name"], "Acme Dairy");
    assert!(value.get("offers").is_none(), "the old profile's fields are gone: {value}");

    // The body may leave the id out; it is taken from the path.
    let reply = app.put_json("/v1/firms/no-id-in-body", &json!({"name": "Nameless Id"})).await;
    reply.assert_status(200);
    assert_eq!(reply.json()["id"], "no-id-in-body");
    // A different id in the body is refused.
    app.put_json("/v1/firms/acme-2", &json!({"id": "acme-3", "name": "X"})).await.assert_invalid("id");
    app.get("/v1/firms/acme-2").await.assert_error(404, "not_found");
    app.get("/v1/firms/acme-3").await.assert_error(404, "not_found");

    let deleted = app.delete("/v1/firms/acme-1").await;
    deleted.assert_status(204);
    assert!(deleted.body.is_empty());
    app.get("/v1/firms/acme-1").await.assert_error(404, "not_found");
    app.delete("/v1/firms/acme-1").await.assert_error(404, "not_found");
    let search = app.get("/v1/firms?q=acme").await;
    search.assert_status(200);
    assert_eq!(search.json()["total"], 0, "a deleted profile is not found: {}", search.body);
}

#[tokio::test]
async fn bulk_upsert_accepts_json_ndjson_and_csv() {
    let app = TestApp::spawn().await;

    let json_body = r#"[
        {"id":"j-1","name":"Json One","sectors":["C10.51"],"country":"DK","region":"DK01"},
        {"id":"j-2","name":"Json Two","kind":"university","country":"SE","region":"SE22"}
    ]"#;
    let reply = app.post_raw("/v1/firms", "application/json", json_body).await;
    reply.assert_status(200);
    assert_eq!(reply.json()["upserted"], 2);
    let generation_after_json = reply.json()["generation"].as_u64().expect("generation");
    assert_round_trip(
        r#"{"id":"j-1","name":"Json One","sectors":["C10.51"],"country":"DK","region":"DK01"}"#,
        &app.get("/v1/firms/j-1").await.body,
    );

    let ndjson = "{\"id\":\"n-1\",\"name\":\"Nd One\",\"kind\":\"research\"}\n\n{\"id\":\"n-2\",\"name\":\"Nd Two\"}\n";
    let reply = app.post_raw("/v1/firms", "application/x-ndjson", ndjson).await;
    reply.assert_status(200);
    assert_eq!(reply.json()["upserted"], 2);
    assert!(reply.json()["generation"].as_u64().expect("generation") > generation_after_json);
    assert_round_trip(r#"{"id":"n-1","name":"Nd One","kind":"research"}"#, &app.get("/v1/firms/n-1").await.body);

    let csv = "id,name,kind,country,region,sectors,offers,employees,sme,location\n\
               c-1,\"Csv, One\",company,DK,DK04,C10.51;M72,cheese; cold storage,12,yes,56.1;10.2\n\
               c-2,Csv Two,university,DE,DE21,P85.42,,,,\n";
    let reply = app.post_raw("/v1/firms", "text/csv; charset=utf-8", csv).await;
    reply.assert_status(200);
    assert_eq!(reply.json()["upserted"], 2);
    let one = app.get("/v1/firms/c-1").await;
    one.assert_status(200);
    let one = one.json();
    assert_eq!(one["name"], "Csv, One");
    assert_eq!(one["sectors"], json!(["C10.51", "M72"]));
    assert_eq!(one["offers"], json!(["cheese", "cold storage"]));
    assert_eq!(one["employees"], 12);
    assert_eq!(one["sme"], true);
    assert_eq!(one["location"], json!({"lat": 56.1, "lon": 10.2}));
    let two = app.get("/v1/firms/c-2").await.json();
    assert!(two.get("offers").is_none() && two.get("employees").is_none(), "empty cells are left out: {two}");

    // All six are searchable, and the CSV list column was split into sectors.
    let all = app.get("/v1/firms?limit=100").await.json();
    assert_eq!(all["total"], 6, "{all}");
    let m72 = app.get("/v1/firms?sector=M72").await.json();
    assert_eq!(ids_of(&m72["hits"]), vec!["c-1"]);
}

#[tokio::test]
async fn bulk_upsert_is_all_or_nothing() {
    let app = TestApp::spawn().await;
    let body = json!([
        {"id": "ok-1", "name": "Fine"},
        {"id": "bad-country", "name": "Bad", "country": "XX"},
        {"id": "ok-2", "name": "Fine too"},
        {"id": "bad-sector", "name": "Bad", "sectors": ["C10", "C99"], "colour": "red"},
    ]);
    let reply = app.post_json("/v1/firms", &body).await;
    let error = reply.assert_error(422, "validation_failed");
    assert!(error["message"].as_str().unwrap().contains("nothing was written"), "{}", reply.body);
    let details = error["details"].as_array().expect("details list the rejected items");
    assert_eq!(details.len(), 2, "{}", reply.body);
    assert_eq!(details[0]["index"], 1);
    assert_eq!(details[0]["id"], "bad-country");
    assert_eq!(details[0]["errors"][0]["field"], "country");
    assert_eq!(details[0]["errors"][0]["code"], "invalid_country");
    assert_eq!(details[1]["index"], 3);
    let fields: Vec<&str> =
        details[1]["errors"].as_array().unwrap().iter().map(|e| e["field"].as_str().unwrap()).collect();
    assert!(fields.contains(&"sectors[1]") && fields.contains(&"colour"), "{}", reply.body);
    for id in ["ok-1", "ok-2", "bad-country", "bad-sector"] {
        app.get(&format!("/v1/firms/{id}")).await.assert_error(404, "not_found");
    }
    assert_eq!(app.get("/v1/firms").await.json()["total"], 0);

    // NDJSON rejections name the line; a repeated id is refused rather than silently merged.
    let ndjson = "{\"id\":\"a\",\"name\":\"A\"}\n{\"id\":\"a\",\"name\":\"A again\"}\n{\"id\":\"b\",\"name\":\"\"}\n";
    let reply = app.post_raw("/v1/firms", "application/x-ndjson", ndjson).await;
    let error = reply.assert_error(422, "validation_failed");
    let details = error["details"].as_array().unwrap();
    assert_eq!(details[0]["index"], 1);
    assert_eq!(details[0]["line"], 2);
    assert_eq!(details[0]["errors"][0]["code"], "duplicate_id");
    assert_eq!(details[1]["line"], 3);
    assert_eq!(details[1]["errors"][0]["field"], "name");
    app.get("/v1/firms/a").await.assert_error(404, "not_found");

    // A CSV row with a bad value: the same rule.
    let csv = "id,name,country\ncsv-ok,Fine,DK\ncsv-bad,Bad,Atlantis\n";
    let reply = app.post_raw("/v1/firms", "text/csv", csv).await;
    let error = reply.assert_error(422, "validation_failed");
    assert_eq!(error["details"][0]["line"], 3, "{}", reply.body);
    assert_eq!(error["details"][0]["errors"][0]["field"], "country");
    app.get("/v1/firms/csv-ok").await.assert_error(404, "not_found");

    // An empty array holds nothing to write.
    app.post_json("/v1/firms", &json!([])).await.assert_invalid("body");
}

// ---------------------------------------------------------------------------
// Search
// ---------------------------------------------------------------------------

#[tokio::test]
async fn search_filters_paginates_and_highlights() {
    let app = TestApp::spawn().await;
    app.upsert(&catalogue()).await;
    let facts = fixture_facts();
    let count = |pred: &dyn Fn(&Fact) -> bool| facts.iter().filter(|f| pred(f)).count();

    let all = app.get("/v1/firms?limit=100").await.json();
    assert_eq!(all["total"], catalogue_ids().len());
    assert_eq!(all["hits"].as_array().unwrap().len(), catalogue_ids().len());

    let dairy = app.get("/v1/firms?q=dairy").await;
    dairy.assert_status(200);
    let dairy = dairy.json();
    assert!(dairy["total"].as_u64().unwrap() >= 3, "{dairy}");
    let first = &dairy["hits"][0];
    for field in ["id", "name", "kind", "sectors", "score"] {
        assert!(first.get(field).is_some(), "hit lacks {field}: {first}");
    }
    let snippet = first["snippet"].as_str().unwrap_or_else(|| panic!("a text query gives snippets: {first}"));
    assert!(snippet.to_lowercase().contains("<b>dairy</b>"), "snippet highlights the match: {snippet}");
    let scores: Vec<f64> = dairy["hits"].as_array().unwrap().iter().map(|h| h["score"].as_f64().unwrap()).collect();
    assert!(scores.windows(2).all(|w| w[0] >= w[1]), "hits are in relevance order: {scores:?}");

    let universities = app.get("/v1/firms?kind=university&limit=100").await.json();
    assert_eq!(universities["total"], count(&|f| f.kind == "university"));
    assert!(universities["hits"].as_array().unwrap().iter().all(|h| h["kind"] == "university"));

    let swedish = app.get("/v1/firms?country=se&limit=100").await.json();
    assert_eq!(swedish["total"], count(&|f| f.country == "SE"));
    assert!(swedish["hits"].as_array().unwrap().iter().all(|h| h["country"] == "SE"));

    let central_jutland = app.get("/v1/firms?region=DK04&limit=100").await.json();
    assert!(central_jutland["total"].as_u64().unwrap() >= 5, "{central_jutland}");
    assert!(central_jutland["hits"].as_array().unwrap().iter().all(|h| h["region"] == "DK04"));
    let denmark_by_region = app.get("/v1/firms?region=DK&limit=100").await.json();
    assert_eq!(denmark_by_region["total"], count(&|f| f.country == "DK"), "a NUTS prefix matches the whole country");

    // A division matches its classes: C10 finds C10.51, C10.11, C10.71 and C10.91 firms.
    let food = app.get("/v1/firms?sector=C10&limit=100").await.json();
    assert_eq!(food["total"], count(&|f| f.sectors.iter().any(|s| s.starts_with("C10"))), "{food}");
    let food_ids = ids_of(&food["hits"]);
    for id in ["dk-dairy", "de-meat", "dk-bakery", "de-feed"] {
        assert!(food_ids.contains(&id.to_string()), "{id} missing from sector C10: {food_ids:?}");
    }
    let dairies = app.get("/v1/firms?sector=10.51&limit=100").await.json();
    let dairy_ids: BTreeSet<String> = ids_of(&dairies["hits"]).into_iter().collect();
    assert_eq!(dairy_ids, BTreeSet::from(["de-molkerei".into(), "dk-dairy".into(), "se-dairy".into()]));

    let combined = app.get("/v1/firms?q=packaging&country=DK&kind=company").await.json();
    let combined_ids = ids_of(&combined["hits"]);
    assert!(combined_ids.contains(&"dk-pack".to_string()), "{combined}");
    assert!(combined["hits"].as_array().unwrap().iter().all(|h| h["country"] == "DK" && h["kind"] == "company"));

    // Size classes and the SME flag are derived from head counts.
    let employees: Vec<u64> = catalogue().iter().map(|p| p["employees"].as_u64().expect("employees")).collect();
    let micro = app.get("/v1/firms?size=micro&limit=100").await.json();
    assert_eq!(micro["total"], employees.iter().filter(|&&e| e < 10).count(), "{micro}");
    let smes = app.get("/v1/firms?sme=true&limit=100").await.json();
    assert_eq!(smes["total"], employees.iter().filter(|&&e| e < 250).count(), "{smes}");
    let large = app.get("/v1/firms?sme=false&limit=100").await.json();
    assert_eq!(large["total"], employees.iter().filter(|&&e| e >= 250).count(), "{large}");

    // Pagination: disjoint pages that together make the first ten.
    let page1 = app.get("/v1/firms?q=organic&limit=5&offset=0").await.json();
    let page2 = app.get("/v1/firms?q=organic&limit=5&offset=5").await.json();
    let both = app.get("/v1/firms?q=organic&limit=10&offset=0").await.json();
    assert_eq!(page1["total"], page2["total"]);
    assert!(page1["total"].as_u64().unwrap() > 5, "enough hits to page: {page1}");
    assert_eq!((page1["limit"].clone(), page1["offset"].clone()), (json!(5), json!(0)));
    assert_eq!(page2["offset"], 5);
    let (ids1, ids2) = (ids_of(&page1["hits"]), ids_of(&page2["hits"]));
    assert_eq!(ids1.len(), 5);
    assert!(ids1.iter().all(|id| !ids2.contains(id)), "pages overlap: {ids1:?} {ids2:?}");
    let joined: Vec<String> = ids1.iter().chain(&ids2).cloned().collect();
    assert_eq!(joined, ids_of(&both["hits"]));
    let beyond = app.get("/v1/firms?q=organic&offset=1000").await.json();
    assert_eq!(beyond["hits"], json!([]));
    assert_eq!(beyond["total"], page1["total"]);

    // Stray syntax in the query is tolerated.
    app.get("/v1/firms?q=%22cold%20chain%3A").await.assert_status(200);

    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("offset=10001", "offset"),
        ("kind=robot", "kind"),
        ("country=XX", "country"),
        ("region=D", "region"),
        ("sector=C99", "sector"),
        ("size=huge", "size"),
    ] {
        app.get(&format!("/v1/firms?{query}")).await.assert_invalid(field);
    }
    app.get(&format!("/v1/firms?q={}", "a".repeat(1001))).await.assert_invalid("q");
    app.get("/v1/firms?colour=red").await.assert_error(400, "bad_query");
    app.get("/v1/firms?limit=ten").await.assert_error(400, "bad_query");
}

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

#[tokio::test]
async fn unicode_text_round_trips_exactly() {
    let app = TestApp::spawn().await;
    let sent = r#"{"id":"uni-1","name":"Café ☕ Mejeri 🐄🚀","description":"مصنع الألبان العضوية في آرهوس — מחלבה אורגנית ירושלים 👩‍🔬","offers":["חלב","حليب","🧀 ost"],"city":"Århus"}"#;
    let put = app.put_raw("/v1/firms/uni-1", sent).await;
    put.assert_status(200);
    assert_round_trip(sent, &put.body);
    let get = app.get("/v1/firms/uni-1").await;
    get.assert_status(200);
    let value = assert_round_trip(sent, &get.body);
    assert_eq!(value["name"], "Café ☕ Mejeri 🐄🚀");
    assert_eq!(value["offers"][2], "🧀 ost");

    // Escaped and unescaped spellings are both kept as sent.
    let escaped = r#"{"id":"uni-2","name":"\u00c5rhus \ud83d\udc04 \u05d7\u05dc\u05d1"}"#;
    app.put_raw("/v1/firms/uni-2", escaped).await.assert_status(200);
    let value = assert_round_trip(escaped, &app.get("/v1/firms/uni-2").await.body);
    assert_eq!(value["name"], "Århus 🐄 חלב");

    let ndjson = "{\"id\":\"uni-3\",\"name\":\"شركة النقل المبرد\",\"description\":\"הובלה בקירור\"}\n";
    app.post_raw("/v1/firms", "application/x-ndjson", ndjson).await.assert_status(200);
    assert_round_trip(ndjson.trim_end(), &app.get("/v1/firms/uni-3").await.body);

    // Arabic and Hebrew words are searchable.
    for (word, id) in [("الألبان", "uni-1"), ("מחלבה", "uni-1"), ("المبرد", "uni-3")] {
        let hits = app.get(&format!("/v1/firms?q={}", urlencode(word))).await.json();
        assert!(ids_of(&hits["hits"]).contains(&id.to_string()), "searching {word}: {hits}");
    }
}

fn urlencode(text: &str) -> String {
    text.bytes()
        .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
        .collect()
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

// ---------------------------------------------------------------------------
// Collaborations
// ---------------------------------------------------------------------------

#[tokio::test]
async fn collaborations_are_stored_and_shown_as_ties() {
    let app = TestApp::spawn().await;
    app.upsert(&[profile("dk-dairy"), profile("dk-coldchain"), profile("dk-pack")]).await;
    let body = json!({"id": "proj-1", "title": "Cold chain pilot 🚚", "members": ["dk-pack", "dk-dairy", "dk-coldchain", "dk-dairy"]});
    let reply = app.post_json("/v1/collaborations", &body).await;
    reply.assert_status(201);
    let stored =
        json!({"id": "proj-1", "title": "Cold chain pilot 🚚", "members": ["dk-coldchain", "dk-dairy", "dk-pack"]});
    assert_eq!(reply.json(), stored, "members are deduplicated and sorted");
    let get = app.get("/v1/collaborations/proj-1").await;
    get.assert_status(200);
    assert_eq!(get.json(), stored);

    app.post_json("/v1/collaborations", &json!({"id": "proj-2", "members": ["dk-dairy", "dk-pack"]}))
        .await
        .assert_status(201);
    let firm = app.get("/v1/firms/dk-dairy").await.json();
    let ties = firm["ties"].as_array().expect("ties");
    assert_eq!(ties.len(), 2, "{firm}");
    let pilot = ties.iter().find(|t| t["collaboration"] == "proj-1").expect("proj-1 tie");
    assert_eq!(pilot["title"], "Cold chain pilot 🚚");
    assert_eq!(pilot["partners"], json!(["dk-coldchain", "dk-pack"]), "ties list the other members");
    let cold = app.get("/v1/firms/dk-coldchain").await.json();
    assert_eq!(cold["ties"].as_array().unwrap().len(), 1, "{cold}");

    let reply =
        app.post_json("/v1/collaborations", &json!({"id": "proj-3", "members": ["dk-dairy", "ghost-firm"]})).await;
    let error = reply.assert_invalid("members");
    assert_eq!(error["details"]["unknown_ids"], json!(["ghost-firm"]));
    app.get("/v1/collaborations/proj-3").await.assert_error(404, "not_found");
    app.post_json("/v1/collaborations", &json!({"id": "proj-4", "members": ["dk-dairy"]}))
        .await
        .assert_invalid("members");
    app.post_json("/v1/collaborations", &json!({"id": "bad id", "members": ["dk-dairy", "dk-pack"]}))
        .await
        .assert_invalid("id");
    app.post_json("/v1/collaborations", &json!({"id": "p", "members": ["dk-dairy", "dk-pack"], "budget": 1}))
        .await
        .assert_invalid("budget");
    app.post_raw("/v1/collaborations", "application/json", "{").await.assert_error(400, "malformed_body");
}

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

// ---------------------------------------------------------------------------
// Networks
// ---------------------------------------------------------------------------

fn network_request() -> Value {
    json!({
        "anchor": ["dk-dairy"],
        "opportunity": "organic dairy products in recyclable packaging delivered through a traceable cold chain",
        "size": {"min": 5, "max": 7},
        "require": {"kinds": {"academic": 1}},
        "alternatives": 3
    })
}

fn member_ids(network: &Value) -> Vec<String> {
    ids_of(&network["members"])
}

#[tokio::test]
async fn networks_assemble_explain_and_export() {
    let app = TestApp::spawn().await;
    app.upsert(&catalogue()).await;
    // Profiles without sectors: a research body's role comes from its kind, a
    // company's from a sector inferred from its text only when the guess is sure.
    let guessed = json!({"id": "dk-foodlab", "name": "Food Packaging Lab", "kind": "research", "country": "DK",
        "description": "Dairy processing, milk products, cheese and yoghurt packaging trials."});
    let vague = json!({"id": "dk-vague", "name": "Nordic Ventures ApS", "kind": "company", "country": "DK",
        "description": "Projects."});
    app.upsert(&[guessed, vague]).await;
    app.collaborate(&collaborations()).await;
    app.train().await;
    let mut locked = network_request();
    locked["lock"] = json!(["dk-foodlab"]);
    let reply = app.query_json("/v1/networks", &locked).await;
    let lab = reply.json()["network"]["members"]
        .as_array()
        .and_then(|members| members.iter().find(|m| m["id"] == "dk-foodlab").cloned())
        .unwrap_or_else(|| panic!("the locked lab is a member: {}", reply.json()));
    assert_eq!(lab["status"], "locked");
    assert_eq!(lab["role"], "research & development (research organisation)", "{lab}");
    assert_eq!(lab["stage"], "research & development", "{lab}");
    let mut vague = network_request();
    vague["lock"] = json!(["dk-vague"]);
    let reply = app.query_json("/v1/networks", &vague).await;
    let firm = reply.json()["network"]["members"]
        .as_array()
        .and_then(|members| members.iter().find(|m| m["id"] == "dk-vague").cloned())
        .unwrap_or_else(|| panic!("the locked firm is a member: {}", reply.json()));
    assert!(firm["role"].as_str().unwrap().starts_with("role unknown (company"), "{firm}");
    assert_eq!((&firm["stage"], &firm["position"]), (&Value::Null, &Value::Null), "{firm}");

    let reply = app.query_json("/v1/networks", &network_request()).await;
    reply.assert_status(200);
    assert_eq!(reply.cache(), "miss");
    let body = reply.json();
    let network = &body["network"];
    let members = network["members"].as_array().unwrap_or_else(|| panic!("no members: {body}"));
    assert!((5..=7).contains(&members.len()), "size within 5..=7: {}", members.len());
    let ids = member_ids(network);
    assert_eq!(ids.iter().collect::<HashSet<_>>().len(), ids.len(), "members are distinct: {ids:?}");
    let anchor = members.iter().find(|m| m["id"] == "dk-dairy").expect("the anchor is a member");
    assert_eq!(anchor["status"], "anchor");
    assert_eq!(anchor["reasons"].as_array().map(Vec::len), Some(1), "an anchor is not scored against itself: {anchor}");
    assert_eq!(anchor["reasons"][0]["signal"], "anchor", "{anchor}");
    assert!(members.iter().filter(|m| m["id"] != "dk-dairy").all(|m| m["status"] == "proposed"));
    assert!(
        members.iter().any(|m| m["kind"] == "university" || m["kind"] == "research"),
        "the academic requirement is met: {ids:?}"
    );
    let chain = network["chain"].as_array().unwrap_or_else(|| panic!("a chain: {network}"));
    for member in members {
        assert!(member["role"].is_string() && member["score"].is_number() && member["reasons"].is_array(), "{member}");
        let role = member["role"].as_str().unwrap();
        assert!(!role.contains('?'), "no role is a guess: {member}");
        match member["kind"].as_str().unwrap() {
            "university" => assert_eq!(member["stage"], "education & research", "{member}"),
            "research" => assert_eq!(member["stage"], "research & development", "{member}"),
            "public" => assert_eq!(member["stage"], "public administration", "{member}"),
            _ => assert!(member["stage"].is_string() || role.starts_with("role unknown"), "{member}"),
        }
        // A member with a stage sits in the chain column of that stage.
        if let Some(position) = member["position"].as_u64() {
            let column = &chain[position as usize - 1];
            assert_eq!(column["stage"], member["stage"], "{network}");
            assert!(column["members"].as_array().unwrap().contains(&member["id"]), "{network}");
        }
    }
    for (i, column) in chain.iter().enumerate() {
        assert_eq!(column["position"], i + 1, "{network}");
        assert_eq!(column["gap"], column["members"].as_array().unwrap().is_empty(), "{network}");
    }
    let covered: Vec<&Value> = chain.iter().filter(|c| c["gap"] == false).map(|c| &c["stage"]).collect();
    assert_eq!(network["stages_covered"].as_array().unwrap().iter().collect::<Vec<_>>(), covered, "{network}");
    let gaps: Vec<&Value> = chain.iter().filter(|c| c["gap"] == true).map(|c| &c["stage"]).collect();
    assert_eq!(network["gaps"].as_array().unwrap().iter().collect::<Vec<_>>(), gaps, "{network}");
    assert!(chain.iter().filter(|c| c["gap"] == true).all(|c| c["reason"].is_string()), "{network}");
    // Links join members, one per pair, drawn from → to with their reasons.
    let links = network["links"].as_array().expect("links");
    assert!(!links.is_empty(), "the dairy's partners are linked: {network}");
    let mut pairs = HashSet::new();
    for link in links {
        let (from, to) = (link["from"].as_str().unwrap().to_string(), link["to"].as_str().unwrap().to_string());
        assert!(ids.contains(&from) && ids.contains(&to) && from != to, "{link}");
        assert!(pairs.insert(BTreeSet::from([from, to])), "one link per pair: {links:?}");
        assert!(["supplies", "complements", "worked_together"].contains(&link["relation"].as_str().unwrap()), "{link}");
        assert!(link["reasons"].as_array().is_some_and(|r| !r.is_empty()) && link["directed"].is_boolean(), "{link}");
        assert_eq!(link["relation"] == "supplies", link["coefficient"].is_number(), "{link}");
    }
    let requirements = network["requirements"].as_array().expect("requirements");
    assert!(requirements.iter().all(|r| r["covered"] == true), "{requirements:?}");
    assert!(network["score"].is_number() && network["breakdown"]["relevance"].is_number(), "{network}");
    assert!(network["stages_covered"].as_array().is_some_and(|s| s.len() >= 2), "{network}");

    let alternatives = body["alternatives"].as_array().expect("alternatives");
    assert!(!alternatives.is_empty(), "the catalogue allows other networks: {body}");
    assert!(alternatives.len() <= 3);
    let mut sets: Vec<BTreeSet<String>> = vec![ids.iter().cloned().collect()];
    for alternative in alternatives {
        let set: BTreeSet<String> = member_ids(alternative).into_iter().collect();
        assert!(set.len() >= 5 && set.contains("dk-dairy"), "{set:?}");
        assert!(!sets.contains(&set), "alternatives differ as sets: {set:?} repeats one of {sets:?}");
        sets.push(set);
    }

    // The same request again: same members (now from the cache).
    let again = app.query_json("/v1/networks", &network_request()).await;
    again.assert_status(200);
    assert_eq!(again.cache(), "hit");
    assert_eq!(member_ids(&again.json()["network"]), ids);

    // CSV for spreadsheets: one row per member of every network.
    let csv = Reply::read(
        app.request(Method::POST, "/v1/networks").header("accept", "text/csv").json(&network_request()).send().await,
    )
    .await;
    csv.assert_status(200);
    assert!(csv.header("content-type").unwrap_or_default().starts_with("text/csv"), "{csv:?}");
    assert!(csv.header("content-disposition").unwrap_or_default().contains("network.csv"));
    let mut reader = csv::Reader::from_reader(csv.body.as_bytes());
    let headers: Vec<String> = reader.headers().expect("header row").iter().map(str::to_string).collect();
    assert_eq!(
        headers,
        [
            "network",
            "network_score",
            "status",
            "id",
            "name",
            "kind",
            "country",
            "role",
            "stage",
            "position",
            "score",
            "reasons"
        ]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("CSV row")).collect();
    let total_members: usize = sets.iter().map(BTreeSet::len).sum();
    assert_eq!(rows.len(), total_members, "{}", csv.body);
    let first_network: Vec<&str> = rows.iter().filter(|r| &r[0] == "0").map(|r| &r[3]).collect();
    assert_eq!(first_network, ids.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(rows.iter().any(|r| &r[2] == "anchor" && &r[3] == "dk-dairy"));
    // Role, stage and position as the JSON gives them.
    for (row, member) in rows.iter().filter(|r| &r[0] == "0").zip(members) {
        assert_eq!(&row[7], member["role"].as_str().unwrap());
        assert_eq!(&row[8], member["stage"].as_str().unwrap_or_default());
        assert_eq!(row[9].parse::<u64>().ok(), member["position"].as_u64(), "{row:?}");
    }

    // Locked members are kept; excluded ones never appear.
    let locked = json!({
        "opportunity": "organic dairy products in recyclable packaging", "lock": ["se-rise"], "exclude": ["dk-pack"],
        "countries": ["DK", "SE"], "max_per_country": 4, "alternatives": 0
    });
    let reply = app.query_json("/v1/networks", &locked).await;
    reply.assert_status(200);
    let body = reply.json();
    let members = body["network"]["members"].as_array().unwrap();
    assert!(members.iter().any(|m| m["id"] == "se-rise" && m["status"] == "locked"), "{body}");
    assert!(members.iter().all(|m| m["id"] != "dk-pack"));
    assert!(members.iter().all(|m| m["country"] == "DK" || m["country"] == "SE"));
    for country in ["DK", "SE"] {
        assert!(members.iter().filter(|m| m["country"] == country).count() <= 4, "{body}");
    }
    assert_eq!(body["alternatives"], json!([]));
}

#[tokio::test]
async fn networks_refuse_impossible_requests() {
    let app = TestApp::spawn().await;
    app.load_catalogue().await;
    let with = |patch: Value| {
        let mut request = network_request();
        for (key, value) in patch.as_object().unwrap() {
            request[key] = value.clone();
        }
        request
    };

    app.query_json("/v1/networks", &with(json!({"size": {"min": 4}}))).await.assert_invalid("size.min");
    app.query_json("/v1/networks", &with(json!({"size": {"min": 5, "max": 51}}))).await.assert_invalid("size.max");
    app.query_json("/v1/networks", &with(json!({"size": {"min": 9, "max": 6}}))).await.assert_invalid("size");
    app.query_json("/v1/networks", &json!({"size": {"min": 5}})).await.assert_invalid("opportunity");

    let reply = app.query_json("/v1/networks", &with(json!({"anchor": ["dk-dairy", "ghost-firm"]}))).await;
    let error = reply.assert_invalid("anchor");
    assert_eq!(error["details"]["unknown_ids"], json!(["ghost-firm"]), "{}", reply.body);

    let reply = app.query_json("/v1/networks", &with(json!({"lock": ["dk-pack"], "exclude": ["dk-pack"]}))).await;
    let error = reply.assert_invalid("exclude");
    assert_eq!(error["details"]["ids"], json!(["dk-pack"]));
    let reply = app.query_json("/v1/networks", &with(json!({"exclude": ["dk-dairy"]}))).await;
    assert_eq!(reply.assert_invalid("exclude")["details"]["ids"], json!(["dk-dairy"]));

    // Only two Danish universities exist: three cannot be found.
    let reply = app
        .query_json("/v1/networks", &with(json!({"countries": ["DK"], "require": {"kinds": {"university": 3}}})))
        .await;
    let error = reply.assert_invalid("require");
    let reason = error["details"]["reason"].as_str().unwrap_or_else(|| panic!("a reason: {}", reply.body));
    assert!(reason.contains("universities") && reason.contains('2'), "the reason names the rule: {reason}");
    let reply = app.query_json("/v1/networks", &with(json!({"require": {"sectors": ["B05"]}}))).await;
    let error = reply.assert_invalid("require");
    assert!(error["details"]["reason"].as_str().unwrap().contains("B05"), "{}", reply.body);
    // No public body and no firm in public administration: the stage cannot be covered.
    let reply = app.query_json("/v1/networks", &with(json!({"require": {"stages": ["public administration"]}}))).await;
    let error = reply.assert_invalid("require");
    let reason = error["details"]["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("public administration") && reason.contains("only 0"), "{}", reply.body);

    app.query_json("/v1/networks", &with(json!({"require": {"kinds": {"robots": 1}}})))
        .await
        .assert_invalid("require.kinds.robots");
    app.query_json("/v1/networks", &with(json!({"require": {"kinds": {"company": 9}}})))
        .await
        .assert_invalid("require.kinds.company");
    app.query_json("/v1/networks", &with(json!({"require": {"sme": 9}}))).await.assert_invalid("require.sme");
    app.query_json("/v1/networks", &with(json!({"require": {"stages": ["teleportation"]}})))
        .await
        .assert_invalid("require.stages");
    app.query_json("/v1/networks", &with(json!({"require": {"sectors": ["C99"]}})))
        .await
        .assert_invalid("require.sectors");
    app.query_json("/v1/networks", &with(json!({"countries": ["XX"]}))).await.assert_invalid("countries");
    app.query_json("/v1/networks", &with(json!({"max_per_country": 0}))).await.assert_invalid("max_per_country");
    app.query_json("/v1/networks", &with(json!({"countries": ["DK"], "max_per_country": 2})))
        .await
        .assert_invalid("max_per_country");
    app.query_json("/v1/networks", &with(json!({"alternatives": 11}))).await.assert_invalid("alternatives");
    app.query_json("/v1/networks", &with(json!({"k_candidates": 5}))).await.assert_invalid("k_candidates");
    app.query_json("/v1/networks", &with(json!({"colour": "red"}))).await.assert_invalid("colour");
    app.query_json("/v1/networks", &with(json!({"anchor": ["bad id"]}))).await.assert_invalid("anchor");
}

#[tokio::test]
async fn networks_are_deterministic() {
    let mut app = TestApp::spawn().await;
    app.load_catalogue().await;
    let request = json!({
        "opportunity": "electric refrigerated trucks and route optimisation software for chilled food distribution",
        "size": {"min": 5, "max": 8},
        "require": {"kinds": {"academic": 1}, "sme": 1},
        "alternatives": 2
    });
    let networks = |body: &Value| {
        let mut all = vec![member_ids(&body["network"])];
        all.extend(body["alternatives"].as_array().expect("alternatives").iter().map(member_ids));
        all
    };
    let first = app.query_json("/v1/networks", &request).await;
    first.assert_status(200);
    assert_eq!(first.cache(), "miss");
    let expected = networks(&first.json());

    // A different cache key for the same question (the catalogue is smaller than
    // either candidate cut-off) is computed afresh and gives the same networks.
    let mut same_question = request.clone();
    same_question["k_candidates"] = json!(150);
    let second = app.query_json("/v1/networks", &same_question).await;
    second.assert_status(200);
    assert_eq!(second.cache(), "miss", "computed, not cached");
    assert_eq!(networks(&second.json()), expected);

    // After a restart (empty in-process cache, the saved model) the answer is recomputed identically.
    app.restart().await;
    let third = app.query_json("/v1/networks", &request).await;
    third.assert_status(200);
    assert_eq!(third.cache(), "miss", "the in-process cache starts empty");
    assert_eq!(networks(&third.json()), expected);
}

/// Two services with the same catalogue and generation should give the same
/// answers: replicas share cache entries keyed only by generation.
#[tokio::test]
async fn networks_are_deterministic_across_instances() {
    let (first, second) = tokio::join!(TestApp::spawn(), TestApp::spawn());
    tokio::join!(first.load_catalogue(), second.load_catalogue());
    let request = json!({
        "opportunity": "electric refrigerated trucks and route optimisation software for chilled food distribution",
        "size": {"min": 5, "max": 8},
        "require": {"kinds": {"academic": 1}, "sme": 1},
        "alternatives": 2
    });
    let (a, b) = tokio::join!(first.query_json("/v1/networks", &request), second.query_json("/v1/networks", &request));
    a.assert_status(200);
    b.assert_status(200);
    let (a, b) = (a.json(), b.json());
    assert_eq!(a["generation"], b["generation"]);
    let partners_a = first.get("/v1/firms/dk-coldchain/partners?k=10").await.json();
    let partners_b = second.get("/v1/firms/dk-coldchain/partners?k=10").await.json();
    assert_eq!(ids_of(&partners_a["partners"]), ids_of(&partners_b["partners"]));
    assert_eq!(member_ids(&a["network"]), member_ids(&b["network"]));
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
