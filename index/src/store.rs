//! `FirmIndex`: the one writer and the one reader of the process, and every
//! operation on stored records. Writes are serialised by a mutex around the
//! `IndexWriter`; each write commits (tantivy fsyncs on commit, so an acknowledged
//! write survives `kill -9`) and reloads the reader before returning, so a caller
//! reads its own writes.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use klynge_models::{Collaboration, Firm, Kind, SizeClass};
use serde::{Deserialize, Serialize};
use tantivy::collector::{Count, DocSetCollector, TopDocs};
use tantivy::directory::MmapDirectory;
use tantivy::index::SegmentId;
use tantivy::query::{AllQuery, BooleanQuery, BoostQuery, Occur, Query, QueryParser, TermQuery};
use tantivy::schema::{IndexRecordOption, Value};
use tantivy::snippet::SnippetGenerator;
use tantivy::{DocAddress, Index, IndexReader, IndexWriter, ReloadPolicy, Searcher, TantivyDocument, Term};

use crate::schema::{Fields, TextField, build_schema, language_slot, register_analyzers};
use crate::schema::{region_prefixes, sector_prefixes};

const WRITER_MEMORY: usize = 128 * 1024 * 1024;
const FIRM: &str = "firm";
const COLLABORATION: &str = "collaboration";

#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error("index error: {0}")]
    Tantivy(#[from] tantivy::TantivyError),
    #[error("the index at {0} is locked by another klynge process (is the service running? use its API)")]
    Locked(String),
    #[error("cannot open the index directory {path}: {reason}")]
    Directory { path: String, reason: String },
    #[error("stored record is corrupt: {0}")]
    Corrupt(String),
    #[error("the index at {0} was opened read-only")]
    ReadOnly(String),
}

/// A profile as stored: the validated firm, the exact JSON the caller sent, and
/// when the service last wrote it.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFirm {
    pub firm: Firm,
    pub raw: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Default)]
pub struct SearchRequest {
    pub query: Option<String>,
    pub kind: Option<Kind>,
    pub country: Option<String>,
    pub region: Option<String>,
    pub sector: Option<String>,
    pub size: Option<SizeClass>,
    pub sme: Option<bool>,
    pub limit: usize,
    pub offset: usize,
}

#[derive(Debug, Clone)]
pub struct SearchHit {
    pub firm: StoredFirm,
    pub score: f32,
    /// HTML snippet with `<b>` around matched terms, when there was a query.
    pub snippet: Option<String>,
}

#[derive(Debug, Clone)]
pub struct SearchPage {
    pub total: usize,
    pub hits: Vec<SearchHit>,
}

/// A firm found by a BM25 text retrieval, with its score.
#[derive(Debug, Clone, PartialEq)]
pub struct TextMatch {
    pub id: String,
    pub score: f32,
}

#[derive(Serialize, Deserialize, Default)]
struct CommitPayload {
    generation: u64,
}

pub struct FirmIndex {
    index: Index,
    reader: IndexReader,
    /// `None` when opened read-only (a command that only reads, beside a running service).
    writer: Mutex<Option<IndexWriter>>,
    fields: Fields,
    generation: AtomicU64,
    numbered: Mutex<Numbering>,
    /// Where the index lives, for error messages.
    location: String,
}

/// Per segment, each document's number under a caller's numbering of firm ids
/// (the model's positions), so that hot retrievals skip the id dictionary.
/// Built lazily once per segment and numbering. Two numberings are kept: the
/// serving model's and the one a batch refresh is fitting, which run side by side.
#[derive(Default)]
struct Numbering {
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
    /// Opens (or creates) the index in `dir`.
    pub fn open(dir: &Path) -> Result<FirmIndex, IndexError> {
        std::fs::create_dir_all(dir)
            .map_err(|error| IndexError::Directory { path: dir.display().to_string(), reason: error.to_string() })?;
        let (schema, _) = build_schema();
        let directory = MmapDirectory::open(dir)
            .map_err(|error| IndexError::Directory { path: dir.display().to_string(), reason: error.to_string() })?;
        let index = Index::open_or_create(directory, schema)?;
        Self::from_index(index, &dir.display().to_string(), true)
    }

    /// Opens an existing index for reading only: takes no writer lock, so it works
    /// while the service (or an ingest) holds the index.
    pub fn open_read_only(dir: &Path) -> Result<FirmIndex, IndexError> {
        let directory = MmapDirectory::open(dir)
            .map_err(|error| IndexError::Directory { path: dir.display().to_string(), reason: error.to_string() })?;
        let index = Index::open(directory)?;
        Self::from_index(index, &dir.display().to_string(), false)
    }

