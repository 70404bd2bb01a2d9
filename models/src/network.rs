//! Network assembly: choose a set of at least five organisations that together
//! cover a value chain around an opportunity, under the rules real cluster
//! programmes set (kinds required, SMEs, sectors, countries, partners per
//! country, locked and excluded members). It also owns what a member *is* in a
//! network (its role and value-chain stage, [`role_stage`]) and the order of a
//! network's stages along the chain ([`chain_order`]).
//!
//! The objective adds each member's relevance (its shortlist score), the
//! pairwise fit between members (past ties and supplier/customer links, weighted
//! by the learnt pair model), and set terms whose weights ([`Objective`]) are
//! chosen by cross-validation on the catalogue's own collaborations (`klynge
//! eval --tune-networks`): distinct value-chain stages, distinct kinds and
//! countries, and competitors (same division and latent cluster).
//! It is a monotone set function with diminishing returns in practice, so greedy
//! selection with lazily re-evaluated gains (Minoux 1978) gets close to the best
//! set; a pass of pairwise swaps then repairs what greedy order got wrong. Both
//! steps break ties by firm position, so the same request and generation always
//! give the same network.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::Kind;
use crate::model::{FirmMeta, FittedModel, pair_features};
use crate::scoring::{SIGNAL_COUNT, Signal};
use crate::valuechain;

/// Beyond the minimum size, a member is only added when its gain is at least this
/// share of the members' mean relevance: a bigger network must earn its size.
const GROWTH_THRESHOLD: f32 = 0.5;

/// An inferred sector names a company's stage only when its text is at least this
/// much closer to that sector than to any sector of another stage (cosine margin,
/// [`FirmMeta::stage_margin`]). Measured on the demo catalogue's listed
/// companies with their stated sectors hidden (`tests/roles.rs`): above the
/// margin the inferred stage is right 86 % of the time, below it 63 %.
pub const SECTOR_CONFIDENCE: f32 = 0.05;

/// A supply link between two members is shown (and orders their stages) when the
/// buyer's sector takes at least this share of its inputs from the supplier's.
pub const MIN_LINK_COEFFICIENT: f32 = 0.01;

/// Weights of the set terms, relative to relevance in 0..1. The defaults are
/// what cross-validation on the CORDIS catalogue's collaborations chose (see the
/// README, "Quality"; `klynge eval --tune-networks` repeats the search): half the
/// pair model's fit and 0.15 per distinct known stage. Kinds, countries, kind
/// pairs, shared similar projects and the competitor penalty earned nothing
/// there (each within ±0.001 of the objective without them, or worse), so they
/// are off.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Objective {
    /// Multiplier of the pair model's fit between members.
    pub pair: f32,
    /// Per distinct known value-chain stage.
    pub stage: f32,
    /// Per distinct kind of organisation.
    pub kinds: f32,
    /// Per distinct country.
    pub countries: f32,
    /// Multiplier of the kinds' mean pairwise lift (how much likelier two kinds
    /// sit in one of the catalogue's consortia than chance: `kind_lift`).
    pub kind_pairs: f32,
    /// Per unit of similarity of the past collaborations two members were both
    /// in, among those most like the opportunity ([`NetworkSpec::similar_projects`]):
    /// consortia are often renewed, and these name who was together last time.
    pub co_projects: f32,
    /// Penalty per pair of competitors (same division, same latent cluster).
    pub competitor: f32,
}

