//! Query preparation and candidate retrieval: everything a query needs computed
//! once (its vectors, sectors, partners of partners, similar past projects, key
//! terms) and the candidates the model itself proposes for it.

use rustc_hash::{FxHashMap, FxHashSet};

use ndarray::Array1;

use super::{FirmMeta, FittedModel, Relation};
use crate::text::normalise;
use crate::valuechain;

/// Terms of an opportunity used to retrieve and explain matches.
const KEY_TERMS: usize = 16;

/// A recommendation request as the model sees it.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub anchors: Vec<u32>,
    pub text: Option<String>,
}

/// A query with everything computed once, shared by all its candidates.
pub struct PreparedQuery {
    pub anchors: Vec<u32>,
    /// The side of the value chain asked for.
    pub relation: Relation,
    pub text: Option<Array1<f32>>,
    pub anchor_profile: Option<Array1<f32>>,
    /// The vector retrieval and clustering use: text and anchors combined.
    pub combined: Option<Array1<f32>>,
    pub cluster: Option<u32>,
    /// Every cluster, the nearest `combined` first (empty without it).
    clusters_by_closeness: Vec<u32>,
    pub rows: Vec<usize>,
    pub(super) partners_of_partners: FxHashMap<u32, (f32, u16)>,
    /// Firms of the past collaborations most similar to the query.
    pub(super) similar_projects: FxHashMap<u32, SimilarProjects>,
    /// The opportunity's most distinctive terms, heaviest first: its BM25 query,
    /// and what a profile is shown to share with it.
    pub key_terms: Vec<String>,
    pub(super) needs: Option<Array1<f32>>,
    pub(super) offers: Option<Array1<f32>>,
}

/// A firm's share of the past collaborations most like a query: the summed
/// similarity (the signal) and the most similar one (named in its reason).
#[derive(Debug, Clone, Copy)]
pub(super) struct SimilarProjects {
    pub(super) sum: f32,
    pub(super) best: u32,
    pub(super) best_score: f32,
}

impl FittedModel {
    pub fn prepare(&self, query: &Query) -> PreparedQuery {
        self.prepare_with(query, Relation::Any)
    }

    /// Whether `candidate` may be proposed for `query`: not an anchor's other
    /// listing, not a financial vehicle (unless asked for), and on the asked side
    /// of the value chain.
    pub fn proposable(&self, query: &PreparedQuery, candidate: u32, include_financial_vehicles: bool) -> bool {
        let hot = self.hot.get(candidate);
        if hot.financial_vehicle && !include_financial_vehicles {
            return false;
        }
        if query.anchors.iter().any(|&a| a == candidate || self.hot.get(a).same_organisation(hot)) {
            return false;
        }
        match query.relation {
            Relation::Any => true,
            relation => {
                let rows = self.hot.rows(candidate);
                valuechain::table().directed_strength(&query.rows, rows, relation == Relation::Supplier) > 0.0
            }
        }
    }

    /// The `candidates` that `keep` and [`FittedModel::proposable`] both accept,
    /// in order. Each candidate's record is asked for a few candidates ahead: this
    /// is the first time a request reads them, and waiting for each in turn was
    /// a twentieth of a request.
    pub fn proposable_among(
        &self,
        query: &PreparedQuery,
        candidates: &[u32],
        include_financial_vehicles: bool,
        keep: impl Fn(u32) -> bool,
    ) -> Vec<u32> {
        const AHEAD: usize = 8;
        for &candidate in candidates.iter().take(AHEAD) {
            self.hot.prefetch(candidate);
        }
        let mut kept = Vec::with_capacity(candidates.len());
        for (i, &candidate) in candidates.iter().enumerate() {
            if let Some(&next) = candidates.get(i + AHEAD) {
                self.hot.prefetch(next);
            }
            if keep(candidate) && self.proposable(query, candidate, include_financial_vehicles) {
                kept.push(candidate);
            }
        }
        kept
    }

