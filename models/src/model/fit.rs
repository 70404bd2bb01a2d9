//! Fitting a model on one generation of the catalogue: text embeddings, latent
//! clusters, the tie graph, kind statistics and the learnt signal weights, and
//! what the fit makes of the cluster manager's accept/reject decisions.

use std::collections::{BTreeMap, HashMap, HashSet};

use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256Plus;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::features::PhraseVectors;
use super::query::Query;
use super::sectors::build_meta;
use super::training::{learn_among_pool, pair_features};
use super::{FirmMeta, FitError, FittedModel, ModelParams, firm_projects};
use crate::cluster::Clusters;
use crate::graph::TieGraph;
use crate::projects::ProjectTexts;
use crate::scoring::{Features, SIGNAL_COUNT, TrainingQuery, Weights};
use crate::text::TextModel;
use crate::{Collaboration, Firm, valuechain};

/// A cluster manager's decision on a firm proposed for an anchor (and, when the
/// decision was made for one, the opportunity text it was asked with), as a fit
/// learns from it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FeedbackPair {
    pub anchor: u32,
    pub opportunity: Option<String>,
    pub firm: u32,
    pub accepted: bool,
}

/// What one fit made of the decisions it was given: how many became training
/// pairs, and their effect, measured on the decisions themselves: the share of
/// (accepted, rejected) pairs of one anchor in which the accepted firm scores
/// higher under the weights fitted without them and with them, and how much
/// each signal's weight per unit moved. `GET /v1/admin/model` shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FeedbackLearning {
    /// Decisions given to the fit.
    pub decisions: usize,
    pub accepted: usize,
    pub rejected: usize,
    /// Rejections learnt from: those of an anchor with an acceptance. The
    /// ranking is learnt from pairs (an accepted firm above a rejected one, or
    /// above a firm of the pool), so a rejection alone has nothing to be
    /// compared with.
    pub rejected_learnt: usize,
    /// Anchor (and text) queries the decisions formed.
    pub queries: usize,
    /// Ranking pairs they added: each accepted firm against its query's
    /// rejected firms and [`FEEDBACK_POOL_NEGATIVES`] undecided firms of its pool.
    pub ranking_pairs: usize,
    /// Accepted-over-rejected pairs ordered right without the decisions and
    /// with them (`None` without such pairs).
    pub agreement_without: Option<f32>,
    pub agreement_with: Option<f32>,
    /// Weight per unit of each signal (in [`crate::scoring::SIGNALS`] order),
    /// with the decisions minus without them (without: the catalogue's own
    /// weights, or the shipped defaults when it has too little to learn from).
    pub weight_change: Vec<f32>,
    /// The pair model's training pairs from the decisions (accepted, rejected).
    pub pair_positives: usize,
    pub pair_negatives: usize,
    /// Set by the service: a digest of the decisions, so that a refit with the
    /// same catalogue and the same decisions reuses the model.
    pub digest: u64,
}

/// Undecided firms of an anchor's pool each accepted firm is also compared with.
pub const FEEDBACK_POOL_NEGATIVES: usize = 30;

/// What a fit learns from the firms' texts alone: the vocabulary and its
/// latent directions, every firm's embedding, the latent clusters, per-firm
/// metadata with inferred sectors, and the offer/need vectors. Training fits it
/// again per fold on texts with the held-out collaborations' titles cut out,
/// so nothing a training query asks for reaches the features it is ranked on.
#[derive(Clone)]
pub(super) struct TextFit {
    text: TextModel,
    embeddings: ndarray::Array2<f32>,
    clusters: Clusters,
    meta: Vec<FirmMeta>,
    phrases: PhraseVectors,
}

impl TextFit {
    /// `texts` are the firms' texts ([`Firm::text`]), as given or cut.
    pub(super) fn fit(firms: &[Firm], texts: &[String], params: &ModelParams) -> Result<TextFit, FitError> {
        let text = TextModel::fit(texts, params.dim, params.max_terms)?;
        let embeddings = text.embed_all(texts);
        let clusters = Clusters::fit(
            embeddings.view(),
            params.clusters.unwrap_or(Clusters::default_count(firms.len())),
            params.seed,
        );
        let meta = build_meta(firms, &text, &embeddings);
        let phrases = PhraseVectors::build(&text, &meta);
        Ok(TextFit { text, embeddings, clusters, meta, phrases })
    }
}

/// One (anchor, text) of the cluster manager's decisions as training data.
struct DecidedQuery {
    ranking: TrainingQuery,
    /// The rejected firms' features (the first negatives of `ranking`).
    rejected: Vec<Features>,
    pairs: TrainingQuery,
}

impl FittedModel {
    pub fn fit(
        firms: &[Firm],
        collaborations: &[Collaboration],
        generation: u64,
        params: ModelParams,
    ) -> Result<FittedModel, FitError> {
        FittedModel::fit_with_feedback(firms, collaborations, generation, params, &[])
    }