impl Default for Objective {
    fn default() -> Objective {
        Objective {
            pair: 0.5,
            stage: 0.15,
            kinds: 0.0,
            countries: 0.0,
            kind_pairs: 0.0,
            co_projects: 0.0,
            competitor: 0.0,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct NetworkSpec {
    pub min: usize,
    pub max: usize,
    /// Anchors and locked firms: always members.
    pub required: Vec<u32>,
    /// At least this many members whose kind is one of the listed kinds.
    pub kinds: Vec<(Vec<Kind>, usize)>,
    pub min_sme: usize,
    /// Sector prefixes (`C10`, `M72`) each covered by at least one member.
    pub sectors: Vec<String>,
    /// Value-chain stages (see [`valuechain::STAGES`]) each covered by at least one member.
    pub stages: Vec<String>,
    pub max_per_country: Option<usize>,
    pub alternatives: usize,
    pub objective: Objective,
    /// For each candidate, the past collaborations most similar to the
    /// opportunity it was in, with their similarity, sorted by collaboration.
    pub similar_projects: HashMap<u32, Vec<(u32, f32)>>,
}

/// A candidate member with its relevance to the opportunity (0..1).
#[derive(Debug, Clone, Copy)]
pub struct Candidate {
    pub firm: u32,
    pub relevance: f32,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Breakdown {
    pub relevance: f32,
    pub pairwise_fit: f32,
    pub coverage: f32,
    pub diversity: f32,
}

#[derive(Debug, Clone)]
pub struct Network {
    pub members: Vec<u32>,
    pub score: f32,
    pub breakdown: Breakdown,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct Infeasible(pub String);

struct Assembler<'a> {
    model: &'a FittedModel,
    spec: &'a NetworkSpec,
    relevance: HashMap<u32, f32>,
    tie_weight: f32,
    chain_weight: f32,
    /// The pair model's probability for two firms with no tie and no link.
    unlinked: f32,
}

impl<'a> Assembler<'a> {
    fn pair_fit(&self, a: u32, b: u32) -> f32 {
        // The same pair signals the pair model was learnt on.
        let features = pair_features(self.model, a, b);
        match &self.model.pair_weights {
            // The pair model's probability that the two sit in one consortium, above
            // that of two unlinked firms: on the same 0..1 scale as relevance, so
            // a tight club of well-connected members cannot outweigh relevance.
            Some(pair) => (pair.score(&features).score - self.unlinked).max(0.0),
            None => {
                self.tie_weight * features[Signal::Ties as usize]
                    + self.chain_weight * features[Signal::ValueChain as usize]
            }
        }
    }

    /// Distinct value-chain stages of the members whose stage is known
    /// ([`role_stage`]: from the kind, a stated sector or a confident guess).
    fn stages(&self, members: &[u32]) -> usize {
        members.iter().filter_map(|&m| role_stage(&self.model.meta[m as usize])).collect::<BTreeSet<_>>().len()
    }

    fn competitors(&self, a: u32, b: u32) -> bool {
        let (ma, mb) = (&self.model.meta[a as usize], &self.model.meta[b as usize]);
        !ma.rows.is_empty()
            && !ma.sectors_inferred
            && !mb.sectors_inferred
            && ma.rows == mb.rows
            && self.model.clusters.assignment[a as usize] == self.model.clusters.assignment[b as usize]
    }

    fn evaluate(&self, members: &[u32]) -> (f32, Breakdown) {
        let objective = &self.spec.objective;
        let relevance: f32 = members.iter().map(|m| self.relevance.get(m).copied().unwrap_or(0.0)).sum();
        let mut fit = 0.0;
        let mut competitors = 0.0;
        for (i, &a) in members.iter().enumerate() {
            for &b in &members[i + 1..] {
                if objective.pair != 0.0 {
                    fit += objective.pair * self.pair_fit(a, b);
                }
                if objective.co_projects != 0.0
                    && let (Some(pa), Some(pb)) =
                        (self.spec.similar_projects.get(&a), self.spec.similar_projects.get(&b))
                {
                    fit += objective.co_projects * shared_similarity(pa, pb);
                }
                if objective.kind_pairs != 0.0 {
                    let kind = |m: u32| self.model.meta[m as usize].kind.index();
                    fit += objective.kind_pairs * self.model.kind_lift[kind(a)][kind(b)];
                }
                if objective.competitor != 0.0 && self.competitors(a, b) {
                    competitors += 1.0;
                }
            }
        }
        let pairwise_fit = if members.len() > 1 { fit / (members.len() - 1) as f32 } else { 0.0 };
        let coverage = if objective.stage != 0.0 { objective.stage * self.stages(members) as f32 } else { 0.0 };
        let meta = |m: &u32| &self.model.meta[*m as usize];
        let kinds = members.iter().map(|m| meta(m).kind).collect::<BTreeSet<_>>().len() as f32;
        let countries = members.iter().filter_map(|m| meta(m).country.as_deref()).collect::<BTreeSet<_>>().len() as f32;
        let diversity = objective.kinds * kinds + objective.countries * countries - objective.competitor * competitors;
        let breakdown = Breakdown { relevance, pairwise_fit, coverage, diversity };
        (relevance + pairwise_fit + coverage + diversity, breakdown)
    }

    /// Requirement units still unmet by `members` (kinds, SMEs, sectors).
    fn unmet(&self, members: &[u32]) -> usize {
        let meta = |m: &u32| &self.model.meta[*m as usize];
        let kinds: usize = self
            .spec
            .kinds
            .iter()
            .map(|(kinds, need)| need.saturating_sub(members.iter().filter(|m| kinds.contains(&meta(m).kind)).count()))
            .sum();
        let smes = self.spec.min_sme.saturating_sub(members.iter().filter(|m| meta(m).sme).count());
        let sectors = self
            .spec
            .sectors
            .iter()
            .filter(|prefix| !members.iter().any(|m| meta(m).sectors.iter().any(|s| s.starts_with(prefix.as_str()))))
            .count();
        let stages = self
            .spec
            .stages
            .iter()
            .filter(|stage| !members.iter().any(|m| role_stage(meta(m)) == Some(stage.as_str())))
            .count();
        kinds + smes + sectors + stages
    }

    fn country_ok(&self, members: &[u32], candidate: u32) -> bool {
        let Some(limit) = self.spec.max_per_country else { return true };
        let Some(country) = &self.model.meta[candidate as usize].country else { return true };
        members.iter().filter(|m| self.model.meta[**m as usize].country.as_ref() == Some(country)).count() < limit
    }

    /// Whether adding `candidate` keeps the requirements reachable with the slots
    /// left before `max`.
    fn admissible(&self, members: &[u32], candidate: u32) -> bool {
        if !self.country_ok(members, candidate) {
            return false;
        }
        let slots_after = self.spec.max - members.len() - 1;
        let mut with = members.to_vec();
        with.push(candidate);
        self.unmet(&with) <= slots_after
    }

    fn greedy(&self, pool: &[u32], banned: &HashSet<u32>) -> Option<Vec<u32>> {
        let mut members = self.spec.required.clone();
        let mut current = self.evaluate(&members).0;
        // Lazy gains: an upper bound per candidate, re-evaluated only when it tops the heap.
        let mut bounds: Vec<(f32, u32)> =
            pool.iter().filter(|c| !banned.contains(c) && !members.contains(c)).map(|&c| (f32::INFINITY, c)).collect();
        while members.len() < self.spec.max {
            bounds.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            let mut chosen = None;
            let mut i = 0;
            while i < bounds.len() {
                let (_, candidate) = bounds[i];
                if !self.admissible(&members, candidate) {
                    bounds[i].0 = f32::NEG_INFINITY;
                    i += 1;
                    continue;
                }
                let mut with = members.clone();
                with.push(candidate);
                let gain = self.evaluate(&with).0 - current;
                bounds[i].0 = gain;
                let next_bound = bounds.get(i + 1).map_or(f32::NEG_INFINITY, |b| b.0);
                if gain >= next_bound {
                    chosen = Some((i, gain));
                    break;
                }
                bounds.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                i = 0;
            }
            let Some((index, gain)) = chosen else { break };
            if members.len() >= self.spec.min && self.unmet(&members) == 0 {
                let mean = members.iter().map(|m| self.relevance.get(m).copied().unwrap_or(0.0)).sum::<f32>()
                    / members.len() as f32;
                if gain < GROWTH_THRESHOLD * mean {
                    break;
                }
            }
            let (_, candidate) = bounds.remove(index);
            members.push(candidate);
            current += gain;
        }
        (members.len() >= self.spec.min && self.unmet(&members) == 0).then_some(members)
    }

    /// First-improvement swaps of one free member for one outsider until none helps.
    fn improve(&self, mut members: Vec<u32>, pool: &[u32], banned: &HashSet<u32>) -> Vec<u32> {
        let required: HashSet<u32> = self.spec.required.iter().copied().collect();
        let mut best = self.evaluate(&members).0;
        for _ in 0..3 {
            let mut improved = false;
            for slot in 0..members.len() {
                if required.contains(&members[slot]) {
                    continue;
                }
                for &candidate in pool.iter().take(60) {
                    if banned.contains(&candidate) || members.contains(&candidate) {
                        continue;
                    }
                    let mut trial = members.clone();
                    trial[slot] = candidate;
                    let others: Vec<u32> = trial.iter().copied().filter(|&m| m != candidate).collect();
                    if !self.country_ok(&others, candidate) || self.unmet(&trial) > 0 {
                        continue;
                    }
                    let score = self.evaluate(&trial).0;
                    if score > best + 1e-6 {
                        members = trial;
                        best = score;
                        improved = true;
                    }
                }
            }
            if !improved {
                break;
            }
        }
        members
    }
}

/// The best network and up to `spec.alternatives` different ones. Alternatives
/// are found by banning, in turn, the free members of the networks found so far,
/// most relevant first, so each differs by at least one member.
pub fn assemble(model: &FittedModel, spec: &NetworkSpec, candidates: &[Candidate]) -> Result<Vec<Network>, Infeasible> {
    // Member–member fit uses the pair model when there is one (see
    // `FittedModel::pair_weights`), else the ranking weights.
    let pair_weights = model.pair_weights.as_ref().unwrap_or(&model.weights);
    let weight = |signal: Signal| pair_weights.raw_weight(signal as usize).max(0.0);
    let assembler = Assembler {
        model,
        spec,
        relevance: candidates.iter().map(|c| (c.firm, c.relevance)).collect(),
        tie_weight: weight(Signal::Ties),
        chain_weight: weight(Signal::ValueChain) / 10.0,
        unlinked: model.pair_weights.as_ref().map_or(0.0, |pair| pair.score(&[0.0; SIGNAL_COUNT]).score),
    };
    let mut pool: Vec<u32> = candidates.iter().map(|c| c.firm).collect();
    pool.sort_by(|a, b| assembler.relevance[b].total_cmp(&assembler.relevance[a]).then(a.cmp(b)));
    let first = assembler
        .greedy(&pool, &HashSet::new())
        .ok_or_else(|| Infeasible("no set of candidates satisfies every constraint at once".to_string()))?;
    let first = assembler.improve(first, &pool, &HashSet::new());
    let mut networks = vec![first];
    let mut seen: HashSet<Vec<u32>> = networks.iter().map(|n| sorted(n)).collect();
    let mut bans: Vec<u32> = Vec::new();
    let required: HashSet<u32> = spec.required.iter().copied().collect();
    'alternatives: while networks.len() <= spec.alternatives {
        let mut free: Vec<u32> =
            networks.iter().flatten().copied().filter(|m| !required.contains(m) && !bans.contains(m)).collect();
        free.sort_by(|a, b| assembler.relevance[b].total_cmp(&assembler.relevance[a]).then(a.cmp(b)));
        free.dedup();
        for ban in free {
            bans.push(ban);
            let banned: HashSet<u32> = HashSet::from([ban]);
            if let Some(members) = assembler.greedy(&pool, &banned) {
                let members = assembler.improve(members, &pool, &banned);
                if seen.insert(sorted(&members)) {
                    networks.push(members);
                    continue 'alternatives;
                }
            }
        }
        break;
    }
    Ok(networks
        .into_iter()
        .map(|members| {
            let (score, breakdown) = assembler.evaluate(&members);
            Network { members, score, breakdown }
        })
        .collect())
}

/// Summed similarity of the collaborations in both sorted lists.
fn shared_similarity(a: &[(u32, f32)], b: &[(u32, f32)]) -> f32 {
    let (mut i, mut j, mut sum) = (0, 0, 0.0);
    while i < a.len() && j < b.len() {
        match a[i].0.cmp(&b[j].0) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                sum += a[i].1;
                i += 1;
                j += 1;
            }
        }
    }
    sum
}

/// The value-chain stage a member stands for in a network. Kind comes first: a
/// university educates and researches whatever its projects are about (a sector
/// guessed from its project titles would make it "finance & property"), a
/// research body does R&D, a public body administers. A company (or other
/// organisation) stands at the stage of its stated sector, or of an inferred
/// one only when the guess is confident ([`SECTOR_CONFIDENCE`]); otherwise its
/// stage is unknown.
pub fn role_stage(meta: &FirmMeta) -> Option<&'static str> {
    match meta.kind {
        Kind::University => Some("education & research"),
        Kind::Research => Some("research & development"),
        Kind::Public => Some("public administration"),
        Kind::Company => {
            let sector = meta.sectors.first()?;
            (!meta.sectors_inferred || meta.stage_margin >= SECTOR_CONFIDENCE).then(|| valuechain::stage(sector))
        }
        // Associations, surveys, cluster bodies: a sector guessed from their text
        // says what they work on, not what they make or sell (the Geological
        // Survey of Denmark is not a leather maker), so only a stated one counts.
        Kind::Other => {
            let sector = meta.sectors.first()?;
            (!meta.sectors_inferred).then(|| valuechain::stage(sector))
        }
    }
}

