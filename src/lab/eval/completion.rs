//! Completion from the firms at the table: networks asked with some real members
//! locked, and a simulated manager who accepts and rejects over several rounds
//! of feedback (`--lock`, `--feedback-rounds`).

use rayon::prelude::*;

use super::{QueryLine, query_text};
use crate::engine::Engine;
use crate::networks::NetworkRequest;

/// Completion: the network of each query's size asked with the anchor, the text
/// and `locked` real members in `lock` (the first ones of the query's member
/// list, which is sorted by id, so arbitrary as to relevance). Precision counts
/// the other proposed members that are real members; queries with no member left
/// to find are skipped. The unlocked network on the same queries is the reference.
pub(super) fn completion(engine: &Engine, queries: &[QueryLine], locked: usize) {
    report_completion(locked, &completion_values(engine, queries, locked));
}

/// Each eligible query's (precision with `locked` locked, precision unlocked).
pub(super) fn completion_values(engine: &Engine, queries: &[QueryLine], locked: usize) -> Vec<(f64, f64)> {
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

pub(super) fn report_completion(locked: usize, results: &[(f64, f64)]) {
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
pub(super) fn feedback_rounds(engine: &Engine, queries: &[QueryLine], rounds: usize) {
    report_rounds(rounds, &feedback_round_values(engine, queries, rounds));
}

/// Each query's precision of new proposals per round (`None`: nothing proposed).
pub(super) fn feedback_round_values(engine: &Engine, queries: &[QueryLine], rounds: usize) -> Vec<Vec<Option<f64>>> {
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

pub(super) fn report_rounds(rounds: usize, per_query: &[Vec<Option<f64>>]) {
    for round in 0..=rounds {
        let values: Vec<f64> = per_query.iter().filter_map(|p| p[round]).collect();
        println!(
            "feedback round {round}: precision of new proposals {:.3} over {} queries",
            values.iter().sum::<f64>() / values.len().max(1) as f64,
            values.len()
        );
    }
}

/// One simulated manager's round: the query's network at its size (room for the
/// locked members and two more), with what earlier rounds locked and excluded.
pub(super) fn round_request(query: &QueryLine, lock: &[String], exclude: &[String]) -> NetworkRequest {
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
