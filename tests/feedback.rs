//! `/v1/feedback` against the real service: the round trip, durability across a
//! restart and a kill -9 of the real binary, each scope's effect on partners,
//! shortlists, networks and the refresh's precomputed answers, 4xx for bad
//! feedback, cached answers never outliving a rejection (real Redis), and the
//! next fit learning from the decisions (counts and effect in `/v1/admin/model`).

mod common;

use std::time::{Duration, Instant};

use common::{RedisServer, Reply, TestApp, WRITE_KEY};
use reqwest::Method;
use serde_json::{Value, json};

const OPPORTUNITY: &str = "organic dairy products in recyclable packaging delivered through a traceable cold chain";

fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|item| item["id"].as_str().expect("id").to_string())
        .collect()
}

async fn partners(app: &TestApp, firm: &str) -> (Vec<String>, String) {
    let reply = app.get(&format!("/v1/firms/{firm}/partners?k=10")).await;
    reply.assert_status(200);
    (ids(&reply.json()["partners"]), reply.cache().to_string())
}

async fn feedback(app: &TestApp, body: Value) -> Value {
    let reply = app.post_json("/v1/feedback", &body).await;
    reply.assert_status(201);
    reply.json()
}

async fn network_members(app: &TestApp, body: &Value) -> Vec<String> {
    let reply = app.query_json("/v1/networks", body).await;
    reply.assert_status(200);
    ids(&reply.json()["network"]["members"])
}

#[tokio::test]
async fn feedback_round_trips_filters_pages_and_deletes() {
    let app = TestApp::spawn().await;
    app.load_catalogue().await;
    let reply = app
        .post_json(
            "/v1/feedback",
            &json!({"anchor": "dk-dairy", "firm": "dk-pack", "decision": "reject", "note": "no capacity", "author": "ann"}),
        )
        .await;
    reply.assert_status(201);
    let stored = reply.json();
    let id = stored["id"].as_str().expect("an id").to_string();
    assert_eq!(reply.header("location"), Some(format!("/v1/feedback/{id}").as_str()));
    assert_eq!(stored["scope"], "anchor", "the default scope: {stored}");
    assert_eq!(
        (&stored["anchor"], &stored["firm"], &stored["decision"]),
        (&json!("dk-dairy"), &json!("dk-pack"), &json!("reject"))
    );
    assert_eq!((&stored["note"], &stored["author"]), (&json!("no capacity"), &json!("ann")));
    assert!(stored["time"].as_str().is_some_and(|t| t.ends_with('Z')), "{stored}");
    let got = app.get(&format!("/v1/feedback/{id}")).await;
    got.assert_status(200);
    assert_eq!(got.json(), stored);

    // The latest decision on the same (anchor, firm) replaces the earlier one,
    // under the same id: the pair's decision has one address.
    let accepted = feedback(&app, json!({"anchor": "dk-dairy", "firm": "dk-pack", "decision": "accept"})).await;
    assert_eq!(accepted["id"], json!(id), "{accepted}");
    assert_eq!(app.get(&format!("/v1/feedback/{id}")).await.json()["decision"], "accept");
    let other = feedback(&app, json!({"anchor": "dk-dairy", "firm": "dk-coldchain", "decision": "reject"})).await;
    feedback(&app, json!({"firm": "dk-coldchain", "decision": "reject", "scope": "everywhere"})).await;

    let list = app.get("/v1/feedback").await;
    list.assert_status(200);
    let page = list.json();
    assert_eq!(page["total"], 3, "{page}");
    assert_eq!(page["feedback"][2]["id"], accepted["id"], "newest first: {page}");
    assert_eq!(app.get("/v1/feedback?anchor=dk-dairy").await.json()["total"], 2);
    assert_eq!(app.get("/v1/feedback?firm=dk-pack").await.json()["feedback"][0]["decision"], "accept");
    assert_eq!(app.get("/v1/feedback?decision=reject").await.json()["total"], 2);
    assert_eq!(app.get("/v1/feedback?since=2999-01-01T00:00:00Z").await.json()["total"], 0);
    assert_eq!(app.get("/v1/feedback?since=2000-01-01T00:00:00Z").await.json()["total"], 3);
    let second = app.get("/v1/feedback?limit=1&offset=1").await.json();
    assert_eq!((second["total"].as_u64(), second["feedback"].as_array().map(Vec::len)), (Some(3), Some(1)));
    assert_eq!(second["feedback"][0]["id"], other["id"], "{second}");

    let other_id = other["id"].as_str().unwrap();
    app.delete(&format!("/v1/feedback/{other_id}")).await.assert_status(204);
    app.delete(&format!("/v1/feedback/{other_id}")).await.assert_error(404, "not_found");
    assert_eq!(app.get("/v1/feedback").await.json()["total"], 2);
    let model = Reply::read(app.authed(Method::GET, "/v1/admin/model").send().await).await.json();
    assert_eq!((&model["feedback"]["decisions"], &model["feedback"]["rejected"]), (&json!(2), &json!(1)), "{model}");

    // Writes need the write key; the OpenAPI document lists the endpoints.
    let anonymous = Reply::read(
        app.request(Method::POST, "/v1/feedback")
            .json(&json!({"anchor": "dk-dairy", "firm": "dk-pack", "decision": "reject"}))
            .send()
            .await,
    )
    .await;
    anonymous.assert_error(401, "unauthorized");
    let delete = Reply::read(app.request(Method::DELETE, "/v1/feedback/x").send().await).await;
    delete.assert_error(401, "unauthorized");
    let spec = app.get("/openapi.json").await.json();
    assert!(spec["paths"]["/v1/feedback"]["post"].is_object(), "POST documented");
    assert!(spec["paths"]["/v1/feedback"]["get"].is_object(), "GET documented");
    assert!(spec["paths"]["/v1/feedback/{id}"]["delete"].is_object(), "DELETE documented");
}

