//! The fitted matchmaking model: everything learnt from one generation of the
//! catalogue (text embeddings, latent clusters, the tie graph, kind priors,
//! inferred sectors and the signal weights), the features of a candidate for a
//! query, its score and the reasons behind it. Fitting is pure computation over
//! profiles and collaborations; the service persists the result beside the index.
//!
//! This module owns the model's data (parameters, per-firm metadata, the fitted
//! state); the work on it lives beside it: `fit` (fitting, and learning from the
//! cluster manager's decisions), `training` (held-out training queries, each
//! asked of a model fitted without it), `sectors` (per-firm metadata and
//! sector inference), `query` (query preparation and candidate retrieval),
//! `features` (a candidate's signals and score) and `explain` (its reasons).

mod explain;
mod features;
mod fit;
mod hot;
mod query;
mod sectors;
mod training;

use std::collections::HashMap;

use ndarray::{Array2, ArrayView1};
use serde::{Deserialize, Serialize};

use crate::Kind;
use crate::cluster::Clusters;
use crate::graph::TieGraph;
use crate::projects::ProjectTexts;
use crate::scoring::Weights;
use crate::text::TextModel;

pub use explain::{Reason, kind_plural};
pub use features::PhraseVectors;
pub use fit::{FEEDBACK_POOL_NEGATIVES, FeedbackLearning, FeedbackPair};
pub use query::{PreparedQuery, Query};
pub use training::pair_features;

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
    /// How likely an inferred sector is right (see `sectors::SectorInference`); `None`
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
    /// A fund, ETF, bond line, trust or SPAC ([`crate::Firm::is_financial_vehicle`]).
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
}

/// The profile fields a search or a recommendation can be narrowed to: one
/// type for the index's search and the model's candidates, so both read the
/// same filter the same way (region and sector match as prefixes).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ProfileFilter {
    pub kind: Option<crate::Kind>,
    pub country: Option<String>,
    /// A NUTS code or prefix.
    pub region: Option<String>,
    /// A NACE code or prefix.
    pub sector: Option<String>,
    pub size: Option<crate::SizeClass>,
    pub sme: Option<bool>,
}

impl ProfileFilter {
    pub fn is_empty(&self) -> bool {
        *self == ProfileFilter::default()
    }

    pub fn matches(&self, meta: &FirmMeta) -> bool {
        self.kind.is_none_or(|kind| meta.kind == kind)
            && self.country.as_ref().is_none_or(|c| meta.country.as_ref() == Some(c))
            && self.region.as_ref().is_none_or(|r| meta.region.as_ref().is_some_and(|own| own.starts_with(r.as_str())))
            && self.sector.as_ref().is_none_or(|s| meta.sectors.iter().any(|own| own.starts_with(s.as_str())))
            && self.sme.is_none_or(|sme| meta.sme == sme)
            && self.size.is_none_or(|size| meta.size == Some(size))
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
    /// `meta` packed for scoring ([`hot::HotMeta`]).
    #[serde(skip)]
    hot: hot::HotMeta,
    /// `firms_by_row`'s quantised embeddings, for the day-one sector scans.
    #[serde(skip)]
    row_scans: Vec<crate::cluster::SubsetScan>,
}

#[derive(Debug, thiserror::Error)]
pub enum FitError {
    #[error("the catalogue is empty")]
    Empty,
    #[error(transparent)]
    Text(#[from] crate::text::TextError),
}

impl FittedModel {
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
        self.hot = hot::HotMeta::build(&self.meta);
        self.row_scans = self.firms_by_row.iter().map(|firms| self.clusters.subset_scan(firms)).collect();
    }

    pub fn embedding(&self, firm: u32) -> ArrayView1<'_, f32> {
        self.embeddings.row(firm as usize)
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
