//! `klynge eval`: the quality benchmark on consortium data in the CORDIS format of
//! `shared/data/consortia` (see its README for the protocol). It builds a fresh
//! in-memory index from the catalogue, fits the models, answers every query with
//! the same code the API runs, writes one prediction line per query, and — when
//! the queries carry plain member ids — prints Recall@10, Recall@50, nDCG@50 and
//! network precision next to the popularity and TF-IDF baselines of the same run,
//! and the distinct value-chain stages and kinds per network beside the real
//! consortia's. `--tune-networks` chooses the network objective's weights by
//! cross-validation on the catalogue's own collaborations (never on the queries).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::Arc;

use klynge_index::{FirmIndex, StoredFirm};
use klynge_models::model::{FittedModel, ModelParams};
use klynge_models::network::{self, Objective, role_stage};
use klynge_models::{Collaboration, validate_collaboration, validate_profile};
use rayon::prelude::*;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::engine::{Engine, ShortlistRequest};
use crate::networks::{NetworkRequest, NetworkSetup};

#[derive(Deserialize)]
struct Org {
    id: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    projects: u32,
}

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

pub fn read_lines<T: for<'de> Deserialize<'de>>(path: &Path) -> anyhow::Result<Vec<T>> {
    let file = std::fs::File::open(path).map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
    std::io::BufReader::new(file)
        .lines()
        .enumerate()
        .filter(|(_, line)| line.as_ref().map_or(true, |l| !l.trim().is_empty()))
        .map(|(n, line)| serde_json::from_str(&line?).map_err(|e| anyhow::anyhow!("{}:{}: {e}", path.display(), n + 1)))
        .collect()
}

/// A CORDIS organisation as a klynge profile; optional fields that do not pass
/// validation (a NUTS code outside its country, say) are dropped, not the org.
pub fn org_profile(org: &Value) -> Option<Value> {
    let get = |key: &str| org.get(key).filter(|v| !v.is_null()).cloned();
    let mut profile = serde_json::Map::new();
    profile.insert("id".into(), get("id")?);
    profile.insert("name".into(), get("name")?);
    profile.insert("kind".into(), get("kind").unwrap_or(json!("other")));
    profile.insert("description".into(), get("description").unwrap_or(json!("")));
    if let Some(Value::Array(topics)) = get("topics") {
        profile.insert("tags".into(), Value::Array(topics.into_iter().take(100).collect()));
    }
    for (from, to) in [("country", "country"), ("nuts", "region"), ("city", "city"), ("sme", "sme"), ("url", "website")]
    {
        if let Some(value) = get(from) {
            profile.insert(to.into(), value);
        }
    }
    let mut value = Value::Object(profile);
    loop {
        match validate_profile(&value) {
            Ok(_) => return Some(value),
            Err(errors) => {
                let object = value.as_object_mut()?;
                let before = object.len();
                for error in errors {
                    let field = error.field.split('[').next().unwrap_or_default().to_string();
                    if !matches!(field.as_str(), "id" | "name") {
                        object.remove(&field);
                    }
                }
                if object.len() == before {
                    return None;
                }
            }
        }
    }
}

