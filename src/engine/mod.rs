//! The use-cases that join the index and the models: writes that keep both in
//! step, model fitting and its atomic swap (`fit`), the recommendation queries
//! (`shortlist`; networks build on them) that the API, the lab's benchmarks and
//! the batch jobs share, and the catalogue reads the API answers from
//! (`catalogue`). Everything here is synchronous and may block; async callers
//! reach it through `spawn_blocking`.

mod catalogue;
mod fit;
mod shortlist;

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};

use klynge_index::{FirmIndex, IndexError};
use klynge_models::model::{FittedModel, ModelParams, Query, Reason};
use klynge_models::scoring::{SIGNALS, Signal};
use klynge_models::{Collaboration, Kind};
use serde::Serialize;

use crate::feedback::FeedbackStore;
use crate::precomputed::Precomputed;
use crate::store::ModelStore;

use fit::feedback_digest;
pub use shortlist::group_relevance;

/// Vocabulary of the use-cases' requests, shared with their callers (the API)
/// so those need not reach into the index or the model code for it.
pub use klynge_index::{SearchRequest, StoredFirm};
pub use klynge_models::model::{ProfileFilter, Relation};

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
    #[serde(flatten)]
    pub profile: ProfileFilter,
    pub exclude: Vec<String>,
    pub min_score: f32,
    /// Suppliers or customers only, by the direction of the input-output link.
    pub relation: Relation,
    /// Also propose funds, ETFs, bond lines, trusts and SPACs.
    pub include_financial_vehicles: bool,
}

impl Filters {
    pub fn is_empty(&self) -> bool {
        self.profile.is_empty()
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
}

/// Where model artefacts live: `<data dir>/models`.
pub fn model_dir(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("models")
}

/// Signals in the order of the feature vector, for docs and CSV headers.
pub fn signal_names() -> Vec<&'static str> {
    SIGNALS.iter().map(|s: &Signal| s.name()).collect()
}