    /// [`FittedModel::prepare`] for suppliers or customers only.
    pub fn prepare_with(&self, query: &Query, relation: Relation) -> PreparedQuery {
        let text = query.text.as_deref().filter(|t| !t.trim().is_empty()).map(|t| self.text.embed(t));
        let anchor_profile = (!query.anchors.is_empty()).then(|| {
            let mut sum = Array1::zeros(self.text.dim());
            for &anchor in &query.anchors {
                sum += &self.embeddings.row(anchor as usize);
            }
            normalise(sum.view_mut());
            sum
        });
        let combined = match (&text, &anchor_profile) {
            (Some(t), Some(a)) => {
                let mut sum = t + a;
                normalise(sum.view_mut());
                Some(sum)
            }
            (Some(v), None) | (None, Some(v)) => Some(v.clone()),
            (None, None) => None,
        };
        let clusters_by_closeness = combined.as_ref().map_or_else(Vec::new, |v| self.clusters.order(v.view()));
        let cluster = clusters_by_closeness.first().copied();
        let mut rows: Vec<usize> =
            query.anchors.iter().flat_map(|&a| self.meta[a as usize].rows.iter().map(|&r| r as usize)).collect();
        rows.sort_unstable();
        rows.dedup();
        let joined = |pick: fn(&FirmMeta) -> &Vec<String>| {
            let text: Vec<&str> =
                query.anchors.iter().flat_map(|&a| pick(&self.meta[a as usize]).iter().map(String::as_str)).collect();
            (!text.is_empty()).then(|| self.text.embed(&text.join(". ")))
        };
        // Projects like the opportunity or, without one, like the anchors' own.
        let project_query = match &query.text {
            Some(text) if !text.trim().is_empty() => self.text.sparse(text),
            _ => {
                let own: Vec<&[(u32, f32)]> = query
                    .anchors
                    .iter()
                    .flat_map(|&a| self.firm_projects[a as usize].iter())
                    .map(|&p| self.project_texts.vector(p))
                    .collect();
                crate::projects::sum_unit(&own)
            }
        };
        let similar_projects = self.similar_projects(&project_query);
        let key_terms = match &query.text {
            Some(text) => self.text.key_terms(text, KEY_TERMS),
            None => Vec::new(),
        };
        PreparedQuery {
            key_terms,
            anchors: query.anchors.clone(),
            relation,
            text,
            anchor_profile,
            combined,
            cluster,
            clusters_by_closeness,
            rows,
            partners_of_partners: self.graph.partners_of_partners(&query.anchors),
            similar_projects,
            needs: joined(|m| &m.needs),
            offers: joined(|m| &m.offers),
        }
    }