/// A member's role in words: its stage and what the stage rests on, e.g.
/// "education & research (university)", "manufacturing (company, sector C10)",
/// "manufacturing (company, sector C10 inferred from its description)" or
/// "role unknown (company without a stated sector)". Never a guess with a "?".
pub fn role(meta: &FirmMeta) -> String {
    let kind = match meta.kind {
        Kind::Research => "research organisation",
        Kind::Public => "public body",
        Kind::Other => "organisation",
        other => other.as_str(),
    };
    match (role_stage(meta), meta.sectors.first()) {
        (Some(stage), _) if matches!(meta.kind, Kind::University | Kind::Research | Kind::Public) => {
            format!("{stage} ({kind})")
        }
        (Some(stage), Some(sector)) if meta.sectors_inferred => {
            format!("{stage} ({kind}, sector {sector} inferred from its description)")
        }
        (Some(stage), Some(sector)) => format!("{stage} ({kind}, sector {sector})"),
        (_, Some(_)) => format!("role unknown ({kind}; its description does not settle a sector)"),
        (_, None) => format!("role unknown ({kind} without a stated sector)"),
    }
}

/// Where the stages with no input-output row of their own sit for ordering:
/// their kind's typical division.
fn representative_division(stage: &str) -> Option<&'static str> {
    match stage {
        "education & research" => Some("P85"),
        "research & development" => Some("M72"),
        "public administration" => Some("O84"),
        _ => None,
    }
}

