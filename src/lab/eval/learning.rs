//! `klynge eval --learning-check`: whether a manager's feedback on half the
//! queries helps the other half, once the catalogue is refitted with it.

use std::path::Path;
use std::sync::Arc;

use rayon::prelude::*;
use serde_json::Value;

use super::catalogue::{engine_over, engine_with_feedback, read_lines};
use super::completion::round_request;
use super::{QueryLine, query_text};
use crate::engine::{Engine, ShortlistRequest};
use crate::networks::NetworkRequest;

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