#[tokio::test]
async fn bad_feedback_is_refused_with_the_field_named() {
    let app = TestApp::spawn().await;
    app.load_catalogue().await;
    let cases = [
        (json!({"anchor": "dk-dairy", "decision": "reject"}), "firm"),
        (json!({"anchor": "dk-dairy", "firm": "dk-pack"}), "decision"),
        (json!({"anchor": "dk-dairy", "firm": "dk-pack", "decision": "maybe"}), "decision"),
        (json!({"anchor": "dk-dairy", "firm": "dk-pack", "decision": 1}), "decision"),
        (json!({"anchor": "dk-dairy", "firm": "dk-pack", "decision": "reject", "scope": "galaxy"}), "scope"),
        (json!({"firm": "dk-pack", "decision": "reject"}), "anchor"),
        (json!({"anchor": "dk-dairy", "firm": "no-such-firm", "decision": "reject"}), "firm"),
        (json!({"anchor": "no-such-firm", "firm": "dk-pack", "decision": "reject"}), "anchor"),
        (json!({"anchor": "dk-dairy", "firm": "dk-dairy", "decision": "reject"}), "firm"),
        (json!({"anchor": "dk-dairy", "firm": "bad id", "decision": "reject"}), "firm"),
        (json!({"anchor": "dk-dairy", "firm": "dk-pack", "decision": "reject", "colour": "red"}), "colour"),
        (json!({"anchor": "dk-dairy", "firm": "dk-pack", "decision": "reject", "note": "x".repeat(2001)}), "note"),
        (json!(["not", "an", "object"]), "body"),
        // Blank is not absent: the spec's pattern refuses it, whatever the scope.
        (json!({"opportunity": "  ", "firm": "dk-pack", "decision": "accept", "scope": "everywhere"}), "opportunity"),
        (json!({"opportunity": "", "firm": "dk-pack", "decision": "reject"}), "opportunity"),
        // Limits count the text as sent, as the spec's maxLength does.
        (
            json!({"opportunity": format!("dairy{}", " ".repeat(5000)), "firm": "dk-pack", "decision": "reject"}),
            "opportunity",
        ),
        (
            json!({"anchor": "dk-dairy", "firm": "dk-pack", "decision": "reject", "author": format!("a{}", " ".repeat(200))}),
            "author",
        ),
    ];
    for (body, field) in cases {
        let reply = app.post_json("/v1/feedback", &body).await;
        assert_eq!(reply.status, 422, "{body} -> {reply:?}");
        reply.assert_invalid(field);
    }
    app.post_raw("/v1/feedback", "application/json", "{\"firm\": ").await.assert_error(400, "malformed_body");
    app.get("/v1/feedback?since=yesterday").await.assert_invalid("since");
    app.get("/v1/feedback?decision=maybe").await.assert_invalid("decision");
    app.get("/v1/feedback?limit=0").await.assert_invalid("limit");
    assert_eq!(app.get("/v1/feedback").await.json()["total"], 0, "nothing was stored");
}

