//! What a batch refresh leaves behind, as the engine serves it: every firm's
//! ranked partners (and the network around it) for one model generation, by
//! model position, and the lines of the results file they are read from. Plain
//! data: the refresh (`refresh.rs`) writes it, the engine reads it, and neither
//! direction needs the other's code.

use klynge_models::model::FittedModel;
use klynge_models::network::Breakdown;
use serde::{Deserialize, Serialize};

/// One line of a results file (and of `--export`).
#[derive(Debug, Serialize, Deserialize)]
pub struct PartnerLine {
    pub firm: String,
    pub generation: u64,
    pub candidates_scored: usize,
    pub partners: Vec<ScoredId>,
    /// The network around the firm (`NetworkRequest::around`), when the run
    /// computed networks and one could be assembled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkLine>,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct NetworkLine {
    /// The firm first, then the partners in the order the assembly chose them.
    pub members: Vec<String>,
    pub score: f32,
    pub breakdown: Breakdown,
}

#[derive(Debug, Serialize, Deserialize)]
pub struct ScoredId {
    pub id: String,
    pub score: f32,
}

/// Every firm's partners for one model generation, by model position.
pub struct Precomputed {
    pub generation: u64,
    /// [`model_key`] of the model they were ranked with.
    pub model_key: String,
    pub k: usize,
    lists: Vec<(u32, Vec<(u32, f32)>)>,
    /// Empty when the run computed no networks.
    networks: Vec<Option<PrecomputedNetwork>>,
}

pub struct PrecomputedNetwork {
    pub members: Vec<u32>,
    pub score: f32,
    pub breakdown: Breakdown,
}

impl Precomputed {
    /// The ranked `(position, score)` list of the firm at `position`, and how many
    /// candidates were scored for it.
    pub fn partners(&self, position: u32) -> Option<(usize, &[(u32, f32)])> {
        self.lists.get(position as usize).map(|(scored, list)| (*scored as usize, list.as_slice()))
    }

    /// The network around the firm at `position`, when the run computed networks.
    pub fn network(&self, position: u32) -> Option<&PrecomputedNetwork> {
        self.networks.get(position as usize)?.as_ref()
    }

    /// Takes the lines one at a time: at a million firms, holding them all as
    /// parsed strings would double the service's memory while it loads them.
    /// `k` grows to the longest list found.
    pub(crate) fn from_lines(
        model: &FittedModel,
        mut k: usize,
        lines: impl Iterator<Item = anyhow::Result<PartnerLine>>,
    ) -> anyhow::Result<Precomputed> {
        let mut lists = vec![(0, Vec::new()); model.len()];
        let mut networks: Vec<Option<PrecomputedNetwork>> = Vec::new();
        let unknown = |firm: &str| anyhow::anyhow!("a partner of `{firm}` is not in the model");
        for line in lines {
            let line = line?;
            k = k.max(line.partners.len());
            let position =
                model.position(&line.firm).ok_or_else(|| anyhow::anyhow!("`{}` is not in the model", line.firm))?;
            let list = line
                .partners
                .iter()
                .map(|p| model.position(&p.id).map(|q| (q, p.score)))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| unknown(&line.firm))?;
            lists[position as usize] = (line.candidates_scored as u32, list);
            if let Some(network) = &line.network {
                if networks.is_empty() {
                    networks.resize_with(model.len(), || None);
                }
                let members = network
                    .members
                    .iter()
                    .map(|id| model.position(id))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| unknown(&line.firm))?;
                networks[position as usize] =
                    Some(PrecomputedNetwork { members, score: network.score, breakdown: network.breakdown.clone() });
            }
        }
        Ok(Precomputed { generation: model.generation, model_key: model_key(model), k, lists, networks })
    }

    /// Whether these results are what `model` would rank on the index at
    /// `index_generation`: the same model (weights learnt from the same
    /// decisions included) fitted on the index as it is now.
    pub fn serves(&self, model: &FittedModel, index_generation: u64) -> bool {
        self.model_key == model_key(model) && model.generation == index_generation
    }
}

/// What a refresh's results are keyed on: the model's generation (the catalogue
/// it was fitted on) and, when it learnt from the manager's decisions, their
/// digest, since a refit with new decisions keeps the generation but ranks
/// differently.
pub fn model_key(model: &FittedModel) -> String {
    match model.feedback.as_ref().map_or(0, |learning| learning.digest) {
        0 => model.generation.to_string(),
        digest => format!("{}f{digest:x}", model.generation),
    }
}
