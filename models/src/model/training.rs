//! Training data for the signal weights, by cross-fitting: held-out
//! collaborations asked as queries against a view of the catalogue without them,
//! and the pair signals the network model learns from.

use std::collections::{HashMap, HashSet};

use ndarray::Array1;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256Plus;
use rayon::prelude::*;

use super::query::{PreparedQuery, Query};
use super::{FittedModel, View};
use crate::graph::TieGraph;
use crate::scoring::{Features, SIGNAL_COUNT, Signal, TrainingQuery};
use crate::{Collaboration, Firm, valuechain};

/// Collaborations used as training queries need this many members with a profile:
/// klynge is asked for networks of five or more, and pairs and triples tie together
/// differently (bilateral contracts rather than consortia).
const MIN_TRAINING_MEMBERS: usize = 5;

/// Training queries from held-out collaborations, each asked three ways.
#[derive(Default)]
pub(super) struct TrainingSamples {
    /// With an anchor: for `weights`.
    pub(super) anchored: Vec<PooledQuery>,
    /// Without one: for `opportunity_weights`.
    pub(super) opportunity: Vec<PooledQuery>,
    /// Member–member pairs: for `pair_weights`.
    pub(super) pairs: Vec<TrainingQuery>,
}

/// A training query whose positives are the partners its candidate pool holds,
/// with the features of the partners it misses kept aside.
pub(super) struct PooledQuery {
    query: TrainingQuery,
    missed: Vec<Features>,
}

/// Below this share of the held-out partners in their pools, the pool is not
/// what finds partners in this catalogue and learning among it has too little
/// to learn from (the synthetic catalogues: under 1 %; CORDIS: 62 %).
const MIN_POOL_SHARE: f64 = 0.2;

/// The queries the ranking weights are learnt on. Among the pool, normally: the
/// pool is selected on these very signals, so partners it misses look worse on
/// them than the non-partners it holds, and as positives they would teach that a
/// signal which brings firms in counts against them. When the pools hold too few
/// partners for that, every partner counts.
pub(super) fn learn_among_pool(queries: Vec<PooledQuery>) -> Vec<TrainingQuery> {
    let held: usize = queries.iter().map(|q| q.query.positives.len()).sum();
    let missed: usize = queries.iter().map(|q| q.missed.len()).sum();
    let among_pool = held as f64 >= MIN_POOL_SHARE * (held + missed) as f64;
    queries
        .into_iter()
        .map(|PooledQuery { mut query, missed }| {
            if !among_pool {
                query.positives.extend(missed);
            }
            query
        })
        .collect()
}

impl FittedModel {
    /// Labelled samples for the weights, by cross-fitting: in each fold a few
    /// collaborations are held out as queries (text = the title; anchor = a member
    /// known from elsewhere, or none), and features are computed against a view
    /// where held-out collaborations are not ties and their titles are cut from
    /// their members' texts, so nothing a query asks for leaks into its own
    /// features.
    pub(super) fn training_samples(
        &self,
        firms: &[Firm],
        collaborations: &[Collaboration],
        texts: &[String],
    ) -> TrainingSamples {
        let eligible = collaborations
            .iter()
            .filter(|c| c.members.iter().filter(|m| self.lookup.contains_key(*m)).count() >= MIN_TRAINING_MEMBERS)
            .count()
            .min(self.params.training_queries);
        let folds = training_folds(eligible, collaborations.len());
        let per_fold = self.params.training_queries.div_ceil(folds);
        let mut samples = TrainingSamples::default();
        for fold in 0..folds {
            for (anchored, opportunity, pairs) in self.fold_samples(fold, folds, per_fold, firms, collaborations, texts)
            {
                samples.anchored.push(anchored);
                samples.opportunity.push(opportunity);
                samples.pairs.push(pairs);
            }
        }
        samples
    }