#[tokio::test]
async fn feedback_survives_a_restart_and_still_applies() {
    let mut app = TestApp::spawn().await;
    app.load_catalogue().await;
    let (before, _) = partners(&app, "dk-dairy").await;
    let rejected = before[0].clone();
    let stored = feedback(&app, json!({"anchor": "dk-dairy", "firm": rejected, "decision": "reject"})).await;
    app.restart().await;
    let list = app.get("/v1/feedback").await.json();
    assert_eq!(list["feedback"], json!([stored]), "{list}");
    let (after, _) = partners(&app, "dk-dairy").await;
    assert!(!after.contains(&rejected), "{rejected} stays rejected after a restart: {after:?}");
}

#[tokio::test]
async fn each_scope_keeps_rejected_firms_out_of_partners_shortlists_and_networks() {
    let app = TestApp::spawn().await;
    app.load_catalogue().await;

    // Scope anchor: gone from the anchor's partners and from any group holding it.
    let (before, _) = partners(&app, "dk-dairy").await;
    let rejected = before[0].clone();
    feedback(&app, json!({"anchor": "dk-dairy", "firm": rejected, "decision": "reject"})).await;
    let (after, cache) = partners(&app, "dk-dairy").await;
    assert_eq!(cache, "miss");
    assert!(!after.contains(&rejected), "{after:?}");
    assert_eq!(after[..before.len() - 1], before[1..], "the others keep their order");
    let shortlist =
        app.query_json("/v1/shortlists", &json!({"opportunity": OPPORTUNITY, "anchor": ["dk-dairy"], "k": 30})).await;
    assert!(!ids(&shortlist.json()["partners"]).contains(&rejected));
    let network = json!({"anchor": ["dk-dairy"], "opportunity": OPPORTUNITY, "size": {"min": 5, "max": 8}});
    assert!(!network_members(&app, &network).await.contains(&rejected));
    let around = app.get("/v1/firms/dk-dairy/network").await;
    around.assert_status(200);
    assert!(!ids(&around.json()["network"]["members"]).contains(&rejected));
    // Another firm's anchor as the request's anchor, dk-dairy only locked: still a member of the group.
    let other = before.iter().find(|id| **id != rejected).unwrap().clone();
    let locked = json!({"anchor": [other], "lock": ["dk-dairy"], "size": {"min": 5, "max": 8}});
    assert!(!network_members(&app, &locked).await.contains(&rejected));
    // A firm the caller locks explicitly stays in.
    let explicit = json!({"anchor": ["dk-dairy"], "lock": [rejected], "size": {"min": 5, "max": 8}});
    assert!(network_members(&app, &explicit).await.contains(&rejected));

    // Scope anchor with only an opportunity: that text (normalised), not others.
    let list = |text: &str| {
        let body = json!({"opportunity": text, "k": 30});
        let app = &app;
        async move {
            let reply = app.query_json("/v1/shortlists", &body).await;
            reply.assert_status(200);
            ids(&reply.json()["partners"])
        }
    };
    let text = "cold-chain logistics for chilled food";
    let before = list(text).await;
    let top = before[0].clone();
    feedback(
        &app,
        json!({"opportunity": "  COLD-CHAIN logistics   for chilled food. ", "firm": top, "decision": "reject"}),
    )
    .await;
    assert!(!list(text).await.contains(&top), "rejected for this text");
    let elsewhere = list("refrigerated transport and cold-chain logistics").await;
    assert!(elsewhere.contains(&top), "another text is another opportunity: {elsewhere:?}");

    // Scope everywhere: out of every anchor's partners until deleted.
    let (mut seen_with, mut anchors) = (None, Vec::new());
    for anchor in common::catalogue_ids() {
        let (list, _) = partners(&app, anchor).await;
        if let Some(first) = list.first() {
            seen_with.get_or_insert_with(|| first.clone());
            if Some(first) == seen_with.as_ref() || list.contains(seen_with.as_ref().unwrap()) {
                anchors.push(anchor);
            }
        }
        if anchors.len() >= 3 {
            break;
        }
    }
    let everywhere = seen_with.expect("some firm has partners");
    let record = feedback(&app, json!({"firm": everywhere, "decision": "reject", "scope": "everywhere"})).await;
    for anchor in &anchors {
        assert!(!partners(&app, anchor).await.0.contains(&everywhere), "{everywhere} proposed to {anchor}");
    }
    assert!(!list(text).await.contains(&everywhere));
    app.delete(&format!("/v1/feedback/{}", record["id"].as_str().unwrap())).await.assert_status(204);
    assert!(partners(&app, anchors[0]).await.0.contains(&everywhere), "proposed again once deleted");
}

