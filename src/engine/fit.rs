//! Model fitting: a fit of the catalogue as it is now (learning from the
//! manager's decisions when a feedback store is attached), persisted and swapped
//! in atomically, and what `GET /v1/admin/model` shows of the serving model.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::Instant;

use klynge_models::model::{FeedbackPair, FittedModel};
use klynge_models::scoring::{SIGNALS, Signal};
use serde_json::{Value, json};

use super::{Engine, EngineError};
use crate::feedback::Decision;

impl Engine {
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
pub(super) fn feedback_digest(model: &FittedModel) -> u64 {
    model.feedback.as_ref().map_or(0, |learning| learning.digest)
}
