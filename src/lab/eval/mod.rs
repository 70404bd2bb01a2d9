//! `klynge eval`: the quality benchmark on consortium data in the CORDIS format of
//! `shared/data/consortia` (see its README for the protocol). It builds a fresh
//! in-memory index from the catalogue, fits the models, answers every query with
//! the same code the API runs, writes one prediction line per query, and — when
//! the queries carry plain member ids — prints Recall@10, Recall@50, nDCG@50 and
//! network precision next to the popularity and TF-IDF baselines of the same run,
//! and the distinct value-chain stages and kinds per network beside the real
//! consortia's. The other runs live beside it: `catalogue` (CORDIS records as
//! profiles and collaborations, fitted engines), `completion` (networks with
//! members locked, a simulated manager's feedback rounds), `holdout` (both on
//! held-out catalogue collaborations), `learning` (`--learning-check`), `tune`
//! (`--tune-networks`: the network objective's weights by cross-validation on the
//! catalogue's own collaborations, never on the queries) and `baselines`.

mod baselines;
mod catalogue;
mod completion;
mod holdout;
mod learning;
mod tune;

use std::collections::HashSet;
use std::io::Write;
use std::path::Path;

use klynge_models::network::role_stage;
use rayon::prelude::*;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::engine::{Engine, ShortlistRequest};
use crate::networks::NetworkRequest;

use baselines::Baselines;
pub use catalogue::{collaboration_record, load_catalogue, org_profile, read_lines};
use completion::{completion, feedback_rounds};
pub use holdout::run_holdout;
pub use learning::learning_check;
pub use tune::tune_networks;

#[derive(Deserialize)]
struct QueryLine {
    id: String,
    #[serde(default)]
    title: String,
    #[serde(default)]
    topic: String,
    #[serde(default)]
    topic_title: String,
    #[serde(default)]
    objective: String,
    anchor: String,
    size: usize,
    #[serde(default)]
    members: Vec<String>,
}

pub struct Prediction {
    pub id: String,
    pub ranked: Vec<String>,
    pub network: Vec<String>,
}

#[derive(Default, Clone, Copy)]
struct Scores {
    recall10: f64,
    recall50: f64,
    ndcg50: f64,
    network_precision: f64,
}

