//! The network use-case: from a request (anchors, opportunity, size, rules) to
//! the best network and its alternatives, each explained member by member. It
//! scores candidates with the shortlist model, makes sure every rule can be met
//! from the whole catalogue (or says precisely why not), and hands the set
//! selection to `klynge_models::network`.

use std::collections::{BTreeSet, HashSet};

use klynge_models::model::{FittedModel, PreparedQuery, Query, Reason, kind_plural};
use klynge_models::network::{self, Breakdown, Candidate, NetworkSpec};
use klynge_models::{Kind, valuechain};
use serde::Serialize;

use crate::engine::{Engine, EngineError, Partner};

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
}

#[derive(Debug, Clone, Serialize)]
pub struct Member {
    #[serde(flatten)]
    pub partner: Partner,
    /// Value-chain stage and kind, e.g. "manufacturing (company)".
    pub role: String,
    pub stage: Option<&'static str>,
    /// `anchor`, `locked` or `proposed`.
    pub status: &'static str,
}

#[derive(Debug, Clone, Serialize)]
pub struct Link {
    pub from: String,
    pub to: String,
    /// `supplies` (from sells to to) or `worked_together`.
    pub relation: &'static str,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Coverage {
    pub requirement: String,
    pub covered: bool,
    pub by: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NetworkBody {
    pub score: f32,
    pub breakdown: Breakdown,
    pub members: Vec<Member>,
    pub links: Vec<Link>,
    pub stages_covered: Vec<&'static str>,
    pub requirements: Vec<Coverage>,
    /// Value-chain stages the anchors' sectors trade with most that no member covers.
    pub stages_missing: Vec<&'static str>,
}

#[derive(Debug, Clone, Serialize)]
pub struct NetworkResponse {
    pub generation: u64,
    pub model_generation: u64,
    pub network: NetworkBody,
    pub alternatives: Vec<NetworkBody>,
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
        let anchors = self.checked_positions(model, &request.anchors, "anchor")?;
        let locked = self.checked_positions(model, &request.lock, "lock")?;
        let excluded: HashSet<u32> = self.checked_positions(model, &request.exclude, "exclude")?.into_iter().collect();
        let mut required: Vec<u32> = anchors.clone();
        for &firm in &locked {
            if !required.contains(&firm) {
                required.push(firm);
            }
        }
        if required.len() > request.max {
            return Err(NetworkError::Unsatisfiable(format!(
                "{} anchored and locked firms do not fit in a network of at most {}",
                required.len(),
                request.max
            )));
        }
        let allowed = |firm: u32| {
            let meta = &model.meta[firm as usize];
            (request.countries.is_empty() || meta.country.as_ref().is_some_and(|c| request.countries.contains(c)))
                && (request.regions.is_empty()
                    || meta.region.as_ref().is_some_and(|r| request.regions.iter().any(|p| r.starts_with(p.as_str()))))
                && !excluded.contains(&firm)
        };
        let query = model.prepare(&Query { anchors: required.clone(), text: request.opportunity.clone() });
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
        let spec = NetworkSpec {
            min: request.min,
            max: request.max,
            required: required.clone(),
            kinds: request.kinds.clone(),
            min_sme: request.min_sme,
            sectors: request.sectors.clone(),
            stages: request.stages.clone(),
            max_per_country: request.max_per_country,
            alternatives: request.alternatives,
        };
        let networks = network::assemble(model, &spec, &kept)
            .map_err(|infeasible| NetworkError::Unsatisfiable(infeasible.to_string()))?;
        let mut bodies = networks.iter().map(|n| {
            self.network_body(model, &query, request, &anchors, &locked, &n.members, n.score, n.breakdown.clone())
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
        let anchors = self.checked_positions(model, &request.anchors, "anchor")?;
        let locked = self.checked_positions(model, &request.lock, "lock")?;
        let query = model.prepare(&Query { anchors: anchors.clone(), text: request.opportunity.clone() });
        Ok(NetworkResponse {
            generation: self.index().generation(),
            model_generation: model.generation,
            network: self.network_body(model, &query, request, &anchors, &locked, members, score, breakdown),
            alternatives: Vec::new(),
        })
    }

    fn checked_positions(
        &self,
        model: &FittedModel,
        ids: &[String],
        field: &'static str,
    ) -> Result<Vec<u32>, NetworkError> {
        match self.positions(model, ids) {
            Err(EngineError::UnknownFirms(ids)) => {
                let missing = self.index().missing_firms(&ids).map_err(EngineError::from)?;
                if missing.is_empty() {
                    return Err(EngineError::NotInModel(ids[0].clone()).into());
                }
                Err(NetworkError::UnknownFirms { field, ids: missing })
            }
            other => Ok(other?),
        }
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
                Box::new(move |f| model.meta[f as usize].sectors.iter().any(|s| valuechain::stage(s) == stage)),
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
                    || request.stages.iter().any(|st| meta.sectors.iter().any(|s| valuechain::stage(s) == st.as_str()))
            })
            .collect()
    }

