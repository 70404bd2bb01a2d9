//! The set-up of an assembly: the request's anchored, locked and excluded firms
//! resolved, the candidates retrieved and scored, every rule checked against the
//! whole catalogue (with holders added to the pool when retrieval missed them),
//! and the spec `klynge_models::network::assemble` selects from.

use std::collections::{HashMap, HashSet};

use klynge_models::model::{FittedModel, PreparedQuery, Query, kind_plural};
use klynge_models::network::{Candidate, NetworkSpec, role_stage};

use super::{NetworkError, NetworkRequest, NetworkSetup, Newcomer};
use crate::engine::{Engine, EngineError};

/// Past collaborations most like the opportunity whose members count as having
/// been together (the same number the shortlist's similar-projects signal sums).
const SIMILAR_PROJECTS: usize = 30;

impl Engine {
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
            for (project, score) in model.project_texts.most_similar(&model.text.sparse(text), SIMILAR_PROJECTS) {
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
}
