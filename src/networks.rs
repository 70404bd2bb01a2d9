//! The network use-case: from a request (anchors, opportunity, size, rules) to
//! the best network and its alternatives, each explained member by member. It
//! scores candidates with the shortlist model, makes sure every rule can be met
//! from the whole catalogue (or says precisely why not), and hands the set
//! selection to `klynge_models::network`. It also lays each network out as a
//! value chain a cluster manager (and the web console) can read: stages in
//! upstream-first order with the members at each, the gaps between them, and a
//! link per pair of members that supply, complement or have worked with each
//! other, with its direction and reason.

use std::collections::{BTreeSet, HashMap, HashSet};

use klynge_models::model::{FirmMeta, FittedModel, PreparedQuery, Query, Reason, kind_plural};
use klynge_models::network::{self, Breakdown, Candidate, NetworkSpec, Objective, role_stage};
use klynge_models::{Firm, Kind, valuechain};
use serde::Serialize;

use crate::engine::{Engine, EngineError, Partner};

/// The value-chain stages a request may require, by name (the API checks them).
pub use klynge_models::valuechain::STAGES;

/// Why an anchor is in its own network.
const ANCHOR_REASON: &str = "the firm this network is built around (anchor of the request)";
/// Why a member written since the last fit has no signals or links yet.
const NEWCOMER_REASON: &str = "written since the model's last fit: placed from its profile; \
     its links to the other members appear after the next fit";

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

/// Past collaborations most like the opportunity whose members count as having
/// been together (the same number the shortlist's similar-projects signal sums).
const SIMILAR_PROJECTS: usize = 30;
/// A stage a gap is named for needs this share of a member's inputs (or of the
/// buyer's, when members supply it): a strong link, not one of the many small
/// ones (transport and wholesale supply 5-9 % of the inputs of many sectors).
const GAP_COEFFICIENT: f32 = 0.10;
/// Gaps named at most, strongest first before they are put in chain order.
const MAX_GAPS: usize = 4;
/// Of the candidates whose profiles are closest to the opportunity's wording,
/// this many are looked at, and a stage at least [`OPPORTUNITY_STAGE_HOLDERS`]
/// of them stand at is one the opportunity needs.
const OPPORTUNITY_TOP: usize = 10;
const OPPORTUNITY_STAGE_HOLDERS: usize = 3;

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

/// An anchored or locked firm written since the model's last fit. Rather than
/// answer 503 until the refit, its network is assembled from its profile text
/// and the current model, and it joins as a member described from its profile
/// alone (its role from its kind and stated sectors); it has no model position,
/// so it brings no signals or links until the next fit.
pub struct Newcomer {
    pub id: String,
    pub status: &'static str,
    pub text: String,
    pub meta: FirmMeta,
    pub cluster: u32,
}

/// Sector rows that stand for a member's stage: a stated or confidently inferred
/// sector's; a university's guessed sector says nothing of whom it supplies.
fn chain_rows_of(meta: &FirmMeta) -> Vec<usize> {
    match meta.kind {
        Kind::Company | Kind::Other if role_stage(meta).is_some() => meta.rows.iter().map(|&r| r as usize).collect(),
        _ => Vec::new(),
    }
}

impl Newcomer {
    fn new(model: &FittedModel, id: &str, status: &'static str, firm: &Firm) -> Newcomer {
        let table = valuechain::table();
        let mut rows: Vec<u16> = firm.sectors.iter().filter_map(|s| table.row(s)).map(|r| r as u16).collect();
        rows.sort_unstable();
        rows.dedup();
        let text = firm.text();
        let cluster = model.clusters.nearest(model.text.embed(&text).view(), 1).first().copied().unwrap_or(0);
        let meta = FirmMeta {
            name: firm.name.clone(),
            kind: firm.kind,
            size: firm.size,
            country: firm.country.clone(),
            region: firm.region.clone(),
            sme: firm.is_sme(),
            sectors: firm.sectors.clone(),
            sectors_inferred: false,
            sector_confidence: None,
            stage_margin: if firm.sectors.is_empty() { 0.0 } else { 1.0 },
            rows,
            offers: firm.offers.clone(),
            needs: firm.needs.clone(),
            financial_vehicle: false,
            domain: firm.website_domain(),
            name_key: firm.name_key(),
        };
        Newcomer { id: id.to_string(), status, text, meta, cluster }
    }