pub fn run(
    catalogue: &Path,
    queries_path: &Path,
    predictions_path: &Path,
    k: usize,
    lock: &[usize],
    rounds: usize,
) -> anyhow::Result<()> {
    let (engine, orgs) = load_catalogue(catalogue)?;
    let queries: Vec<QueryLine> = read_lines(queries_path)?;
    let started = std::time::Instant::now();
    let predictions: Vec<(Prediction, Prediction)> = queries
        .par_iter()
        .map(|query| {
            let text = [&query.title, &query.topic, &query.topic_title, &query.objective]
                .iter()
                .filter(|t| !t.is_empty())
                .map(|t| t.as_str())
                .collect::<Vec<_>>()
                .join(". ");
            let request = ShortlistRequest {
                anchors: vec![query.anchor.clone()],
                opportunity: Some(text.clone()),
                k,
                ..Default::default()
            };
            let ranked: Vec<String> = match engine.shortlist(&request) {
                Ok(list) => list.partners.into_iter().map(|p| p.id).collect(),
                Err(_) => Vec::new(),
            };
            let top: Vec<String> = std::iter::once(query.anchor.clone())
                .chain(ranked.iter().take(query.size.saturating_sub(1)).cloned())
                .collect();
            let request = NetworkRequest {
                opportunity: Some(text),
                min: query.size.max(2),
                max: query.size.max(2),
                ..NetworkRequest::around(&query.anchor)
            };
            let network = match engine.network(&request) {
                Ok(response) => response.network.members.into_iter().map(|m| m.partner.id).collect(),
                Err(_) => top.clone(),
            };
            (
                Prediction { id: query.id.clone(), ranked: ranked.clone(), network },
                Prediction { id: query.id.clone(), ranked, network: top },
            )
        })
        .collect();
    let (predictions, shortlist_networks): (Vec<Prediction>, Vec<Prediction>) = predictions.into_iter().unzip();
    let elapsed = started.elapsed();
    let mut out = std::io::BufWriter::new(std::fs::File::create(predictions_path)?);
    for prediction in &predictions {
        writeln!(
            out,
            "{}",
            json!({ "id": prediction.id, "ranked": prediction.ranked, "network": prediction.network })
        )?;
    }
    out.flush()?;
    eprintln!(
        "{} queries answered in {:.1} s ({:.1} ms each); predictions in {}",
        queries.len(),
        elapsed.as_secs_f64(),
        elapsed.as_secs_f64() * 1e3 / queries.len().max(1) as f64,
        predictions_path.display()
    );

    let known: HashSet<&str> = orgs.iter().filter_map(|o| o.get("id").and_then(Value::as_str)).collect();
    let scorable = queries.iter().any(|q| q.members.iter().any(|m| known.contains(m.as_str())));
    if !scorable {
        println!("queries carry no plain member ids (sealed); predictions written, no scores");
        return Ok(());
    }
    for &locked in lock {
        completion(&engine, &queries, locked);
    }
    if rounds > 0 {
        feedback_rounds(&engine, &queries, rounds);
    }
    if std::env::var_os("KLYNGE_EVAL_DEBUG").is_some() {
        debug_pool(&engine, &queries);
    }
    let baselines = Baselines::new(&orgs);
    let mut rows = vec![
        ("klynge".to_string(), evaluate(&queries, &predictions, &known)),
        ("klynge, network = top size-1 of its shortlist".to_string(), evaluate(&queries, &shortlist_networks, &known)),
    ];
    for (name, ranker) in [("popularity", 0usize), ("tfidf", 1)] {
        let predictions: Vec<Prediction> = queries
            .par_iter()
            .map(|q| {
                let ranked = if ranker == 0 { baselines.popularity(&q.anchor, k) } else { baselines.tfidf(q, k) };
                let network = std::iter::once(q.anchor.clone())
                    .chain(ranked.iter().take(q.size.saturating_sub(1)).cloned())
                    .collect();
                Prediction { id: q.id.clone(), ranked, network }
            })
            .collect();
        rows.push((name.to_string(), evaluate(&queries, &predictions, &known)));
    }
    let model = engine.model().expect("fitted");
    let real: Vec<Vec<String>> =
        queries.iter().map(|q| std::iter::once(q.anchor.clone()).chain(q.members.iter().cloned()).collect()).collect();
    let distinct = |network: &[String], stages: bool| {
        let positions = network.iter().filter_map(|id| model.position(id));
        if stages {
            positions.filter_map(|f| role_stage(&model.meta[f as usize])).collect::<HashSet<_>>().len()
        } else {
            positions.map(|f| model.meta[f as usize].kind).collect::<HashSet<_>>().len()
        }
    };
    let mean = |networks: Vec<&Vec<String>>, stages: bool| {
        networks.iter().map(|n| distinct(n, stages)).sum::<usize>() as f64 / networks.len().max(1) as f64
    };
    for (label, stages) in [("stages", true), ("kinds", false)] {
        println!(
            "{label} per network: klynge {:.2}, top size-1 {:.2}, real consortia {:.2}",
            mean(predictions.iter().map(|p| &p.network).collect(), stages),
            mean(shortlist_networks.iter().map(|p| &p.network).collect(), stages),
            mean(real.iter().collect(), stages),
        );
    }
    println!("| system | Recall@10 | Recall@50 | nDCG@50 | network precision | catalogue coverage |");
    println!("|---|---|---|---|---|---|");
    for (name, (scores, coverage)) in rows {
        println!(
            "| {name} | {:.3} | {:.3} | {:.3} | {:.3} | {:.3} |",
            scores.recall10, scores.recall50, scores.ndcg50, scores.network_precision, coverage
        );
    }
    Ok(())
}