#[tokio::test]
async fn precomputed_answers_are_filtered_and_a_network_that_loses_a_member_is_rebuilt() {
    let app = TestApp::builder().refresh_networks().spawn().await;
    app.load_catalogue().await;
    let job = app.authed(Method::POST, "/v1/admin/refresh").send().await.expect("refresh");
    let job: Value = job.json().await.expect("job");
    let path = format!("/v1/admin/jobs/{}", job["id"].as_str().expect("job id"));
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let reply = Reply::read(app.authed(Method::GET, &path).send().await).await;
        if reply.json()["status"] == "succeeded" {
            break;
        }
        assert_ne!(reply.json()["status"], "failed", "{}", reply.body);
        assert!(Instant::now() < deadline, "the refresh did not finish");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (before, cache) = partners(&app, "dk-dairy").await;
    assert_eq!(cache, "precomputed");
    let around = app.get("/v1/firms/dk-dairy/network").await;
    assert_eq!(around.cache(), "precomputed");
    let members = ids(&around.json()["network"]["members"]);
    let lost = members[1].clone();

    feedback(&app, json!({"anchor": "dk-dairy", "firm": lost, "decision": "reject"})).await;
    let (after, cache) = partners(&app, "dk-dairy").await;
    assert_eq!(cache, "precomputed", "the stored ranking minus the rejected firm");
    assert!(!after.contains(&lost), "{after:?}");
    let expected: Vec<String> = before.iter().filter(|id| **id != lost).cloned().collect();
    assert_eq!(after[..expected.len()], expected[..]);
    let rebuilt = app.get("/v1/firms/dk-dairy/network").await;
    rebuilt.assert_status(200);
    assert_ne!(rebuilt.cache(), "precomputed", "rebuilt live");
    let rebuilt = ids(&rebuilt.json()["network"]["members"]);
    assert!(!rebuilt.contains(&lost) && rebuilt.len() >= 5, "{rebuilt:?}");
    assert_eq!(rebuilt[0], "dk-dairy");

    // A refit that learns from the decision keeps the catalogue's generation but
    // weighs the signals anew: the stored rankings were made with the old weights.
    app.train().await;
    let model = Reply::read(app.authed(Method::GET, "/v1/admin/model").send().await).await;
    assert!(model.json()["feedback_learnt"]["decisions"].as_u64().unwrap_or(0) >= 1, "{}", model.body);
    let (_, cache) = partners(&app, "dk-dairy").await;
    assert_ne!(cache, "precomputed", "results ranked before the decisions were learnt are not served");
}

