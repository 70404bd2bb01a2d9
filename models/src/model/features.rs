//! The signals of a candidate for a prepared query, its score under the learnt
//! weights, and the quantised offer/need vectors the offer–need signal reads.

use ndarray::Array1;
use rayon::prelude::*;

use super::query::PreparedQuery;
use super::{FirmMeta, FittedModel, Relation};
use crate::scoring::{Features, SIGNAL_COUNT, Scored, Signal, Weights};
use crate::text::{TextModel, quantise_into, quantised_dot};
use crate::valuechain;

impl FittedModel {
    pub fn features(&self, query: &PreparedQuery, candidate: u32) -> Features {
        self.features_given(query, candidate, self.text_dots(query, candidate))
    }

    /// Every candidate's score for `query`, as [`FittedModel::score`] gives them
    /// one by one. The text signals are taken first, for all candidates in one
    /// pass: each reads a candidate's embedding (half a kilobyte, somewhere in the
    /// catalogue's), and in a loop doing nothing else the processor fetches several
    /// at once instead of waiting for each between the other signals.
    pub fn scores(&self, query: &PreparedQuery, candidates: &[u32]) -> Vec<f32> {
        // Asking for the rows a few candidates ahead keeps several fetches in flight.
        const AHEAD: usize = 6;
        let dots: Vec<(f32, f32)> = candidates
            .iter()
            .enumerate()
            .map(|(i, &c)| {
                if let Some(&next) = candidates.get(i + AHEAD) {
                    prefetch(self.embeddings.row(next as usize).as_slice().unwrap_or_default());
                }
                self.text_dots(query, c)
            })
            .collect();
        let weights = self.weights_for(query);
        candidates
            .iter()
            .zip(dots)
            .map(|(&c, dots)| weights.score(&self.features_given(query, c, dots)).score)
            .collect()
    }

    /// The candidate's text similarity to the opportunity and to the anchors.
    fn text_dots(&self, query: &PreparedQuery, candidate: u32) -> (f32, f32) {
        let embedding = self.embeddings.row(candidate as usize);
        let dot = |vector: &Option<Array1<f32>>| vector.as_ref().map_or(0.0, |v| v.dot(&embedding));
        (dot(&query.text), dot(&query.anchor_profile))
    }

    fn features_given(&self, query: &PreparedQuery, candidate: u32, (text, profile): (f32, f32)) -> Features {
        let mut f = [0.0f32; SIGNAL_COUNT];
        let c = candidate as usize;
        let hot = self.hot.get(candidate);
        f[Signal::TextSimilarity as usize] = text;
        f[Signal::TextMatch as usize] = profile;
        f[Signal::OfferNeed as usize] = self.offer_need(query, c);
        let rows = self.hot.rows(candidate);
        f[Signal::ValueChain as usize] = match query.relation {
            Relation::Any => valuechain::table().strength(&query.rows, rows),
            relation => valuechain::table().directed_strength(&query.rows, rows, relation == Relation::Supplier),
        } * 10.0;
        let ties: u32 = query.anchors.iter().map(|&a| self.graph.ties(a, candidate) as u32).sum();
        f[Signal::Ties as usize] = (ties as f32).ln_1p();
        f[Signal::PartnersOfPartners as usize] =
            query.partners_of_partners.get(&candidate).map_or(0.0, |(weight, _)| weight.ln_1p());
        f[Signal::KindFit as usize] = if query.anchors.is_empty() {
            self.kind_prior[hot.kind.index()]
        } else {
            query.anchors.iter().map(|&a| self.kind_lift[self.hot.get(a).kind.index()][hot.kind.index()]).sum::<f32>()
                / query.anchors.len() as f32
        };
        let anchors = || query.anchors.iter().map(|&a| self.hot.get(a));
        f[Signal::SameRegion as usize] = anchors().any(|a| a.region2 != 0 && a.region2 == hot.region2) as u8 as f32;
        f[Signal::SameCountry as usize] = anchors().any(|a| a.country != 0 && a.country == hot.country) as u8 as f32;
        f[Signal::Experience as usize] = (self.graph.collaborations(candidate) as f32).ln_1p();
        f[Signal::SimilarProjects as usize] = query.similar_projects.get(&candidate).map_or(0.0, |s| s.sum);
        f[Signal::SameCluster as usize] =
            query.cluster.is_some_and(|cluster| self.clusters.assignment[c] == cluster) as u8 as f32;
        f
    }

