//! BM25 candidate retrieval for the recommenders: firms whose offers, needs or
//! text match a query text, by id or by the caller's numbering of ids (kept per
//! segment, so hot retrievals skip the id dictionary).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use tantivy::collector::TopDocs;
use tantivy::index::SegmentId;
use tantivy::{DocAddress, Searcher};

use super::{FirmIndex, IndexError};
use crate::schema::TextField;

/// A firm found by a BM25 text retrieval, with its score.
#[derive(Debug, Clone, PartialEq)]
pub struct TextMatch {
    pub id: String,
    pub score: f32,
}

/// Per segment, each document's number under a caller's numbering of firm ids
/// (the model's positions), so that hot retrievals skip the id dictionary.
/// Built lazily once per segment and numbering. Two numberings are kept: the
/// serving model's and the one a batch refresh is fitting, which run side by side.
#[derive(Default)]
pub(super) struct Numbering {
    /// (key, segments), most recently used first; at most [`NUMBERINGS`].
    keys: Vec<(u64, SegmentNumbers)>,
}

const NUMBERINGS: usize = 2;

/// Each segment's document → number table.
type SegmentNumbers = HashMap<SegmentId, Arc<Vec<u32>>>;

/// BM25 hits with the searcher they came from.
type Hits = (Searcher, Vec<(f32, DocAddress)>);

/// A document whose id the numbering does not know (or a collaboration).
const UNNUMBERED: u32 = u32::MAX;

impl FirmIndex {
    /// BM25 retrieval of firms whose `field` text matches `text` (e.g. one firm's needs
    /// against everyone's offers), best first.
    pub fn match_text(&self, text: &str, field: TextField, limit: usize) -> Result<Vec<TextMatch>, IndexError> {
        let Some((searcher, top)) = self.bm25(text, field, limit + TIE_MARGIN)? else {
            return Ok(Vec::new());
        };
        // Ids are read per segment with the ordinals sorted, so each dictionary
        // block is decompressed once rather than once per hit.
        let mut matches: Vec<TextMatch> =
            top.iter().map(|(score, _)| TextMatch { id: String::new(), score: *score }).collect();
        let mut by_segment: BTreeMap<u32, Vec<(u64, usize)>> = Default::default();
        let mut columns = HashMap::new();
        for (hit, (_, address)) in top.iter().enumerate() {
            let column = columns
                .entry(address.segment_ord)
                .or_insert_with(|| searcher.segment_reader(address.segment_ord).fast_fields().str("id").ok().flatten());
            if let Some(ord) = column.as_ref().and_then(|column| column.term_ords(address.doc_id).next()) {
                by_segment.entry(address.segment_ord).or_default().push((ord, hit));
            }
        }
        for (segment, mut hits) in by_segment {
            let Some(Some(column)) = columns.get(&segment) else { continue };
            hits.sort_unstable();
            let ords: Vec<u64> = hits.iter().map(|(ord, _)| *ord).collect();
            let mut next = hits.iter().map(|(_, hit)| *hit);
            column
                .dictionary()
                .sorted_ords_to_term_cb(&ords, |bytes| {
                    if let Some(hit) = next.next() {
                        matches[hit].id = String::from_utf8_lossy(bytes).into_owned();
                    }
                })
                .map_err(|error| IndexError::Corrupt(format!("id dictionary: {error}")))?;
        }
        matches.retain(|found| !found.id.is_empty());
        matches.sort_by(|a, b| b.score.total_cmp(&a.score).then_with(|| a.id.cmp(&b.id)));
        matches.truncate(limit);
        Ok(matches)
    }

    /// [`FirmIndex::match_text`] for callers that number firm ids (the model's
    /// positions, which follow id order): `(number, score)` pairs, firms the
    /// numbering does not know left out. `key` names the numbering (the model
    /// generation); each segment's numbers are built once per key, so the
    /// batch refresh and busy servers do not decode ids hit by hit.
    pub fn match_numbered(
        &self,
        text: &str,
        field: TextField,
        limit: usize,
        key: u64,
        number: &dyn Fn(&str) -> Option<u32>,
    ) -> Result<Vec<(u32, f32)>, IndexError> {
        let Some((searcher, top)) = self.bm25(text, field, limit + TIE_MARGIN)? else {
            return Ok(Vec::new());
        };
        let mut found = Vec::with_capacity(top.len());
        let mut segments: HashMap<u32, Arc<Vec<u32>>> = HashMap::new();
        for (score, address) in top {
            let numbers = match segments.get(&address.segment_ord) {
                Some(numbers) => numbers.clone(),
                None => {
                    let numbers = self.segment_numbers(&searcher, address.segment_ord, key, number)?;
                    segments.insert(address.segment_ord, numbers.clone());
                    numbers
                }
            };
            match numbers.get(address.doc_id as usize) {
                Some(&n) if n != UNNUMBERED => found.push((n, score)),
                _ => {}
            }
        }
        // Numbers follow id order, so this is match_text's order: ties settled by id.
        found.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        found.truncate(limit);
        Ok(found)
    }

