//! Shortlists: candidates from the model's retrievers and BM25 over the index,
//! filtered, scored (a group at the table by its fit to the whole group) and
//! explained signal by signal, with plain-language reasons.

use rustc_hash::FxHashSet;

use klynge_index::TextField;
use klynge_models::model::{FittedModel, PreparedQuery, Query, Reason, pair_features};
use klynge_models::scoring::{Features, SIGNAL_COUNT, SIGNALS, Scored, Signal};

use super::{Engine, EngineError, Filters, Partner, Shortlist, ShortlistRequest, SignalValue};

/// Candidates each retriever contributes before scoring.
const PER_SOURCE: usize = 150;

impl Engine {
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
        let excluded: FxHashSet<u32> = request.filters.exclude.iter().filter_map(|id| model.position(id)).collect();
        let include_vehicles = request.filters.include_financial_vehicles;
        let kept = model.proposable_among(&query, &candidates, include_vehicles, |c| {
            !excluded.contains(&c) && self.passes(model, c, &request.filters)
        });
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
            return model.scores(query, candidates);
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
        let mut seen: FxHashSet<u32> = candidates.iter().copied().chain(query.anchors.iter().copied()).collect();
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
        filters.profile.matches(&model.meta[candidate as usize])
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
                .map(|&member| (pair.score(&pair_features(model, member, c)).score - unlinked).max(0.0))
                .sum();
            base + fit
        })
        .collect()
}

/// A prepared query, how many candidates were scored, and the top `(position, score)`.
type Ranked = (PreparedQuery, usize, Vec<(u32, f32)>);

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
