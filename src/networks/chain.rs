//! A network laid out as a value chain: its members with their roles and stages,
//! the stages in upstream-first order, the gaps no member covers (with why they
//! are needed), the links between members, and which rules are covered by whom.

use std::collections::{BTreeSet, HashMap, HashSet};

use klynge_models::model::{FittedModel, PreparedQuery, Reason};
use klynge_models::network::{self, Breakdown, role_stage};
use klynge_models::valuechain;

use super::newcomer::chain_rows_of;
use super::{
    ANCHOR_REASON, ChainStage, Coverage, Layout, Link, LinkReason, Member, NetworkBody, NetworkRequest, Newcomer,
};
use crate::engine::Engine;

/// A stage a gap is named for needs this share of a member's inputs (or of the
/// buyer's, when members supply it): a strong link, not one of the many small
/// ones (transport and wholesale supply 5-9 % of the inputs of many sectors).
const GAP_COEFFICIENT: f32 = 0.10;
/// Gaps named at most, strongest first before they are put in chain order.
const MAX_GAPS: usize = 4;
/// Of the candidates whose profiles are closest to the opportunity's wording,
/// this many are looked at, and a stage at least [`OPPORTUNITY_STAGE_HOLDERS`]
/// of them stand at is one the opportunity needs.
const OPPORTUNITY_TOP: usize = 10;
const OPPORTUNITY_STAGE_HOLDERS: usize = 3;