    /// [`FittedModel::fit`], learning also from the cluster manager's decisions
    /// (see [`Weights::fit_with_feedback`] and [`FeedbackLearning`]).
    pub fn fit_with_feedback(
        firms: &[Firm],
        collaborations: &[Collaboration],
        generation: u64,
        params: ModelParams,
        feedback: &[FeedbackPair],
    ) -> Result<FittedModel, FitError> {
        if firms.is_empty() {
            return Err(FitError::Empty);
        }
        let texts: Vec<String> = firms.par_iter().map(Firm::text).collect();
        let text_fit = TextFit::fit(firms, &texts, &params)?;
        let all: Vec<&Collaboration> = collaborations.iter().collect();
        let mut model = FittedModel::assemble(firms, &all, text_fit, generation, params);
        let samples = model.training_samples(firms, collaborations, &texts);
        let decisions = model.feedback_queries(feedback);
        let ranking_feedback: Vec<TrainingQuery> = decisions.iter().map(|d| d.ranking.clone()).collect();
        let pair_feedback: Vec<TrainingQuery> = decisions.iter().map(|d| d.pairs.clone()).collect();
        let anchored = learn_among_pool(samples.anchored);
        if let Ok(weights) = Weights::fit_with_feedback(&anchored, &ranking_feedback) {
            model.weights = weights;
            model.weights_learnt = true;
            model.opportunity_weights = Weights::fit(&learn_among_pool(samples.opportunity)).ok();
        }
        model.pair_weights = Weights::fit_with_feedback(&samples.pairs, &pair_feedback).ok();
        if !feedback.is_empty() {
            // What would rank without the decisions: the catalogue's own weights, or the defaults.
            let without = Weights::fit(&anchored).unwrap_or_else(|_| prior_weights());
            model.feedback = Some(model.feedback_learning(feedback, &decisions, &without));
        }
        Ok(model)
    }

    /// A model of `collaborations` over fitted texts, with the prior weights:
    /// the tie graph, kind statistics, the experienced firms and the past
    /// projects. The served model is one over every collaboration; each training
    /// fold is one over the collaborations it keeps.
    pub(super) fn assemble(
        firms: &[Firm],
        collaborations: &[&Collaboration],
        texts: TextFit,
        generation: u64,
        params: ModelParams,
    ) -> FittedModel {
        let TextFit { text, embeddings, clusters, meta, phrases } = texts;
        let ids: Vec<String> = firms.iter().map(|firm| firm.id.clone()).collect();
        let lookup: HashMap<String, u32> = ids.iter().enumerate().map(|(i, id)| (id.clone(), i as u32)).collect();
        let projects: Vec<Vec<u32>> = collaborations
            .iter()
            .map(|c| c.members.iter().filter_map(|m| lookup.get(m).copied()).collect::<Vec<u32>>())
            .collect();
        let titles: Vec<String> = collaborations.iter().map(|c| c.title.clone().unwrap_or_default()).collect();
        let project_texts = ProjectTexts::build(&text, &titles);
        let firm_projects = firm_projects(firms.len(), &projects);
        let memberships: Vec<Vec<u32>> = projects.iter().filter(|members| members.len() >= 2).cloned().collect();
        let graph = TieGraph::build(firms.len(), &memberships);
        let (kind_lift, kind_prior) = kind_statistics(&meta, &memberships);
        let mut experienced: Vec<u32> = (0..firms.len() as u32).filter(|&f| graph.collaborations(f) > 0).collect();
        experienced.sort_by_key(|&f| (std::cmp::Reverse(graph.collaborations(f)), f));
        experienced.truncate(200);
        let mut firms_by_row = vec![Vec::new(); valuechain::table().len()];
        for (firm, meta) in meta.iter().enumerate() {
            for &row in &meta.rows {
                firms_by_row[row as usize].push(firm as u32);
            }
        }
        // Retrieval takes the first few of each list (the most experienced) or, on
        // day one, scans it for the profiles nearest the query: 2,000 a sector
        // keeps that scan under a millisecond.
        for list in &mut firms_by_row {
            list.sort_by_key(|&f| (std::cmp::Reverse(graph.collaborations(f)), f));
            list.truncate(2_000);
        }
        let hot = super::hot::HotMeta::build(&meta);
        let row_scans = firms_by_row.iter().map(|firms| clusters.subset_scan(firms)).collect();
        FittedModel {
            generation,
            params,
            ids,
            hot,
            meta,
            phrases,
            text,
            embeddings,
            clusters,
            graph,
            kind_lift,
            kind_prior,
            weights: prior_weights(),
            weights_learnt: false,
            opportunity_weights: None,
            pair_weights: None,
            feedback: None,
            experienced,
            projects,
            project_texts,
            firm_projects,
            firms_by_row,
            row_scans,
            lookup,
        }
    }