    fn member(&self, position: &HashMap<&'static str, usize>) -> Member {
        let meta = &self.meta;
        let stage = role_stage(meta);
        let mut reasons = Vec::new();
        if self.status == "anchor" {
            reasons.push(Reason { signal: "anchor", text: ANCHOR_REASON.to_string() });
        }
        reasons.push(Reason { signal: "newcomer", text: NEWCOMER_REASON.to_string() });
        Member {
            partner: Partner {
                id: self.id.clone(),
                name: meta.name.clone(),
                kind: meta.kind,
                country: meta.country.clone(),
                region: meta.region.clone(),
                sectors: meta.sectors.clone(),
                sectors_inferred: false,
                sector_confidence: None,
                cluster: self.cluster,
                score: 0.0,
                signals: Vec::new(),
                reasons,
            },
            role: network::role(meta),
            stage,
            position: stage.and_then(|s| position.get(s).copied()),
            status: self.status,
        }
    }
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

    /// Everything a request's networks are assembled from: the scored candidates
    /// (most relevant first, then requirement holders below the cut-off, then the
    /// required firms) and the spec. Fails when a rule cannot be met from the
    /// catalogue, naming the rule. `klynge eval --tune-networks` assembles from
    /// one setup under several objectives.
    pub fn network_setup(&self, model: &FittedModel, request: &NetworkRequest) -> Result<NetworkSetup, NetworkError> {
        let mut newcomers = Vec::new();
        let anchors = self.table_positions(model, &request.anchors, "anchor", &mut newcomers)?;
        let locked = self.table_positions(model, &request.lock, "lock", &mut newcomers)?;
        // A firm written since the fit cannot be proposed anyway: excluding it is a no-op.
        let mut excluded_newcomers = Vec::new();
        let excluded: HashSet<u32> =
            self.table_positions(model, &request.exclude, "exclude", &mut excluded_newcomers)?.into_iter().collect();
        let mut required: Vec<u32> = anchors.clone();
        for &firm in &locked {
            if !required.contains(&firm) {
                required.push(firm);
            }
        }
        if required.len() + newcomers.len() > request.max {
            return Err(NetworkError::Unsatisfiable(format!(
                "{} anchored and locked firms do not fit in a network of at most {}",
                required.len() + newcomers.len(),
                request.max
            )));
        }
        let opportunity = match (&request.opportunity, newcomers.is_empty()) {
            (text, true) => text.clone(),
            (text, false) => Some(
                text.iter().cloned().chain(newcomers.iter().map(|n| n.text.clone())).collect::<Vec<_>>().join(". "),
            ),
        };
        let allowed = |firm: u32| {
            let meta = &model.meta[firm as usize];
            (request.countries.is_empty() || meta.country.as_ref().is_some_and(|c| request.countries.contains(c)))
                && (request.regions.is_empty()
                    || meta.region.as_ref().is_some_and(|r| request.regions.iter().any(|p| r.starts_with(p.as_str()))))
                && !excluded.contains(&firm)
        };
        let query = model.prepare(&Query { anchors: required.clone(), text: opportunity.clone() });
        let mut pool: Vec<u32> =
            self.candidates(model, &query)?.into_iter().filter(|&c| allowed(c) && !required.contains(&c)).collect();
        self.ensure_requirements(model, &query, request, &required, &allowed, &mut pool)?;
        let relevance = self.relevance(model, &query, &pool);
        let mut candidates: Vec<Candidate> =
            pool.iter().zip(relevance).map(|(&firm, relevance)| Candidate { firm, relevance }).collect();
        candidates.sort_by(|a, b| b.relevance.total_cmp(&a.relevance).then(a.firm.cmp(&b.firm)));
        let must_keep: HashSet<u32> = self.requirement_holders(model, request, &pool);
        let mut kept: Vec<Candidate> = candidates.iter().take(request.k_candidates).copied().collect();
        kept.extend(candidates.iter().skip(request.k_candidates).filter(|c| must_keep.contains(&c.firm)));
        for &firm in &required {
            kept.push(Candidate { firm, relevance: 0.0 });
        }
        // Who was together in the past collaborations most like the opportunity.
        let mut similar_projects: HashMap<u32, Vec<(u32, f32)>> = HashMap::new();
        if let Some(text) = &opportunity {
            let kept_firms: HashSet<u32> = kept.iter().map(|c| c.firm).collect();
            for (project, score) in model.project_texts.most_similar(&model.text.sparse(text), None, SIMILAR_PROJECTS) {
                for &member in &model.projects[project as usize] {
                    if kept_firms.contains(&member) {
                        similar_projects.entry(member).or_default().push((project, score));
                    }
                }
            }
            similar_projects.values_mut().for_each(|list| list.sort_by_key(|&(project, _)| project));
        }
        let spec = NetworkSpec {
            similar_projects,
            // Newcomers take their seats outside the assembly.
            min: request.min.saturating_sub(newcomers.len()).max(1),
            max: request.max - newcomers.len(),
            required: required.clone(),
            kinds: request.kinds.clone(),
            min_sme: request.min_sme,
            sectors: request.sectors.clone(),
            stages: request.stages.clone(),
            max_per_country: request.max_per_country,
            alternatives: request.alternatives,
            objective: request.objective,
        };
        Ok(NetworkSetup { query, anchors, locked, newcomers, candidates: kept, spec })
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

    /// The model positions of a request field's ids; one the index holds but the
    /// model does not (written since the last fit) becomes a [`Newcomer`], and
    /// ids without a profile are an error naming the field.
    fn table_positions(
        &self,
        model: &FittedModel,
        ids: &[String],
        field: &'static str,
        newcomers: &mut Vec<Newcomer>,
    ) -> Result<Vec<u32>, NetworkError> {
        let status = if field == "anchor" { "anchor" } else { "locked" };
        let mut positions = Vec::new();
        let mut missing = Vec::new();
        for id in ids {
            if let Some(position) = model.position(id) {
                if !positions.contains(&position) {
                    positions.push(position);
                }
            } else if newcomers.iter().any(|n| &n.id == id) {
                continue;
            } else if let Some(stored) = self.index().get_firm(id).map_err(EngineError::from)? {
                newcomers.push(Newcomer::new(model, id, status, &stored.firm));
            } else {
                missing.push(id.clone());
            }
        }
        if missing.is_empty() { Ok(positions) } else { Err(NetworkError::UnknownFirms { field, ids: missing }) }
    }

    /// For every rule, checks that the catalogue (within the allowed countries and
    /// regions) holds enough firms to meet it, and adds the most relevant of them
    /// to the pool when retrieval did not bring them.
    fn ensure_requirements(
        &self,
        model: &FittedModel,
        query: &PreparedQuery,
        request: &NetworkRequest,
        required: &[u32],
        allowed: &dyn Fn(u32) -> bool,
        pool: &mut Vec<u32>,
    ) -> Result<(), NetworkError> {
        let place = || {
            let mut parts = Vec::new();
            if !request.regions.is_empty() {
                parts.push(format!("region {}", request.regions.join("/")));
            }
            if !request.countries.is_empty() {
                parts.push(format!("countries {}", request.countries.join("/")));
            }
            if parts.is_empty() { "the catalogue".to_string() } else { parts.join(", ") }
        };
        type Rule<'r> = (String, usize, Box<dyn Fn(u32) -> bool + 'r>);
        let mut rules: Vec<Rule> = Vec::new();
        for (kinds, need) in &request.kinds {
            let names: Vec<&str> = kinds.iter().map(|&k| kind_plural(k)).collect();
            let kinds = kinds.clone();
            rules.push((names.join(" or "), *need, Box::new(move |f| kinds.contains(&model.meta[f as usize].kind))));
        }
        if request.min_sme > 0 {
            rules.push(("SMEs".to_string(), request.min_sme, Box::new(|f| model.meta[f as usize].sme)));
        }
        for sector in &request.sectors {
            let prefix = sector.clone();
            rules.push((
                format!("firms in sector {sector}"),
                1,
                Box::new(move |f| model.meta[f as usize].sectors.iter().any(|s| s.starts_with(prefix.as_str()))),
            ));
        }
        for stage in &request.stages {
            let stage = stage.clone();
            rules.push((
                format!("firms at stage '{stage}'"),
                1,
                Box::new(move |f| role_stage(&model.meta[f as usize]) == Some(stage.as_str())),
            ));
        }
        let in_pool: HashSet<u32> = pool.iter().copied().collect();
        for (name, need, holds) in &rules {
            let have_required = required.iter().filter(|&&f| holds(f)).count();
            if have_required >= *need {
                continue;
            }
            let mut matching: Vec<u32> =
                (0..model.len() as u32).filter(|&f| !required.contains(&f) && allowed(f) && holds(f)).collect();
            if have_required + matching.len() < *need {
                return Err(NetworkError::Unsatisfiable(format!(
                    "the network needs {need} of the {name}, but only {} exist in {}",
                    have_required + matching.len(),
                    place()
                )));
            }
            if matching.iter().filter(|f| in_pool.contains(f)).count() >= need - have_required + 2 {
                continue;
            }
            // Cheap pre-ranking by embedding similarity, then the real score decides.
            if let Some(vector) = &query.combined {
                matching.sort_by(|&a, &b| {
                    vector.dot(&model.embedding(b)).total_cmp(&vector.dot(&model.embedding(a))).then(a.cmp(&b))
                });
            }
            for firm in matching.into_iter().take(need * 5 + 5) {
                if !in_pool.contains(&firm) {
                    pool.push(firm);
                }
            }
        }
        Ok(())
    }

