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
    /// How sure an inferred sector is of its value-chain stage: the margin of its
    /// text's similarity to the chosen sector over the best sector of another
    /// stage (1 for a stated sector; 0 when none or in models saved before it).
    #[serde(default)]
    pub sector_confidence: f32,
    /// Rows of the input-output table of those sectors.
    pub rows: Vec<u16>,
    pub offers: Vec<String>,
    pub needs: Vec<String>,
}

impl FirmMeta {
    /// NUTS-2 level of the region (`DK04` of `DK041`).
    pub fn region2(&self) -> Option<&str> {
        self.region.as_deref().map(|r| r.get(..4).unwrap_or(r))
    }
}

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

/// A recommendation request as the model sees it.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub anchors: Vec<u32>,
    pub text: Option<String>,
}

/// A query with everything computed once, shared by all its candidates.
pub struct PreparedQuery {
    pub anchors: Vec<u32>,
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
        for list in &mut firms_by_row {
            list.sort_by_key(|&f| (std::cmp::Reverse(graph.collaborations(f)), f));
            list.truncate(500);
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
            experienced,
            projects,
            project_texts,
            firm_projects,
            firms_by_row,
            lookup,
        };
        let samples = model.training_samples(firms, collaborations, &texts);
        if let Ok(weights) = Weights::fit(&learn_among_pool(samples.anchored)) {
            model.weights = weights;
            model.weights_learnt = true;
            model.opportunity_weights = Weights::fit(&learn_among_pool(samples.opportunity)).ok();
        }
        model.pair_weights = Weights::fit(&samples.pairs).ok();
        Ok(model)
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
        self.prepare_in(
            &View {
                embeddings: &self.embeddings,
                graph: &self.graph,
                hidden: None,
                assignment: &self.clusters.assignment,
            },
            query,
        )
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
        for (row, _) in valuechain::table().partner_rows(&query.rows, 6) {
            for &firm in self.firms_by_row[row].iter().take(per_source / 6 + 1) {
                push(firm, &mut out);
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
        f[Signal::ValueChain as usize] = valuechain::table().strength(&query.rows, &rows) * 10.0;
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
                        let inferred = if meta.sectors_inferred { " (sector inferred from its text)" } else { "" };
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
        valuechain::table().best_link(&query.rows, &rows)
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

/// Until there are enough collaborations to learn from, only content signals
/// count, equally: a neutral starting point, reported as not learnt.
fn prior_weights() -> Weights {
    let mut coefficients = vec![0.0; SIGNAL_COUNT];
    for signal in [Signal::TextSimilarity, Signal::TextMatch, Signal::OfferNeed, Signal::ValueChain] {
        coefficients[signal as usize] = 1.0;
    }
    Weights {
        mean: vec![0.0; SIGNAL_COUNT],
        scale: vec![1.0; SIGNAL_COUNT],
        coefficients,
        intercept: 0.0,
        positives: 0,
        negatives: 0,
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
    for row in centroids.outer_iter_mut() {
        normalise(row);
    }
    firms
        .par_iter()
        .enumerate()
        .map(|(firm, profile)| {
            let (sectors, inferred, confidence) = if profile.sectors.is_empty() {
                let scores = centroids.dot(&embeddings.row(firm));
                let best = (0..scores.len()).max_by(|&a, &b| scores[a].total_cmp(&scores[b]));
                match best.filter(|&row| scores[row] > 0.15) {
                    Some(row) => {
                        let stage = valuechain::stage(table.code(row));
                        let runner_up = (0..scores.len())
                            .filter(|&other| valuechain::stage(table.code(other)) != stage)
                            .map(|other| scores[other])
                            .fold(0.0f32, f32::max);
                        (vec![division_code(table.code(row))], true, (scores[row] - runner_up).max(0.0))
                    }
                    None => (Vec::new(), false, 0.0),
                }
            } else {
                (profile.sectors.clone(), false, 1.0)
            };
            FirmMeta {
                name: profile.name.clone(),
                kind: profile.kind,
                size: profile.size,
                country: profile.country.clone(),
                region: profile.region.clone(),
                sme: profile.is_sme(),
                rows: rows_of(&sectors),
                sectors,
                sectors_inferred: inferred,
                sector_confidence: confidence,
                offers: profile.offers.clone(),
                needs: profile.needs.clone(),
            }
        })
        .collect()
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
    use super::{PooledQuery, SIGNAL_COUNT, TrainingQuery, learn_among_pool, training_folds};

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