    /// An index that lives in memory only, for unit tests and throw-away evaluations.
    pub fn in_memory() -> Result<FirmIndex, IndexError> {
        let (schema, _) = build_schema();
        Self::from_index(Index::create_in_ram(schema), "memory", true)
    }

    fn from_index(index: Index, location: &str, writable: bool) -> Result<FirmIndex, IndexError> {
        register_analyzers(&index);
        let (_, fields) = build_schema();
        let writer = if writable {
            Some(index.writer(WRITER_MEMORY).map_err(|error| match error {
                tantivy::TantivyError::LockFailure(..) => IndexError::Locked(location.to_string()),
                other => IndexError::Tantivy(other),
            })?)
        } else {
            None
        };
        let reader = index.reader_builder().reload_policy(ReloadPolicy::Manual).try_into()?;
        let payload: CommitPayload =
            index.load_metas()?.payload.and_then(|payload| serde_json::from_str(&payload).ok()).unwrap_or_default();
        Ok(FirmIndex {
            index,
            reader,
            writer: Mutex::new(writer),
            fields,
            generation: AtomicU64::new(payload.generation),
            numbered: Mutex::default(),
            location: location.to_string(),
        })
    }

    /// Increases by one on every committed change, and survives restarts.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Inserts or replaces profiles by id, all in one commit: either every profile is
    /// durable when this returns `Ok`, or none is visible.
    pub fn upsert_firms(&self, firms: &[StoredFirm]) -> Result<u64, IndexError> {
        self.write(|writer, fields| {
            for stored in firms {
                writer.delete_term(firm_term(fields, &stored.firm.id));
                writer.add_document(self.firm_document(stored))?;
            }
            Ok(())
        })
    }

    /// Deletes a profile; `Ok(false)` when there was none.
    pub fn delete_firm(&self, id: &str) -> Result<bool, IndexError> {
        if self.get_firm(id)?.is_none() {
            return Ok(false);
        }
        self.write(|writer, fields| {
            writer.delete_term(firm_term(fields, id));
            Ok(())
        })?;
        Ok(true)
    }

    pub fn upsert_collaboration(&self, collaboration: &Collaboration) -> Result<u64, IndexError> {
        self.upsert_collaborations(std::slice::from_ref(collaboration))
    }

    pub fn upsert_collaborations(&self, collaborations: &[Collaboration]) -> Result<u64, IndexError> {
        let fields = &self.fields;
        self.write(|writer, _| {
            for collaboration in collaborations {
                writer.delete_term(collaboration_term(fields, &collaboration.id));
                let mut doc = TantivyDocument::new();
                doc.add_text(fields.doc_type, COLLABORATION);
                doc.add_text(fields.id, collaboration_key(&collaboration.id));
                doc.add_text(fields.raw, serde_json::to_string(collaboration).expect("serialisable"));
                for member in &collaboration.members {
                    doc.add_text(fields.member, member);
                }
                writer.add_document(doc)?;
            }
            Ok(())
        })
    }

    /// Runs `change` against the writer, then commits with the next generation in the
    /// payload. A failed change or commit is rolled back, so nothing is half-written.
    fn write(&self, change: impl FnOnce(&IndexWriter, &Fields) -> Result<(), IndexError>) -> Result<u64, IndexError> {
        let mut guard = self.writer.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let Some(writer) = guard.as_mut() else {
            return Err(IndexError::ReadOnly(self.location.clone()));
        };
        let next = self.generation() + 1;
        let outcome = change(writer, &self.fields).and_then(|()| {
            let mut prepared = writer.prepare_commit()?;
            prepared.set_payload(&serde_json::to_string(&CommitPayload { generation: next }).expect("serialisable"));
            prepared.commit()?;
            Ok(())
        });
        if let Err(error) = outcome {
            writer.rollback()?;
            return Err(error);
        }
        self.reader.reload()?;
        self.generation.store(next, Ordering::Release);
        Ok(next)
    }

