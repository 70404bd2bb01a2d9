//! The fitted matchmaking model: everything learnt from one generation of the
//! catalogue (text embeddings, latent clusters, the tie graph, kind priors,
//! inferred sectors and the signal weights), the features of a candidate for a
//! query, its score and the reasons behind it. Fitting is pure computation over
//! profiles and collaborations; the service persists the result beside the index.

use std::collections::{HashMap, HashSet};

use ndarray::{Array1, Array2, ArrayView1};
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256Plus;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::cluster::Clusters;
use crate::graph::TieGraph;
use crate::projects::ProjectTexts;
use crate::scoring::{Features, SIGNAL_COUNT, Scored, Signal, TrainingQuery, Weights};
use crate::text::{TextModel, normalise, quantise_into, quantised_dot};
use crate::valuechain::{self, SectorLink};
use crate::{Collaboration, Firm, Kind, nace};

/// Collaborations used as training queries need this many members with a profile:
/// klynge is asked for networks of five or more, and pairs and triples tie together
/// differently (bilateral contracts rather than consortia).
const MIN_TRAINING_MEMBERS: usize = 5;

/// Terms of an opportunity used to retrieve and explain matches.
const KEY_TERMS: usize = 16;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ModelParams {
    /// Embedding dimensions.
    pub dim: usize,
    /// Vocabulary cap of the TF-IDF model.
    pub max_terms: usize,
    /// Latent clusters; `None` = about √(n/2).
    pub clusters: Option<usize>,
    /// Held-out collaborations used as training queries for the weights.
    pub training_queries: usize,
    pub seed: u64,
}

impl Default for ModelParams {
    fn default() -> ModelParams {
        ModelParams { dim: 128, max_terms: 60_000, clusters: None, training_queries: 3_000, seed: 42 }
    }
}

/// What the model keeps of each firm.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FirmMeta {
    pub name: String,
    pub kind: Kind,
    pub size: Option<crate::SizeClass>,
    pub country: Option<String>,
    /// NUTS code as given.
    pub region: Option<String>,
    pub sme: bool,
    /// Normalised sector codes, given or inferred.
    pub sectors: Vec<String>,
    pub sectors_inferred: bool,
    /// How likely an inferred sector is right (see [`SectorInference`]); `None`
    /// for given sectors, and for inferred ones when the catalogue gave nothing
    /// to calibrate on.
    #[serde(default)]
    pub sector_confidence: Option<f32>,
    /// Rows of the input-output table of those sectors: empty for an inferred
    /// sector below [`MIN_SECTOR_CONFIDENCE`], which is shown but not used.
    /// How sure an inferred sector is of its value-chain stage: the margin of its
    /// text's similarity to the chosen sector over the best sector of another
    /// stage (1 for a stated sector; 0 when none or in models saved before it).
    /// Roles in networks use it; the value-chain signal uses `sector_confidence`.
    #[serde(default)]
    pub stage_margin: f32,
    pub rows: Vec<u16>,
    pub offers: Vec<String>,
    pub needs: Vec<String>,
    /// A fund, ETF, bond line, trust or SPAC ([`Firm::is_financial_vehicle`]).
    #[serde(default)]
    pub financial_vehicle: bool,
    /// Website domain and normalised name: two firms sharing either (the name
    /// within one country) are one organisation listed twice.
    #[serde(default)]
    pub domain: Option<String>,
    #[serde(default)]
    pub name_key: String,
}

impl FirmMeta {
    /// NUTS-2 level of the region (`DK04` of `DK041`).
    pub fn region2(&self) -> Option<&str> {
        self.region.as_deref().map(|r| r.get(..4).unwrap_or(r))
    }

    /// Whether `other` is the same organisation under another id: the same
    /// website domain, or the same normalised name in the same country.
    pub fn same_organisation(&self, other: &FirmMeta) -> bool {
        (self.domain.is_some() && self.domain == other.domain)
            || (!self.name_key.is_empty() && self.name_key == other.name_key && self.country == other.country)
    }
}

/// Which side of the value chain a request wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Relation {
    /// Any partner (the default).
    #[default]
    Any,
    /// Firms whose sector supplies the anchors' sectors.
    Supplier,
    /// Firms whose sector buys from the anchors' sectors.
    Customer,
}

impl Relation {
    pub fn parse(text: &str) -> Option<Relation> {
        match text {
            "any" => Some(Relation::Any),
            "supplier" => Some(Relation::Supplier),
            "customer" => Some(Relation::Customer),
            _ => None,
        }
    }
}

/// Below this estimated probability of being right, an inferred sector is shown
/// but not used for the value chain: more likely wrong than right.
pub const MIN_SECTOR_CONFIDENCE: f32 = 0.5;

#[derive(Serialize, Deserialize)]
pub struct FittedModel {
    pub generation: u64,
    pub params: ModelParams,
    pub ids: Vec<String>,
    pub meta: Vec<FirmMeta>,
    pub text: TextModel,
    #[serde(skip)]
    pub embeddings: Array2<f32>,
    pub clusters: Clusters,
    pub graph: TieGraph,
    /// `kind_lift[a][b]`: log of how much likelier kind `b` is as a partner of kind
    /// `a` than in general.
    pub kind_lift: [[f32; 5]; 5],
    /// Log share of each kind among collaboration members.
    pub kind_prior: [f32; 5],
    pub weights: Weights,
    /// Whether `weights` were learnt (false: too few collaborations, prior used).
    pub weights_learnt: bool,
    /// Weights for queries without an anchor (an opportunity in words only),
    /// learnt on the same held-out collaborations asked without one. Without an
    /// anchor the tie and profile signals are absent, and the anchored weights
    /// (which lean on them, with text as a tie-breaker) would rank by experience.
    pub opportunity_weights: Option<Weights>,
    /// How strongly ties and supplier links between two *members* predict that
    /// they sit in the same consortium, learnt like `weights` but on member–member
    /// pairs with only those pair signals. `weights` cannot tell this: for an
    /// anchor and a candidate, ties are conditional on partners-of-partners and
    /// experience, and come out near zero or negative. Networks use these.
    #[serde(default)]
    pub pair_weights: Option<Weights>,
    /// What the fit learnt from the cluster manager's decisions, when it was given any.
    #[serde(default)]
    pub feedback: Option<FeedbackLearning>,
    /// Firms with most collaborations, best first.
    pub experienced: Vec<u32>,
    /// Members of each collaboration (firm positions) and its title's terms.
    pub projects: Vec<Vec<u32>>,
    pub project_texts: ProjectTexts,
    /// The collaborations of each firm (rebuilt from `projects`).
    #[serde(skip)]
    firm_projects: Vec<Vec<u32>>,
    /// Every firm's offers and needs, embedded once per fit or load (not saved:
    /// rebuilding takes seconds, JSON of them would be large).
    #[serde(skip)]
    pub phrases: PhraseVectors,
    /// Firms of each input-output row, most experienced first (capped).
    pub firms_by_row: Vec<Vec<u32>>,
    #[serde(skip)]
    lookup: HashMap<String, u32>,
}

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