    /// Pool members that satisfy some rule, kept even below the candidate cut-off.
    fn requirement_holders(&self, model: &FittedModel, request: &NetworkRequest, pool: &[u32]) -> HashSet<u32> {
        pool.iter()
            .copied()
            .filter(|&f| {
                let meta = &model.meta[f as usize];
                request.kinds.iter().any(|(kinds, _)| kinds.contains(&meta.kind))
                    || (request.min_sme > 0 && meta.sme)
                    || request.sectors.iter().any(|p| meta.sectors.iter().any(|s| s.starts_with(p.as_str())))
                    || request.stages.iter().any(|st| role_stage(meta) == Some(st.as_str()))
            })
            .collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn network_body(
        &self,
        model: &FittedModel,
        query: &PreparedQuery,
        request: &NetworkRequest,
        layout: &Layout,
        members: &[u32],
        score: f32,
        breakdown: Breakdown,
    ) -> NetworkBody {
        let meta = |f: u32| &model.meta[f as usize];
        let stage_of = |f: u32| role_stage(meta(f));
        let chain_rows = |f: u32| -> Vec<usize> { chain_rows_of(meta(f)) };
        let newcomer_stage = |n: &Newcomer| role_stage(&n.meta);
        let covered: BTreeSet<&'static str> = members
            .iter()
            .filter_map(|&f| stage_of(f))
            .chain(layout.newcomers.iter().filter_map(newcomer_stage))
            .collect();
        let gaps = self.gaps(model, query, request, layout, members, &covered, &chain_rows);
        let mut stage_rows: Vec<(&'static str, Vec<usize>)> = Vec::new();
        for &f in members {
            if let Some(stage) = stage_of(f) {
                stage_rows.push((stage, chain_rows(f)));
            }
        }
        for newcomer in layout.newcomers {
            if let Some(stage) = newcomer_stage(newcomer) {
                stage_rows.push((stage, chain_rows_of(&newcomer.meta)));
            }
        }
        for (stage, rows, _) in &gaps {
            stage_rows.push((stage, rows.clone()));
        }
        let order = network::chain_order(&stage_rows);
        let position: HashMap<&'static str, usize> = order.iter().enumerate().map(|(i, &s)| (s, i + 1)).collect();
        let chain: Vec<ChainStage> = order
            .iter()
            .map(|&stage| {
                let gap = gaps.iter().find(|(s, _, _)| *s == stage);
                ChainStage {
                    position: position[stage],
                    stage,
                    members: layout
                        .newcomers
                        .iter()
                        .filter(|n| newcomer_stage(n) == Some(stage))
                        .map(|n| n.id.clone())
                        .chain(
                            members.iter().filter(|&&f| stage_of(f) == Some(stage)).map(|&f| model.id(f).to_string()),
                        )
                        .collect(),
                    gap: gap.is_some(),
                    reason: gap.map(|(_, _, reason)| reason.clone()),
                }
            })
            .collect();
        let newcomer_members: Vec<Member> = layout.newcomers.iter().map(|n| n.member(&position)).collect();
        let body_members = newcomer_members
            .into_iter()
            .chain(members.iter().map(|&f| {
                let stage = stage_of(f);
                let mut partner = self.partner(model, query, f);
                if layout.anchors.contains(&f) {
                    // Scored against itself, an anchor's signals would read "close to
                    // the anchor's profile (similarity 1.00)", "same country".
                    partner.reasons = vec![Reason { signal: "anchor", text: ANCHOR_REASON.to_string() }];
                }
                Member {
                    partner,
                    role: network::role(meta(f)),
                    stage,
                    position: stage.map(|s| position[s]),
                    status: if layout.anchors.contains(&f) {
                        "anchor"
                    } else if layout.locked.contains(&f) {
                        "locked"
                    } else {
                        "proposed"
                    },
                }
            }))
            .collect();
        let links = links(model, members, &chain_rows, &|f| stage_of(f).map(|s| position[s]));
        let mut requirements = Vec::new();
        let ids_where = |holds: &dyn Fn(u32) -> bool| -> Vec<String> {
            members.iter().filter(|&&f| holds(f)).map(|&f| model.id(f).to_string()).collect()
        };
        for (kinds, need) in &request.kinds {
            let by = ids_where(&|f| kinds.contains(&meta(f).kind));
            let names: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
            requirements.push(Coverage {
                requirement: format!("at least {need} {}", names.join(" or ")),
                covered: by.len() >= *need,
                by,
            });
        }
        if request.min_sme > 0 {
            let by = ids_where(&|f| meta(f).sme);
            requirements.push(Coverage {
                requirement: format!("at least {} SMEs", request.min_sme),
                covered: by.len() >= request.min_sme,
                by,
            });
        }
        for sector in &request.sectors {
            let by = ids_where(&|f| meta(f).sectors.iter().any(|s| s.starts_with(sector.as_str())));
            requirements.push(Coverage { requirement: format!("sector {sector}"), covered: !by.is_empty(), by });
        }
        for stage in &request.stages {
            let by = ids_where(&|f| stage_of(f) == Some(stage.as_str()));
            requirements.push(Coverage { requirement: format!("stage '{stage}'"), covered: !by.is_empty(), by });
        }
        let gap_stages: Vec<&'static str> = chain.iter().filter(|c| c.gap).map(|c| c.stage).collect();
        NetworkBody {
            score,
            breakdown,
            members: body_members,
            links,
            stages_covered: chain.iter().filter(|c| !c.gap).map(|c| c.stage).collect(),
            chain,
            gaps: gap_stages.clone(),
            requirements,
            stages_missing: gap_stages,
        }
    }

    /// Stages no member covers that the network needs, each with the rows that
    /// place it in the chain and the reason: a stage the request requires; one the
    /// opportunity's best-fitting firms stand at; one the members' sectors buy
    /// much of their inputs from, or sell much of their output to.
    #[allow(clippy::too_many_arguments)]
    fn gaps(
        &self,
        model: &FittedModel,
        query: &PreparedQuery,
        request: &NetworkRequest,
        layout: &Layout,
        members: &[u32],
        covered: &BTreeSet<&'static str>,
        chain_rows: &dyn Fn(u32) -> Vec<usize>,
    ) -> Vec<(&'static str, Vec<usize>, String)> {
        let mut gaps: Vec<(&'static str, Vec<usize>, String)> = Vec::new();
        let mut add = |stage: &'static str, rows: Vec<usize>, reason: String| {
            if !covered.contains(stage) && !gaps.iter().any(|(s, _, _)| *s == stage) && gaps.len() < MAX_GAPS {
                gaps.push((stage, rows, reason));
            }
        };
        for stage in &request.stages {
            if let Some(&stage) = valuechain::STAGES.iter().find(|s| **s == stage.as_str()) {
                add(stage, Vec::new(), "the request requires it".to_string());
            }
        }
        if let (Some(candidates), Some(text)) = (layout.candidates, &query.text) {
            let mut closest: Vec<(f32, u32)> =
                candidates.iter().map(|c| (text.dot(&model.embedding(c.firm)), c.firm)).collect();
            closest.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
            let mut counts: Vec<(&'static str, usize)> = Vec::new();
            for stage in closest.iter().take(OPPORTUNITY_TOP).filter_map(|&(_, f)| role_stage(&model.meta[f as usize]))
            {
                match counts.iter_mut().find(|(s, _)| *s == stage) {
                    Some((_, n)) => *n += 1,
                    None => counts.push((stage, 1)),
                }
            }
            counts.sort_by_key(|&(_, n)| std::cmp::Reverse(n));
            for (stage, n) in counts.into_iter().filter(|(_, n)| *n >= OPPORTUNITY_STAGE_HOLDERS) {
                add(
                    stage,
                    Vec::new(),
                    format!("{n} of the {OPPORTUNITY_TOP} candidates closest to the opportunity's wording stand here"),
                );
            }
        }
        let table = valuechain::table();
        let mut neighbours: Vec<(f32, u32, usize, usize)> = Vec::new();
        for &f in members {
            for own in chain_rows(f) {
                for (row, strength) in table.partner_rows(&[own], 6) {
                    if strength >= GAP_COEFFICIENT {
                        neighbours.push((strength, f, own, row));
                    }
                }
            }
        }
        neighbours.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.3.cmp(&b.3)));
        for (_, member, own, row) in neighbours {
            let stage = valuechain::stage(table.code(row));
            let Some(link) = network::supply(&[own], &[row]) else { continue };
            let name = &model.meta[member as usize].name;
            let reason = if link.first_supplies {
                format!(
                    "{} buys {:.1} % of its inputs from {name} ({})",
                    link.buyer,
                    link.coefficient * 100.0,
                    link.supplier
                )
            } else {
                format!(
                    "{name} ({}) buys {:.1} % of its inputs from {}",
                    link.buyer,
                    link.coefficient * 100.0,
                    link.supplier
                )
            };
            add(stage, vec![row], reason);
        }
        gaps
    }
}

/// Words of an offer or need that carry meaning (a short stop list: offers and
/// needs are short phrases).
fn content_words(text: &str) -> HashSet<String> {
    const STOP: [&str; 8] = ["and", "the", "for", "with", "from", "our", "of", "to"];
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| w.chars().count() > 2)
        .map(str::to_lowercase)
        .filter(|w| !STOP.contains(&w.as_str()))
        .collect()
}

