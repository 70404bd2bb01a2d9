//! Day-one partners end to end over HTTP, on a catalogue with no collaborations:
//! financial vehicles and an anchor's second listing are never proposed (unless
//! asked for, for vehicles), `relation` keeps the asked side of the value chain,
//! bad parameters are 422, and the model reports its default weights. And
//! `eval-links` on a small links file with bad lines.

mod common;

use common::TestApp;
use serde_json::{Value, json};

fn firm(id: &str, name: &str, sectors: &[&str], description: &str) -> Value {
    json!({"id": id, "name": name, "country": "DK", "sectors": sectors, "description": description})
}

/// A dairy, its farm supplier and retail customer, its second listing, a dairy
/// ETF, and unrelated firms so that the text model has a vocabulary.
fn catalogue() -> Vec<Value> {
    let mut firms = vec![
        firm("dairy", "Nordic Dairy A/S", &["C10.51"], "Dairy processing: milk, cheese, butter and yoghurt."),
        firm("dairy-2", "NORDIC DAIRY", &["C10"], "Listing of the dairy group: milk and cheese."),
        firm("farm", "Green Pastures Farm", &["A01"], "Dairy cattle farm delivering raw milk for cheese."),
        firm("shop", "Corner Grocers", &["G47"], "Grocery retail of milk, cheese, yoghurt and bread."),
        firm("etf", "Dairy Leaders Index ETF", &[], "The fund tracks dairy, milk and cheese producers."),
    ];
    let others = [
        ("soft", "Code Works", "J62", "Software development, cloud hosting and databases."),
        ("steel", "Iron Mill", "C24", "Steel rolling mill, steel plates and wire."),
        ("bank", "Fjord Bank", "K64", "Retail banking, loans and savings accounts."),
        ("haul", "Road Haulage", "H49", "Road freight transport and cold-chain trucking of milk."),
        ("chem", "Chem Corp", "C20", "Industrial chemicals, solvents and plastics."),
        ("build", "Build It", "F41", "Construction of houses and office buildings."),
        ("pharma", "Pharma Labs", "C21", "Pharmaceutical tablets and vaccines."),
    ];
    for (id, name, sector, description) in others {
        firms.push(firm(id, name, &[sector], description));
    }
    firms
}

fn ids(reply: &Value) -> Vec<String> {
    reply["partners"].as_array().unwrap().iter().map(|p| p["id"].as_str().unwrap().to_string()).collect()
}

#[tokio::test]
async fn day_one_partners_skip_vehicles_and_twins_and_keep_the_asked_side() {
    let app = TestApp::spawn().await;
    app.upsert(&catalogue()).await;
    let model = app.train().await;
    assert_eq!(model["weights_learnt"], false, "{model}");
    assert!(model["default_weights"]["fitted_on"].as_str().is_some_and(|s| !s.is_empty()), "{model}");

    let reply = app.get("/v1/firms/dairy/partners?k=20").await;
    reply.assert_status(200);
    let all = ids(&reply.json());
    assert!(all.contains(&"farm".to_string()) && all.contains(&"shop".to_string()), "{all:?}");
    assert!(!all.contains(&"dairy-2".to_string()), "its own second listing: {all:?}");
    assert!(!all.contains(&"etf".to_string()), "a fund: {all:?}");

    let reply = app.get("/v1/firms/dairy/partners?k=20&include_financial_vehicles=true").await;
    reply.assert_status(200);
    assert!(ids(&reply.json()).contains(&"etf".to_string()), "{}", reply.json());

    let reply = app.get("/v1/firms/dairy/partners?k=20&relation=supplier").await;
    reply.assert_status(200);
    let suppliers = ids(&reply.json());
    assert!(suppliers.contains(&"farm".to_string()), "{suppliers:?}");
    assert!(!suppliers.contains(&"shop".to_string()), "a shop does not supply a dairy: {suppliers:?}");
    // Each is there for its input-output link, and says so, whatever its weight.
    for partner in reply.json()["partners"].as_array().unwrap() {
        let reasons = partner["reasons"].as_array().unwrap();
        assert!(
            reasons.iter().any(|r| r["text"].as_str().unwrap().starts_with("value-chain supplier: C10 buys")),
            "{partner}"
        );
    }

    let reply = app.get("/v1/firms/dairy/partners?k=20&relation=customer").await;
    reply.assert_status(200);
    let customers = ids(&reply.json());
    // Farms buy animal feed (C10) too; the table is dense, so most sectors are both.
    assert!(customers.contains(&"shop".to_string()), "{customers:?}");

    let reply = app.get("/v1/firms/dairy/partners?relation=buyer").await;
    reply.assert_status(422);
    assert_eq!(reply.json()["error"]["field"], "relation", "{}", reply.json());

    let body = json!({"opportunity": "cheese and milk", "anchor": ["dairy"], "relation": "supplier", "k": 20});
    let reply = app.query_json("/v1/shortlists", &body).await;
    reply.assert_status(200);
    let listed = ids(&reply.json());
    assert!(listed.contains(&"farm".to_string()) && !listed.contains(&"shop".to_string()), "{listed:?}");
}

#[test]
fn eval_links_scores_firms_with_three_links_and_reports_bad_lines() {
    let dir = tempfile::tempdir().unwrap();
    let profiles = dir.path().join("profiles.ndjson");
    let lines: Vec<String> = catalogue().iter().map(Value::to_string).collect();
    std::fs::write(&profiles, lines.join("\n") + "\n{\"id\": \"broken\"}\n").unwrap();
    let links = dir.path().join("links.csv");
    std::fs::write(
        &links,
        "customer,supplier\nshop,dairy\ndairy,farm\ndairy,haul\nnobody,dairy\ndairy\ndairy,dairy\nshop,farm\n",
    )
    .unwrap();
    let out = dir.path().join("predictions.jsonl");
    let report = klynge::lab::eval_links::run(&profiles, &links, &[1, 5, 50], Some(&out)).unwrap();
    assert_eq!(report.profiles, 12);
    assert_eq!(report.rejected_profiles, 1, "the profile without a name");
    assert_eq!(report.links, 4);
    assert_eq!(report.bad_lines.iter().map(|b| b.line).collect::<Vec<_>>(), vec![5, 6, 7]);
    // Only the dairy has three linked firms (shop, farm, haul).
    assert_eq!(report.firms, 1);
    let predictions = std::fs::read_to_string(&out).unwrap();
    let line: Value = serde_json::from_str(predictions.lines().next().unwrap()).unwrap();
    assert_eq!(line["id"], "dairy");
    for row in &report.rows {
        assert_eq!(row.recall.len(), 3);
        // Every other firm fits in the top 50: all three are found.
        assert_eq!(row.recall[2], 1.0, "{row:?}");
        assert!(row.recall[0] <= row.recall[1]);
    }
    assert!(report.table().contains("| top 5 |"), "{}", report.table());
}
