//! The use-cases that join the index and the models: writes that keep both in
//! step, model fitting and its atomic swap, and the recommendation queries
//! (shortlists; networks build on them) that the API, the evaluation and the
//! batch jobs share. Everything here is synchronous and may block; async callers
//! reach it through `spawn_blocking`.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use klynge_index::{FirmIndex, IndexError, TextField};
use klynge_models::model::{FeedbackPair, FittedModel, ModelParams, PreparedQuery, Query, Reason, pair_features};
use klynge_models::scoring::{Features, SIGNAL_COUNT, SIGNALS, Scored, Signal};
use klynge_models::{Collaboration, Kind, SizeClass};
use serde::Serialize;
use serde_json::{Value, json};

use crate::feedback::{Decision, FeedbackStore};
use crate::precomputed::Precomputed;
use crate::store::ModelStore;

/// Vocabulary of the use-cases' requests, shared with their callers (the API)
/// so those need not reach into the index or the model code for it.
pub use klynge_index::{SearchRequest, StoredFirm};
pub use klynge_models::model::Relation;

/// Candidates each retriever contributes before scoring.
const PER_SOURCE: usize = 150;

pub struct Engine {
    index: Arc<FirmIndex>,
    serving: RwLock<Serving>,
    store: Option<ModelStore>,
    params: ModelParams,
    /// One fit at a time; serving goes on from the current model meanwhile. Holds
    /// the last model fitted, which may not be serving yet.
    fitting: Mutex<Option<Arc<FittedModel>>>,
    /// The cluster manager's decisions, which fits learn from.
    feedback: Option<Arc<FeedbackStore>>,
}

/// The model and the batch results computed with it, swapped together so that a
/// reader never pairs a model with another model's precomputed partners.
#[derive(Default, Clone)]
pub struct Serving {
    pub model: Option<Arc<FittedModel>>,
    pub precomputed: Option<Arc<Precomputed>>,
}

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Index(#[from] IndexError),
    #[error("no model is fitted yet (the catalogue is empty or training is running)")]
    NoModel,
    #[error("unknown firm ids: {0:?}")]
    UnknownFirms(Vec<String>),
    #[error("model: {0}")]
    Model(String),
}

/// Filters every recommendation accepts.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Filters {
    pub kind: Option<Kind>,
    pub country: Option<String>,
    pub region: Option<String>,
    pub sector: Option<String>,
    pub size: Option<SizeClass>,
    pub sme: Option<bool>,
    pub exclude: Vec<String>,
    pub min_score: f32,
    /// Suppliers or customers only, by the direction of the input-output link.
    pub relation: Relation,
    /// Also propose funds, ETFs, bond lines, trusts and SPACs.
    pub include_financial_vehicles: bool,
}

