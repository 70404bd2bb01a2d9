//! Newcomers: anchored or locked firms the index holds but the model does not
//! yet (written since its last fit), placed from their profiles alone.

use std::collections::HashMap;

use klynge_models::model::{FirmMeta, FittedModel, Reason};
use klynge_models::network::{self, role_stage};
use klynge_models::{Firm, Kind, valuechain};

use super::{ANCHOR_REASON, Member};
use crate::engine::Partner;

/// Why a member written since the last fit has no signals or links yet.
const NEWCOMER_REASON: &str = "written since the model's last fit: placed from its profile; \
     its links to the other members appear after the next fit";
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
pub(super) fn chain_rows_of(meta: &FirmMeta) -> Vec<usize> {
    match meta.kind {
        Kind::Company | Kind::Other if role_stage(meta).is_some() => meta.rows.iter().map(|&r| r as usize).collect(),
        _ => Vec::new(),
    }
}

impl Newcomer {
    pub(super) fn new(model: &FittedModel, id: &str, status: &'static str, firm: &Firm) -> Newcomer {
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

    pub(super) fn member(&self, position: &HashMap<&'static str, usize>) -> Member {
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