    #[allow(clippy::too_many_arguments)]
    fn network_body(
        &self,
        model: &FittedModel,
        query: &PreparedQuery,
        request: &NetworkRequest,
        anchors: &[u32],
        locked: &[u32],
        members: &[u32],
        score: f32,
        breakdown: Breakdown,
    ) -> NetworkBody {
        let table = valuechain::table();
        let stage_of = |f: u32| model.meta[f as usize].sectors.first().map(|s| valuechain::stage(s));
        let body_members = members
            .iter()
            .map(|&f| {
                let stage = stage_of(f);
                let kind = model.meta[f as usize].kind.as_str();
                let mut partner = self.partner(model, query, f);
                if anchors.contains(&f) {
                    // Scored against itself, an anchor's signals would read "close to
                    // the anchor's profile (similarity 1.00)", "same country".
                    partner.reasons = vec![Reason { signal: "anchor", text: ANCHOR_REASON.to_string() }];
                }
                Member {
                    partner,
                    // A stage guessed from a university's project titles ("primary
                    // production") must not read like one the firm declared.
                    role: match stage {
                        Some(stage) if model.meta[f as usize].sectors_inferred => {
                            format!("{stage}? ({kind}, sector inferred from its text)")
                        }
                        Some(stage) => format!("{stage} ({kind})"),
                        None => kind.to_string(),
                    },
                    stage,
                    status: if anchors.contains(&f) {
                        "anchor"
                    } else if locked.contains(&f) {
                        "locked"
                    } else {
                        "proposed"
                    },
                }
            })
            .collect();
        let mut links = Vec::new();
        for (i, &a) in members.iter().enumerate() {
            for &b in &members[i + 1..] {
                let ties = model.graph.ties(a, b);
                if ties > 0 {
                    links.push(Link {
                        from: model.id(a).to_string(),
                        to: model.id(b).to_string(),
                        relation: "worked_together",
                        detail: format!("{ties} past collaboration{}", if ties == 1 { "" } else { "s" }),
                    });
                }
                let rows = |f: u32| model.meta[f as usize].rows.iter().map(|&r| r as usize).collect::<Vec<_>>();
                if let Some(link) = table.best_link(&rows(a), &rows(b)).filter(|l| l.coefficient >= 0.01) {
                    let (from, to) = if link.candidate_supplies { (b, a) } else { (a, b) };
                    links.push(Link {
                        from: model.id(from).to_string(),
                        to: model.id(to).to_string(),
                        relation: "supplies",
                        detail: format!(
                            "{} buys {:.1} % of its inputs from {}",
                            link.buyer,
                            link.coefficient * 100.0,
                            link.supplier
                        ),
                    });
                }
            }
        }
        let stages_covered: BTreeSet<&'static str> = members.iter().filter_map(|&f| stage_of(f)).collect();
        let mut requirements = Vec::new();
        let ids_where = |holds: &dyn Fn(u32) -> bool| -> Vec<String> {
            members.iter().filter(|&&f| holds(f)).map(|&f| model.id(f).to_string()).collect()
        };
        for (kinds, need) in &request.kinds {
            let by = ids_where(&|f| kinds.contains(&model.meta[f as usize].kind));
            let names: Vec<&str> = kinds.iter().map(|k| k.as_str()).collect();
            requirements.push(Coverage {
                requirement: format!("at least {need} {}", names.join(" or ")),
                covered: by.len() >= *need,
                by,
            });
        }
        if request.min_sme > 0 {
            let by = ids_where(&|f| model.meta[f as usize].sme);
            requirements.push(Coverage {
                requirement: format!("at least {} SMEs", request.min_sme),
                covered: by.len() >= request.min_sme,
                by,
            });
        }
        for sector in &request.sectors {
            let by = ids_where(&|f| model.meta[f as usize].sectors.iter().any(|s| s.starts_with(sector.as_str())));
            requirements.push(Coverage { requirement: format!("sector {sector}"), covered: !by.is_empty(), by });
        }
        for stage in &request.stages {
            let by = ids_where(&|f| stage_of(f) == Some(stage.as_str()));
            requirements.push(Coverage { requirement: format!("stage '{stage}'"), covered: !by.is_empty(), by });
        }
        let anchor_rows: Vec<usize> =
            anchors.iter().flat_map(|&a| model.meta[a as usize].rows.iter().map(|&r| r as usize)).collect();
        let mut stages_missing: Vec<&'static str> = table
            .partner_rows(&anchor_rows, 6)
            .into_iter()
            .map(|(row, _)| valuechain::stage(table.code(row)))
            .filter(|stage| !stages_covered.contains(stage))
            .collect();
        stages_missing.dedup();
        NetworkBody {
            score,
            breakdown,
            members: body_members,
            links,
            stages_covered: stages_covered.into_iter().collect(),
            requirements,
            stages_missing,
        }
    }
}