impl Filters {
    pub fn is_empty(&self) -> bool {
        self.kind.is_none()
            && self.country.is_none()
            && self.region.is_none()
            && self.sector.is_none()
            && self.size.is_none()
            && self.sme.is_none()
            && self.exclude.is_empty()
            && self.min_score <= 0.0
            && self.relation == Relation::Any
            && !self.include_financial_vehicles
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ShortlistRequest {
    pub anchors: Vec<String>,
    pub opportunity: Option<String>,
    pub k: usize,
    pub filters: Filters,
}

#[derive(Debug, Clone, Serialize)]
pub struct SignalValue {
    pub signal: &'static str,
    pub value: f32,
    pub contribution: f32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Partner {
    pub id: String,
    pub name: String,
    pub kind: Kind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub country: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub sectors: Vec<String>,
    pub sectors_inferred: bool,
    /// How likely an inferred sector is right, when the catalogue allowed an estimate.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sector_confidence: Option<f32>,
    pub cluster: u32,
    pub score: f32,
    pub signals: Vec<SignalValue>,
    pub reasons: Vec<Reason>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Shortlist {
    pub generation: u64,
    pub model_generation: u64,
    pub candidates_scored: usize,
    pub partners: Vec<Partner>,
}

impl Engine {
    /// An engine over `index`; with a `store`, models persist there and the last
    /// one is loaded now.
    pub fn new(index: Arc<FirmIndex>, store: Option<ModelStore>, params: ModelParams) -> Engine {
        let loaded = store.as_ref().and_then(|store| match store.load() {
            Ok(model) => model.map(Arc::new),
            Err(error) => {
                tracing::warn!(%error, "cannot load the saved model; it will be refitted");
                None
            }
        });
        let serving = Serving { model: loaded, precomputed: None };
        Engine { index, serving: RwLock::new(serving), store, params, fitting: Mutex::new(None), feedback: None }
    }

    /// Fits learn from `feedback`'s anchor-scoped decisions from now on.
    pub fn with_feedback(self, feedback: Arc<FeedbackStore>) -> Engine {
        Engine { feedback: Some(feedback), ..self }
    }

    /// The decisions a fit learns from, and their digest (0: none). Decisions on
    /// firms the catalogue no longer holds are skipped by the fit.
    fn feedback_pairs(&self) -> (Vec<DecisionRecord>, u64) {
        let Some(store) = &self.feedback else {
            return (Vec::new(), 0);
        };
        let records: Vec<DecisionRecord> = store
            .anchor_decisions()
            .into_iter()
            .filter_map(|r| {
                Some(DecisionRecord {
                    anchor: r.anchor?,
                    opportunity: r.opportunity,
                    firm: r.firm,
                    accepted: r.decision == Decision::Accept,
                })
            })
            .collect();
        let mut hasher = std::hash::DefaultHasher::new();
        records.hash(&mut hasher);
        let digest = if records.is_empty() { 0 } else { hasher.finish().max(1) };
        (records, digest)
    }

    pub fn index(&self) -> &FirmIndex {
        &self.index
    }

    pub fn upsert_firms(&self, firms: &[StoredFirm]) -> Result<u64, IndexError> {
        self.index.upsert_firms(firms)
    }

    pub fn delete_firm(&self, id: &str) -> Result<bool, IndexError> {
        self.index.delete_firm(id)
    }

    pub fn upsert_collaborations(&self, collaborations: &[Collaboration]) -> Result<u64, IndexError> {
        self.index.upsert_collaborations(collaborations)
    }

    pub fn model(&self) -> Option<Arc<FittedModel>> {
        self.serving().model
    }

    /// The model and its batch results as one consistent snapshot.
    pub fn serving(&self) -> Serving {
        self.serving.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Switches serving to `model` and the partners precomputed with it, at once;
    /// a model older than the serving one (a slow concurrent fit) is ignored.
    pub fn install(&self, model: Arc<FittedModel>, precomputed: Option<Arc<Precomputed>>) {
        let mut serving = self.serving.write().unwrap_or_else(|p| p.into_inner());
        if serving.model.as_ref().is_none_or(|current| current.generation <= model.generation) {
            *serving = Serving { model: Some(model), precomputed };
        }
    }

    /// Whether the last batch refresh's results match the index and model serving now.
    pub fn precomputed_is_fresh(&self) -> bool {
        let Serving { model: Some(model), precomputed: Some(precomputed) } = self.serving() else {
            return false;
        };
        precomputed.serves(&model, self.index.generation())
    }

    /// `id`'s partners from the last batch refresh, when it ran on the index and
    /// model serving now and the request is one it answered (no filters, `k` up to
    /// the refresh's). The same ranking a live shortlist computes, without the
    /// retrieval and scoring of hundreds of candidates.
    pub fn precomputed_shortlist(&self, id: &str, request: &ShortlistRequest) -> Option<Shortlist> {
        let Serving { model: Some(model), precomputed: Some(precomputed) } = self.serving() else {
            return None;
        };
        let fresh = precomputed.serves(&model, self.index.generation());
        // Exclusions (the caller's, and firms the manager rejected) only remove
        // firms from a ranking scored one candidate at a time: the rest keeps its order.
        let only_exclusions = Filters { exclude: Vec::new(), ..request.filters.clone() }.is_empty();
        if !fresh || request.k > precomputed.k || !only_exclusions || request.opportunity.is_some() {
            return None;
        }
        let position = model.position(id)?;
        let (candidates_scored, list) = precomputed.partners(position)?;
        let excluded: HashSet<u32> = request.filters.exclude.iter().filter_map(|id| model.position(id)).collect();
        let kept: Vec<u32> = list.iter().map(|&(c, _)| c).filter(|c| !excluded.contains(c)).take(request.k).collect();
        if kept.len() < request.k && list.len() >= precomputed.k {
            // The stored list ran out; the live ranking goes deeper.
            return None;
        }
        let query = model.prepare(&Query { anchors: vec![position], text: None });
        Some(Shortlist {
            generation: model.generation,
            model_generation: model.generation,
            candidates_scored,
            partners: kept.into_iter().map(|c| self.partner(&model, &query, c)).collect(),
        })
    }

    /// The generation recommendations are keyed on: index and model together, so
    /// a write or a refit makes every cached answer unreachable.
    pub fn cache_generation(&self) -> String {
        match self.model() {
            // A refit that learnt from new decisions keeps the catalogue's generation
            // but ranks differently.
            Some(model) if feedback_digest(&model) != 0 => {
                format!("{}m{}f{:x}", self.index.generation(), model.generation, feedback_digest(&model))
            }
            model => format!("{}m{}", self.index.generation(), model.map_or(0, |m| m.generation)),
        }
    }

    /// Whether the model was fitted on the index as it is now.
    pub fn model_is_current(&self) -> bool {
        self.model().is_some_and(|m| m.generation == self.index.generation())
    }

    /// Fits a model on the catalogue as it is now and swaps it in; readers keep
    /// the previous model until the swap. Returns `None` for an empty catalogue.
    pub fn fit(&self) -> Result<Option<Arc<FittedModel>>, EngineError> {
        let model = self.fit_detached()?;
        if let Some(model) = &model
            && self.model().is_none_or(|current| !Arc::ptr_eq(&current, model))
        {
            // A refit of the same catalogue learnt from new decisions: the batch
            // results ranked with the previous weights no longer hold.
            let serving = self.serving();
            let relearnt = serving.model.as_ref().is_some_and(|current| {
                current.generation == model.generation && feedback_digest(current) != feedback_digest(model)
            });
            self.install(model.clone(), if relearnt { None } else { serving.precomputed });
        }
        Ok(model)
    }

    /// Fits (and persists) a model on the catalogue as it is now without serving
    /// it yet: the batch refresh computes every firm's partners with it first and
    /// then switches both in at once. Returns the serving model when it is current.
    pub fn fit_detached(&self) -> Result<Option<Arc<FittedModel>>, EngineError> {
        let mut last_fitted = self.fitting.lock().unwrap_or_else(|p| p.into_inner());
        let generation = self.index.generation();
        let (decisions, digest) = self.feedback_pairs();
        // The same catalogue and the same decisions: the same model.
        if let Some(model) = self
            .model()
            .into_iter()
            .chain(last_fitted.clone())
            .find(|m| m.generation == generation && feedback_digest(m) == digest)
        {
            return Ok(Some(model));
        }
        let started = Instant::now();
        let firms = self.index.all_firms()?;
        if firms.is_empty() {
            return Ok(None);
        }
        let collaborations = self.index.all_collaborations()?;
        let position: HashMap<&str, u32> =
            firms.iter().enumerate().map(|(i, firm)| (firm.id.as_str(), i as u32)).collect();
        let feedback: Vec<FeedbackPair> = decisions
            .iter()
            .filter_map(|d| {
                Some(FeedbackPair {
                    anchor: *position.get(d.anchor.as_str())?,
                    opportunity: d.opportunity.clone(),
                    firm: *position.get(d.firm.as_str())?,
                    accepted: d.accepted,
                })
            })
            .collect();
        let mut model =
            FittedModel::fit_with_feedback(&firms, &collaborations, generation, self.params.clone(), &feedback)
                .map_err(|error| EngineError::Model(error.to_string()))?;
        if digest != 0 {
            // Decisions none of which names a firm of this catalogue still mark the
            // model, or every fit would redo it.
            model.feedback.get_or_insert_with(Default::default).digest = digest;
        }
        if let Some(store) = &self.store {
            store.save(&model).map_err(|error| EngineError::Model(error.to_string()))?;
        }
        let model = Arc::new(model);
        *last_fitted = Some(model.clone());
        metrics::histogram!("klynge_model_fit_seconds").record(started.elapsed().as_secs_f64());
        tracing::info!(
            generation,
            firms = firms.len(),
            collaborations = collaborations.len(),
            seconds = started.elapsed().as_secs_f64(),
            learnt = model.weights_learnt,
            "model fitted"
        );
        Ok(Some(model))
    }

    /// What `GET /v1/admin/model` shows: the fitted weights and their provenance.
    pub fn model_info(&self) -> Value {
        let Some(model) = self.model() else {
            return Value::Null;
        };
        let weights: serde_json::Map<String, Value> = SIGNALS
            .iter()
            .enumerate()
            .map(|(i, signal)| {
                (
                    signal.name().to_string(),
                    json!({
                        "weight_per_unit": model.weights.raw_weight(i),
                        "weight_standardised": model.weights.coefficients[i],
                        "mean": model.weights.mean[i],
                    }),
                )
            })
            .collect();
        json!({
            "generation": model.generation,
            "current": model.generation == self.index.generation(),
            "firms": model.len(),
            "vocabulary": model.text.vocabulary_size(),
            "embedding_dim": model.text.dim(),
            "clusters": model.clusters.lists.len(),
            "weights_learnt": model.weights_learnt,
            // Without collaborations to learn from, the shipped defaults rank.
            "default_weights": (!model.weights_learnt).then(|| {
                let defaults = klynge_models::scoring::default_weights();
                json!({ "fitted_on": defaults.fitted_on, "command": defaults.command })
            }),
            "training_pairs": { "positives": model.weights.positives, "negatives": model.weights.negatives },
            "intercept": model.weights.intercept,
            "weights": weights,
            // What ranks an opportunity asked without an anchor (weight per unit).
            "opportunity_weights": model.opportunity_weights.as_ref().map(|weights| {
                SIGNALS
                    .iter()
                    .enumerate()
                    .map(|(i, signal)| (signal.name().to_string(), json!(weights.raw_weight(i))))
                    .collect::<serde_json::Map<String, Value>>()
            }),
            // What the serving model learnt from the manager's decisions (null: fitted without any).
            "feedback_learnt": model.feedback.as_ref().map(|learnt| json!({
                "decisions": learnt.decisions,
                "accepted": learnt.accepted,
                "rejected": learnt.rejected,
                "rejected_learnt": learnt.rejected_learnt,
                "queries": learnt.queries,
                "ranking_pairs": learnt.ranking_pairs,
                "pair_training_pairs": { "positives": learnt.pair_positives, "negatives": learnt.pair_negatives },
                "agreement_without": learnt.agreement_without,
                "agreement_with": learnt.agreement_with,
                "weight_change_per_unit": SIGNALS
                    .iter()
                    .zip(&learnt.weight_change)
                    .map(|(signal, change)| (signal.name().to_string(), json!(change)))
                    .collect::<serde_json::Map<String, Value>>(),
            })),
            // What holds a network together: weight per unit of each pair signal
            // between two members (null when too few collaborations to learn it).
            "pair_weights": model.pair_weights.as_ref().map(|pair| json!({
                "ties": pair.raw_weight(Signal::Ties as usize),
                "value_chain": pair.raw_weight(Signal::ValueChain as usize),
                "training_pairs": { "positives": pair.positives, "negatives": pair.negatives },
            })),
        })
    }

    /// Ranked partners for anchors and/or an opportunity text.
    pub fn shortlist(&self, request: &ShortlistRequest) -> Result<Shortlist, EngineError> {
        let model = self.model().ok_or(EngineError::NoModel)?;
        let (query, candidates_scored, ranked) = self.ranked(&model, request)?;
        Ok(Shortlist {
            generation: self.index.generation(),
            model_generation: model.generation,
            candidates_scored,
            partners: ranked
                .iter()
                .map(|&(c, score)| {
                    // A group's ranking score is not the combined query's (see `group_relevance`).
                    let mut partner = self.partner(&model, &query, c);
                    partner.score = score;
                    partner
                })
                .collect(),
        })
    }

    /// The ranking of [`Engine::shortlist`] with a given model and without the
    /// explanations: the number of candidates scored and the top `(position,
    /// score)` pairs. The batch refresh keeps only these, with a model that is
    /// not serving yet.
    pub fn rank_with(
        &self,
        model: &FittedModel,
        request: &ShortlistRequest,
    ) -> Result<(usize, Vec<(u32, f32)>), EngineError> {
        self.ranked(model, request).map(|(_, scored, ranked)| (scored, ranked))
    }

    fn ranked(&self, model: &FittedModel, request: &ShortlistRequest) -> Result<Ranked, EngineError> {
        let (anchors, text) = self.resolve_anchors(model, &request.anchors, request.opportunity.clone())?;
        let query = model.prepare_with(&Query { anchors: anchors.clone(), text }, request.filters.relation);
        let candidates = self.candidates(model, &query)?;
        let excluded: HashSet<u32> = request.filters.exclude.iter().filter_map(|id| model.position(id)).collect();
        let include_vehicles = request.filters.include_financial_vehicles;
        let kept: Vec<u32> = candidates
            .iter()
            .copied()
            .filter(|c| !excluded.contains(c) && self.passes(model, *c, &request.filters))
            .filter(|&c| model.proposable(&query, c, include_vehicles))
            .collect();
        let scores = self.relevance(model, &query, &kept);
        let mut scored: Vec<(u32, f32)> =
            kept.into_iter().zip(scores).filter(|(_, score)| *score >= request.filters.min_score).collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scored.truncate(request.k);
        Ok((query, candidates.len(), scored))
    }

    /// The model positions of `ids`, and the query text. An anchor the index holds
    /// but the model does not (written since the last fit) stands in as its
    /// profile's text, so it is answered at once from the current model instead of
    /// waiting for the refit; ids the index does not hold are `UnknownFirms`.
    pub fn resolve_anchors(
        &self,
        model: &FittedModel,
        ids: &[String],
        text: Option<String>,
    ) -> Result<(Vec<u32>, Option<String>), EngineError> {
        let unknown = match self.positions(model, ids) {
            Ok(positions) => return Ok((positions, text)),
            Err(EngineError::UnknownFirms(unknown)) => unknown,
            Err(other) => return Err(other),
        };
        let missing = self.index.missing_firms(&unknown)?;
        if !missing.is_empty() {
            return Err(EngineError::UnknownFirms(missing));
        }
        let mut positions: Vec<u32> = Vec::new();
        for position in ids.iter().filter_map(|id| model.position(id)) {
            if !positions.contains(&position) {
                positions.push(position);
            }
        }
        let mut texts: Vec<String> = text.into_iter().collect();
        for id in &unknown {
            if let Some(stored) = self.index.get_firm(id)? {
                texts.push(stored.firm.text());
            }
        }
        Ok((positions, Some(texts.join(". "))))
    }

    /// Each candidate's relevance to a query: its score, or for a group of two or
    /// more firms at the table its fit to the whole group ([`group_relevance`]).
    pub fn relevance(&self, model: &FittedModel, query: &PreparedQuery, candidates: &[u32]) -> Vec<f32> {
        if query.anchors.len() < 2 {
            return candidates.iter().map(|&c| model.score(query, c).score).collect();
        }
        group_relevance(model, query, candidates)
    }

    pub fn positions(&self, model: &FittedModel, ids: &[String]) -> Result<Vec<u32>, EngineError> {
        let mut unknown = Vec::new();
        let mut positions = Vec::new();
        for id in ids {
            match model.position(id) {
                Some(p) if !positions.contains(&p) => positions.push(p),
                Some(_) => {}
                None => unknown.push(id.clone()),
            }
        }
        if unknown.is_empty() { Ok(positions) } else { Err(EngineError::UnknownFirms(unknown)) }
    }

    /// The union of the model's retrievers and BM25 retrievals from the index: the
    /// opportunity's key terms against profiles, and the anchors' needs against
    /// everyone's offers (and back).
    pub fn candidates(&self, model: &FittedModel, query: &PreparedQuery) -> Result<Vec<u32>, EngineError> {
        let mut candidates = model.candidates(query, PER_SOURCE);
        let mut seen: HashSet<u32> = candidates.iter().copied().chain(query.anchors.iter().copied()).collect();
        let mut searches: Vec<(String, TextField, usize)> = Vec::new();
        if !query.key_terms.is_empty() {
            searches.push((query.key_terms.join(" "), TextField::Body, PER_SOURCE));
        }
        for &anchor in &query.anchors {
            let meta = &model.meta[anchor as usize];
            if !meta.needs.is_empty() {
                searches.push((meta.needs.join(" "), TextField::Offers, PER_SOURCE / 3));
            }
            if !meta.offers.is_empty() {
                searches.push((meta.offers.join(" "), TextField::Needs, PER_SOURCE / 3));
            }
        }
        let number = |id: &str| model.position(id);
        for (text, field, limit) in searches {
            for (position, _) in self.index.match_numbered(&text, field, limit, model.generation, &number)? {
                if seen.insert(position) {
                    candidates.push(position);
                }
            }
        }
        Ok(candidates)
    }

    pub fn passes(&self, model: &FittedModel, candidate: u32, filters: &Filters) -> bool {
        let meta = &model.meta[candidate as usize];
        filters.kind.is_none_or(|kind| meta.kind == kind)
            && filters.country.as_ref().is_none_or(|c| meta.country.as_ref() == Some(c))
            && filters
                .region
                .as_ref()
                .is_none_or(|r| meta.region.as_ref().is_some_and(|own| own.starts_with(r.as_str())))
            && filters.sector.as_ref().is_none_or(|s| meta.sectors.iter().any(|own| own.starts_with(s.as_str())))
            && filters.sme.is_none_or(|sme| meta.sme == sme)
            && filters.size.is_none_or(|size| meta.size == Some(size))
    }

    pub fn partner(&self, model: &FittedModel, query: &PreparedQuery, candidate: u32) -> Partner {
        let features = model.features(query, candidate);
        let scored = model.weights_for(query).score(&features);
        let meta = &model.meta[candidate as usize];
        Partner {
            id: model.id(candidate).to_string(),
            name: meta.name.clone(),
            kind: meta.kind,
            country: meta.country.clone(),
            region: meta.region.clone(),
            sectors: meta.sectors.clone(),
            sectors_inferred: meta.sectors_inferred,
            sector_confidence: meta.sector_confidence,
            cluster: model.clusters.assignment[candidate as usize],
            score: scored.score,
            signals: SIGNALS
                .iter()
                .enumerate()
                .map(|(i, signal)| SignalValue {
                    signal: signal.name(),
                    value: features[i],
                    contribution: scored.contributions[i],
                })
                .collect(),
            reasons: self.reasons(model, query, candidate, &scored, &features),
        }
    }

    /// The model's reasons; when no signal counts in the firm's favour (a firm the
    /// opportunity's wording found, in a catalogue whose learnt weights favour track
    /// records), the opportunity's terms its profile shares, so that no
    /// recommendation comes without a reason a cluster manager can check.
    fn reasons(
        &self,
        model: &FittedModel,
        query: &PreparedQuery,
        candidate: u32,
        scored: &Scored,
        features: &Features,
    ) -> Vec<Reason> {
        let mut reasons = model.reasons(query, candidate, scored, features);
        if reasons.is_empty()
            && !query.key_terms.is_empty()
            && let Ok(Some(stored)) = self.index.get_firm(model.id(candidate))
        {
            let shared = klynge_models::text::terms_in(&query.key_terms, &stored.firm.text(), 5);
            let similarity = features[Signal::TextSimilarity as usize];
            let text = if !shared.is_empty() {
                format!("its profile mentions {} from the opportunity", quoted_list(&shared))
            } else {
                format!("its profile is close to the opportunity's wording (similarity {similarity:.2})")
            };
            if !shared.is_empty() || similarity > 0.0 {
                reasons.push(Reason { signal: Signal::TextSimilarity.name(), text });
            }
        }
        reasons
    }
}

/// How a candidate fits a group of two or more firms already at the table
/// (anchors and locked members): its score for the query the group makes, plus,
/// for every member, how much likelier the pair model finds the two in one
/// consortium than two unlinked firms. The ranking weights were learnt with one
/// anchor, where past ties mostly repeat what partners-of-partners and
/// experience already say; the pair model was learnt on member–member pairs of
/// real consortia, which is the question completion asks: who else sits with
/// *these* firms. A candidate that worked with several members gains for each.
///
/// No constant is tuned: both terms are probabilities. The rule was chosen on
/// held-out catalogue collaborations (`klynge eval --holdout --lock 1,2,4
/// --feedback-rounds 3`, five folds, README), not on the dev queries: over the
/// group query alone, noisy-ors of member-wise scores and of pair fits, and
/// ranking weights learnt on groups (held-out collaborations asked with the
/// anchor and one to four other members), alone or with the pair fits. For a
/// group the score can pass 1.
pub fn group_relevance(model: &FittedModel, query: &PreparedQuery, candidates: &[u32]) -> Vec<f32> {
    let pair = model.pair_weights.as_ref();
    let unlinked = pair.map_or(0.0, |pair| pair.score(&[0.0; SIGNAL_COUNT]).score);
    candidates
        .iter()
        .map(|&c| {
            let base = model.score(query, c).score;
            let Some(pair) = pair else { return base };
            let fit: f32 = query
                .anchors
                .iter()
                .map(|&member| (pair.score(&pair_features(&model.graph, model, member, c)).score - unlinked).max(0.0))
                .sum();
            base + fit
        })
        .collect()
}

/// A decision as the fit reads it, by firm id.
#[derive(Hash)]
struct DecisionRecord {
    anchor: String,
    opportunity: Option<String>,
    firm: String,
    accepted: bool,
}

/// The digest of the decisions `model` learnt from (0: none).
fn feedback_digest(model: &FittedModel) -> u64 {
    model.feedback.as_ref().map_or(0, |learning| learning.digest)
}

/// A prepared query, how many candidates were scored, and the top `(position, score)`.
type Ranked = (PreparedQuery, usize, Vec<(u32, f32)>);

/// Where model artefacts live: `<data dir>/models`.
pub fn model_dir(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("models")
}

/// Signals in the order of the feature vector, for docs and CSV headers.
pub fn signal_names() -> Vec<&'static str> {
    SIGNALS.iter().map(|s: &Signal| s.name()).collect()
}

/// `'a', 'b' and 'c'`.
fn quoted_list(items: &[&str]) -> String {
    let quoted: Vec<String> = items.iter().map(|item| format!("'{item}'")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        _ => quoted.join(""),
    }
}

#[cfg(test)]
mod tests {
    use super::quoted_list;

    #[test]
    fn lists_read_as_prose() {
        assert_eq!(quoted_list(&["heat"]), "'heat'");
        assert_eq!(quoted_list(&["heat", "pumps"]), "'heat' and 'pumps'");
        assert_eq!(quoted_list(&["a", "b", "c"]), "'a', 'b' and 'c'");
        assert_eq!(quoted_list(&[]), "");
    }
}