/// The order stages take along a generic value chain, used only where the
/// input-output table says nothing (no link of at least [`MIN_LINK_COEFFICIENT`]
/// between two stages): knowledge first, then materials, making, building,
/// services, moving and selling, and the public customer last.
pub const CANONICAL_ORDER: [&str; 14] = [
    "research & development",
    "education & research",
    "primary production",
    "energy & utilities",
    "manufacturing",
    "construction",
    "information & communication",
    "business services",
    "finance & property",
    "transport & logistics",
    "trade & distribution",
    "health & care",
    "consumer services",
    "public administration",
];

fn canonical(stage: &str) -> usize {
    CANONICAL_ORDER.iter().position(|s| *s == stage).unwrap_or(CANONICAL_ORDER.len())
}

/// Which way goods and services mostly go between two sets of sectors.
#[derive(Debug, Clone, PartialEq)]
pub struct Supply {
    /// True when the first set supplies the second.
    pub first_supplies: bool,
    /// Table codes of the strongest pair in that direction (`A01`, `C10`).
    pub supplier: String,
    pub buyer: String,
    /// Share of the buyer's inputs bought from the supplier.
    pub coefficient: f32,
}

/// The supply link between two sets of input-output rows, if either buys at
/// least [`MIN_LINK_COEFFICIENT`] of its inputs from the other. Two sectors often
/// supply each other (dairies sell feed back to farms); the direction is that of
/// the larger yearly flow, so the chain reads the way most value moves.
pub fn supply(first: &[usize], second: &[usize]) -> Option<Supply> {
    let table = valuechain::table();
    let pairs = || first.iter().flat_map(|&a| second.iter().map(move |&b| (a, b))).filter(|(a, b)| a != b);
    let strongest = pairs().map(|(a, b)| table.coefficient(a, b).max(table.coefficient(b, a))).fold(0.0f32, f32::max);
    if strongest < MIN_LINK_COEFFICIENT {
        return None;
    }
    let forward: f32 = pairs().map(|(a, b)| table.flow(a, b)).sum();
    let backward: f32 = pairs().map(|(a, b)| table.flow(b, a)).sum();
    let first_supplies = forward >= backward;
    let (supplier, buyer, coefficient) = pairs()
        .map(|(a, b)| if first_supplies { (a, b) } else { (b, a) })
        .map(|(s, b)| (s, b, table.coefficient(s, b)))
        .max_by(|x, y| x.2.total_cmp(&y.2).then(y.0.cmp(&x.0)).then(y.1.cmp(&x.1)))?;
    Some(Supply {
        first_supplies,
        supplier: table.code(supplier).to_string(),
        buyer: table.code(buyer).to_string(),
        coefficient,
    })
}