#[tokio::test]
async fn cached_answers_never_outlive_a_rejection() {
    let redis = RedisServer::start();
    let app = TestApp::builder().redis(redis.url()).spawn().await;
    app.load_catalogue().await;
    let (before, cache) = partners(&app, "dk-dairy").await;
    assert_eq!(cache, "miss");
    assert_eq!(partners(&app, "dk-dairy").await.1, "hit");
    let network = json!({"anchor": ["dk-dairy"], "opportunity": OPPORTUNITY, "size": {"min": 5, "max": 8}});
    let first = app.query_json("/v1/networks", &network).await;
    assert_eq!(app.query_json("/v1/networks", &network).await.cache(), "hit");
    let rejected = before[0].clone();
    let member = ids(&first.json()["network"]["members"])
        .into_iter()
        .find(|id| id != "dk-dairy" && *id != rejected)
        .expect("a proposed member");

    let record = feedback(&app, json!({"anchor": "dk-dairy", "firm": rejected, "decision": "reject"})).await;
    let (after, cache) = partners(&app, "dk-dairy").await;
    assert_eq!(cache, "miss", "the cached answer held the rejected firm");
    assert!(!after.contains(&rejected));
    feedback(&app, json!({"anchor": "dk-dairy", "firm": member, "decision": "reject"})).await;
    let again = app.query_json("/v1/networks", &network).await;
    assert_eq!(again.cache(), "miss");
    assert!(!ids(&again.json()["network"]["members"]).contains(&member));

    // Deleting a decision brings its firm back; the other rejection still holds.
    app.delete(&format!("/v1/feedback/{}", record["id"].as_str().unwrap())).await.assert_status(204);
    let (restored, _) = partners(&app, "dk-dairy").await;
    let expected: Vec<String> = before.iter().filter(|id| **id != member).cloned().collect();
    assert_eq!(restored[..expected.len()], expected[..]);
}