impl Engine {
    #[allow(clippy::too_many_arguments)]
    pub(super) fn network_body(
        &self,
        model: &FittedModel,
        query: &PreparedQuery,
        request: &NetworkRequest,
        layout: &Layout,
        members: &[u32],
        score: f32,
        breakdown: Breakdown,
    ) -> NetworkBody {
        let meta = |f: u32| &model.meta[f as usize];
        let stage_of = |f: u32| role_stage(meta(f));
        let chain_rows = |f: u32| -> Vec<usize> { chain_rows_of(meta(f)) };
        let newcomer_stage = |n: &Newcomer| role_stage(&n.meta);
        let covered: BTreeSet<&'static str> = members
            .iter()
            .filter_map(|&f| stage_of(f))
            .chain(layout.newcomers.iter().filter_map(newcomer_stage))
            .collect();
        let gaps = self.gaps(model, query, request, layout, members, &covered, &chain_rows);
        let mut stage_rows: Vec<(&'static str, Vec<usize>)> = Vec::new();
        for &f in members {
            if let Some(stage) = stage_of(f) {
                stage_rows.push((stage, chain_rows(f)));
            }
        }
        for newcomer in layout.newcomers {
            if let Some(stage) = newcomer_stage(newcomer) {
                stage_rows.push((stage, chain_rows_of(&newcomer.meta)));
            }
        }
        for (stage, rows, _) in &gaps {
            stage_rows.push((stage, rows.clone()));
        }
        let order = network::chain_order(&stage_rows);
        let position: HashMap<&'static str, usize> = order.iter().enumerate().map(|(i, &s)| (s, i + 1)).collect();
        let chain: Vec<ChainStage> = order
            .iter()
            .map(|&stage| {
                let gap = gaps.iter().find(|(s, _, _)| *s == stage);
                ChainStage {
                    position: position[stage],
                    stage,
                    members: layout
                        .newcomers
                        .iter()
                        .filter(|n| newcomer_stage(n) == Some(stage))
                        .map(|n| n.id.clone())
                        .chain(
                            members.iter().filter(|&&f| stage_of(f) == Some(stage)).map(|&f| model.id(f).to_string()),
                        )
                        .collect(),
                    gap: gap.is_some(),
                    reason: gap.map(|(_, _, reason)| reason.clone()),
                }
            })
            .collect();
        let newcomer_members: Vec<Member> = layout.newcomers.iter().map(|n| n.member(&position)).collect();
        let body_members = newcomer_members
            .into_iter()
            .chain(members.iter().map(|&f| {
                let stage = stage_of(f);
                let mut partner = self.partner(model, query, f);
                if layout.anchors.contains(&f) {
                    // Scored against itself, an anchor's signals would read "close to
                    // the anchor's profile (similarity 1.00)", "same country".
                    partner.reasons = vec![Reason { signal: "anchor", text: ANCHOR_REASON.to_string() }];
                }
                Member {
                    partner,
                    role: network::role(meta(f)),
                    stage,
                    position: stage.map(|s| position[s]),
                    status: if layout.anchors.contains(&f) {
                        "anchor"
                    } else if layout.locked.contains(&f) {
                        "locked"
                    } else {
                        "proposed"
                    },
                }
            }))
            .collect();
        let links = links(model, members, &chain_rows, &|f| stage_of(f).map(|s| position[s]));
        let mut requirements = Vec::new();
        let ids_where = |holds: &dyn Fn(u32) -> bool| -> Vec<String> {
            members.iter().filter(|&&f| holds(f)).map(|&f| model.id(f).to_string()).collect()
        };
        for (kinds, need) in &request.kinds {
            let by = ids_where(&|f| kinds.contains(&meta(f).kind));
            let names: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
            requirements.push(Coverage {
                requirement: format!("at least {need} {}", names.join(" or ")),
                covered: by.len() >= *need,
                by,
            });
        }
        if request.min_sme > 0 {
            let by = ids_where(&|f| meta(f).sme);
            requirements.push(Coverage {
                requirement: format!("at least {} SMEs", request.min_sme),
                covered: by.len() >= request.min_sme,
                by,
            });
        }
        for sector in &request.sectors {
            let by = ids_where(&|f| meta(f).sectors.iter().any(|s| s.starts_with(sector.as_str())));
            requirements.push(Coverage { requirement: format!("sector {sector}"), covered: !by.is_empty(), by });
        }
        for stage in &request.stages {
            let by = ids_where(&|f| stage_of(f) == Some(stage.as_str()));
            requirements.push(Coverage { requirement: format!("stage '{stage}'"), covered: !by.is_empty(), by });
        }
        let gap_stages: Vec<&'static str> = chain.iter().filter(|c| c.gap).map(|c| c.stage).collect();
        NetworkBody {
            score,
            breakdown,
            members: body_members,
            links,
            stages_covered: chain.iter().filter(|c| !c.gap).map(|c| c.stage).collect(),
            chain,
            gaps: gap_stages.clone(),
            requirements,
            stages_missing: gap_stages,
        }
    }

    /// Stages no member covers that the network needs, each with the rows that
    /// place it in the chain and the reason: a stage the request requires; one the
    /// opportunity's best-fitting firms stand at; one the members' sectors buy
    /// much of their inputs from, or sell much of their output to.
    #[allow(clippy::too_many_arguments)]
    fn gaps(
        &self,
        model: &FittedModel,
        query: &PreparedQuery,
        request: &NetworkRequest,
        layout: &Layout,
        members: &[u32],
        covered: &BTreeSet<&'static str>,
        chain_rows: &dyn Fn(u32) -> Vec<usize>,
    ) -> Vec<(&'static str, Vec<usize>, String)> {
        let mut gaps: Vec<(&'static str, Vec<usize>, String)> = Vec::new();
        let mut add = |stage: &'static str, rows: Vec<usize>, reason: String| {
            if !covered.contains(stage) && !gaps.iter().any(|(s, _, _)| *s == stage) && gaps.len() < MAX_GAPS {
                gaps.push((stage, rows, reason));
            }
        };
        for stage in &request.stages {
            if let Some(&stage) = valuechain::STAGES.iter().find(|s| **s == stage.as_str()) {
                add(stage, Vec::new(), "the request requires it".to_string());
            }
        }
        if let (Some(candidates), Some(text)) = (layout.candidates, &query.text) {
            let mut closest: Vec<(f32, u32)> =
                candidates.iter().map(|c| (text.dot(&model.embedding(c.firm)), c.firm)).collect();
            closest.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            let mut counts: Vec<(&'static str, usize)> = Vec::new();
            for stage in closest.iter().take(OPPORTUNITY_TOP).filter_map(|&(_, f)| role_stage(&model.meta[f as usize]))
            {
                match counts.iter_mut().find(|(s, _)| *s == stage) {
                    Some((_, n)) => *n += 1,
                    None => counts.push((stage, 1)),
                }
            }
            counts.sort_by_key(|&(_, n)| std::cmp::Reverse(n));
            for (stage, n) in counts.into_iter().filter(|(_, n)| *n >= OPPORTUNITY_STAGE_HOLDERS) {
                add(
                    stage,
                    Vec::new(),
                    format!("{n} of the {OPPORTUNITY_TOP} candidates closest to the opportunity's wording stand here"),
                );
            }
        }
        let table = valuechain::table();
        let mut neighbours: Vec<(f32, u32, usize, usize)> = Vec::new();
        for &f in members {
            for own in chain_rows(f) {
                for (row, strength) in table.partner_rows(&[own], 6) {
                    if strength >= GAP_COEFFICIENT {
                        neighbours.push((strength, f, own, row));
                    }
                }
            }
        }
        neighbours.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.3.cmp(&b.3)));
        for (_, member, own, row) in neighbours {
            let stage = valuechain::stage(table.code(row));
            let Some(link) = network::supply(&[own], &[row]) else { continue };
            let name = &model.meta[member as usize].name;
            let reason = if link.first_supplies {
                format!(
                    "{} buys {:.1} % of its inputs from {name} ({})",
                    link.buyer,
                    link.coefficient * 100.0,
                    link.supplier
                )
            } else {
                format!(
                    "{name} ({}) buys {:.1} % of its inputs from {}",
                    link.buyer,
                    link.coefficient * 100.0,
                    link.supplier
                )
            };
            add(stage, vec![row], reason);
        }
        gaps
    }
}