    fn fold_samples(
        &self,
        fold: usize,
        folds: usize,
        limit: usize,
        firms: &[Firm],
        collaborations: &[Collaboration],
        texts: &[String],
    ) -> Vec<(PooledQuery, PooledQuery, TrainingQuery)> {
        let mut held_out: Vec<&Collaboration> = collaborations
            .iter()
            .enumerate()
            .filter(|(i, c)| {
                i % folds == fold
                    && c.members.iter().filter(|m| self.lookup.contains_key(*m)).count() >= MIN_TRAINING_MEMBERS
            })
            .map(|(_, c)| c)
            .collect();
        held_out.truncate(limit);
        if held_out.is_empty() {
            return Vec::new();
        }
        let held_ids: HashSet<&str> = held_out.iter().map(|c| c.id.as_str()).collect();
        let hidden: HashSet<u32> = collaborations
            .iter()
            .enumerate()
            .filter(|(_, c)| held_ids.contains(c.id.as_str()))
            .map(|(i, _)| i as u32)
            .collect();
        let kept: Vec<Vec<u32>> = collaborations
            .iter()
            .filter(|c| !held_ids.contains(c.id.as_str()))
            .map(|c| c.members.iter().filter_map(|m| self.position(m)).collect::<Vec<u32>>())
            .filter(|members| members.len() >= 2)
            .collect();
        let graph = TieGraph::build(firms.len(), &kept);
        let mut cut: HashMap<u32, String> = HashMap::new();
        for collaboration in &held_out {
            let Some(title) = collaboration.title.as_deref() else { continue };
            for member in collaboration.members.iter().filter_map(|m| self.position(m)) {
                let text = cut.entry(member).or_insert_with(|| texts[member as usize].clone());
                for part in title.split(". ").filter(|part| part.len() > 3) {
                    *text = text.replace(part, " ");
                }
            }
        }
        let mut embeddings = self.embeddings.clone();
        let changed: Vec<(u32, String)> = cut.into_iter().collect();
        let vectors: Vec<Array1<f32>> = changed.par_iter().map(|(_, text)| self.text.embed(text)).collect();
        let mut assignment = self.clusters.assignment.clone();
        for ((firm, _), vector) in changed.iter().zip(vectors) {
            assignment[*firm as usize] = self.clusters.nearest(vector.view(), 1)[0];
            embeddings.row_mut(*firm as usize).assign(&vector);
        }
        let view = View { embeddings: &embeddings, graph: &graph, hidden: Some(&hidden), assignment: &assignment };
        held_out
            .par_iter()
            .enumerate()
            .map(|(i, collaboration)| {
                let members: Vec<u32> = collaboration.members.iter().filter_map(|m| self.position(m)).collect();
                let mut rng =
                    Xoshiro256Plus::seed_from_u64(self.params.seed.wrapping_add((fold * 1_000_003 + i) as u64));
                // The anchor is any member the catalogue already knows from elsewhere, as
                // a real request's anchor is (a coordinator, seldom the consortium's hub).
                let known: Vec<u32> = members.iter().copied().filter(|&m| graph.collaborations(m) > 0).collect();
                let anchor = if known.is_empty() { members[0] } else { known[rng.gen_range(0..known.len())] };
                let query = self.prepare_in(&view, &Query { anchors: vec![anchor], text: collaboration.title.clone() });
                let member_set: HashSet<u32> = members.iter().copied().collect();
                let (found, mut negatives) = self.pool_sample(&view, &query, &member_set, &mut rng);
                for _ in 0..5 {
                    let firm = rng.gen_range(0..self.len() as u32);
                    if !member_set.contains(&firm) {
                        negatives.push(firm);
                    }
                }
                // A member whose only collaboration is the held-out one would look like
                // a newcomer with no ties and an empty text; real queries ask for firms
                // already in the catalogue, so such members are not used as positives.
                let partners: Vec<u32> =
                    members.iter().copied().filter(|&m| m != anchor && graph.collaborations(m) > 0).collect();
                // Member–member pairs for the pair model: each partner against the
                // other partners and against the same non-partners.
                let mut pairs = TrainingQuery::default();
                for (i, &a) in partners.iter().enumerate().take(PAIR_SOURCES) {
                    pairs.positives.extend(
                        partners
                            .iter()
                            .enumerate()
                            .filter(|&(j, _)| j != i)
                            .map(|(_, &b)| pair_features(&graph, self, a, b)),
                    );
                    pairs.negatives.extend(negatives.iter().map(|&n| pair_features(&graph, self, a, n)));
                }
                let ranking = self.training_query(&view, &query, &partners, &found, &negatives);
                // The same collaboration asked for by its title alone: every member
                // known from elsewhere is a partner to find.
                let open = self.prepare_in(&view, &Query { anchors: Vec::new(), text: collaboration.title.clone() });
                let (found, negatives) = self.pool_sample(&view, &open, &member_set, &mut rng);
                let opportunity = self.training_query(&view, &open, &known, &found, &negatives);
                (ranking, opportunity, pairs)
            })
            .collect()
    }

    /// The members a training query's candidate pool holds, and non-partners
    /// drawn uniformly from that pool: the weights learn to rank the pool serving
    /// scores, not some other one.
    fn pool_sample(
        &self,
        view: &View,
        query: &PreparedQuery,
        members: &HashSet<u32>,
        rng: &mut Xoshiro256Plus,
    ) -> (HashSet<u32>, Vec<u32>) {
        let (found, pool): (Vec<u32>, Vec<u32>) =
            self.candidates_in(view, query, 150).into_iter().partition(|f| members.contains(f));
        let negatives = (0..30.min(pool.len())).map(|_| pool[rng.gen_range(0..pool.len())]).collect();
        (found.into_iter().collect(), negatives)
    }