/// A recommendation request as the model sees it.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub anchors: Vec<u32>,
    pub text: Option<String>,
}

/// A query with everything computed once, shared by all its candidates.
pub struct PreparedQuery {
    pub anchors: Vec<u32>,
    /// The side of the value chain asked for.
    pub relation: Relation,
    pub text: Option<Array1<f32>>,
    pub anchor_profile: Option<Array1<f32>>,
    /// The vector retrieval and clustering use: text and anchors combined.
    pub combined: Option<Array1<f32>>,
    pub cluster: Option<u32>,
    pub rows: Vec<usize>,
    partners_of_partners: HashMap<u32, (f32, u16)>,
    /// Firms of the past collaborations most similar to the query.
    similar_projects: HashMap<u32, SimilarProjects>,
    /// The opportunity's most distinctive terms, heaviest first: its BM25 query,
    /// and what a profile is shown to share with it.
    pub key_terms: Vec<String>,
    needs: Option<Array1<f32>>,
    offers: Option<Array1<f32>>,
}

/// Training queries from held-out collaborations, each asked three ways.
#[derive(Default)]
struct TrainingSamples {
    /// With an anchor: for `weights`.
    anchored: Vec<PooledQuery>,
    /// Without one: for `opportunity_weights`.
    opportunity: Vec<PooledQuery>,
    /// Member–member pairs: for `pair_weights`.
    pairs: Vec<TrainingQuery>,
}

/// One (anchor, text) of the cluster manager's decisions as training data.
struct DecidedQuery {
    ranking: TrainingQuery,
    /// The rejected firms' features (the first negatives of `ranking`).
    rejected: Vec<Features>,
    pairs: TrainingQuery,
}

/// A training query whose positives are the partners its candidate pool holds,
/// with the features of the partners it misses kept aside.
struct PooledQuery {
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
fn learn_among_pool(queries: Vec<PooledQuery>) -> Vec<TrainingQuery> {
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

/// A firm's share of the past collaborations most like a query: the summed
/// similarity (the signal) and the most similar one (named in its reason).
#[derive(Debug, Clone, Copy)]
struct SimilarProjects {
    sum: f32,
    best: u32,
    best_score: f32,
}

/// The embeddings and tie graph features are computed against: the served model's
/// own, or a training view with held-out collaborations removed.
struct View<'a> {
    embeddings: &'a Array2<f32>,
    graph: &'a TieGraph,
    /// Collaborations held out of this view (training only).
    hidden: Option<&'a HashSet<u32>>,
    /// Latent cluster of each firm under these embeddings.
    assignment: &'a [u32],
}

#[derive(Debug, thiserror::Error)]
pub enum FitError {
    #[error("the catalogue is empty")]
    Empty,
    #[error(transparent)]
    Text(#[from] crate::text::TextError),
}

/// One plain-language reason with the signal it explains.
#[derive(Debug, Clone, Serialize)]
pub struct Reason {
    pub signal: &'static str,
    pub text: String,
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
        let ids: Vec<String> = firms.iter().map(|firm| firm.id.clone()).collect();
        let lookup: HashMap<String, u32> = ids.iter().enumerate().map(|(i, id)| (id.clone(), i as u32)).collect();
        let texts: Vec<String> = firms.par_iter().map(Firm::text).collect();
        let text = TextModel::fit(&texts, params.dim, params.max_terms)?;
        let embeddings = text.embed_all(&texts);
        let projects: Vec<Vec<u32>> = collaborations
            .iter()
            .map(|c| c.members.iter().filter_map(|m| lookup.get(m).copied()).collect::<Vec<u32>>())
            .collect();
        let titles: Vec<String> = collaborations.iter().map(|c| c.title.clone().unwrap_or_default()).collect();
        let project_texts = ProjectTexts::build(&text, &titles);
        let firm_projects = firm_projects(firms.len(), &projects);
        let memberships: Vec<Vec<u32>> = projects.iter().filter(|members| members.len() >= 2).cloned().collect();
        let graph = TieGraph::build(firms.len(), &memberships);
        let clusters = Clusters::fit(
            embeddings.view(),
            params.clusters.unwrap_or(Clusters::default_count(firms.len())),
            params.seed,
        );
        let meta = build_meta(firms, &text, &embeddings);
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
        let phrases = PhraseVectors::build(&text, &meta);
        let mut model = FittedModel {
            generation,
            params,
            ids,
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
            lookup,
        };
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

