//! The plain-language reasons behind a candidate's score: one sentence for each
//! of its strongest signals, naming the shared phrase, sector link, past project
//! or partners that carry it.

use std::collections::HashSet;

use serde::Serialize;

use super::query::PreparedQuery;
use super::{FirmMeta, FittedModel, Relation};
use crate::Kind;
use crate::scoring::{Features, SIGNAL_COUNT, Scored, Signal};
use crate::valuechain::{self, SectorLink};

/// One plain-language reason with the signal it explains.
#[derive(Debug, Clone, Serialize)]
pub struct Reason {
    pub signal: &'static str,
    pub text: String,
}

impl FittedModel {
    /// Plain-language reasons for the strongest positive signals of a candidate.
    pub fn reasons(&self, query: &PreparedQuery, candidate: u32, scored: &Scored, features: &Features) -> Vec<Reason> {
        let meta = &self.meta[candidate as usize];
        // A reason needs the signal to be present and to count in the candidate's
        // favour; a below-average value of a negatively weighted signal does not
        // make a reason a cluster manager could repeat.
        let mut order: Vec<usize> = (0..SIGNAL_COUNT)
            .filter(|&s| {
                scored.contributions[s] > 0.05 && features[s] > 0.0 && self.weights_for(query).coefficients[s] > 0.0
            })
            .collect();
        order.sort_by(|&a, &b| scored.contributions[b].total_cmp(&scored.contributions[a]));
        let mut reasons = Vec::new();
        for signal in order {
            let text = match crate::scoring::SIGNALS[signal] {
                Signal::TextSimilarity => {
                    format!("its profile matches the opportunity text (similarity {:.2})", features[signal])
                }
                Signal::TextMatch => {
                    format!("its profile is close to the anchor's (similarity {:.2})", features[signal])
                }
                Signal::OfferNeed => match self.offer_need_pair(query, meta) {
                    Some((need, offer, candidate_offers)) if candidate_offers => {
                        format!("you need '{need}', which it offers ('{offer}')")
                    }
                    Some((offer, need, _)) => {
                        format!("it needs '{need}', which you offer ('{offer}')")
                    }
                    None => "its offers and needs fit yours".to_string(),
                },
                Signal::ValueChain => self.value_chain_reason(query, meta),
                Signal::Ties => {
                    let count: u32 = query.anchors.iter().map(|&a| self.graph.ties(a, candidate) as u32).sum();
                    format!(
                        "has already worked with you ({count} past collaboration{})",
                        if count == 1 { "" } else { "s" }
                    )
                }
                Signal::PartnersOfPartners => {
                    let shared = query.partners_of_partners.get(&candidate).map_or(0, |(_, n)| *n);
                    format!("worked with {shared} of your past partners")
                }
                Signal::KindFit => format!("{} are typical partners here", kind_plural(meta.kind)),
                Signal::SameRegion => {
                    format!("same NUTS-2 region ({})", meta.region2().unwrap_or("-"))
                }
                Signal::SameCountry => {
                    format!("same country ({})", meta.country.as_deref().unwrap_or("-"))
                }
                Signal::Experience => {
                    format!("experienced partner ({} past collaborations)", self.graph.collaborations(candidate))
                }
                Signal::SimilarProjects => {
                    let named = query.similar_projects.get(&candidate).and_then(|similar| {
                        let title = shorten(self.project_texts.title(similar.best)?, 90);
                        let with_anchor =
                            self.projects[similar.best as usize].iter().any(|m| query.anchors.contains(m));
                        Some(if with_anchor {
                            format!("worked with you on '{title}', much like this one")
                        } else {
                            format!("took part in '{title}', much like this one (similarity {:.2})", similar.best_score)
                        })
                    });
                    named.unwrap_or_else(|| "took part in past collaborations much like this one".to_string())
                }
                Signal::SameCluster => {
                    format!("in the same latent cluster ({})", self.clusters.assignment[candidate as usize])
                }
            };
            reasons.push(Reason { signal: crate::scoring::SIGNALS[signal].name(), text });
        }
        // Asked for suppliers or customers, the link is why the firm is on the list,
        // whatever its weight in the score.
        let value_chain = Signal::ValueChain.name();
        if query.relation != Relation::Any && reasons.iter().all(|r| r.signal != value_chain) {
            reasons.push(Reason { signal: value_chain, text: self.value_chain_reason(query, meta) });
        }
        reasons
    }

    fn value_chain_reason(&self, query: &PreparedQuery, meta: &FirmMeta) -> String {
        let Some(link) = self.sector_link(query, meta) else {
            return "its sector complements yours".to_string();
        };
        let role = if link.candidate_supplies { "supplier" } else { "customer" };
        let inferred = match (meta.sectors_inferred, meta.sector_confidence) {
            (true, Some(confidence)) => format!(" (sector inferred from its text, confidence {confidence:.2})"),
            (true, None) => " (sector inferred from its text)".to_string(),
            (false, _) => String::new(),
        };
        format!(
            "value-chain {role}: {} buys {:.1} % of its inputs from {}{inferred}",
            link.buyer,
            link.coefficient * 100.0,
            link.supplier
        )
    }

    /// The strongest supplier/customer relation between the query's sectors and a firm's.
    pub fn sector_link(&self, query: &PreparedQuery, meta: &FirmMeta) -> Option<SectorLink> {
        let rows: Vec<usize> = meta.rows.iter().map(|&r| r as usize).collect();
        match query.relation {
            Relation::Any => valuechain::table().best_link(&query.rows, &rows),
            relation => valuechain::table().best_directed_link(&query.rows, &rows, relation == Relation::Supplier),
        }
    }

    /// The best-overlapping (need, offer) phrase pair; the flag says whether the
    /// candidate is the one offering.
    fn offer_need_pair(&self, query: &PreparedQuery, meta: &FirmMeta) -> Option<(String, String, bool)> {
        let words = |text: &str| -> HashSet<String> {
            text.split(|c: char| !c.is_alphanumeric()).filter(|w| w.len() > 2).map(str::to_lowercase).collect()
        };
        let mut best: Option<(usize, (String, String, bool))> = None;
        for &anchor in &query.anchors {
            let anchor = &self.meta[anchor as usize];
            for (mine, theirs, candidate_offers) in
                [(&anchor.needs, &meta.offers, true), (&anchor.offers, &meta.needs, false)]
            {
                for a in mine {
                    for b in theirs {
                        let overlap = words(a).intersection(&words(b)).count();
                        if overlap > 0 && best.as_ref().is_none_or(|(o, _)| overlap > *o) {
                            best = Some((overlap, (a.clone(), b.clone(), candidate_offers)));
                        }
                    }
                }
            }
        }
        best.map(|(_, pair)| pair)
    }
}

/// At most `limit` characters of `text`, with an ellipsis when cut.
fn shorten(text: &str, limit: usize) -> String {
    if text.chars().count() <= limit {
        return text.to_string();
    }
    let mut short: String = text.chars().take(limit - 1).collect();
    short.push('…');
    short
}

pub fn kind_plural(kind: Kind) -> &'static str {
    match kind {
        Kind::Company => "companies",
        Kind::University => "universities",
        Kind::Research => "research organisations",
        Kind::Public => "public bodies",
        Kind::Other => "organisations of this kind",
    }
}
