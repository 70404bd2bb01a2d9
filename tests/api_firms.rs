//! End-to-end tests of the firm resources against the real application (tantivy
//! on disk in a temporary directory, the in-process cache, real model fits):
//! profile writes and reads, bulk upload, search, and collaborations.

mod common;

use std::collections::BTreeSet;

use common::{Fact, TestApp, assert_round_trip, catalogue, catalogue_ids, fixture_facts, ids_of, profile};
use serde_json::json;

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