    fn firm_document(&self, stored: &StoredFirm) -> TantivyDocument {
        let fields = &self.fields;
        let firm = &stored.firm;
        let slot = language_slot(firm.language);
        let mut doc = TantivyDocument::new();
        doc.add_text(fields.doc_type, FIRM);
        doc.add_text(fields.id, &firm.id);
        doc.add_text(fields.raw, &stored.raw);
        doc.add_text(fields.normalised, serde_json::to_string(firm).expect("serialisable"));
        doc.add_text(fields.updated_at, &stored.updated_at);
        doc.add_text(fields.name, &firm.name);
        let mut body = String::with_capacity(firm.description.len() + 64);
        body.push_str(&firm.name);
        body.push_str(". ");
        body.push_str(&firm.description);
        for tag in &firm.tags {
            body.push_str(". ");
            body.push_str(tag);
        }
        doc.add_text(fields.body[slot], &body);
        for offer in &firm.offers {
            doc.add_text(fields.offers[slot], offer);
        }
        for need in &firm.needs {
            doc.add_text(fields.needs[slot], need);
        }
        doc.add_text(fields.kind, firm.kind.as_str());
        if let Some(country) = &firm.country {
            doc.add_text(fields.country, country);
        }
        if let Some(region) = &firm.region {
            for prefix in region_prefixes(region) {
                doc.add_text(fields.region, prefix);
            }
        }
        let mut sectors: Vec<&str> = firm.sectors.iter().flat_map(|s| sector_prefixes(s)).collect();
        sectors.sort_unstable();
        sectors.dedup();
        for sector in sectors {
            doc.add_text(fields.sector, sector);
        }
        if let Some(size) = firm.size {
            doc.add_text(fields.size, size.as_str());
        }
        doc.add_text(fields.sme, if firm.is_sme() { "true" } else { "false" });
        doc
    }

    pub fn get_firm(&self, id: &str) -> Result<Option<StoredFirm>, IndexError> {
        let searcher = self.reader.searcher();
        let query = TermQuery::new(firm_term(&self.fields, id), IndexRecordOption::Basic);
        let Some((_, address)) = searcher.search(&query, &TopDocs::with_limit(1).order_by_score())?.pop() else {
            return Ok(None);
        };
        self.load_firm(&searcher, address).map(Some)
    }

    fn load_firm(&self, searcher: &Searcher, address: DocAddress) -> Result<StoredFirm, IndexError> {
        let doc: TantivyDocument = searcher.doc(address)?;
        let text = |field| doc.get_first(field).and_then(|value| value.as_str()).unwrap_or_default().to_string();
        let firm = serde_json::from_str(&text(self.fields.normalised))
            .map_err(|error| IndexError::Corrupt(error.to_string()))?;
        Ok(StoredFirm { firm, raw: text(self.fields.raw), updated_at: text(self.fields.updated_at) })
    }

    pub fn get_collaboration(&self, id: &str) -> Result<Option<Collaboration>, IndexError> {
        let searcher = self.reader.searcher();
        let query = TermQuery::new(collaboration_term(&self.fields, id), IndexRecordOption::Basic);
        let hits = searcher.search(&query, &TopDocs::with_limit(1).order_by_score())?;
        hits.first().map(|(_, address)| self.load_collaboration(&searcher, *address)).transpose()
    }

    fn load_collaboration(&self, searcher: &Searcher, address: DocAddress) -> Result<Collaboration, IndexError> {
        let doc: TantivyDocument = searcher.doc(address)?;
        let raw = doc.get_first(self.fields.raw).and_then(|value| value.as_str()).unwrap_or_default();
        serde_json::from_str(raw).map_err(|error| IndexError::Corrupt(error.to_string()))
    }

    /// Collaborations that `firm_id` is a member of, by id.
    pub fn collaborations_of(&self, firm_id: &str) -> Result<Vec<Collaboration>, IndexError> {
        let searcher = self.reader.searcher();
        let query = TermQuery::new(Term::from_field_text(self.fields.member, firm_id), IndexRecordOption::Basic);
        let addresses = searcher.search(&query, &DocSetCollector)?;
        let mut collaborations = addresses
            .into_iter()
            .map(|address| self.load_collaboration(&searcher, address))
            .collect::<Result<Vec<_>, _>>()?;
        collaborations.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(collaborations)
    }