    /// The decisions as training queries, one per (anchor, text): accepted firms
    /// are positives; rejected firms and a sample of the undecided firms of the
    /// query's pool are negatives. Features are the served model's, as the
    /// decisions were made on what it served. Decisions on firms or anchors the
    /// catalogue no longer holds never reach here (the service resolves ids).
    fn feedback_queries(&self, feedback: &[FeedbackPair]) -> Vec<DecidedQuery> {
        // (anchor, text) → (accepted, rejected)
        type Decided = (Vec<u32>, Vec<u32>);
        let mut groups: std::collections::BTreeMap<(u32, Option<String>), Decided> = std::collections::BTreeMap::new();
        for pair in feedback {
            let group = groups.entry((pair.anchor, pair.opportunity.clone())).or_default();
            if pair.accepted { group.0.push(pair.firm) } else { group.1.push(pair.firm) }
        }
        let view = View {
            embeddings: &self.embeddings,
            graph: &self.graph,
            hidden: None,
            assignment: &self.clusters.assignment,
        };
        let groups: Vec<_> = groups.into_iter().collect();
        groups
            .par_iter()
            .enumerate()
            .map(|(i, ((anchor, text), (accepted, rejected)))| {
                let query = self.prepare_in(&view, &Query { anchors: vec![*anchor], text: text.clone() });
                let decided: HashSet<u32> = accepted.iter().chain(rejected).copied().collect();
                let mut rng = Xoshiro256Plus::seed_from_u64(self.params.seed.wrapping_add(0xfeed + i as u64));
                let pool: Vec<u32> =
                    self.candidates_in(&view, &query, 150).into_iter().filter(|f| !decided.contains(f)).collect();
                let undecided: Vec<u32> = if accepted.is_empty() || pool.is_empty() {
                    Vec::new()
                } else {
                    (0..FEEDBACK_POOL_NEGATIVES.min(pool.len())).map(|_| pool[rng.gen_range(0..pool.len())]).collect()
                };
                let features = |firms: &[u32]| firms.iter().map(|&f| self.features_in(&view, &query, f)).collect();
                let rejected_features: Vec<Features> = features(rejected);
                let mut negatives = rejected_features.clone();
                negatives.extend(undecided.iter().map(|&f| self.features_in(&view, &query, f)));
                let pair =
                    |firms: &[u32]| firms.iter().map(|&f| pair_features(&self.graph, self, *anchor, f)).collect();
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

    pub fn len(&self) -> usize {
        self.ids.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    pub fn position(&self, id: &str) -> Option<u32> {
        self.lookup.get(id).copied()
    }

    pub fn id(&self, firm: u32) -> &str {
        &self.ids[firm as usize]
    }

    /// Restores what serialisation skips (embeddings come from their own file).
    pub fn restore(&mut self, embeddings: Array2<f32>) {
        self.embeddings = embeddings;
        self.clusters.index(self.embeddings.view());
        self.project_texts.index();
        self.firm_projects = firm_projects(self.ids.len(), &self.projects);
        self.phrases = PhraseVectors::build(&self.text, &self.meta);
        self.lookup = self.ids.iter().enumerate().map(|(i, id)| (id.clone(), i as u32)).collect();
    }

    pub fn prepare(&self, query: &Query) -> PreparedQuery {
        self.prepare_with(query, Relation::Any)
    }

    /// [`FittedModel::prepare`] for suppliers or customers only.
    pub fn prepare_with(&self, query: &Query, relation: Relation) -> PreparedQuery {
        let mut prepared = self.prepare_in(
            &View {
                embeddings: &self.embeddings,
                graph: &self.graph,
                hidden: None,
                assignment: &self.clusters.assignment,
            },
            query,
        );
        prepared.relation = relation;
        prepared
    }

    /// Whether `candidate` may be proposed for `query`: not an anchor's other
    /// listing, not a financial vehicle (unless asked for), and on the asked side
    /// of the value chain.
    pub fn proposable(&self, query: &PreparedQuery, candidate: u32, include_financial_vehicles: bool) -> bool {
        let meta = &self.meta[candidate as usize];
        if meta.financial_vehicle && !include_financial_vehicles {
            return false;
        }
        if query.anchors.iter().any(|&a| a == candidate || self.meta[a as usize].same_organisation(meta)) {
            return false;
        }
        match query.relation {
            Relation::Any => true,
            relation => {
                let rows: Vec<usize> = meta.rows.iter().map(|&r| r as usize).collect();
                valuechain::table().directed_strength(&query.rows, &rows, relation == Relation::Supplier) > 0.0
            }
        }
    }

    fn prepare_in(&self, view: &View, query: &Query) -> PreparedQuery {
        let text = query.text.as_deref().filter(|t| !t.trim().is_empty()).map(|t| self.text.embed(t));
        let anchor_profile = (!query.anchors.is_empty()).then(|| {
            let mut sum = Array1::zeros(self.text.dim());
            for &anchor in &query.anchors {
                sum += &view.embeddings.row(anchor as usize);
            }
            normalise(sum.view_mut());
            sum
        });
        let combined = match (&text, &anchor_profile) {
            (Some(t), Some(a)) => {
                let mut sum = t + a;
                normalise(sum.view_mut());
                Some(sum)
            }
            (Some(v), None) | (None, Some(v)) => Some(v.clone()),
            (None, None) => None,
        };
        let cluster = combined.as_ref().and_then(|v| self.clusters.nearest(v.view(), 1).first().copied());
        let mut rows: Vec<usize> =
            query.anchors.iter().flat_map(|&a| self.meta[a as usize].rows.iter().map(|&r| r as usize)).collect();
        rows.sort_unstable();
        rows.dedup();
        let joined = |pick: fn(&FirmMeta) -> &Vec<String>| {
            let text: Vec<&str> =
                query.anchors.iter().flat_map(|&a| pick(&self.meta[a as usize]).iter().map(String::as_str)).collect();
            (!text.is_empty()).then(|| self.text.embed(&text.join(". ")))
        };
        // Projects like the opportunity or, without one, like the anchors' own.
        let project_query = match &query.text {
            Some(text) if !text.trim().is_empty() => self.text.sparse(text),
            _ => {
                let own: Vec<&[(u32, f32)]> = query
                    .anchors
                    .iter()
                    .flat_map(|&a| self.firm_projects[a as usize].iter())
                    .filter(|p| view.hidden.is_none_or(|hidden| !hidden.contains(p)))
                    .map(|&p| self.project_texts.vector(p))
                    .collect();
                crate::projects::sum_unit(&own)
            }
        };
        let similar_projects = self.similar_projects(view, &project_query);
        let key_terms = match &query.text {
            Some(text) => self.text.key_terms(text, KEY_TERMS),
            None => Vec::new(),
        };
        PreparedQuery {
            key_terms,
            anchors: query.anchors.clone(),
            relation: Relation::Any,
            text,
            anchor_profile,
            combined,
            cluster,
            rows,
            partners_of_partners: view.graph.partners_of_partners(&query.anchors),
            similar_projects,
            needs: joined(|m| &m.needs),
            offers: joined(|m| &m.offers),
        }
    }

    /// Candidates the model itself proposes: nearest profiles, partners of
    /// partners, experienced firms of complementary sectors, and the most
    /// experienced firms overall. The service adds BM25 matches from the index.
    pub fn candidates(&self, query: &PreparedQuery, per_source: usize) -> Vec<u32> {
        self.candidates_in(
            &View {
                embeddings: &self.embeddings,
                graph: &self.graph,
                hidden: None,
                assignment: &self.clusters.assignment,
            },
            query,
            per_source,
        )
    }

    fn candidates_in(&self, view: &View, query: &PreparedQuery, per_source: usize) -> Vec<u32> {
        let mut seen: HashSet<u32> = query.anchors.iter().copied().collect();
        let mut out = Vec::new();
        let mut push = |firm: u32, out: &mut Vec<u32>| {
            if seen.insert(firm) {
                out.push(firm);
            }
        };
        if let Some(vector) = &query.combined {
            // Without any tie, firms like the anchor are most of what can be found
            // (no partners of partners, experienced firms or similar projects), so
            // the nearest profiles get the places those sources would have had.
            let per_source = if self.graph_is_empty(view) { per_source * 2 } else { per_source };
            let probes = (self.clusters.lists.len() / 16).clamp(4, 32);
            let budget = (per_source * 20).max(2_000);
            // Training views carry their own (title-cut) embeddings; serving scans the
            // model's, through the fast lists.
            let near = if view.hidden.is_some() {
                self.clusters.neighbours(view.embeddings.view(), vector.view(), probes, budget, per_source)
            } else {
                self.clusters.nearest_firms(vector.view(), probes, budget, per_source)
            };
            for (firm, _) in near {
                push(firm, &mut out);
            }
        }
        for &anchor in &query.anchors {
            for &(partner, _) in view.graph.partners(anchor) {
                push(partner, &mut out);
            }
        }
        let mut similar: Vec<(&u32, f32)> = query.similar_projects.iter().map(|(f, s)| (f, s.sum)).collect();
        similar.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
        for (&firm, _) in similar.into_iter().take(per_source) {
            push(firm, &mut out);
        }
        let mut pop: Vec<(&u32, &(f32, u16))> = query.partners_of_partners.iter().collect();
        pop.sort_by(|a, b| b.1.0.total_cmp(&a.1.0).then(a.0.cmp(b.0)));
        for (&firm, _) in pop.into_iter().take(per_source * 2) {
            push(firm, &mut out);
        }
        // Firms of the sectors the anchors buy from or sell to: the most experienced
        // of each, or, in a catalogue without ties (where experience says nothing),
        // those whose profiles are nearest the query, so that a brewery meets the
        // maltsters and glassworks that write about beer, not any farm or glassworks.
        let day_one = self.graph_is_empty(view);
        for (row, _) in valuechain::table().partner_rows(&query.rows, 6) {
            let firms = &self.firms_by_row[row];
            let take = per_source / 6 + 1;
            match (&query.combined, day_one) {
                (Some(vector), true) => {
                    let mut near: Vec<(f32, u32)> =
                        firms.iter().map(|&f| (vector.dot(&view.embeddings.row(f as usize)), f)).collect();
                    near.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
                    for (_, firm) in near.into_iter().take(take) {
                        push(firm, &mut out);
                    }
                }
                _ => {
                    for &firm in firms.iter().take(take) {
                        push(firm, &mut out);
                    }
                }
            }
        }
        // The most experienced firms overall join an anchor's pool (the partners an
        // anchor's own circle may not reach), but not an opportunity's: there they
        // would be the same firms for every text, and the learnt opportunity weights
        // (experience counts in who joins a consortium) would lead every shortlist
        // with them, relevant or not. Experienced firms that are relevant still come
        // in through the text and similar-projects sources.
        if !query.anchors.is_empty() {
            for &firm in self.experienced.iter().take(per_source / 2) {
                push(firm, &mut out);
            }
        }
        out
    }

    pub fn features(&self, query: &PreparedQuery, candidate: u32) -> Features {
        self.features_in(
            &View {
                embeddings: &self.embeddings,
                graph: &self.graph,
                hidden: None,
                assignment: &self.clusters.assignment,
            },
            query,
            candidate,
        )
    }

    fn features_in(&self, view: &View, query: &PreparedQuery, candidate: u32) -> Features {
        let mut f = [0.0f32; SIGNAL_COUNT];
        let c = candidate as usize;
        let meta = &self.meta[c];
        let embedding = view.embeddings.row(c);
        if let Some(text) = &query.text {
            f[Signal::TextSimilarity as usize] = text.dot(&embedding);
        }
        if let Some(profile) = &query.anchor_profile {
            f[Signal::TextMatch as usize] = profile.dot(&embedding);
        }
        f[Signal::OfferNeed as usize] = self.offer_need(query, c);
        let rows: Vec<usize> = meta.rows.iter().map(|&r| r as usize).collect();
        f[Signal::ValueChain as usize] = match query.relation {
            Relation::Any => valuechain::table().strength(&query.rows, &rows),
            relation => valuechain::table().directed_strength(&query.rows, &rows, relation == Relation::Supplier),
        } * 10.0;
        let ties: u32 = query.anchors.iter().map(|&a| view.graph.ties(a, candidate) as u32).sum();
        f[Signal::Ties as usize] = (ties as f32).ln_1p();
        f[Signal::PartnersOfPartners as usize] =
            query.partners_of_partners.get(&candidate).map_or(0.0, |(weight, _)| weight.ln_1p());
        f[Signal::KindFit as usize] = if query.anchors.is_empty() {
            self.kind_prior[meta.kind.index()]
        } else {
            query
                .anchors
                .iter()
                .map(|&a| self.kind_lift[self.meta[a as usize].kind.index()][meta.kind.index()])
                .sum::<f32>()
                / query.anchors.len() as f32
        };
        let anchors = || query.anchors.iter().map(|&a| &self.meta[a as usize]);
        f[Signal::SameRegion as usize] =
            anchors().any(|a| a.region2().is_some() && a.region2() == meta.region2()) as u8 as f32;
        f[Signal::SameCountry as usize] =
            anchors().any(|a| a.country.is_some() && a.country == meta.country) as u8 as f32;
        f[Signal::Experience as usize] = (view.graph.collaborations(candidate) as f32).ln_1p();
        f[Signal::SimilarProjects as usize] = query.similar_projects.get(&candidate).map_or(0.0, |s| s.sum);
        f[Signal::SameCluster as usize] =
            query.cluster.is_some_and(|cluster| view.assignment[c] == cluster) as u8 as f32;
        f
    }

    fn offer_need(&self, query: &PreparedQuery, candidate: usize) -> f32 {
        let mut best = 0.0f32;
        if let Some(needs) = &query.needs {
            best = best.max(self.phrases.offers_dot(candidate, needs));
        }
        if let Some(offers) = &query.offers {
            best = best.max(self.phrases.needs_dot(candidate, offers));
        }
        best
    }

    /// The weights that rank candidates for `query`: the anchored ones, or the
    /// opportunity-only ones when there is no anchor (and they could be learnt).
    pub fn weights_for(&self, query: &PreparedQuery) -> &Weights {
        match &self.opportunity_weights {
            Some(weights) if query.anchors.is_empty() => weights,
            _ => &self.weights,
        }
    }

    pub fn score(&self, query: &PreparedQuery, candidate: u32) -> Scored {
        self.weights_for(query).score(&self.features(query, candidate))
    }

    /// Plain-language reasons for the strongest positive signals of a candidate.
    pub fn reasons(&self, query: &PreparedQuery, candidate: u32, scored: &Scored, features: &Features) -> Vec<Reason> {
        let meta = &self.meta[candidate as usize];
        // A reason needs the signal to be present and to count in the candidate's
        // favour; a below-average value of a negatively weighted signal does not
        // make a reason a cluster manager could repeat.
        let mut order: Vec<usize> = (0..SIGNAL_COUNT)
            .filter(|&s| {
                scored.contributions[s] > 0.05 && features[s] > 0.0 && self.weights_for(query).coefficients[s] > 0.0
            })
            .collect();
        order.sort_by(|&a, &b| scored.contributions[b].total_cmp(&scored.contributions[a]));
        let mut reasons = Vec::new();
        for signal in order {
            let text = match crate::scoring::SIGNALS[signal] {
                Signal::TextSimilarity => {
                    format!("its profile matches the opportunity text (similarity {:.2})", features[signal])
                }
                Signal::TextMatch => {
                    format!("its profile is close to the anchor's (similarity {:.2})", features[signal])
                }
                Signal::OfferNeed => match self.offer_need_pair(query, meta) {
                    Some((need, offer, candidate_offers)) if candidate_offers => {
                        format!("you need '{need}', which it offers ('{offer}')")
                    }
                    Some((offer, need, _)) => {
                        format!("it needs '{need}', which you offer ('{offer}')")
                    }
                    None => "its offers and needs fit yours".to_string(),
                },
                Signal::ValueChain => match self.sector_link(query, meta) {
                    Some(link) => {
                        let role = if link.candidate_supplies { "supplier" } else { "customer" };
                        let inferred = match (meta.sectors_inferred, meta.sector_confidence) {
                            (true, Some(confidence)) => {
                                format!(" (sector inferred from its text, confidence {confidence:.2})")
                            }
                            (true, None) => " (sector inferred from its text)".to_string(),
                            (false, _) => String::new(),
                        };
                        format!(
                            "value-chain {role}: {} buys {:.1} % of its inputs from {}{inferred}",
                            link.buyer,
                            link.coefficient * 100.0,
                            link.supplier
                        )
                    }
                    None => "its sector complements yours".to_string(),
                },
                Signal::Ties => {
                    let count: u32 = query.anchors.iter().map(|&a| self.graph.ties(a, candidate) as u32).sum();
                    format!(
                        "has already worked with you ({count} past collaboration{})",
                        if count == 1 { "" } else { "s" }
                    )
                }
                Signal::PartnersOfPartners => {
                    let shared = query.partners_of_partners.get(&candidate).map_or(0, |(_, n)| *n);
                    format!("worked with {shared} of your past partners")
                }
                Signal::KindFit => format!("{} are typical partners here", kind_plural(meta.kind)),
                Signal::SameRegion => {
                    format!("same NUTS-2 region ({})", meta.region2().unwrap_or("-"))
                }
                Signal::SameCountry => {
                    format!("same country ({})", meta.country.as_deref().unwrap_or("-"))
                }
                Signal::Experience => {
                    format!("experienced partner ({} past collaborations)", self.graph.collaborations(candidate))
                }
                Signal::SimilarProjects => {
                    let named = query.similar_projects.get(&candidate).and_then(|similar| {
                        let title = shorten(self.project_texts.title(similar.best)?, 90);
                        let with_anchor =
                            self.projects[similar.best as usize].iter().any(|m| query.anchors.contains(m));
                        Some(if with_anchor {
                            format!("worked with you on '{title}', much like this one")
                        } else {
                            format!("took part in '{title}', much like this one (similarity {:.2})", similar.best_score)
                        })
                    });
                    named.unwrap_or_else(|| "took part in past collaborations much like this one".to_string())
                }
                Signal::SameCluster => {
                    format!("in the same latent cluster ({})", self.clusters.assignment[candidate as usize])
                }
            };
            reasons.push(Reason { signal: crate::scoring::SIGNALS[signal].name(), text });
        }
        reasons
    }

    /// The strongest supplier/customer relation between the query's sectors and a firm's.
    pub fn sector_link(&self, query: &PreparedQuery, meta: &FirmMeta) -> Option<SectorLink> {
        let rows: Vec<usize> = meta.rows.iter().map(|&r| r as usize).collect();
        match query.relation {
            Relation::Any => valuechain::table().best_link(&query.rows, &rows),
            relation => valuechain::table().best_directed_link(&query.rows, &rows, relation == Relation::Supplier),
        }
    }

    /// Whether the tie graph of `view` holds no collaboration at all (a day-one catalogue).
    fn graph_is_empty(&self, view: &View) -> bool {
        self.experienced.is_empty() && view.hidden.is_none()
    }

    /// The best-overlapping (need, offer) phrase pair; the flag says whether the
    /// candidate is the one offering.
    fn offer_need_pair(&self, query: &PreparedQuery, meta: &FirmMeta) -> Option<(String, String, bool)> {
        let words = |text: &str| -> HashSet<String> {
            text.split(|c: char| !c.is_alphanumeric()).filter(|w| w.len() > 2).map(str::to_lowercase).collect()
        };
        let mut best: Option<(usize, (String, String, bool))> = None;
        for &anchor in &query.anchors {
            let anchor = &self.meta[anchor as usize];
            for (mine, theirs, candidate_offers) in
                [(&anchor.needs, &meta.offers, true), (&anchor.offers, &meta.needs, false)]
            {
                for a in mine {
                    for b in theirs {
                        let overlap = words(a).intersection(&words(b)).count();
                        if overlap > 0 && best.as_ref().is_none_or(|(o, _)| overlap > *o) {
                            best = Some((overlap, (a.clone(), b.clone(), candidate_offers)));
                        }
                    }
                }
            }
        }
        best.map(|(_, pair)| pair)
    }

    /// Labelled samples for the weights, by cross-fitting: in each fold a few
    /// collaborations are held out as queries (text = the title; anchor = a member
    /// known from elsewhere, or none), and features are computed against a view
    /// where held-out collaborations are not ties and their titles are cut from
    /// their members' texts, so nothing a query asks for leaks into its own
    /// features.
    fn training_samples(&self, firms: &[Firm], collaborations: &[Collaboration], texts: &[String]) -> TrainingSamples {
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

    /// Sums, per firm, the similarity of the query to the past collaborations it was
    /// in, over the most similar collaborations only.
    fn similar_projects(&self, view: &View, query: &[(u32, f32)]) -> HashMap<u32, SimilarProjects> {
        const TOP: usize = 30;
        let mut out: HashMap<u32, SimilarProjects> = HashMap::new();
        // Best first, so a member's first project is its most similar one.
        for (project, score) in self.project_texts.most_similar(query, view.hidden, TOP) {
            for &member in &self.projects[project as usize] {
                out.entry(member).and_modify(|similar| similar.sum += score).or_insert(SimilarProjects {
                    sum: score,
                    best: project,
                    best_score: score,
                });
            }
        }
        out
    }

    pub fn embedding(&self, firm: u32) -> ArrayView1<'_, f32> {
        self.embeddings.row(firm as usize)
    }
}

/// Every firm's offers and needs as unit vectors quantised to i8
/// ([`quantise_into`]): a million firms fit in about 260 MB. A firm without
/// offers (needs) has a zero row, which scores 0.
/// A quantised row and its scale.
type Quantised = (Vec<i8>, f32);

#[derive(Debug, Clone, Default)]
pub struct PhraseVectors {
    dim: usize,
    offers: Vec<i8>,
    needs: Vec<i8>,
    /// (offers, needs) scale of each firm: the largest component / 127.
    scales: Vec<(f32, f32)>,
}

impl PhraseVectors {
    fn build(text: &TextModel, meta: &[FirmMeta]) -> PhraseVectors {
        let dim = text.dim();
        let quantise = |phrases: &[String]| -> Quantised {
            let mut row = Vec::with_capacity(dim);
            let scale = if phrases.is_empty() {
                row.resize(dim, 0);
                0.0
            } else {
                quantise_into(text.embed(&phrases.join(". ")).view(), &mut row)
            };
            (row, scale)
        };
        let rows: Vec<(Quantised, Quantised)> =
            meta.par_iter().map(|m| (quantise(&m.offers), quantise(&m.needs))).collect();
        let mut vectors = PhraseVectors {
            dim,
            offers: Vec::with_capacity(rows.len() * dim),
            needs: Vec::with_capacity(rows.len() * dim),
            scales: Vec::with_capacity(rows.len()),
        };
        for ((offers, offer_scale), (needs, need_scale)) in rows {
            vectors.offers.extend(offers);
            vectors.needs.extend(needs);
            vectors.scales.push((offer_scale, need_scale));
        }
        vectors
    }

    fn offers_dot(&self, firm: usize, query: &Array1<f32>) -> f32 {
        let row = &self.offers[firm * self.dim..(firm + 1) * self.dim];
        quantised_dot(row, self.scales[firm].0, query.as_slice().expect("owned vectors are contiguous"))
    }

    fn needs_dot(&self, firm: usize, query: &Array1<f32>) -> f32 {
        let row = &self.needs[firm * self.dim..(firm + 1) * self.dim];
        quantised_dot(row, self.scales[firm].1, query.as_slice().expect("owned vectors are contiguous"))
    }
}

/// The collaborations of each firm, from the members of each collaboration.
fn firm_projects(firms: usize, projects: &[Vec<u32>]) -> Vec<Vec<u32>> {
    let mut out = vec![Vec::new(); firms];
    for (project, members) in projects.iter().enumerate() {
        for &member in members {
            out[member as usize].push(project as u32);
        }
    }
    out
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

/// Until there are enough collaborations to learn from, the shipped default
/// weights ([`crate::scoring::default_weights`]), reported as not learnt.
fn prior_weights() -> Weights {
    crate::scoring::default_weights().weights.clone()
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

fn build_meta(firms: &[Firm], text: &TextModel, embeddings: &Array2<f32>) -> Vec<FirmMeta> {
    let table = valuechain::table();
    let rows_of = |sectors: &[String]| -> Vec<u16> {
        let mut rows: Vec<u16> = sectors.iter().filter_map(|s| table.row(s)).map(|r| r as u16).collect();
        rows.sort_unstable();
        rows.dedup();
        rows
    };
    // Each input-output row gets a text centroid from the firms that declare it
    // plus its official NACE titles, so that firms without sectors can be placed.
    let mut centroids = Array2::<f32>::zeros((table.len(), text.dim()));
    for division in nace::all_divisions() {
        if let Some(row) = table.row(&division.code) {
            let mut centroid = centroids.row_mut(row);
            centroid += &(text.embed(&division.title) * 2.0);
        }
    }
    for (firm, profile) in firms.iter().enumerate() {
        for row in rows_of(&profile.sectors) {
            let mut centroid = centroids.row_mut(row as usize);
            centroid += &embeddings.row(firm);
        }
    }
    let sums = centroids.clone();
    for row in centroids.outer_iter_mut() {
        normalise(row);
    }
    let inference = SectorInference::calibrate(firms, &sums, embeddings, &rows_of);
    firms
        .par_iter()
        .enumerate()
        .map(|(firm, profile)| {
            // How far the chosen sector's stage stands above every other stage, in
            // cosine: what a network role needs to be named from a guess.
            let stage_margin = |row: usize| {
                let scores = centroids.dot(&embeddings.row(firm));
                let stage = valuechain::stage(table.code(row));
                let runner_up = (0..scores.len())
                    .filter(|&other| valuechain::stage(table.code(other)) != stage)
                    .map(|other| scores[other])
                    .fold(0.0f32, f32::max);
                (scores[row] - runner_up).max(0.0)
            };
            let (sectors, inferred, confidence, rows, margin) = if profile.sectors.is_empty() {
                match inference.infer(&centroids, embeddings.row(firm)) {
                    Some((row, confidence)) => {
                        let sectors = vec![division_code(table.code(row))];
                        let usable = confidence.is_none_or(|c| c >= MIN_SECTOR_CONFIDENCE);
                        let rows = if usable { rows_of(&sectors) } else { Vec::new() };
                        (sectors, true, confidence, rows, stage_margin(row))
                    }
                    None => (Vec::new(), false, None, Vec::new(), 0.0),
                }
            } else {
                (profile.sectors.clone(), false, None, rows_of(&profile.sectors), 1.0)
            };
            FirmMeta {
                name: profile.name.clone(),
                kind: profile.kind,
                size: profile.size,
                country: profile.country.clone(),
                region: profile.region.clone(),
                sme: profile.is_sme(),
                rows,
                sectors,
                sectors_inferred: inferred,
                sector_confidence: confidence,
                stage_margin: margin,
                offers: profile.offers.clone(),
                needs: profile.needs.clone(),
                // Public funders and research foundations named "… Fund" are partners.
                financial_vehicle: profile.kind == Kind::Company && profile.is_financial_vehicle(),
                domain: profile.website_domain(),
                name_key: profile.name_key(),
            }
        })
        .collect()
}

/// Sector inference that knows when it does not know. A firm without sectors gets
/// the input-output row whose text centroid is nearest to its profile; how likely
/// that guess is right is estimated from the firms that *state* their sectors:
/// their own guess is made the same way (leaving the firm out of the centroids
/// of its own sectors, or every guess would look right), and a logistic regression (linfa) of
/// "the guess is one of its stated rows" on the best similarity and its margin
/// over the second best gives the confidence of every other firm's guess. With
/// too few stated sectors to calibrate on, the guess is kept when its similarity
/// passes [`UNCALIBRATED_MIN_SIMILARITY`], without a confidence.
struct SectorInference {
    /// Weights of (best similarity, margin) and intercept, when calibrated.
    calibration: Option<([f64; 2], f64)>,
}

/// Firms with stated sectors needed to calibrate, and the most used.
const MIN_CALIBRATION_FIRMS: usize = 50;
const MAX_CALIBRATION_FIRMS: usize = 20_000;

/// The similarity an uncalibrated guess needs (the rule before calibration).
const UNCALIBRATED_MIN_SIMILARITY: f32 = 0.15;

impl SectorInference {
    fn calibrate(
        firms: &[Firm],
        sums: &Array2<f32>,
        embeddings: &Array2<f32>,
        rows_of: &(dyn Fn(&[String]) -> Vec<u16> + Sync),
    ) -> SectorInference {
        let stated: Vec<usize> = (0..firms.len()).filter(|&f| !rows_of(&firms[f].sectors).is_empty()).collect();
        if stated.len() < MIN_CALIBRATION_FIRMS {
            return SectorInference { calibration: None };
        }
        let step = stated.len().div_ceil(MAX_CALIBRATION_FIRMS).max(1);
        let samples: Vec<([f64; 2], bool)> = stated
            .par_iter()
            .step_by(step)
            .filter_map(|&f| {
                let own = rows_of(&firms[f].sectors);
                let embedding = embeddings.row(f);
                let scores: Array1<f32> = sums
                    .outer_iter()
                    .enumerate()
                    .map(|(row, sum)| {
                        let dot = sum.dot(&embedding);
                        let norm2 = sum.dot(&sum);
                        // Without the firm itself: (s − e)·e / |s − e|, with |e| = 1.
                        let (dot, norm2) = if own.contains(&(row as u16)) {
                            let self_dot = embedding.dot(&embedding);
                            (dot - self_dot, norm2 - 2.0 * dot + self_dot)
                        } else {
                            (dot, norm2)
                        };
                        if norm2 > 1e-12 { dot / norm2.sqrt() } else { 0.0 }
                    })
                    .collect();
                let (row, best, margin) = Self::best_of(&scores)?;
                Some(([best as f64, margin as f64], own.contains(&(row as u16))))
            })
            .collect();
        let right = samples.iter().filter(|(_, ok)| *ok).count();
        if right == 0 || right == samples.len() {
            return SectorInference { calibration: None };
        }
        let records = Array2::from_shape_fn((samples.len(), 2), |(i, j)| samples[i].0[j]);
        let labels = Array1::from_iter(samples.iter().map(|(_, ok)| *ok));
        let calibration = crate::scoring::fit_logistic(records, labels)
            .ok()
            .map(|(weights, intercept)| ([weights[0], weights[1]], intercept));
        SectorInference { calibration }
    }

    /// The nearest row, its similarity and the margin over the second nearest.
    fn nearest(centroids: &Array2<f32>, embedding: ArrayView1<f32>) -> Option<(usize, f32, f32)> {
        Self::best_of(&centroids.dot(&embedding))
    }

    fn best_of(scores: &Array1<f32>) -> Option<(usize, f32, f32)> {
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
        let best = *order.first()?;
        let second = order.get(1).map_or(0.0, |&r| scores[r]);
        (scores[best] > 0.0).then(|| (best, scores[best], scores[best] - second))
    }

    /// The guessed row and, when calibrated, the probability it is right.
    fn infer(&self, centroids: &Array2<f32>, embedding: ArrayView1<f32>) -> Option<(usize, Option<f32>)> {
        let (row, best, margin) = Self::nearest(centroids, embedding)?;
        match self.calibration {
            Some((w, b)) => {
                let linear = w[0] * best as f64 + w[1] * margin as f64 + b;
                Some((row, Some((1.0 / (1.0 + (-linear).exp())) as f32)))
            }
            None => (best > UNCALIBRATED_MIN_SIMILARITY).then_some((row, None)),
        }
    }
}

/// A table code such as `B06-07` names its first division (`B06`).
fn division_code(table_code: &str) -> String {
    table_code.split('-').next().unwrap_or(table_code).to_string()
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

/// At most `limit` characters of `text`, with an ellipsis when cut.
fn shorten(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_string();
    }
    let mut short: String = text.chars().take(limit - 1).collect();
    short.push('…');
    short
}

pub fn kind_plural(kind: Kind) -> &'static str {
    match kind {
        Kind::Company => "companies",
        Kind::University => "universities",
        Kind::Research => "research organisations",
        Kind::Public => "public bodies",
        Kind::Other => "organisations of this kind",
    }
}

#[cfg(test)]
mod tests {
    use super::{
        FittedModel, MIN_SECTOR_CONFIDENCE, ModelParams, PooledQuery, SIGNAL_COUNT, TrainingQuery, learn_among_pool,
        training_folds,
    };
    use crate::{Firm, validate_profile, valuechain};

    fn profile(id: String, name: &str, sectors: &[&str], description: String) -> Firm {
        validate_profile(&serde_json::json!({"id": id, "name": name, "sectors": sectors, "description": description}))
            .unwrap()
    }

    #[test]
    fn an_unsure_sector_guess_is_shown_but_not_used() {
        let fruit = ["apple", "pears", "cherries", "plums"];
        let chips = ["semiconductors", "displays", "batteries", "sensors"];
        let mut firms = Vec::new();
        for i in 0..60 {
            let f = fruit[i % 4];
            let c = chips[i % 4];
            firms.push(profile(
                format!("farm{i}"),
                "Farm",
                &["A01"],
                format!("Orchard growing {f}, fruit and cereals."),
            ));
            firms.push(profile(
                format!("chip{i}"),
                "Maker",
                &["C26"],
                format!("Smartphones, computers and {c}; electronic devices."),
            ));
        }
        // Stated electronics makers whose few words read like a farm's: the
        // weak guesses the calibration learns to distrust.
        for i in 0..20 {
            let f = fruit[i % 4];
            firms.push(profile(format!("odd{i}"), "Farm", &["C26"], format!("{f}.")));
        }
        firms.push(profile(
            "phone".into(),
            "Phone Co",
            &[],
            "Smartphones, computers and displays; electronic devices.".into(),
        ));
        // Its only known word is its name, which a quarter of the farms use.
        firms.push(profile("apple".into(), "Apple", &[], "Designs products.".into()));
        let model = FittedModel::fit(&firms, &[], 1, ModelParams { dim: 32, ..ModelParams::default() }).unwrap();
        let table = valuechain::table();
        let phone = &model.meta[model.position("phone").unwrap() as usize];
        assert!(phone.sectors_inferred && phone.sector_confidence.unwrap() >= MIN_SECTOR_CONFIDENCE, "{phone:?}");
        assert!(!phone.rows.is_empty(), "a confident guess is used: {phone:?}");
        let apple = &model.meta[model.position("apple").unwrap() as usize];
        assert!(apple.sectors_inferred && apple.sectors == ["A01"], "{apple:?}");
        assert!(apple.sector_confidence.unwrap() < MIN_SECTOR_CONFIDENCE, "{apple:?}");
        assert!(
            !apple.rows.contains(&(table.row("A01").unwrap() as u16)),
            "a firm named Apple is not a farm for the value chain: {apple:?}"
        );
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
