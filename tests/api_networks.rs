//! End-to-end tests of network assembly against the real application: networks
//! assembled, explained and exported, impossible requests refused, and the same
//! answer every time and on every instance.

mod common;

use std::collections::{BTreeSet, HashSet};

use common::{Reply, TestApp, catalogue, collaborations, ids_of};
use reqwest::Method;
use serde_json::{Value, json};

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
    let padded = format!("dairy{}", " ".repeat(5000));
    app.query_json("/v1/networks", &json!({"opportunity": padded, "size": {"min": 5}}))
        .await
        .assert_invalid("opportunity");

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
