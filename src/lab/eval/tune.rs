//! `klynge eval --tune-networks`: the network objective's weights chosen by
//! cross-validation on the catalogue's own collaborations.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use klynge_models::Collaboration;
use klynge_models::model::FittedModel;
use klynge_models::network::{self, Objective};
use rayon::prelude::*;
use serde_json::{Value, json};

use super::catalogue::{catalogue_parts, fitted_engine, read_lines};
use crate::networks::{NetworkRequest, NetworkSetup};

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
/// on the catalogue: in each of `TUNE_FOLDS` folds some collaborations of five
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
                        text = klynge_models::text::without_words(&text, part);
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