/// Words of an offer or need that carry meaning (a short stop list: offers and
/// needs are short phrases).
fn content_words(text: &str) -> HashSet<String> {
    const STOP: [&str; 8] = ["and", "the", "for", "with", "from", "our", "of", "to"];
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() > 2)
        .map(str::to_lowercase)
        .filter(|w| !STOP.contains(&w.as_str()))
        .collect()
}

/// An offer of `a` that meets a need of `b`: the pair sharing most content words.
fn offer_meets_need(model: &FittedModel, a: u32, b: u32) -> Option<(String, String)> {
    let mut best: Option<(usize, String, String)> = None;
    for offer in &model.meta[a as usize].offers {
        let words = content_words(offer);
        for need in &model.meta[b as usize].needs {
            let shared = words.intersection(&content_words(need)).count();
            if shared > 0 && best.as_ref().is_none_or(|(n, _, _)| shared > *n) {
                best = Some((shared, offer.clone(), need.clone()));
            }
        }
    }
    best.map(|(_, offer, need)| (offer, need))
}

/// One link per pair of members that supply each other (input-output table),
/// complement each other (offers meet needs) or have worked together; directed
/// from supplier to buyer, else from the more upstream member.
fn links(
    model: &FittedModel,
    members: &[u32],
    chain_rows: &dyn Fn(u32) -> Vec<usize>,
    position: &dyn Fn(u32) -> Option<usize>,
) -> Vec<Link> {
    let mut links = Vec::new();
    for (i, &a) in members.iter().enumerate() {
        for &b in &members[i + 1..] {
            let mut reasons = Vec::new();
            let mut direction: Option<(u32, u32)> = None;
            let mut coefficient = None;
            if let Some(link) = network::supply(&chain_rows(a), &chain_rows(b)) {
                let (from, to) = if link.first_supplies { (a, b) } else { (b, a) };
                direction = Some((from, to));
                coefficient = Some(link.coefficient);
                reasons.push(LinkReason {
                    relation: "supplies",
                    text: format!(
                        "{} supplies {}: {} buys {:.1} % of its inputs from {}",
                        model.meta[from as usize].name,
                        model.meta[to as usize].name,
                        link.buyer,
                        link.coefficient * 100.0,
                        link.supplier
                    ),
                });
            }
            for (from, to) in [(a, b), (b, a)] {
                if let Some((offer, need)) = offer_meets_need(model, from, to) {
                    direction.get_or_insert((from, to));
                    reasons.push(LinkReason {
                        relation: "complements",
                        text: format!(
                            "{} offers '{offer}', which {} needs ('{need}')",
                            model.meta[from as usize].name, model.meta[to as usize].name
                        ),
                    });
                }
            }
            let ties = model.graph.ties(a, b) as u32;
            if ties > 0 {
                reasons.push(LinkReason {
                    relation: "worked_together",
                    text: format!("{ties} past collaboration{}", if ties == 1 { "" } else { "s" }),
                });
            }
            if reasons.is_empty() {
                continue;
            }
            let directed = direction.is_some();
            let (from, to) = direction.unwrap_or_else(|| {
                // Undirected: drawn from the more upstream member (unknown stages last).
                let key = |f: u32| position(f).unwrap_or(usize::MAX);
                if key(b) < key(a) { (b, a) } else { (a, b) }
            });
            links.push(Link {
                from: model.id(from).to_string(),
                to: model.id(to).to_string(),
                relation: reasons[0].relation,
                directed,
                detail: reasons.iter().map(|r| r.text.as_str()).collect::<Vec<_>>().join("; "),
                reasons,
                coefficient,
                collaborations: ties,
            });
        }
    }
    links
}
