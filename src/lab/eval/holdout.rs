//! `klynge eval --holdout`: completion and feedback rounds measured on
//! collaborations held out of the catalogue itself, so the rule they choose is
//! never chosen on the dev queries.

use std::collections::HashMap;
use std::path::Path;

use serde_json::Value;

use super::QueryLine;
use super::catalogue::{engine_over, read_lines};
use super::completion::{completion_values, feedback_round_values, report_completion, report_rounds};
use crate::engine::Engine;

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
            description = klynge_models::text::without_words(&description, title);
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
/// `holdout_catalogue`), over `HOLDOUT_FOLDS` folds, pooled.
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
