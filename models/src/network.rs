//! Network assembly: choose a set of at least five organisations that together
//! cover a value chain around an opportunity, under the rules real cluster
//! programmes set (kinds required, SMEs, sectors, countries, partners per
//! country, locked and excluded members).
//!
//! The objective adds each member's relevance (its shortlist score), the
//! pairwise fit between members (past ties and supplier/customer links, weighted
//! by the learnt pair model), a bonus per distinct value-chain stage, and a
//! penalty for competitors (members of the same division and latent cluster).
//! It is a monotone set function with diminishing returns in practice, so greedy
//! selection with lazily re-evaluated gains (Minoux 1978) gets close to the best
//! set; a pass of pairwise swaps then repairs what greedy order got wrong. Both
//! steps break ties by firm position, so the same request and generation always
//! give the same network.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde::{Deserialize, Serialize};

use crate::Kind;
use crate::model::{FittedModel, pair_features};
use crate::scoring::{SIGNAL_COUNT, Signal};
use crate::valuechain;

/// Weight of one distinct value-chain stage, relative to relevance in 0..1.
const STAGE_BONUS: f32 = 0.15;
/// Penalty per pair of competitors (same division and same latent cluster).
const COMPETITOR_PENALTY: f32 = 0.2;
/// Beyond the minimum size, a member is only added when its gain is at least this
/// share of the members' mean relevance: a bigger network must earn its size.
const GROWTH_THRESHOLD: f32 = 0.5;

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
        let features = pair_features(&self.model.graph, self.model, a, b);
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

    /// Distinct value-chain stages of the members whose sector is known. A sector
    /// inferred from text is a guess: good enough to rank by, but rewarding a
    /// network for covering guessed stages (or punishing guessed competitors)
    /// rewards noise; on the CORDIS benchmark, whose sectors are all inferred,
    /// either term costs network precision.
    fn stages(&self, members: &[u32]) -> usize {
        members
            .iter()
            .map(|&m| &self.model.meta[m as usize])
            .filter(|meta| !meta.sectors_inferred)
            .flat_map(|meta| meta.sectors.first().map(|s| valuechain::stage(s)))
            .collect::<BTreeSet<_>>()
            .len()
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
        let relevance: f32 = members.iter().map(|m| self.relevance.get(m).copied().unwrap_or(0.0)).sum();
        let mut fit = 0.0;
        let mut competitors = 0.0;
        for (i, &a) in members.iter().enumerate() {
            for &b in &members[i + 1..] {
                fit += self.pair_fit(a, b);
                if self.competitors(a, b) {
                    competitors += 1.0;
                }
            }
        }
        let pairwise_fit = if members.len() > 1 { fit / (members.len() - 1) as f32 } else { 0.0 };
        let coverage = STAGE_BONUS * self.stages(members) as f32;
        let diversity = -COMPETITOR_PENALTY * competitors;
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
            .filter(|stage| {
                !members.iter().any(|m| meta(m).sectors.iter().any(|s| valuechain::stage(s) == stage.as_str()))
            })
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

fn sorted(members: &[u32]) -> Vec<u32> {
    let mut sorted = members.to_vec();
    sorted.sort_unstable();
    sorted
}