    /// Candidates the model itself proposes: nearest profiles, partners of
    /// partners, experienced firms of complementary sectors, and the most
    /// experienced firms overall. The service adds BM25 matches from the index.
    pub fn candidates(&self, query: &PreparedQuery, per_source: usize) -> Vec<u32> {
        let mut seen: FxHashSet<u32> = query.anchors.iter().copied().collect();
        let mut out = Vec::new();
        let mut push = |firm: u32, out: &mut Vec<u32>| {
            if seen.insert(firm) {
                out.push(firm);
            }
        };
        if let Some(vector) = &query.combined {
            // Without any tie, firms like the anchor are most of what can be found
            // (no partners of partners, experienced firms or similar projects), so
            // the nearest profiles get the places those sources would have had.
            let per_source = if self.without_history(query) { per_source * 2 } else { per_source };
            let probes = (self.clusters.lists.len() / 16).clamp(4, 32);
            let budget = (per_source * 20).max(2_000);
            let order = &query.clusters_by_closeness;
            for (firm, _) in self.clusters.nearest_firms(vector.view(), order, probes, budget, per_source) {
                push(firm, &mut out);
            }
        }
        for &anchor in &query.anchors {
            for &(partner, _) in self.graph.partners(anchor) {
                push(partner, &mut out);
            }
        }
        let mut similar: Vec<(&u32, f32)> = query.similar_projects.iter().map(|(f, s)| (f, s.sum)).collect();
        similar.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
        for (&firm, _) in similar.into_iter().take(per_source) {
            push(firm, &mut out);
        }
        let mut pop: Vec<(&u32, &(f32, u16))> = query.partners_of_partners.iter().collect();
        pop.sort_by(|a, b| b.1.0.total_cmp(&a.1.0).then(a.0.cmp(b.0)));
        for (&firm, _) in pop.into_iter().take(per_source * 2) {
            push(firm, &mut out);
        }
        // Firms of the sectors the anchors buy from or sell to: the most experienced
        // of each, or, in a catalogue without ties (where experience says nothing),
        // those whose profiles are nearest the query, so that a brewery meets the
        // maltsters and glassworks that write about beer, not any farm or glassworks.
        let day_one = self.without_history(query);
        // A sector's firms nearest the query lie in the clusters nearest it: only
        // the nearest quarter of the clusters is scanned (the whole sector when
        // they hold too few of its firms). Scanning each linked sector's 2,000
        // firms was most of a day-one request's time.
        let near_clusters: Option<Vec<bool>> = query.combined.as_ref().filter(|_| day_one).map(|_| {
            let mut near = vec![false; self.clusters.lists.len()];
            for &cluster in query.clusters_by_closeness.iter().take((self.clusters.lists.len() / 4).max(1)) {
                near[cluster as usize] = true;
            }
            near
        });
        for (row, _) in valuechain::table().partner_rows(&query.rows, 6) {
            let take = per_source / 6 + 1;
            match (&query.combined, &near_clusters) {
                (Some(vector), Some(near)) => {
                    let query = vector.as_slice().expect("owned vectors are contiguous");
                    for (firm, _) in self.row_scans[row].nearest(query, near, take, take) {
                        push(firm, &mut out);
                    }
                }
                _ => {
                    for &firm in self.firms_by_row[row].iter().take(take) {
                        push(firm, &mut out);
                    }
                }
            }
        }
        // The most experienced firms overall join an anchor's pool (the partners an
        // anchor's own circle may not reach), but not an opportunity's: there they
        // would be the same firms for every text, and the learnt opportunity weights
        // (experience counts in who joins a consortium) would lead every shortlist
        // with them, relevant or not. Experienced firms that are relevant still come
        // in through the text and similar-projects sources.
        if !query.anchors.is_empty() && !day_one {
            for &firm in self.experienced.iter().take(per_source / 2) {
                push(firm, &mut out);
            }
        }
        out
    }

    /// Whether past collaborations can say nothing about `query`'s partners: the
    /// catalogue has none (day one), or it asks for partners of anchors none of
    /// which took part in one. Such a query is ranked like day one (the shipped
    /// defaults, candidates from the text and the value chain).
    pub fn without_history(&self, query: &PreparedQuery) -> bool {
        self.experienced.is_empty()
            || (!query.anchors.is_empty() && query.anchors.iter().all(|&a| self.graph.collaborations(a) == 0))
    }

    /// Sums, per firm, the similarity of the query to the past collaborations it was
    /// in, over the most similar collaborations only.
    fn similar_projects(&self, query: &[(u32, f32)]) -> FxHashMap<u32, SimilarProjects> {
        const TOP: usize = 30;
        let mut out: FxHashMap<u32, SimilarProjects> = FxHashMap::default();
        // Best first, so a member's first project is its most similar one.
        for (project, score) in self.project_texts.most_similar(query, TOP) {
            for &member in &self.projects[project as usize] {
                out.entry(member).and_modify(|similar| similar.sum += score).or_insert(SimilarProjects {
                    sum: score,
                    best: project,
                    best_score: score,
                });
            }
        }
        out
    }
}