    /// The decisions as training queries, one per (anchor, text): accepted firms
    /// are positives; rejected firms and a sample of the undecided firms of the
    /// query's pool are negatives. Features are the served model's, as the
    /// decisions were made on what it served. Decisions on firms or anchors the
    /// catalogue no longer holds never reach here (the service resolves ids).
    fn feedback_queries(&self, feedback: &[FeedbackPair]) -> Vec<DecidedQuery> {
        // (anchor, text) → (accepted, rejected)
        type Decided = (Vec<u32>, Vec<u32>);
        let mut groups: BTreeMap<(u32, Option<String>), Decided> = BTreeMap::new();
        for pair in feedback {
            let group = groups.entry((pair.anchor, pair.opportunity.clone())).or_default();
            if pair.accepted { group.0.push(pair.firm) } else { group.1.push(pair.firm) }
        }
        let groups: Vec<_> = groups.into_iter().collect();
        groups
            .par_iter()
            .enumerate()
            .map(|(i, ((anchor, text), (accepted, rejected)))| {
                let query = self.prepare(&Query { anchors: vec![*anchor], text: text.clone() });
                let decided: HashSet<u32> = accepted.iter().chain(rejected).copied().collect();
                let mut rng = Xoshiro256Plus::seed_from_u64(self.params.seed.wrapping_add(0xfeed + i as u64));
                let pool: Vec<u32> =
                    self.candidates(&query, 150).into_iter().filter(|f| !decided.contains(f)).collect();
                let undecided: Vec<u32> = if accepted.is_empty() || pool.is_empty() {
                    Vec::new()
                } else {
                    (0..FEEDBACK_POOL_NEGATIVES.min(pool.len())).map(|_| pool[rng.gen_range(0..pool.len())]).collect()
                };
                let features = |firms: &[u32]| firms.iter().map(|&f| self.features(&query, f)).collect();
                let rejected_features: Vec<Features> = features(rejected);
                let mut negatives = rejected_features.clone();
                negatives.extend(undecided.iter().map(|&f| self.features(&query, f)));
                let pair = |firms: &[u32]| firms.iter().map(|&f| pair_features(self, *anchor, f)).collect();
                DecidedQuery {
                    ranking: TrainingQuery { positives: features(accepted), negatives },
                    rejected: rejected_features,
                    pairs: TrainingQuery { positives: pair(accepted), negatives: pair(rejected) },
                }
            })
            .collect()
    }

    fn feedback_learning(
        &self,
        feedback: &[FeedbackPair],
        decisions: &[DecidedQuery],
        without: &Weights,
    ) -> FeedbackLearning {
        let agreement = |weights: &Weights| {
            let (mut right, mut all) = (0usize, 0usize);
            for decided in decisions {
                for positive in &decided.ranking.positives {
                    let above = weights.score(positive).score;
                    for negative in &decided.rejected {
                        all += 1;
                        right += usize::from(above > weights.score(negative).score);
                    }
                }
            }
            (all > 0).then(|| right as f32 / all as f32)
        };
        let with = &self.weights;
        let has_positives = |d: &&DecidedQuery| !d.ranking.positives.is_empty();
        FeedbackLearning {
            decisions: feedback.len(),
            accepted: feedback.iter().filter(|p| p.accepted).count(),
            rejected: feedback.iter().filter(|p| !p.accepted).count(),
            rejected_learnt: decisions.iter().filter(has_positives).map(|d| d.rejected.len()).sum(),
            queries: decisions.len(),
            ranking_pairs: decisions.iter().map(|d| d.ranking.positives.len() * d.ranking.negatives.len()).sum(),
            agreement_without: agreement(without),
            agreement_with: agreement(with),
            weight_change: (0..SIGNAL_COUNT).map(|j| with.raw_weight(j) - without.raw_weight(j)).collect(),
            pair_positives: decisions.iter().map(|d| d.pairs.positives.len()).sum(),
            pair_negatives: decisions.iter().map(|d| d.pairs.negatives.len()).sum(),
            digest: 0,
        }
    }
}

/// Until there are enough collaborations to learn from, the shipped default
/// weights ([`crate::scoring::default_weights`]), reported as not learnt.
pub(super) fn prior_weights() -> Weights {
    crate::scoring::default_weights().weights.clone()
}

fn kind_statistics(meta: &[FirmMeta], memberships: &[Vec<u32>]) -> ([[f32; 5]; 5], [f32; 5]) {
    let mut pair = [[1.0f64; 5]; 5];
    let mut marginal = [5.0f64; 5];
    for members in memberships {
        let weight = 1.0 / (members.len() - 1) as f64;
        for &a in members {
            marginal[meta[a as usize].kind.index()] += 1.0;
            for &b in members {
                if a != b {
                    pair[meta[a as usize].kind.index()][meta[b as usize].kind.index()] += weight;
                }
            }
        }
    }
    let total: f64 = marginal.iter().sum();
    let prior: [f64; 5] = std::array::from_fn(|k| marginal[k] / total);
    let lift = std::array::from_fn(|a| {
        let row: f64 = pair[a].iter().sum();
        std::array::from_fn(|b| ((pair[a][b] / row) / prior[b]).ln() as f32)
    });
    (lift, std::array::from_fn(|k| prior[k].ln() as f32))
}