    /// Features of a training query's partners (those the pool holds, and those
    /// it misses) and non-partners; see [`learn_among_pool`] for which partners count.
    fn training_query(
        &self,
        view: &View,
        query: &PreparedQuery,
        partners: &[u32],
        found: &HashSet<u32>,
        negatives: &[u32],
    ) -> PooledQuery {
        let (held, missed): (Vec<u32>, Vec<u32>) = partners.iter().partition(|m| found.contains(m));
        PooledQuery {
            query: TrainingQuery {
                positives: held.into_iter().map(|m| self.features_in(view, query, m)).collect(),
                negatives: negatives.iter().map(|&n| self.features_in(view, query, n)).collect(),
            },
            missed: missed.into_iter().map(|m| self.features_in(view, query, m)).collect(),
        }
    }
}

/// How many folds the training queries are split into. A real query is one new
/// consortium beside every known one, so each fold should hide only a small
/// share of the collaborations: hiding a quarter at once strips the positives of
/// a quarter of their other ties too, and the weights then learn that ties barely
/// matter. At most [`MAX_HIDDEN_SHARE`] of the collaborations per fold, within
/// 4..=[`MAX_FOLDS`] folds (each fold rebuilds the tie graph).
fn training_folds(eligible: usize, collaborations: usize) -> usize {
    let per_fold = ((collaborations as f64 * MAX_HIDDEN_SHARE) as usize).max(1);
    eligible.div_ceil(per_fold).clamp(4, MAX_FOLDS)
}

const MAX_HIDDEN_SHARE: f64 = 0.02;
const MAX_FOLDS: usize = 64;

/// Partners per held-out collaboration whose pairs train the pair model.
const PAIR_SOURCES: usize = 4;

/// The pair signals between two firms, in the places of the ranking signals of
/// the same meaning (the others stay zero): ties and value-chain strength.
/// Training passes its held-out view's graph; networks pass the model's.
pub fn pair_features(graph: &TieGraph, model: &FittedModel, a: u32, b: u32) -> Features {
    let mut f = [0.0f32; SIGNAL_COUNT];
    f[Signal::Ties as usize] = (graph.ties(a, b) as f32).ln_1p();
    let rows = |x: u32| model.meta[x as usize].rows.iter().map(|&r| r as usize).collect::<Vec<_>>();
    f[Signal::ValueChain as usize] = valuechain::table().strength(&rows(a), &rows(b)) * 10.0;
    f
}

/// The day-one training queries of this catalogue: its held-out collaborations
/// asked with an anchor (as the ranking weights are learnt), with only the
/// [`crate::scoring::DAY_ONE_SIGNALS`] kept. `klynge fit-defaults` fits the
/// shipped default weights on them.
impl FittedModel {
    pub fn day_one_training(&self, firms: &[Firm], collaborations: &[Collaboration]) -> Vec<TrainingQuery> {
        let texts: Vec<String> = firms.par_iter().map(Firm::text).collect();
        let samples = self.training_samples(firms, collaborations, &texts);
        let keep = |features: &mut Features| {
            for (j, value) in features.iter_mut().enumerate() {
                if !crate::scoring::DAY_ONE_SIGNALS.iter().any(|&s| s as usize == j) {
                    *value = 0.0;
                }
            }
        };
        let mut queries = learn_among_pool(samples.anchored);
        for query in &mut queries {
            query.positives.iter_mut().chain(query.negatives.iter_mut()).for_each(keep);
        }
        queries.retain(|q| !q.positives.is_empty() && !q.negatives.is_empty());
        queries
    }
}

#[cfg(test)]
mod tests {
    use super::{PooledQuery, learn_among_pool, training_folds};
    use crate::scoring::{SIGNAL_COUNT, TrainingQuery};

    fn pooled(held: usize, missed: usize) -> PooledQuery {
        PooledQuery {
            query: TrainingQuery {
                positives: vec![[1.0; SIGNAL_COUNT]; held],
                negatives: vec![[0.0; SIGNAL_COUNT]; 3],
            },
            missed: vec![[0.5; SIGNAL_COUNT]; missed],
        }
    }

    #[test]
    fn learns_among_the_pool_only_when_it_finds_partners() {
        // The pools hold 3 of 5 partners: missed ones are left out.
        let queries = learn_among_pool(vec![pooled(2, 1), pooled(1, 1)]);
        assert_eq!(queries.iter().map(|q| q.positives.len()).sum::<usize>(), 3);
        assert_eq!(queries[0].negatives.len(), 3);
        // They hold 1 of 10: every partner counts.
        let queries = learn_among_pool(vec![pooled(1, 4), pooled(0, 5)]);
        assert_eq!(queries.iter().map(|q| q.positives.len()).sum::<usize>(), 10);
    }

    #[test]
    fn folds_hide_a_small_share_of_the_collaborations() {
        // The benchmark: 508 training queries among 1,227 collaborations, at most
        // 24 hidden at once.
        assert_eq!(training_folds(508, 1_227), 22);
        // A large catalogue needs no more than the minimum.
        assert_eq!(training_folds(3_000, 500_000), 4);
        // Each fold rebuilds the graph, so a dense small one is capped.
        assert_eq!(training_folds(3_000, 1_000), 64);
        assert_eq!(training_folds(0, 0), 4);
    }
}