/// The opportunity text of a query, as every run asks it.
fn query_text(query: &QueryLine) -> String {
    [&query.title, &query.topic, &query.topic_title, &query.objective]
        .iter()
        .filter(|t| !t.is_empty())
        .map(|t| t.as_str())
        .collect::<Vec<_>>()
        .join(". ")
}

fn evaluate(queries: &[QueryLine], predictions: &[Prediction], catalogue: &HashSet<&str>) -> (Scores, f64) {
    let mut total = Scores::default();
    let mut recommended: HashSet<&str> = HashSet::new();
    let mut counted = 0usize;
    for (query, prediction) in queries.iter().zip(predictions) {
        recommended.extend(prediction.ranked.iter().map(String::as_str));
        let members: HashSet<&str> = query.members.iter().map(String::as_str).collect();
        if members.is_empty() {
            continue;
        }
        counted += 1;
        let hits =
            |k: usize| prediction.ranked.iter().take(k).filter(|id| members.contains(id.as_str())).count() as f64;
        total.recall10 += hits(10) / members.len() as f64;
        total.recall50 += hits(50) / members.len() as f64;
        let dcg: f64 = prediction
            .ranked
            .iter()
            .take(50)
            .enumerate()
            .filter(|(_, id)| members.contains(id.as_str()))
            .map(|(i, _)| 1.0 / (i as f64 + 2.0).log2())
            .sum();
        let ideal: f64 = (0..members.len().min(50)).map(|i| 1.0 / (i as f64 + 2.0).log2()).sum();
        total.ndcg50 += dcg / ideal;
        let others: Vec<&String> = prediction.network.iter().filter(|id| **id != query.anchor).collect();
        if !others.is_empty() {
            total.network_precision +=
                others.iter().filter(|id| members.contains(id.as_str())).count() as f64 / others.len() as f64;
        }
    }
    let n = counted.max(1) as f64;
    let scores = Scores {
        recall10: total.recall10 / n,
        recall50: total.recall50 / n,
        ndcg50: total.ndcg50 / n,
        network_precision: total.network_precision / n,
    };
    (scores, recommended.len() as f64 / catalogue.len().max(1) as f64)
}

fn debug_pool(engine: &Engine, queries: &[QueryLine]) {
    let model = engine.model().expect("fitted");
    let (mut total, mut found) = (0usize, 0usize);
    let mut pos = [0f64; klynge_models::scoring::SIGNAL_COUNT];
    let mut neg = [0f64; klynge_models::scoring::SIGNAL_COUNT];
    let (mut np, mut nn) = (0f64, 0f64);
    for q in queries {
        let Some(anchor) = model.position(&q.anchor) else {
            continue;
        };
        let text = format!("{}. {}. {}", q.title, q.topic, q.topic_title);
        let prepared = model.prepare(&klynge_models::model::Query { anchors: vec![anchor], text: Some(text.clone()) });
        let pool = engine.candidates(&model, &prepared).unwrap();
        let members: HashSet<u32> = q.members.iter().filter_map(|m| model.position(m)).collect();
        total += members.len();
        for c in &pool {
            let f = model.features(&prepared, *c);
            if members.contains(c) {
                found += 1;
                np += 1.0;
                for (a, b) in pos.iter_mut().zip(f) {
                    *a += b as f64;
                }
            } else {
                nn += 1.0;
                for (a, b) in neg.iter_mut().zip(f) {
                    *a += b as f64;
                }
            }
        }
    }
    eprintln!(
        "pool recall {:.3} ({found}/{total}), pool size avg {:.0}",
        found as f64 / total as f64,
        (np + nn) / queries.len() as f64
    );
    for (i, s) in klynge_models::scoring::SIGNALS.iter().enumerate() {
        eprintln!("{:>22} members {:.3} others {:.3}", s.name(), pos[i] / np, neg[i] / nn);
    }
}