/// The real binary, killed with SIGKILL right after a 201: the decision is on disk.
#[tokio::test]
async fn a_kill_9_after_the_201_loses_nothing() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let port = common::free_port();
    let config = dir.path().join("klynge.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nhost = \"127.0.0.1\"\nport = {port}\nworkers = 1\n\n[data]\ndir = {:?}\n\n\
             [auth]\nwrite_keys = [\"{WRITE_KEY}\"]\n\n[models]\nretrain_debounce_seconds = 0\n\n[log]\nlevel = \"warn\"\n",
            dir.path().join("data").display().to_string()
        ),
    )
    .expect("settings");
    let spawn = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_klynge"))
            .args(["--config", &config.display().to_string(), "serve"])
            .env_clear()
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("run klynge")
    };
    let client = reqwest::Client::builder().no_proxy().build().expect("client");
    let base = format!("http://127.0.0.1:{port}");
    let wait_ready = || async {
        let deadline = Instant::now() + Duration::from_secs(30);
        while client.get(format!("{base}/health/live")).send().await.is_err() {
            assert!(Instant::now() < deadline, "klynge did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    let mut child = spawn();
    wait_ready().await;
    let profiles = json!([common::profile("dk-dairy"), common::profile("dk-pack")]);
    let reply = client.post(format!("{base}/v1/firms")).bearer_auth(WRITE_KEY).json(&profiles).send().await.unwrap();
    assert_eq!(reply.status(), 200);
    let mut stored = Vec::new();
    for decision in ["reject", "accept", "reject"] {
        let body = json!({"anchor": "dk-dairy", "firm": "dk-pack", "decision": decision, "note": decision});
        let reply = client.post(format!("{base}/v1/feedback")).bearer_auth(WRITE_KEY).json(&body).send().await.unwrap();
        assert_eq!(reply.status(), 201);
        stored.push(reply.json::<Value>().await.unwrap());
    }
    let everywhere = json!({"firm": "dk-dairy", "decision": "reject", "scope": "everywhere"});
    let reply =
        client.post(format!("{base}/v1/feedback")).bearer_auth(WRITE_KEY).json(&everywhere).send().await.unwrap();
    assert_eq!(reply.status(), 201);
    stored.push(reply.json::<Value>().await.unwrap());
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");

    let mut child = spawn();
    wait_ready().await;
    let list: Value = client.get(format!("{base}/v1/feedback")).send().await.unwrap().json().await.unwrap();
    child.kill().expect("SIGKILL");
    child.wait().expect("reaped");
    assert_eq!(list["feedback"], json!([stored[3], stored[2]]), "the latest decisions, newest first: {list}");
}

async fn model_info(app: &TestApp) -> Value {
    let reply = Reply::read(app.authed(Method::GET, "/v1/admin/model").send().await).await;
    reply.assert_status(200);
    reply.json()
}

#[tokio::test]
async fn the_next_fit_learns_from_the_decisions_and_shows_their_count_and_effect() {
    let app = TestApp::spawn().await;
    app.load_catalogue().await;
    let before = model_info(&app).await;
    assert!(before["feedback_learnt"].is_null(), "fitted without decisions: {before}");
    // A manager who only takes partners from the anchor's own country, on the
    // pages of a few anchors of each country.
    let country: std::collections::HashMap<&str, &str> =
        common::fixture_facts().into_iter().map(|fact| (fact.id, fact.country)).collect();
    let (mut accepted, mut rejected) = (0u64, 0u64);
    for anchor in ["dk-dairy", "dk-pack", "de-molkerei", "de-logistics", "se-dairy", "se-coldlog"] {
        let (list, _) = partners(&app, anchor).await;
        for firm in list {
            let accept = country[firm.as_str()] == country[anchor];
            let decision = if accept { "accept" } else { "reject" };
            feedback(&app, json!({"anchor": anchor, "firm": firm, "decision": decision})).await;
            if accept { accepted += 1 } else { rejected += 1 }
        }
    }
    assert!(accepted >= 5 && rejected >= 5, "both kinds of decision: {accepted} accepted, {rejected} rejected");
    // Decisions are learnt at the next fit, not before.
    let unfitted = model_info(&app).await;
    assert!(unfitted["feedback_learnt"].is_null(), "{unfitted}");
    assert_eq!(unfitted["feedback"]["decisions"], json!(accepted + rejected), "{unfitted}");

    let trained = app.train().await;
    let learnt = &trained["feedback_learnt"];
    assert_eq!((&learnt["accepted"], &learnt["rejected"]), (&json!(accepted), &json!(rejected)), "{trained}");
    assert_eq!(learnt["decisions"], json!(accepted + rejected), "{learnt}");
    assert!(learnt["ranking_pairs"].as_u64().unwrap() >= accepted, "{learnt}");
    assert!(learnt["rejected_learnt"].as_u64().unwrap() > 0, "{learnt}");
    let fed = trained["training_pairs"]["positives"].as_u64().unwrap();
    let was = before["training_pairs"]["positives"].as_u64().unwrap();
    let learnt_before = before["weights_learnt"].as_bool().unwrap();
    assert!(!learnt_before || fed == was + accepted, "accepted firms are positives: {was} → {fed}");
    // The effect: same country now counts for more, and the refitted weights
    // order the manager's own decisions better than the weights without them.
    let change = learnt["weight_change_per_unit"]["same_country"].as_f64().unwrap();
    assert!(change > 0.0, "same country gains weight: {learnt}");
    let (without, with) = (learnt["agreement_without"].as_f64().unwrap(), learnt["agreement_with"].as_f64().unwrap());
    assert!(with > without, "accepted above rejected: {without} without the decisions, {with} with: {learnt}");

    // The same catalogue and decisions: a refit keeps that model.
    let again = app.train().await;
    assert_eq!(again["feedback_learnt"], trained["feedback_learnt"]);
    assert_eq!(again["weights"], trained["weights"]);
    // Deleted decisions are forgotten at the next fit.
    let all = app.get(&format!("/v1/feedback?limit={}", accepted + rejected)).await.json();
    for record in all["feedback"].as_array().unwrap() {
        app.delete(&format!("/v1/feedback/{}", record["id"].as_str().unwrap())).await.assert_status(204);
    }
    let forgotten = app.train().await;
    assert!(forgotten["feedback_learnt"].is_null(), "{forgotten}");
    assert_eq!(forgotten["weights"], before["weights"], "the weights without decisions again");
}