/// An offer of `a` that meets a need of `b`: the pair sharing most content words.
fn offer_meets_need(model: &FittedModel, a: u32, b: u32) -> Option<(String, String)> {
    let mut best: Option<(usize, String, String)> = None;
    for offer in &model.meta[a as usize].offers {
        let words = content_words(offer);
        for need in &model.meta[b as usize].needs {
            let shared = words.intersection(&content_words(need)).count();
            if shared > 0 && best.as_ref().is_none_or(|(n, _, _)| shared > *n) {
                best = Some((shared, offer.clone(), need.clone()));
            }
        }
    }
    best.map(|(_, offer, need)| (offer, need))
}

/// One link per pair of members that supply each other (input-output table),
/// complement each other (offers meet needs) or have worked together; directed
/// from supplier to buyer, else from the more upstream member.
fn links(
    model: &FittedModel,
    members: &[u32],
    chain_rows: &dyn Fn(u32) -> Vec<usize>,
    position: &dyn Fn(u32) -> Option<usize>,
) -> Vec<Link> {
    let mut links = Vec::new();
    for (i, &a) in members.iter().enumerate() {
        for &b in &members[i + 1..] {
            let mut reasons = Vec::new();
            let mut direction: Option<(u32, u32)> = None;
            let mut coefficient = None;
            if let Some(link) = network::supply(&chain_rows(a), &chain_rows(b)) {
                let (from, to) = if link.first_supplies { (a, b) } else { (b, a) };
                direction = Some((from, to));
                coefficient = Some(link.coefficient);
                reasons.push(LinkReason {
                    relation: "supplies",
                    text: format!(
                        "{} supplies {}: {} buys {:.1} % of its inputs from {}",
                        model.meta[from as usize].name,
                        model.meta[to as usize].name,
                        link.buyer,
                        link.coefficient * 100.0,
                        link.supplier
                    ),
                });
            }
            for (from, to) in [(a, b), (b, a)] {
                if let Some((offer, need)) = offer_meets_need(model, from, to) {
                    direction.get_or_insert((from, to));
                    reasons.push(LinkReason {
                        relation: "complements",
                        text: format!(
                            "{} offers '{offer}', which {} needs ('{need}')",
                            model.meta[from as usize].name, model.meta[to as usize].name
                        ),
                    });
                }
            }
            let ties = model.graph.ties(a, b) as u32;
            if ties > 0 {
                reasons.push(LinkReason {
                    relation: "worked_together",
                    text: format!("{ties} past collaboration{}", if ties == 1 { "" } else { "s" }),
                });
            }
            if reasons.is_empty() {
                continue;
            }
            let directed = direction.is_some();
            let (from, to) = direction.unwrap_or_else(|| {
                // Undirected: drawn from the more upstream member (unknown stages last).
                let key = |f: u32| position(f).unwrap_or(usize::MAX);
                if key(b) < key(a) { (b, a) } else { (a, b) }
            });
            links.push(Link {
                from: model.id(from).to_string(),
                to: model.id(to).to_string(),
                relation: reasons[0].relation,
                directed,
                detail: reasons.iter().map(|r| r.text.as_str()).collect::<Vec<_>>().join("; "),
                reasons,
                coefficient,
                collaborations: ties,
            });
        }
    }
    links
}