    fn segment_numbers(
        &self,
        searcher: &Searcher,
        segment_ord: u32,
        key: u64,
        number: &dyn Fn(&str) -> Option<u32>,
    ) -> Result<Arc<Vec<u32>>, IndexError> {
        let reader = searcher.segment_reader(segment_ord);
        let segment = reader.segment_id();
        let mut numbered = self.numbered.lock().unwrap_or_else(|p| p.into_inner());
        match numbered.keys.iter().position(|(k, _)| *k == key) {
            Some(0) => {}
            Some(at) => {
                let entry = numbered.keys.remove(at);
                numbered.keys.insert(0, entry);
            }
            None => {
                numbered.keys.insert(0, (key, HashMap::new()));
                numbered.keys.truncate(NUMBERINGS);
            }
        }
        let segments = &mut numbered.keys[0].1;
        if let Some(numbers) = segments.get(&segment) {
            return Ok(numbers.clone());
        }
        let mut numbers = vec![UNNUMBERED; reader.max_doc() as usize];
        if let Some(column) = reader.fast_fields().str("id")? {
            // One pass over the dictionary gives every ordinal its number.
            let mut by_ord = Vec::with_capacity(column.num_terms());
            let mut terms =
                column.dictionary().stream().map_err(|error| IndexError::Corrupt(format!("id dictionary: {error}")))?;
            while terms.advance() {
                by_ord.push(std::str::from_utf8(terms.key()).ok().and_then(number).unwrap_or(UNNUMBERED));
            }
            for (doc, slot) in numbers.iter_mut().enumerate() {
                if let Some(ord) = column.term_ords(doc as u32).next() {
                    *slot = by_ord.get(ord as usize).copied().unwrap_or(UNNUMBERED);
                }
            }
        }
        let numbers = Arc::new(numbers);
        let live: HashSet<SegmentId> = searcher.segment_readers().iter().map(|r| r.segment_id()).collect();
        segments.retain(|segment, _| live.contains(segment));
        segments.insert(segment, numbers.clone());
        Ok(numbers)
    }

    /// The top `limit` BM25 hits of `text` in `field`, with the searcher they
    /// came from; `None` for a text with nothing to search.
    fn bm25(&self, text: &str, field: TextField, limit: usize) -> Result<Option<Hits>, IndexError> {
        let searched: Vec<_> = self.fields.text(field).into_iter().map(|field| (field, 1.0)).collect();
        let cleaned: String =
            text.chars().map(|c| if c.is_alphanumeric() || c.is_whitespace() { c } else { ' ' }).collect();
        if cleaned.trim().is_empty() || limit == 0 {
            return Ok(None);
        }
        let query = self.text_query(&cleaned, &searched);
        let searcher = self.reader.searcher();
        let top = searcher.search(&query, &TopDocs::with_limit(limit).order_by_score())?;
        Ok(Some((searcher, top)))
    }
}

/// A few extra BM25 hits, so that equal scores at the cut are settled by id, not
/// by which segment a document happened to land in: the same catalogue gives the
/// same matches however it was written.
const TIE_MARGIN: usize = 16;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoredFirm;
    use serde_json::json;

    fn stored(id: &str, offer: &str) -> StoredFirm {
        let profile = json!({
            "id": id, "name": id, "kind": "company", "country": "DK",
            "description": "cold chain logistics", "offers": [offer],
        });
        StoredFirm {
            firm: klynge_models::validate_profile(&profile).expect("valid"),
            raw: profile.to_string(),
            updated_at: "2026-01-01T00:00:00Z".to_string(),
        }
    }

    #[test]
    fn numbered_matches_are_the_text_matches_in_the_same_order() {
        let index = FirmIndex::in_memory().unwrap();
        let ids: Vec<String> = (0..60).map(|i| format!("f{i:03}")).collect();
        // Three commits, three segments; many equal scores to settle by id.
        for chunk in ids.chunks(20) {
            let firms: Vec<StoredFirm> = chunk
                .iter()
                .map(|id| stored(id, if id.ends_with('1') { "refrigerated trucks" } else { "cold storage" }))
                .collect();
            index.upsert_firms(&firms).unwrap();
        }
        let number =
            |id: &str| if id == "f005" { None } else { ids.binary_search(&id.to_string()).ok().map(|p| p as u32) };
        for limit in [5, 20, 100] {
            let text: Vec<(u32, f32)> = index
                .match_text("cold storage trucks", TextField::Offers, limit)
                .unwrap()
                .into_iter()
                .filter_map(|m| number(&m.id).map(|n| (n, m.score)))
                .collect();
            for key in [1, 2, 1] {
                let numbered =
                    index.match_numbered("cold storage trucks", TextField::Offers, limit, key, &number).unwrap();
                assert!(!text.is_empty() && numbered.len() >= text.len(), "{numbered:?} vs {text:?}");
                assert_eq!(numbered[..text.len()], text[..], "limit {limit}, key {key}");
            }
        }
    }
}