/// Orders stages upstream first. `stages` pairs each stage with the input-output
/// rows of the sectors that stand for it (its members' sectors, or the sector a
/// gap was found from); a stage without rows is placed by its kind's typical
/// division. Stage `s` comes before `t` when their sectors are linked
/// ([`supply`]) and `s` supplies `t`: the order is a topological sort of those
/// links, ties (and stages the table does not link) in [`CANONICAL_ORDER`]; a
/// cycle is broken at the stage that supplies most of the others.
pub fn chain_order(stages: &[(&'static str, Vec<usize>)]) -> Vec<&'static str> {
    let table = valuechain::table();
    let mut nodes: Vec<(&'static str, Vec<usize>)> = Vec::new();
    for (stage, rows) in stages {
        let mut rows = rows.clone();
        if rows.is_empty()
            && let Some(row) = representative_division(stage).and_then(|d| table.row(d))
        {
            rows.push(row);
        }
        match nodes.iter_mut().find(|(s, _)| s == stage) {
            Some((_, known)) => known.extend(rows),
            None => nodes.push((stage, rows)),
        }
    }
    let n = nodes.len();
    // edge[i][j]: stage i supplies stage j.
    let mut edge = vec![vec![false; n]; n];
    for i in 0..n {
        for j in i + 1..n {
            if let Some(link) = supply(&nodes[i].1, &nodes[j].1) {
                edge[i][j] = link.first_supplies;
                edge[j][i] = !link.first_supplies;
            }
        }
    }
    let mut placed = vec![false; n];
    let mut order = Vec::with_capacity(n);
    while order.len() < n {
        let open: Vec<usize> = (0..n).filter(|&i| !placed[i]).collect();
        let ready: Vec<usize> = open.iter().copied().filter(|&j| !open.iter().any(|&i| i != j && edge[i][j])).collect();
        let candidates = if ready.is_empty() {
            // A cycle: start it at the stages that supply most of the rest.
            let supplies = |i: usize| open.iter().filter(|&&j| edge[i][j]).count();
            let most = open.iter().map(|&i| supplies(i)).max().unwrap_or(0);
            open.iter().copied().filter(|&i| supplies(i) == most).collect()
        } else {
            ready
        };
        let next = *candidates.iter().min_by_key(|&&i| (canonical(nodes[i].0), nodes[i].0)).expect("not empty");
        placed[next] = true;
        order.push(nodes[next].0);
    }
    order
}

fn sorted(members: &[u32]) -> Vec<u32> {
    let mut sorted = members.to_vec();
    sorted.sort_unstable();
    sorted
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(kind: Kind, sectors: &[&str], inferred: bool, confidence: f32) -> FirmMeta {
        FirmMeta {
            name: "x".to_string(),
            kind,
            size: None,
            country: None,
            region: None,
            sme: false,
            sectors: sectors.iter().map(|s| s.to_string()).collect(),
            sectors_inferred: inferred,
            sector_confidence: None,
            stage_margin: confidence,
            rows: Vec::new(),
            offers: Vec::new(),
            needs: Vec::new(),
            financial_vehicle: false,
            domain: None,
            name_key: String::new(),
        }
    }

    #[test]
    fn other_organisations_take_no_stage_from_a_guessed_sector() {
        let survey = meta(Kind::Other, &["C15"], true, 0.9);
        assert_eq!(role_stage(&survey), None);
        assert!(role(&survey).starts_with("role unknown"), "{}", role(&survey));
        let stated = meta(Kind::Other, &["C15"], false, 1.0);
        assert_eq!(role_stage(&stated), Some("manufacturing"));
    }

    #[test]
    fn roles_come_from_kind_first() {
        // Whatever sector a university's project titles suggest, it educates and researches.
        let university = meta(Kind::University, &["K64"], true, 0.9);
        assert_eq!(role_stage(&university), Some("education & research"));
        assert_eq!(role(&university), "education & research (university)");
        let lab = meta(Kind::Research, &[], false, 0.0);
        assert_eq!(role(&lab), "research & development (research organisation)");
        let agency = meta(Kind::Public, &["C10"], false, 1.0);
        assert_eq!(role(&agency), "public administration (public body)");
        // Every stage a kind gives is one `require.stages` accepts.
        for stage in [&university, &lab, &agency].map(|m| role_stage(m).unwrap()) {
            assert!(valuechain::STAGES.contains(&stage), "{stage}");
        }
    }

    #[test]
    fn a_company_role_needs_a_stated_or_confident_sector() {
        let stated = meta(Kind::Company, &["C10.51"], false, 1.0);
        assert_eq!(role_stage(&stated), Some("manufacturing"));
        assert_eq!(role(&stated), "manufacturing (company, sector C10.51)");
        let confident = meta(Kind::Company, &["A01"], true, SECTOR_CONFIDENCE + 0.01);
        assert_eq!(role_stage(&confident), Some("primary production"));
        assert_eq!(role(&confident), "primary production (company, sector A01 inferred from its description)");
        let unsure = meta(Kind::Company, &["K64"], true, SECTOR_CONFIDENCE - 0.01);
        assert_eq!(role_stage(&unsure), None);
        assert_eq!(role(&unsure), "role unknown (company; its description does not settle a sector)");
        let bare = meta(Kind::Other, &[], false, 0.0);
        assert_eq!(role_stage(&bare), None);
        assert_eq!(role(&bare), "role unknown (organisation without a stated sector)");
        for m in [&stated, &confident, &unsure, &bare] {
            assert!(!role(m).contains('?'), "{}", role(m));
        }
    }

    #[test]
    fn a_food_chain_runs_from_farm_to_shop() {
        let table = valuechain::table();
        let row = |code: &str| vec![table.row(code).unwrap()];
        // Given in any order, the input-output links put farming upstream of food
        // processing and food processing upstream of retail.
        let given =
            [("trade & distribution", row("G47")), ("manufacturing", row("C10")), ("primary production", row("A01"))];
        let expected = vec!["primary production", "manufacturing", "trade & distribution"];
        assert_eq!(chain_order(&given), expected);
        let mut reversed = given.clone();
        reversed.reverse();
        assert_eq!(chain_order(&reversed), expected);
    }

    #[test]
    fn the_table_overrides_the_canonical_order() {
        let table = valuechain::table();
        let row = |code: &str| vec![table.row(code).unwrap()];
        // Canonically making comes before moving, but hauliers are suppliers of
        // food manufacturers (2.3 % of their inputs), not their customers: the link decides.
        let link = supply(&row("C10"), &row("H49")).expect("hauliers supply food manufacturers");
        assert!(!link.first_supplies && link.coefficient >= MIN_LINK_COEFFICIENT, "{link:?}");
        let order = chain_order(&[("manufacturing", row("C10")), ("transport & logistics", row("H49"))]);
        assert_eq!(order, vec!["transport & logistics", "manufacturing"]);
        // Dairies sell feed back to farms, but far more milk goes the other way.
        let link = supply(&row("C10"), &row("A01")).unwrap();
        assert!(!link.first_supplies);
        assert_eq!((link.supplier.as_str(), link.buyer.as_str()), ("A01", "C10"));
        // Stages without rows fall back to their kind's division, then the canonical order.
        let order = chain_order(&[("public administration", vec![]), ("education & research", vec![])]);
        assert_eq!(order, vec!["education & research", "public administration"]);
    }
}
