//! The network use-case: from a request (anchors, opportunity, size, rules) to
//! the best network and its alternatives, each explained member by member.
//! `assemble` scores candidates with the shortlist model, makes sure every rule
//! can be met from the whole catalogue (or says precisely why not), and hands the
//! set selection to `klynge_models::network`. `chain` lays each network out as a
//! value chain a cluster manager (and the web console) can read: stages in
//! upstream-first order with the members at each, the gaps between them, and a
//! link per pair of members that supply, complement or have worked with each
//! other, with its direction and reason. `newcomer` places firms written since
//! the model's last fit.

mod assemble;
mod chain;
mod newcomer;

use klynge_models::Kind;
use klynge_models::model::{FittedModel, PreparedQuery, Query};
use klynge_models::network::{self, Breakdown, Candidate, NetworkSpec, Objective};
use serde::Serialize;

use crate::engine::{Engine, EngineError, Partner};

pub use newcomer::Newcomer;

/// The value-chain stages a request may require, by name (the API checks them).
pub use klynge_models::valuechain::STAGES;

/// Why an anchor is in its own network.
const ANCHOR_REASON: &str = "the firm this network is built around (anchor of the request)";

#[derive(Debug, Clone, Serialize)]
pub struct NetworkRequest {
    pub anchors: Vec<String>,
    pub opportunity: Option<String>,
    pub min: usize,
    pub max: usize,
    /// (kinds, at least) pairs; one requirement may accept several kinds.
    pub kinds: Vec<(Vec<Kind>, usize)>,
    pub min_sme: usize,
    pub sectors: Vec<String>,
    pub stages: Vec<String>,
    pub countries: Vec<String>,
    pub regions: Vec<String>,
    pub max_per_country: Option<usize>,
    pub lock: Vec<String>,
    pub exclude: Vec<String>,
    pub alternatives: usize,
    pub k_candidates: usize,
    /// Weights of the set terms (the API always uses the default; `klynge eval
    /// --tune-networks` tries others).
    pub objective: Objective,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Member {
    /// The firm as a shortlist shows it: id, name, kind, country, region,
    /// sectors, sectors_inferred, cluster, score, signals and reasons.
    #[serde(flatten)]
    #[schema(value_type = Object)]
    pub partner: Partner,
    /// The member's value-chain role in words: its stage and what the stage rests
    /// on ("education & research (university)", "manufacturing (company, sector
    /// C10)", "… inferred from its description"), or "role unknown (…)".
    pub role: String,
    /// Its value-chain stage (one of `require.stages`'), null when unknown.
    #[schema(value_type = Option<String>)]
    pub stage: Option<&'static str>,
    /// Position (1 = most upstream) of its stage in `chain`; null when its stage is unknown.
    pub position: Option<usize>,
    /// `anchor`, `locked` or `proposed`.
    #[schema(value_type = String)]
    pub status: &'static str,
}

/// Why two members are linked.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct LinkReason {
    /// `supplies` (input-output table), `complements` (one's offers meet the
    /// other's needs) or `worked_together` (past collaborations).
    #[schema(value_type = String)]
    pub relation: &'static str,
    pub text: String,
}

/// One link per pair of members with any reason, drawn from `from` to `to`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Link {
    /// The supplier (or the member that offers what the other needs); for a
    /// link of past collaborations only, the more upstream member.
    pub from: String,
    /// The buyer (or the member that needs it).
    pub to: String,
    /// The strongest reason: `supplies`, `complements` or `worked_together`.
    #[schema(value_type = String)]
    pub relation: &'static str,
    /// Whether `from` → `to` is a direction (supply or offer → need) rather than
    /// only an order for drawing.
    pub directed: bool,
    /// Every reason in words, joined by "; ".
    pub detail: String,
    pub reasons: Vec<LinkReason>,
    /// Share of the buyer's inputs bought from the supplier's sector, when they supply.
    pub coefficient: Option<f32>,
    /// Past collaborations the two share.
    pub collaborations: u32,
}

