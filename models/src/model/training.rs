//! Training data for the signal weights, by cross-fitting: held-out
//! collaborations asked as queries of a model fitted without them,
//! and the pair signals the network model learns from.

use std::collections::HashSet;

use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256Plus;
use rayon::prelude::*;

use super::FittedModel;
use super::fit::TextFit;
use super::query::{PreparedQuery, Query};
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

/// One held-out collaboration as training data: asked with an anchor, asked by
/// its title alone, and its member–member pairs.
type Asked = (PooledQuery, PooledQuery, TrainingQuery);

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
    /// known from elsewhere, or none) and asked of a model fitted without them
    /// ([`FittedModel::for_each_fold`]), so nothing a query asks for leaks into
    /// its own features.
    pub(super) fn training_samples(
        &self,
        firms: &[Firm],
        collaborations: &[Collaboration],
        texts: &[String],
    ) -> TrainingSamples {
        let mut asked: Vec<(usize, Vec<Asked>)> = Vec::new();
        self.for_each_fold(firms, collaborations, texts, |fold, held_out, model| {
            asked.push((fold, model.ask_held_out(fold, held_out)));
        });
        // Folds are visited by text group; the samples keep the folds' order.
        asked.sort_by_key(|(fold, _)| *fold);
        let mut samples = TrainingSamples::default();
        for (anchored, opportunity, pairs) in asked.into_iter().flat_map(|(_, samples)| samples) {
            samples.anchored.push(anchored);
            samples.opportunity.push(opportunity);
            samples.pairs.push(pairs);
        }
        samples
    }

    /// Calls `visit(fold, held_out, model)` for each training fold with a model of
    /// the catalogue as if its held-out collaborations had never happened: they
    /// are not ties, not past projects, not in the kind statistics or the
    /// experienced firms, and their titles are cut word by word
    /// ([`crate::text::without_words`]) from their members' texts before the
    /// vocabulary, embeddings, clusters and inferred sectors are fitted. Folds
    /// hide few collaborations each (see [`training_folds`]), and refitting the
    /// texts for each would cost a text fit per fold, so the texts are fitted once
    /// per group of [`TEXT_FOLDS`], cut of every title the group holds out.
    pub(super) fn for_each_fold(
        &self,
        firms: &[Firm],
        collaborations: &[Collaboration],
        texts: &[String],
        mut visit: impl FnMut(usize, &[&Collaboration], &FittedModel),
    ) {
        let eligible = collaborations.iter().filter(|c| self.trainable(c)).count().min(self.params.training_queries);
        let folds = training_folds(eligible, collaborations.len());
        let per_fold = self.params.training_queries.div_ceil(folds);
        let held_out: Vec<Vec<&Collaboration>> = (0..folds)
            .map(|fold| {
                let mut held: Vec<&Collaboration> = collaborations
                    .iter()
                    .enumerate()
                    .filter(|(i, c)| i % folds == fold && self.trainable(c))
                    .map(|(_, c)| c)
                    .collect();
                held.truncate(per_fold);
                held
            })
            .collect();
        let groups = TEXT_FOLDS.min(folds);
        for group in 0..groups {
            let folds: Vec<usize> = (group..folds).step_by(groups).filter(|&f| !held_out[f].is_empty()).collect();
            if folds.is_empty() {
                continue;
            }
            let mut cut: Vec<String> = texts.to_vec();
            for collaboration in folds.iter().flat_map(|&f| &held_out[f]) {
                let Some(title) = collaboration.title.as_deref() else { continue };
                for member in collaboration.members.iter().filter_map(|m| self.position(m)) {
                    cut[member as usize] = crate::text::without_words(&cut[member as usize], title);
                }
            }
            // Cutting can empty a small catalogue's vocabulary; that group then teaches nothing.
            let Ok(text_fit) = TextFit::fit(firms, &cut, &self.params) else { continue };
            for fold in folds {
                let held_ids: HashSet<&str> = held_out[fold].iter().map(|c| c.id.as_str()).collect();
                let kept: Vec<&Collaboration> =
                    collaborations.iter().filter(|c| !held_ids.contains(c.id.as_str())).collect();
                let model = FittedModel::assemble(firms, &kept, text_fit.clone(), self.generation, self.params.clone());
                visit(fold, &held_out[fold], &model);
            }
        }
    }

    fn trainable(&self, collaboration: &Collaboration) -> bool {
        collaboration.members.iter().filter(|m| self.lookup.contains_key(*m)).count() >= MIN_TRAINING_MEMBERS
    }

    /// The training samples of a fold's held-out collaborations, asked of the
    /// fold's model (`self`): each ranked with an anchor, asked by its title
    /// alone, and as member–member pairs.
    fn ask_held_out(&self, fold: usize, held_out: &[&Collaboration]) -> Vec<Asked> {
        held_out
            .par_iter()
            .enumerate()
            .map(|(i, collaboration)| {
                let members: Vec<u32> = collaboration.members.iter().filter_map(|m| self.position(m)).collect();
                let mut rng =
                    Xoshiro256Plus::seed_from_u64(self.params.seed.wrapping_add((fold * 1_000_003 + i) as u64));
                let graph = &self.graph;
                // The anchor is any member the catalogue already knows from elsewhere, as
                // a real request's anchor is (a coordinator, seldom the consortium's hub).
                let known: Vec<u32> = members.iter().copied().filter(|&m| graph.collaborations(m) > 0).collect();
                let anchor = if known.is_empty() { members[0] } else { known[rng.gen_range(0..known.len())] };
                let query = self.prepare(&Query { anchors: vec![anchor], text: collaboration.title.clone() });
                let member_set: HashSet<u32> = members.iter().copied().collect();
                let (found, mut negatives) = self.pool_sample(&query, &member_set, &mut rng);
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
                        partners.iter().enumerate().filter(|&(j, _)| j != i).map(|(_, &b)| pair_features(self, a, b)),
                    );
                    pairs.negatives.extend(negatives.iter().map(|&n| pair_features(self, a, n)));
                }
                let ranking = self.training_query(&query, &partners, &found, &negatives);
                // The same collaboration asked for by its title alone: every member
                // known from elsewhere is a partner to find.
                let open = self.prepare(&Query { anchors: Vec::new(), text: collaboration.title.clone() });
                let (found, negatives) = self.pool_sample(&open, &member_set, &mut rng);
                let opportunity = self.training_query(&open, &known, &found, &negatives);
                (ranking, opportunity, pairs)
            })
            .collect()
    }

    /// The members a training query's candidate pool holds, and non-partners
    /// drawn uniformly from that pool: the weights learn to rank the pool serving
    /// scores, not some other one.
    fn pool_sample(
        &self,
        query: &PreparedQuery,
        members: &HashSet<u32>,
        rng: &mut Xoshiro256Plus,
    ) -> (HashSet<u32>, Vec<u32>) {
        let (found, pool): (Vec<u32>, Vec<u32>) =
            self.candidates(query, 150).into_iter().partition(|f| members.contains(f));
        let negatives = (0..30.min(pool.len())).map(|_| pool[rng.gen_range(0..pool.len())]).collect();
        (found.into_iter().collect(), negatives)
    }

    /// Features of a training query's partners (those the pool holds, and those
    /// it misses) and non-partners; see [`learn_among_pool`] for which partners count.
    fn training_query(
        &self,
        query: &PreparedQuery,
        partners: &[u32],
        found: &HashSet<u32>,
        negatives: &[u32],
    ) -> PooledQuery {
        let (held, missed): (Vec<u32>, Vec<u32>) = partners.iter().partition(|m| found.contains(m));
        PooledQuery {
            query: TrainingQuery {
                positives: held.into_iter().map(|m| self.features(query, m)).collect(),
                negatives: negatives.iter().map(|&n| self.features(query, n)).collect(),
            },
            missed: missed.into_iter().map(|m| self.features(query, m)).collect(),
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

/// Groups of folds that share one fit of the texts, cut of every title the group
/// holds out: a quarter of the training collaborations' titles per text fit.
const TEXT_FOLDS: usize = 4;

/// Partners per held-out collaboration whose pairs train the pair model.
const PAIR_SOURCES: usize = 4;

/// The pair signals between two firms, in the places of the ranking signals of
/// the same meaning (the others stay zero): ties and value-chain strength.
pub fn pair_features(model: &FittedModel, a: u32, b: u32) -> Features {
    let mut f = [0.0f32; SIGNAL_COUNT];
    f[Signal::Ties as usize] = (model.graph.ties(a, b) as f32).ln_1p();
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
    use crate::model::{FittedModel, ModelParams, Query};
    use crate::scoring::{SIGNAL_COUNT, Signal, TrainingQuery};
    use crate::{Collaboration, Firm, validate_profile};

    /// 60 firms whose descriptions are their projects' titles (as CORDIS profiles
    /// are), in 24 collaborations of five; each title has two words of its own.
    fn catalogue() -> (Vec<Firm>, Vec<Collaboration>) {
        let collaborations: Vec<Collaboration> = (0..24)
            .map(|i| {
                let mut members: Vec<String> = (0..5).map(|k| format!("f{:02}", (i * 7 + k * 12) % 60)).collect();
                members.sort();
                members.dedup();
                let theme = ["solar energy storage", "food processing", "medical imaging"][i % 3];
                Collaboration { id: format!("c{i}"), title: Some(format!("Zq{i}lumen Vx{i}orbit {theme}")), members }
            })
            .collect();
        let firms = (0..60)
            .map(|f| {
                let id = format!("f{f:02}");
                let titles: Vec<&str> = collaborations
                    .iter()
                    .filter(|c| c.members.contains(&id))
                    .filter_map(|c| c.title.as_deref())
                    .collect();
                let description = format!("{}. Engineering and consulting.", titles.join(". "));
                validate_profile(
                    &serde_json::json!({"id": id, "name": format!("Firm {f}"), "description": description}),
                )
                .unwrap()
            })
            .collect();
        (firms, collaborations)
    }

    #[test]
    fn an_anchor_without_history_is_ranked_like_day_one() {
        let (mut firms, collaborations) = catalogue();
        let newcomer = "A dairy: cheese, butter and cream from organic milk.";
        firms.push(
            validate_profile(&serde_json::json!({"id": "new", "name": "Dairy", "description": newcomer})).unwrap(),
        );
        let model = FittedModel::fit(&firms, &collaborations, 1, ModelParams::default()).unwrap();
        assert!(model.weights_learnt);
        let ask = |id: &str| model.prepare(&Query { anchors: vec![model.position(id).unwrap()], text: None });
        let (new, known) = (ask("new"), ask(&collaborations[0].members[0]));
        assert!(model.without_history(&new) && !model.without_history(&known));
        let defaults = &crate::scoring::default_weights().weights;
        assert_eq!(model.weights_for(&new).coefficients, defaults.coefficients);
        assert_eq!(model.weights_for(&known).coefficients, model.weights.coefficients);
    }

    #[test]
    fn a_held_out_title_cannot_reach_its_members_features() {
        let (firms, collaborations) = catalogue();
        let model = FittedModel::fit(&firms, &collaborations, 1, ModelParams::default()).unwrap();
        let texts: Vec<String> = firms.iter().map(Firm::text).collect();
        let own_words =
            |c: &Collaboration| c.title.as_deref().unwrap().split(' ').take(2).collect::<Vec<_>>().join(" ");
        let similarity = |model: &FittedModel, c: &Collaboration| -> Vec<f32> {
            let query = model.prepare(&Query { anchors: Vec::new(), text: Some(own_words(c)) });
            c.members
                .iter()
                .map(|m| {
                    let f = model.features(&query, model.position(m).unwrap());
                    f[Signal::TextSimilarity as usize] + f[Signal::SimilarProjects as usize]
                })
                .collect()
        };
        // The served model knows every title: the control that this test can fail.
        assert!(collaborations.iter().all(|c| similarity(&model, c).iter().all(|&s| s > 0.1)));
        let mut asked = 0;
        model.for_each_fold(&firms, &collaborations, &texts, |_, held_out, fold| {
            for c in held_out {
                asked += 1;
                assert!(fold.text.sparse(&own_words(c)).is_empty(), "{} reached the fold's vocabulary", own_words(c));
                assert!(similarity(fold, c).iter().all(|&s| s == 0.0), "{:?}", similarity(fold, c));
                for member in c.members.iter().map(|m| model.position(m).unwrap()) {
                    assert_eq!(fold.graph.collaborations(member) + 1, model.graph.collaborations(member));
                }
            }
        });
        assert_eq!(asked, collaborations.len());
    }

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
