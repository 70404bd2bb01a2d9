//! What scoring and filtering read of every candidate, packed into one small
//! record per firm: its kind, whether it is a financial vehicle, its sector rows,
//! and its country, NUTS-2 region, website domain and normalised name as interned
//! numbers. A request scores a few hundred candidates scattered over the whole
//! catalogue; reading them from [`FirmMeta`] (strings and vectors on the heap)
//! missed the cache two or three times per candidate, which was most of what
//! scoring a candidate cost. Rebuilt on every fit and load, never saved.

use std::collections::HashMap;

use super::FirmMeta;
use crate::Kind;

/// One firm's record: 24 bytes. Interned strings are numbered from 1; 0 is
/// "not given", so two firms without a country do not share one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Hot {
    pub kind: Kind,
    pub financial_vehicle: bool,
    rows_len: u16,
    rows_start: u32,
    pub country: u32,
    pub region2: u32,
    domain: u32,
    name_key: u32,
}

impl Hot {
    /// Whether `other` is the same organisation under another id: the same
    /// website domain, or the same normalised name in the same country (a name
    /// alone is not enough: two firms called "Nordic Foods" in two countries are
    /// two firms).
    pub fn same_organisation(&self, other: &Hot) -> bool {
        (self.domain != 0 && self.domain == other.domain)
            || (self.name_key != 0 && self.name_key == other.name_key && self.country == other.country)
    }
}

/// `text`'s number, 0 for none.
fn intern<'a>(interned: &mut HashMap<&'a str, u32>, text: Option<&'a str>) -> u32 {
    match text {
        None => 0,
        Some(text) => {
            let next = interned.len() as u32 + 1;
            *interned.entry(text).or_insert(next)
        }
    }
}

#[derive(Debug, Clone, Default)]
pub(super) struct HotMeta {
    records: Vec<Hot>,
    /// Every firm's sector rows, one after another.
    rows: Vec<u16>,
}

impl HotMeta {
    pub fn build(meta: &[FirmMeta]) -> HotMeta {
        let mut interned: HashMap<&str, u32> = HashMap::new();
        let mut intern = |text| intern(&mut interned, text);
        let mut hot = HotMeta { records: Vec::with_capacity(meta.len()), rows: Vec::new() };
        for firm in meta {
            let rows_start = hot.rows.len() as u32;
            hot.rows.extend(&firm.rows);
            hot.records.push(Hot {
                kind: firm.kind,
                financial_vehicle: firm.financial_vehicle,
                rows_len: firm.rows.len() as u16,
                rows_start,
                // One numbering for all four fields is enough: a field is only
                // ever compared with the same field of another firm.
                country: intern(firm.country.as_deref()),
                region2: intern(firm.region2()),
                domain: intern(firm.domain.as_deref()),
                name_key: intern(Some(firm.name_key.as_str()).filter(|key| !key.is_empty())),
            });
        }
        hot
    }

    pub fn get(&self, firm: u32) -> &Hot {
        &self.records[firm as usize]
    }

    /// Starts fetching the firm's record into the caches (see [`super::features::prefetch`]).
    pub fn prefetch(&self, firm: u32) {
        super::features::prefetch(std::slice::from_ref(&self.records[firm as usize]));
    }

    /// The firm's rows of the input-output table.
    pub fn rows(&self, firm: u32) -> &[u16] {
        let hot = &self.records[firm as usize];
        &self.rows[hot.rows_start as usize..hot.rows_start as usize + hot.rows_len as usize]
    }
}