/// One column of the value chain.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ChainStage {
    /// 1 = most upstream.
    pub position: usize,
    #[schema(value_type = String)]
    pub stage: &'static str,
    /// Members at this stage (empty for a gap).
    pub members: Vec<String>,
    /// No member covers this stage, but the opportunity or the members need it.
    pub gap: bool,
    /// Why a gap is needed; null for a covered stage.
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Coverage {
    pub requirement: String,
    pub covered: bool,
    pub by: Vec<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NetworkBody {
    pub score: f32,
    #[schema(value_type = Object)]
    pub breakdown: Breakdown,
    pub members: Vec<Member>,
    pub links: Vec<Link>,
    /// The value chain, upstream first: covered stages and gaps, each with its position.
    pub chain: Vec<ChainStage>,
    /// The covered stages in chain order.
    #[schema(value_type = Vec<String>)]
    pub stages_covered: Vec<&'static str>,
    /// Stages the opportunity, the request or the members' suppliers and
    /// customers need that no member covers, in chain order.
    #[schema(value_type = Vec<String>)]
    pub gaps: Vec<&'static str>,
    pub requirements: Vec<Coverage>,
    /// The same as `gaps` (kept for older clients).
    #[schema(value_type = Vec<String>)]
    pub stages_missing: Vec<&'static str>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct NetworkResponse {
    pub generation: u64,
    pub model_generation: u64,
    pub network: NetworkBody,
    pub alternatives: Vec<NetworkBody>,
}

/// What [`Engine::network_setup`] prepares for the assembly.
pub struct NetworkSetup {
    pub query: PreparedQuery,
    pub anchors: Vec<u32>,
    pub locked: Vec<u32>,
    /// Anchored or locked firms the index holds but the model does not yet.
    pub newcomers: Vec<Newcomer>,
    pub candidates: Vec<Candidate>,
    pub spec: NetworkSpec,
}

/// Who is anchored and locked, and (for a live assembly) the scored candidates
/// the opportunity's needs are read from.
struct Layout<'a> {
    anchors: &'a [u32],
    locked: &'a [u32],
    newcomers: &'a [Newcomer],
    candidates: Option<&'a [Candidate]>,
}

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    /// No set can satisfy the rules; the text says which rule and why.
    #[error("{0}")]
    Unsatisfiable(String),
    /// Ids of one request field (`anchor`, `lock`, `exclude`) with no profile.
    #[error("{} ids in `{field}` have no profile", ids.len())]
    UnknownFirms { field: &'static str, ids: Vec<String> },
}

impl NetworkRequest {
    /// The network a firm's own page proposes: the firm and 4–7 partners, no other
    /// rules. The batch refresh precomputes it for every firm when asked to.
    pub fn around(firm: &str) -> NetworkRequest {
        NetworkRequest {
            anchors: vec![firm.to_string()],
            opportunity: None,
            min: 5,
            max: 8,
            kinds: Vec::new(),
            min_sme: 0,
            sectors: Vec::new(),
            stages: Vec::new(),
            countries: Vec::new(),
            regions: Vec::new(),
            max_per_country: None,
            lock: Vec::new(),
            exclude: Vec::new(),
            alternatives: 0,
            k_candidates: 100,
            objective: Objective::default(),
        }
    }
}

impl Engine {
    pub fn network(&self, request: &NetworkRequest) -> Result<NetworkResponse, NetworkError> {
        let model = self.model().ok_or(EngineError::NoModel)?;
        self.network_with(&model, request)
    }

    /// [`Engine::network`] with a given model (the batch refresh uses one that is
    /// not serving yet).
    pub fn network_with(&self, model: &FittedModel, request: &NetworkRequest) -> Result<NetworkResponse, NetworkError> {
        let setup = self.network_setup(model, request)?;
        let networks = network::assemble(model, &setup.spec, &setup.candidates)
            .map_err(|infeasible| NetworkError::Unsatisfiable(infeasible.to_string()))?;
        let mut bodies = networks.iter().map(|n| {
            let layout = Layout {
                anchors: &setup.anchors,
                locked: &setup.locked,
                newcomers: &setup.newcomers,
                candidates: Some(&setup.candidates),
            };
            self.network_body(model, &setup.query, request, &layout, &n.members, n.score, n.breakdown.clone())
        });
        let best = bodies.next().expect("assemble returns at least one network");
        Ok(NetworkResponse {
            generation: self.index().generation(),
            model_generation: model.generation,
            network: best,
            alternatives: bodies.collect(),
        })
    }

    /// A network chosen earlier (by the batch refresh, for `request`), explained
    /// as [`Engine::network`] explains the ones it assembles.
    pub fn explain_network(
        &self,
        model: &FittedModel,
        request: &NetworkRequest,
        members: &[u32],
        score: f32,
        breakdown: Breakdown,
    ) -> Result<NetworkResponse, NetworkError> {
        // The refresh chose these members with this model: every one has a position.
        let anchors = self.positions(model, &request.anchors)?;
        let locked = self.positions(model, &request.lock)?;
        let query = model.prepare(&Query { anchors: anchors.clone(), text: request.opportunity.clone() });
        let layout = Layout { anchors: &anchors, locked: &locked, newcomers: &[], candidates: None };
        Ok(NetworkResponse {
            generation: self.index().generation(),
            model_generation: model.generation,
            network: self.network_body(model, &query, request, &layout, members, score, breakdown),
            alternatives: Vec::new(),
        })
    }
}