/// A CORDIS project as a klynge collaboration record; the call topic describes
/// the project as much as its title does, so the title carries both.
pub fn collaboration_record(project: &Value) -> Option<Value> {
    let title: String =
        [project.get("title")?.as_str()?, project.get("topic_title").and_then(Value::as_str).unwrap_or_default()]
            .iter()
            .filter(|part| !part.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(". ")
            .chars()
            .take(500)
            .collect();
    Some(json!({ "id": project.get("id")?, "title": title, "members": project.get("members")? }))
}

/// Loads a consortium catalogue directory into a fresh in-memory engine and fits it.
pub fn load_catalogue(dir: &Path) -> anyhow::Result<(Engine, Vec<Value>)> {
    let orgs: Vec<Value> = read_lines(&dir.join("orgs.jsonl"))?;
    let collaborations: Vec<Value> = read_lines(&dir.join("collaborations.jsonl"))?;
    engine_over(orgs, &collaborations)
}

/// Held-out collaborations of the catalogue itself (every fifth of those with at
/// least five members) as queries, with the catalogue fitted without them and
/// their titles cut from their members' descriptions, so nothing a query asks
/// for is in the catalogue it is asked of. The queries the completion rule is
/// chosen on, so that queries-dev stays a test set.
fn holdout_catalogue(dir: &Path, fold: usize) -> anyhow::Result<(Engine, Vec<QueryLine>)> {
    let mut orgs: Vec<Value> = read_lines(&dir.join("orgs.jsonl"))?;
    let collaborations: Vec<Value> = read_lines(&dir.join("collaborations.jsonl"))?;
    let members = |c: &Value| -> Vec<String> {
        c["members"].as_array().into_iter().flatten().filter_map(|m| m.as_str().map(str::to_string)).collect()
    };
    let mut large = 0usize;
    let (mut kept, mut held) = (Vec::new(), Vec::new());
    for collaboration in collaborations {
        if members(&collaboration).len() >= 5 {
            large += 1;
            if large % HOLDOUT_FOLDS == fold {
                held.push(collaboration);
                continue;
            }
        }
        kept.push(collaboration);
    }
    // A member whose only collaboration is the held-out one has an empty profile
    // and no ties once it is held out; the benchmark's members all have others.
    let mut elsewhere: HashMap<String, usize> = HashMap::new();
    for collaboration in &kept {
        for id in members(collaboration) {
            *elsewhere.entry(id).or_default() += 1;
        }
    }
    held.retain(|c| members(c).iter().filter(|m| elsewhere.contains_key(*m)).count() >= 5);
    let projects: HashMap<String, u64> = orgs
        .iter()
        .filter_map(|o| Some((o["id"].as_str()?.to_string(), o["projects"].as_u64().unwrap_or(0))))
        .collect();
    let mut titles: HashMap<String, Vec<String>> = HashMap::new();
    let queries: Vec<QueryLine> = held
        .iter()
        .map(|c| {
            let mut ids: Vec<String> = members(c).into_iter().filter(|m| elsewhere.contains_key(m)).collect();
            ids.sort_by(|a, b| projects.get(b).cmp(&projects.get(a)).then(a.cmp(b)));
            let title = c["title"].as_str().unwrap_or_default().to_string();
            for id in &ids {
                titles.entry(id.clone()).or_default().push(title.clone());
            }
            let anchor = ids.remove(0);
            // The others in id order, as the benchmark lists them: `--lock N` takes
            // the first N, arbitrary as to relevance (not the most experienced).
            ids.sort();
            QueryLine {
                id: c["id"].as_str().unwrap_or_default().to_string(),
                title,
                topic: c["topic"].as_str().unwrap_or_default().to_string(),
                topic_title: c["topic_title"].as_str().unwrap_or_default().to_string(),
                objective: String::new(),
                anchor,
                size: ids.len() + 1,
                members: ids,
            }
        })
        .collect();
    for org in &mut orgs {
        let Some(cut) = org["id"].as_str().and_then(|id| titles.get(id)) else { continue };
        let mut description = org["description"].as_str().unwrap_or_default().to_string();
        for title in cut.iter().filter(|t| !t.is_empty()) {
            description = description.replace(title.as_str(), "");
        }
        org["description"] = Value::String(description);
    }
    let (engine, _) = engine_over(orgs, &kept)?;
    eprintln!("{} held-out catalogue collaborations as queries", queries.len());
    Ok((engine, queries))
}

/// Folds of the held-out check: each holds out every fifth collaboration of five
/// or more members (offset by the fold), so every such collaboration is asked once.
const HOLDOUT_FOLDS: usize = 5;

/// Completion measured on held-out catalogue collaborations (see
/// [`holdout_catalogue`]), over [`HOLDOUT_FOLDS`] folds, pooled.
pub fn run_holdout(catalogue: &Path, lock: &[usize], rounds: usize) -> anyhow::Result<()> {
    let mut completions: Vec<Vec<(f64, f64)>> = vec![Vec::new(); lock.len()];
    let mut round_values: Vec<Vec<Option<f64>>> = Vec::new();
    for fold in 0..HOLDOUT_FOLDS {
        let (engine, queries) = holdout_catalogue(catalogue, fold)?;
        for (values, &locked) in completions.iter_mut().zip(lock) {
            values.extend(completion_values(&engine, &queries, locked));
        }
        if rounds > 0 {
            round_values.extend(feedback_round_values(&engine, &queries, rounds));
        }
    }
    println!("held-out catalogue collaborations, {HOLDOUT_FOLDS} folds pooled:");
    for (values, &locked) in completions.iter().zip(lock) {
        report_completion(locked, values);
    }
    if rounds > 0 {
        report_rounds(rounds, &round_values);
    }
    Ok(())
}

fn engine_over(orgs: Vec<Value>, collaborations: &[Value]) -> anyhow::Result<(Engine, Vec<Value>)> {
    engine_fitted(orgs, collaborations, None)
}

/// [`engine_over`] whose fit learns from `feedback`'s decisions.
fn engine_with_feedback(
    orgs: Vec<Value>,
    collaborations: &[Value],
    feedback: Arc<crate::feedback::FeedbackStore>,
) -> anyhow::Result<Engine> {
    engine_fitted(orgs, collaborations, Some(feedback)).map(|(engine, _)| engine)
}

fn engine_fitted(
    orgs: Vec<Value>,
    collaborations: &[Value],
    feedback: Option<Arc<crate::feedback::FeedbackStore>>,
) -> anyhow::Result<(Engine, Vec<Value>)> {
    let updated_at = crate::ingest::now_rfc3339();
    let firms: Vec<StoredFirm> = orgs
        .iter()
        .filter_map(org_profile)
        .map(|profile| StoredFirm {
            firm: validate_profile(&profile).expect("checked"),
            raw: profile.to_string(),
            updated_at: updated_at.clone(),
        })
        .collect();
    let collaborations: Vec<Collaboration> = collaborations
        .iter()
        .filter_map(collaboration_record)
        .filter_map(|value| validate_collaboration(&value).ok())
        .collect();
    let index = FirmIndex::in_memory()?;
    index.upsert_firms(&firms)?;
    index.upsert_collaborations(&collaborations)?;
    let mut engine = Engine::new(Arc::new(index), None, ModelParams::default());
    if let Some(feedback) = feedback {
        engine = engine.with_feedback(feedback);
    }
    let started = std::time::Instant::now();
    engine.fit()?;
    eprintln!("model: {}", engine.model_info());
    eprintln!(
        "catalogue: {} profiles, {} collaborations; model fitted in {:.1} s",
        firms.len(),
        collaborations.len(),
        started.elapsed().as_secs_f64()
    );
    Ok((engine, orgs))
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

/// Completion: the network of each query's size asked with the anchor, the text
/// and `locked` real members in `lock` (the first ones of the query's member
/// list, which is sorted by id, so arbitrary as to relevance). Precision counts
/// the other proposed members that are real members; queries with no member left
/// to find are skipped. The unlocked network on the same queries is the reference.
fn completion(engine: &Engine, queries: &[QueryLine], locked: usize) {
    report_completion(locked, &completion_values(engine, queries, locked));
}

/// Each eligible query's (precision with `locked` locked, precision unlocked).
fn completion_values(engine: &Engine, queries: &[QueryLine], locked: usize) -> Vec<(f64, f64)> {
    let known = engine.model().expect("fitted");
    let eligible: Vec<&QueryLine> = queries
        .iter()
        .filter(|q| known.position(&q.anchor).is_some())
        .filter(|q| q.members.iter().filter(|m| known.position(m).is_some()).count() > locked)
        .collect();
    let precision = |query: &QueryLine, lock: &[String]| -> Option<f64> {
        let request = NetworkRequest {
            opportunity: Some(query_text(query)),
            min: query.size.max(2).max(lock.len() + 2),
            max: query.size.max(2).max(lock.len() + 2),
            lock: lock.to_vec(),
            ..NetworkRequest::around(&query.anchor)
        };
        let members = engine.network(&request).ok()?.network.members;
        let proposed: Vec<String> =
            members.into_iter().filter(|m| m.status == "proposed").map(|m| m.partner.id).collect();
        let hits = proposed.iter().filter(|id| query.members.contains(id) && !lock.contains(id)).count();
        (!proposed.is_empty()).then(|| hits as f64 / proposed.len() as f64)
    };
    eligible
        .par_iter()
        .map(|query| {
            let lock: Vec<String> =
                query.members.iter().filter(|m| known.position(m).is_some()).take(locked).cloned().collect();
            (precision(query, &lock).unwrap_or(0.0), precision(query, &[]).unwrap_or(0.0))
        })
        .collect()
}

fn report_completion(locked: usize, results: &[(f64, f64)]) {
    let mean = |values: Vec<f64>| values.iter().sum::<f64>() / values.len().max(1) as f64;
    let with_lock = mean(results.iter().map(|r| r.0).collect());
    let without = mean(results.iter().map(|r| r.1).collect());
    println!(
        "completion with {locked} locked: {} queries, precision of the rest {with_lock:.3} \
         (unlocked network on the same queries {without:.3}, ratio {:.2})",
        results.len(),
        with_lock / without.max(1e-9),
    );
}

/// A simulated manager over `rounds` rounds of feedback: after each network it
/// accepts the real members proposed (they join the table, as `lock`) and
/// rejects the others (as the API's rejections do, they are never proposed
/// again), then asks again. Each round scores only the members proposed for the
/// first time; queries whose members are all found drop out.
fn feedback_rounds(engine: &Engine, queries: &[QueryLine], rounds: usize) {
    report_rounds(rounds, &feedback_round_values(engine, queries, rounds));
}

/// Each query's precision of new proposals per round (`None`: nothing proposed).
fn feedback_round_values(engine: &Engine, queries: &[QueryLine], rounds: usize) -> Vec<Vec<Option<f64>>> {
    let known = engine.model().expect("fitted");
    let eligible: Vec<&QueryLine> = queries.iter().filter(|q| known.position(&q.anchor).is_some()).collect();
    let per_query: Vec<Vec<Option<f64>>> = eligible
        .par_iter()
        .map(|query| {
            let (mut lock, mut exclude) = (Vec::<String>::new(), Vec::<String>::new());
            let mut precisions = Vec::new();
            for _ in 0..=rounds {
                let request = round_request(query, &lock, &exclude);
                let proposed: Vec<String> = match engine.network(&request) {
                    Ok(response) => response
                        .network
                        .members
                        .into_iter()
                        .filter(|m| m.status == "proposed")
                        .map(|m| m.partner.id)
                        .collect(),
                    Err(_) => Vec::new(),
                };
                if proposed.is_empty() {
                    precisions.push(None);
                    continue;
                }
                let (hits, misses): (Vec<String>, Vec<String>) =
                    proposed.into_iter().partition(|id| query.members.contains(id));
                precisions.push(Some(hits.len() as f64 / (hits.len() + misses.len()) as f64));
                lock.extend(hits);
                exclude.extend(misses);
            }
            precisions
        })
        .collect();
    per_query
}

fn report_rounds(rounds: usize, per_query: &[Vec<Option<f64>>]) {
    for round in 0..=rounds {
        let values: Vec<f64> = per_query.iter().filter_map(|p| p[round]).collect();
        println!(
            "feedback round {round}: precision of new proposals {:.3} over {} queries",
            values.iter().sum::<f64>() / values.len().max(1) as f64,
            values.len()
        );
    }
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

/// The two reference rankers of the benchmark README, computed in the same run.
struct Baselines {
    by_popularity: Vec<String>,
    projects: HashMap<String, u32>,
    idf: HashMap<String, f64>,
    vectors: Vec<(String, BTreeMap<String, f64>)>,
}

fn words(text: &str) -> Vec<String> {
    static PATTERN: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    PATTERN
        .get_or_init(|| regex::Regex::new(r"\w\w+").expect("static"))
        .find_iter(&text.to_lowercase())
        .map(|m| m.as_str().to_string())
        .collect()
}

/// Ordered maps: float sums in hash order differ in the last bits from run to
/// run, and that would reorder ties between runs.
fn tf_vector(text: &str, idf: &HashMap<String, f64>) -> BTreeMap<String, f64> {
    let mut counts: BTreeMap<String, f64> = BTreeMap::new();
    for word in words(text) {
        *counts.entry(word).or_default() += 1.0;
    }
    let mut vector: BTreeMap<String, f64> =
        counts.into_iter().filter_map(|(w, c)| Some((w.clone(), (1.0 + f64::ln(c)) * idf.get(&w)?))).collect();
    let norm = vector.values().map(|v| v * v).sum::<f64>().sqrt();
    if norm > 0.0 {
        vector.values_mut().for_each(|v| *v /= norm);
    }
    vector
}

impl Baselines {
    fn new(orgs: &[Value]) -> Baselines {
        let parsed: Vec<Org> = orgs.iter().filter_map(|o| serde_json::from_value(o.clone()).ok()).collect();
        let mut by_popularity: Vec<&Org> = parsed.iter().collect();
        by_popularity.sort_by(|a, b| b.projects.cmp(&a.projects).then(a.id.cmp(&b.id)));
        let mut df: HashMap<String, f64> = HashMap::new();
        for org in &parsed {
            for word in words(&org.description).into_iter().collect::<HashSet<_>>() {
                *df.entry(word).or_default() += 1.0;
            }
        }
        let n = parsed.len() as f64;
        let idf: HashMap<String, f64> = df.into_iter().map(|(w, d)| (w, ((1.0 + n) / (1.0 + d)).ln() + 1.0)).collect();
        let vectors = parsed.iter().map(|o| (o.id.clone(), tf_vector(&o.description, &idf))).collect();
        Baselines {
            by_popularity: by_popularity.iter().map(|o| o.id.clone()).collect(),
            projects: parsed.iter().map(|o| (o.id.clone(), o.projects)).collect(),
            idf,
            vectors,
        }
    }

    fn popularity(&self, anchor: &str, k: usize) -> Vec<String> {
        self.by_popularity.iter().filter(|id| *id != anchor).take(k).cloned().collect()
    }

    fn tfidf(&self, query: &QueryLine, k: usize) -> Vec<String> {
        let text = format!("{} {} {} {}", query.title, query.topic, query.topic_title, query.objective);
        let q = tf_vector(&text, &self.idf);
        let mut scored: Vec<(f64, u32, &String)> = self
            .vectors
            .iter()
            .filter(|(id, _)| *id != query.anchor)
            .map(|(id, v)| (q.iter().map(|(w, x)| x * v.get(w).unwrap_or(&0.0)).sum(), self.projects[id], id))
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.cmp(&a.1)).then(a.2.cmp(b.2)));
        scored.into_iter().take(k).map(|(_, _, id)| id.clone()).collect()
    }
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

/// A catalogue directory's profiles (as JSON, before validation) and
/// collaboration records.
fn catalogue_parts(dir: &Path) -> anyhow::Result<(Vec<Value>, Vec<Value>, Vec<Collaboration>)> {
    let orgs: Vec<Value> = read_lines(&dir.join("orgs.jsonl"))?;
    let profiles: Vec<Value> = orgs.iter().filter_map(org_profile).collect();
    let collaborations: Vec<Collaboration> = read_lines::<Value>(&dir.join("collaborations.jsonl"))?
        .iter()
        .filter_map(collaboration_record)
        .filter_map(|value| validate_collaboration(&value).ok())
        .collect();
    Ok((orgs, profiles, collaborations))
}

/// A fresh in-memory engine over these profiles and collaborations, fitted.
fn fitted_engine(profiles: &[Value], collaborations: &[Collaboration]) -> anyhow::Result<Engine> {
    let updated_at = crate::ingest::now_rfc3339();
    let firms: Vec<StoredFirm> = profiles
        .iter()
        .map(|profile| StoredFirm {
            firm: validate_profile(profile).expect("checked"),
            raw: profile.to_string(),
            updated_at: updated_at.clone(),
        })
        .collect();
    let index = FirmIndex::in_memory()?;
    index.upsert_firms(&firms)?;
    index.upsert_collaborations(collaborations)?;
    let engine = Engine::new(Arc::new(index), None, ModelParams::default());
    engine.fit()?;
    Ok(engine)
}

/// Folds of the catalogue's collaborations for `--tune-networks`.
const TUNE_FOLDS: usize = 5;
/// Held-out collaborations asked per fold (the rest of the fold stays known).
const TUNE_PER_FOLD: usize = 80;

/// One held-out collaboration asked as a network request, ready to assemble.
struct TuneQuery {
    setup: NetworkSetup,
    members: HashSet<u32>,
    size: usize,
}

/// Chooses the network objective's weights ([`Objective`]) by cross-validation
/// on the catalogue: in each of [`TUNE_FOLDS`] folds some collaborations of five
/// or more members are held out (removed from the collaborations, and their
/// titles cut from their members' descriptions, which the CORDIS profiles are
/// built from), the model is fitted on the rest, and each is asked as the
/// benchmark asks a query (its title, one member known from elsewhere as the
/// anchor, its size). Coordinate ascent over a grid of weights maximises mean
/// network precision; the top size-1 of the same candidates is printed beside it.
pub fn tune_networks(catalogue: &Path) -> anyhow::Result<()> {
    let (_, profiles, collaborations) = catalogue_parts(catalogue)?;
    let raw: Vec<Value> = read_lines(&catalogue.join("collaborations.jsonl"))?;
    let texts: HashMap<&str, Vec<&str>> = raw
        .iter()
        .filter_map(|c| {
            let parts = ["title", "topic_title"].iter().filter_map(|k| c.get(*k)?.as_str()).filter(|t| t.len() > 3);
            Some((c.get("id")?.as_str()?, parts.collect()))
        })
        .collect();
    let eligible: Vec<usize> = (0..collaborations.len()).filter(|&i| collaborations[i].members.len() >= 5).collect();
    let started = std::time::Instant::now();
    let mut folds: Vec<(Arc<FittedModel>, Vec<TuneQuery>)> = Vec::new();
    for fold in 0..TUNE_FOLDS {
        let held: Vec<&Collaboration> = eligible
            .iter()
            .filter(|&&i| i % TUNE_FOLDS == fold)
            .take(TUNE_PER_FOLD)
            .map(|&i| &collaborations[i])
            .collect();
        let held_ids: HashSet<&str> = held.iter().map(|c| c.id.as_str()).collect();
        let kept: Vec<Collaboration> =
            collaborations.iter().filter(|c| !held_ids.contains(c.id.as_str())).cloned().collect();
        let mut cut: HashMap<&str, Vec<&str>> = HashMap::new();
        for collaboration in &held {
            for member in &collaboration.members {
                cut.entry(member.as_str())
                    .or_default()
                    .extend(texts.get(collaboration.id.as_str()).into_iter().flatten());
            }
        }
        let fold_profiles: Vec<Value> = profiles
            .iter()
            .map(|profile| {
                let id = profile["id"].as_str().unwrap_or_default();
                let mut profile = profile.clone();
                if let (Some(parts), Some(description)) = (cut.get(id), profile["description"].as_str()) {
                    let mut text = description.to_string();
                    for part in parts {
                        text = text.replace(part, " ");
                    }
                    profile["description"] = json!(text);
                }
                profile
            })
            .collect();
        let engine = fitted_engine(&fold_profiles, &kept)?;
        let model = engine.model().expect("fitted");
        let queries: Vec<TuneQuery> = held
            .par_iter()
            .filter_map(|collaboration| {
                let members: Vec<u32> = collaboration.members.iter().filter_map(|m| model.position(m)).collect();
                // A member known from elsewhere, picked by the project id so runs repeat.
                let known: Vec<u32> = members.iter().copied().filter(|&m| model.graph.collaborations(m) > 0).collect();
                let salt: usize = collaboration.id.bytes().map(usize::from).sum();
                let anchor = *known.get(salt % known.len().max(1))?;
                let size = members.len();
                let request = NetworkRequest {
                    opportunity: collaboration.title.clone(),
                    min: size,
                    max: size,
                    ..NetworkRequest::around(model.id(anchor))
                };
                let setup = engine.network_setup(&model, &request).ok()?;
                let members = members.into_iter().filter(|&m| m != anchor).collect();
                Some(TuneQuery { setup, members, size })
            })
            .collect();
        eprintln!(
            "fold {fold}: {} held-out collaborations asked ({:.0} s)",
            queries.len(),
            started.elapsed().as_secs_f64()
        );
        folds.push((model, queries));
    }
    let precision = |objective: Option<Objective>| -> f64 {
        let sum: f64 = folds
            .iter()
            .map(|(model, queries)| {
                queries
                    .par_iter()
                    .map(|q| {
                        let chosen: Vec<u32> = match objective {
                            None => q.setup.candidates.iter().take(q.size - 1).map(|c| c.firm).collect(),
                            Some(objective) => {
                                let spec = klynge_models::network::NetworkSpec { objective, ..q.setup.spec.clone() };
                                match network::assemble(model, &spec, &q.setup.candidates) {
                                    Ok(networks) => networks[0].members.clone(),
                                    Err(_) => Vec::new(),
                                }
                            }
                        };
                        let others: Vec<&u32> = chosen.iter().filter(|m| !q.setup.spec.required.contains(m)).collect();
                        others.iter().filter(|m| q.members.contains(m)).count() as f64 / (q.size - 1).max(1) as f64
                    })
                    .sum::<f64>()
            })
            .sum();
        sum / folds.iter().map(|(_, q)| q.len()).sum::<usize>().max(1) as f64
    };
    let top_n = precision(None);
    println!("top size-1 of the candidates: network precision {top_n:.4}");
    let previous = Objective { pair: 1.0, stage: 0.15, competitor: 0.2, ..zero_objective() };
    println!("previous hand-set objective {previous:?}: {:.4}", precision(Some(previous)));
    let grid: [(&str, &[f32]); 7] = [
        ("pair", &[0.0, 0.5, 1.0, 2.0, 4.0]),
        ("stage", &[0.0, 0.02, 0.05, 0.1, 0.15]),
        ("kinds", &[0.0, 0.02, 0.05, 0.1]),
        ("countries", &[0.0, 0.01, 0.03, 0.06]),
        ("kind_pairs", &[0.0, 0.02, 0.05, 0.1]),
        ("co_projects", &[0.0, 0.05, 0.1, 0.2, 0.5]),
        ("competitor", &[0.0, 0.1, 0.2]),
    ];
    let set = |objective: &mut Objective, name: &str, value: f32| match name {
        "pair" => objective.pair = value,
        "stage" => objective.stage = value,
        "kinds" => objective.kinds = value,
        "countries" => objective.countries = value,
        "kind_pairs" => objective.kind_pairs = value,
        "co_projects" => objective.co_projects = value,
        _ => objective.competitor = value,
    };
    let mut best = zero_objective();
    let mut best_score = precision(Some(best));
    println!("relevance only {best:?}: {best_score:.4}");
    for round in 0..2 {
        let mut changed = false;
        for (name, values) in grid {
            for &value in values {
                let mut trial = best;
                set(&mut trial, name, value);
                if trial == best {
                    continue;
                }
                let score = precision(Some(trial));
                println!("round {round}: {name} = {value}: {score:.4}");
                // A weight must earn its place: ties keep the simpler objective.
                if score > best_score + 1e-4 {
                    best = trial;
                    best_score = score;
                    changed = true;
                }
            }
        }
        if !changed {
            break;
        }
    }
    println!(
        "chosen: {best:?}: network precision {best_score:.4} vs top size-1 {top_n:.4} ({:.2}×), {:.0} s",
        best_score / top_n.max(1e-9),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn zero_objective() -> Objective {
    Objective { pair: 0.0, stage: 0.0, kinds: 0.0, countries: 0.0, kind_pairs: 0.0, co_projects: 0.0, competitor: 0.0 }
}

/// The learning check (`--learning-check`): does a manager's feedback on some
/// queries help others? The dev queries are split in two by position (even:
/// the feedback half, odd: the scored half). On the feedback half a simulated
/// manager answers `rounds` rounds of networks as in `--feedback-rounds`
/// (accepts the real members proposed, rejects the others), each decision
/// stored as the API stores it (scope `anchor`, with the opportunity text). The
/// catalogue is refitted with those decisions, and the scored half is asked by
/// both models (its Recall@10/50 and the unlocked network's precision). No
/// rejection applies to the scored half: what carries over is only what the fit
/// learnt.
pub fn learning_check(catalogue: &Path, queries_path: &Path, k: usize, rounds: usize) -> anyhow::Result<()> {
    let orgs: Vec<Value> = read_lines(&catalogue.join("orgs.jsonl"))?;
    let collaborations: Vec<Value> = read_lines(&catalogue.join("collaborations.jsonl"))?;
    let queries: Vec<QueryLine> = read_lines(queries_path)?;
    let feedback_half: Vec<&QueryLine> = queries.iter().step_by(2).collect();
    let scored_half: Vec<&QueryLine> = queries.iter().skip(1).step_by(2).collect();
    let (without, _) = engine_over(orgs.clone(), &collaborations)?;
    let before = score_half(&without, &scored_half, k);
    let decisions: Vec<(String, String, String, bool)> = feedback_half
        .par_iter()
        .flat_map_iter(|query| {
            let (mut lock, mut exclude) = (Vec::<String>::new(), Vec::<String>::new());
            let mut decided = Vec::new();
            for _ in 0..rounds {
                let request = round_request(query, &lock, &exclude);
                let Ok(response) = without.network(&request) else { break };
                for member in response.network.members.into_iter().filter(|m| m.status == "proposed") {
                    let accepted = query.members.contains(&member.partner.id);
                    decided.push((query.anchor.clone(), query_text(query), member.partner.id.clone(), accepted));
                    if accepted { lock.push(member.partner.id) } else { exclude.push(member.partner.id) }
                }
            }
            decided
        })
        .collect();
    drop(without);
    let store = crate::feedback::FeedbackStore::in_memory();
    for (n, (anchor, text, firm, accepted)) in decisions.iter().enumerate() {
        store.put(crate::feedback::Record {
            id: format!("check-{n}"),
            time: crate::ingest::now_rfc3339(),
            anchor: Some(anchor.clone()),
            opportunity: Some(text.clone()),
            firm: firm.clone(),
            decision: if *accepted { crate::feedback::Decision::Accept } else { crate::feedback::Decision::Reject },
            scope: crate::feedback::Scope::Anchor,
            note: None,
            author: None,
        })?;
    }
    let accepted = decisions.iter().filter(|d| d.3).count();
    eprintln!(
        "{} decisions on {} feedback queries ({accepted} accepted, {} rejected); refitting with them",
        decisions.len(),
        feedback_half.len(),
        decisions.len() - accepted
    );
    let with = engine_with_feedback(orgs, &collaborations, Arc::new(store))?;
    let after = score_half(&with, &scored_half, k);
    let model = with.model().expect("fitted");
    if let Some(learnt) = &model.feedback {
        println!(
            "learnt from {} decisions ({} accepted, {} rejected, {} of them learnt); {} ranking pairs; \
             accepted above rejected on the decisions themselves: {:.3} without, {:.3} with",
            learnt.decisions,
            learnt.accepted,
            learnt.rejected,
            learnt.rejected_learnt,
            learnt.ranking_pairs,
            learnt.agreement_without.unwrap_or(f32::NAN),
            learnt.agreement_with.unwrap_or(f32::NAN)
        );
    }
    println!("| scored half ({} queries) | Recall@10 | Recall@50 | network precision |", scored_half.len());
    println!("|---|---|---|---|");
    for (label, (r10, r50, precision)) in [("without feedback", before), ("with the other half's feedback", after)] {
        println!("| {label} | {r10:.3} | {r50:.3} | {precision:.3} |");
    }
    Ok(())
}

/// Mean Recall@10, Recall@50 of the shortlist and precision of the unlocked
/// network (members besides the anchor that are real members) over `queries`.
fn score_half(engine: &Engine, queries: &[&QueryLine], k: usize) -> (f64, f64, f64) {
    let per_query: Vec<(f64, f64, f64)> = queries
        .par_iter()
        .filter(|q| !q.members.is_empty())
        .map(|query| {
            let text = query_text(query);
            let request = ShortlistRequest {
                anchors: vec![query.anchor.clone()],
                opportunity: Some(text.clone()),
                k,
                ..Default::default()
            };
            let ranked: Vec<String> =
                engine.shortlist(&request).map(|l| l.partners.into_iter().map(|p| p.id).collect()).unwrap_or_default();
            let recall = |n: usize| {
                ranked.iter().take(n).filter(|id| query.members.contains(id)).count() as f64
                    / query.members.len() as f64
            };
            let request = NetworkRequest {
                opportunity: Some(text),
                min: query.size.max(2),
                max: query.size.max(2),
                ..NetworkRequest::around(&query.anchor)
            };
            let precision = engine.network(&request).map_or(0.0, |response| {
                let others: Vec<String> = response
                    .network
                    .members
                    .into_iter()
                    .filter(|m| m.status == "proposed")
                    .map(|m| m.partner.id)
                    .collect();
                others.iter().filter(|id| query.members.contains(id)).count() as f64 / others.len().max(1) as f64
            });
            (recall(10), recall(50), precision)
        })
        .collect();
    let n = per_query.len().max(1) as f64;
    (
        per_query.iter().map(|r| r.0).sum::<f64>() / n,
        per_query.iter().map(|r| r.1).sum::<f64>() / n,
        per_query.iter().map(|r| r.2).sum::<f64>() / n,
    )
}

/// One simulated manager's round: the query's network at its size (room for the
/// locked members and two more), with what earlier rounds locked and excluded.
fn round_request(query: &QueryLine, lock: &[String], exclude: &[String]) -> NetworkRequest {
    let size = query.size.max(2).max(lock.len() + 2);
    NetworkRequest {
        opportunity: Some(query_text(query)),
        min: size,
        max: size,
        lock: lock.to_vec(),
        exclude: exclude.to_vec(),
        ..NetworkRequest::around(&query.anchor)
    }
}