    /// Which of `ids` have no stored profile.
    pub fn missing_firms<'a>(&self, ids: impl IntoIterator<Item = &'a String>) -> Result<Vec<String>, IndexError> {
        let searcher = self.reader.searcher();
        let mut missing = Vec::new();
        for id in ids {
            let query = TermQuery::new(firm_term(&self.fields, id), IndexRecordOption::Basic);
            if searcher.search(&query, &Count)? == 0 {
                missing.push(id.clone());
            }
        }
        Ok(missing)
    }

    pub fn num_firms(&self) -> Result<usize, IndexError> {
        Ok(self.reader.searcher().search(&self.doc_type_query(FIRM), &Count)?)
    }

    /// Every stored profile, in id order: the input of model fitting.
    pub fn all_firms(&self) -> Result<Vec<Firm>, IndexError> {
        let searcher = self.reader.searcher();
        let addresses = searcher.search(&self.doc_type_query(FIRM), &DocSetCollector)?;
        let mut firms = addresses
            .into_iter()
            .map(|address| self.load_firm(&searcher, address).map(|stored| stored.firm))
            .collect::<Result<Vec<_>, _>>()?;
        firms.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(firms)
    }

    /// Every collaboration, in id order.
    pub fn all_collaborations(&self) -> Result<Vec<Collaboration>, IndexError> {
        let searcher = self.reader.searcher();
        let addresses = searcher.search(&self.doc_type_query(COLLABORATION), &DocSetCollector)?;
        let mut collaborations = addresses
            .into_iter()
            .map(|address| self.load_collaboration(&searcher, address))
            .collect::<Result<Vec<_>, _>>()?;
        collaborations.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(collaborations)
    }

    /// Bytes used by the index files on disk (0 in memory).
    pub fn size_on_disk(&self) -> u64 {
        self.reader.searcher().space_usage().map(|usage| usage.total().get_bytes()).unwrap_or(0)
    }

    fn doc_type_query(&self, doc_type: &str) -> TermQuery {
        TermQuery::new(Term::from_field_text(self.fields.doc_type, doc_type), IndexRecordOption::Basic)
    }

    fn text_query(&self, text: &str, fields: &[(tantivy::schema::Field, f32)]) -> Box<dyn Query> {
        let mut parser = QueryParser::for_index(&self.index, fields.iter().map(|(field, _)| *field).collect());
        for (field, boost) in fields {
            parser.set_field_boost(*field, *boost);
        }
        // Lenient: a caller's stray quote or colon must not turn into an error.
        let (query, _) = parser.parse_query_lenient(text);
        query
    }

    /// Full-text search with filters, relevance order, total count and snippets.
    pub fn search(&self, request: &SearchRequest) -> Result<SearchPage, IndexError> {
        let fields = &self.fields;
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = vec![(Occur::Must, Box::new(self.doc_type_query(FIRM)))];
        let text = request.query.as_deref().map(str::trim).filter(|text| !text.is_empty());
        let text_query = text.map(|text| {
            let mut searched = vec![(fields.name, 3.0)];
            for field in fields.body.into_iter().chain(fields.offers).chain(fields.needs) {
                searched.push((field, 1.0));
            }
            self.text_query(text, &searched)
        });
        match &text_query {
            Some(query) => clauses.push((Occur::Must, query.box_clone())),
            None => clauses.push((Occur::Must, Box::new(AllQuery))),
        }
        let filters = [
            (fields.kind, request.kind.map(|kind| kind.as_str().to_string())),
            (fields.country, request.country.clone()),
            (fields.region, request.region.clone()),
            (fields.sector, request.sector.clone()),
            (fields.size, request.size.map(|size| size.as_str().to_string())),
            (fields.sme, request.sme.map(|sme| sme.to_string())),
        ];
        for (field, value) in filters {
            if let Some(value) = value {
                let term = Term::from_field_text(field, &value);
                let filter = BoostQuery::new(Box::new(TermQuery::new(term, IndexRecordOption::Basic)), 0.0);
                clauses.push((Occur::Must, Box::new(filter)));
            }
        }
        let query = BooleanQuery::new(clauses);
        let searcher = self.reader.searcher();
        let limit = request.limit.max(1);
        let (top, total) = searcher
            .search(&query, &(TopDocs::with_limit(limit).and_offset(request.offset).order_by_score(), Count))?;
        let snippets = match &text_query {
            Some(text_query) => fields
                .body
                .into_iter()
                .map(|field| SnippetGenerator::create(&searcher, text_query.as_ref(), field).ok())
                .collect(),
            None => Vec::new(),
        };
        let mut hits = Vec::with_capacity(top.len());
        for (score, address) in top {
            let firm = self.load_firm(&searcher, address)?;
            let snippet = snippets.get(language_slot(firm.firm.language)).and_then(|generator| {
                let generator = generator.as_ref()?;
                let doc: TantivyDocument = searcher.doc(address).ok()?;
                let snippet = generator.snippet_from_doc(&doc);
                (!snippet.fragment().is_empty()).then(|| snippet.to_html())
            });
            hits.push(SearchHit { firm, score, snippet });
        }
        Ok(SearchPage { total, hits })
    }

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
        let mut by_segment: std::collections::BTreeMap<u32, Vec<(u64, usize)>> = Default::default();
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

fn firm_term(fields: &Fields, id: &str) -> Term {
    Term::from_field_text(fields.id, id)
}

/// Collaboration ids live in the same `id` field as firm ids, under a prefix no
/// firm id can carry (`#` is outside the id charset), so the two never collide.
fn collaboration_key(id: &str) -> String {
    format!("#{id}")
}

fn collaboration_term(fields: &Fields, id: &str) -> Term {
    Term::from_field_text(fields.id, &collaboration_key(id))
}

#[cfg(test)]
mod tests {
    use super::*;
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