    fn offer_need(&self, query: &PreparedQuery, candidate: usize) -> f32 {
        let mut best = 0.0f32;
        if let Some(needs) = &query.needs {
            best = best.max(self.phrases.offers_dot(candidate, needs));
        }
        if let Some(offers) = &query.offers {
            best = best.max(self.phrases.needs_dot(candidate, offers));
        }
        best
    }

    /// The weights that rank candidates for `query`: the anchored ones; the
    /// opportunity-only ones when there is no anchor (and they could be learnt);
    /// the shipped day-one defaults when no anchor has a collaboration on record.
    /// The anchored weights are learnt on anchors known from past collaborations,
    /// where who they worked with and how experienced a candidate is say most;
    /// for a firm with no history (a listed company beside a catalogue of
    /// research consortia) they would propose the most experienced research
    /// bodies whatever the firm does, for no reason a manager could defend.
    pub fn weights_for(&self, query: &PreparedQuery) -> &Weights {
        match &self.opportunity_weights {
            Some(weights) if query.anchors.is_empty() => weights,
            _ if !query.anchors.is_empty() && self.without_history(query) => &crate::scoring::default_weights().weights,
            _ => &self.weights,
        }
    }

    pub fn score(&self, query: &PreparedQuery, candidate: u32) -> Scored {
        self.weights_for(query).score(&self.features(query, candidate))
    }
}

/// Asks the processor to bring `data` into its caches, without waiting for it.
pub(super) fn prefetch<T>(data: &[T]) {
    #[cfg(target_arch = "x86_64")]
    for line in data.chunks((64 / std::mem::size_of::<T>().max(1)).max(1)) {
        // SAFETY: a prefetch is a hint; it reads nothing the program sees and
        // cannot fault, and the pointer is to live memory anyway.
        unsafe {
            std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(line.as_ptr().cast());
        }
    }
}

/// A quantised row and its scale.
type Quantised = (Vec<i8>, f32);

/// Every firm's offers and needs as unit vectors quantised to i8
/// ([`quantise_into`]): a million firms fit in about 260 MB. A firm without
/// offers (needs) has a zero row, which scores 0.
#[derive(Debug, Clone, Default)]
pub struct PhraseVectors {
    dim: usize,
    offers: Vec<i8>,
    needs: Vec<i8>,
    /// (offers, needs) scale of each firm: the largest component / 127.
    scales: Vec<(f32, f32)>,
}

impl PhraseVectors {
    pub(super) fn build(text: &TextModel, meta: &[FirmMeta]) -> PhraseVectors {
        let dim = text.dim();
        let quantise = |phrases: &[String]| -> Quantised {
            let mut row = Vec::with_capacity(dim);
            let scale = if phrases.is_empty() {
                row.resize(dim, 0);
                0.0
            } else {
                quantise_into(text.embed(&phrases.join(". ")).view(), &mut row)
            };
            (row, scale)
        };
        let rows: Vec<(Quantised, Quantised)> =
            meta.par_iter().map(|m| (quantise(&m.offers), quantise(&m.needs))).collect();
        let mut vectors = PhraseVectors {
            dim,
            offers: Vec::with_capacity(rows.len() * dim),
            needs: Vec::with_capacity(rows.len() * dim),
            scales: Vec::with_capacity(rows.len()),
        };
        for ((offers, offer_scale), (needs, need_scale)) in rows {
            vectors.offers.extend(offers);
            vectors.needs.extend(needs);
            vectors.scales.push((offer_scale, need_scale));
        }
        vectors
    }

    fn offers_dot(&self, firm: usize, query: &Array1<f32>) -> f32 {
        let row = &self.offers[firm * self.dim..(firm + 1) * self.dim];
        quantised_dot(row, self.scales[firm].0, query.as_slice().expect("owned vectors are contiguous"))
    }

    fn needs_dot(&self, firm: usize, query: &Array1<f32>) -> f32 {
        let row = &self.needs[firm * self.dim..(firm + 1) * self.dim];
        quantised_dot(row, self.scales[firm].1, query.as_slice().expect("owned vectors are contiguous"))
    }
}
