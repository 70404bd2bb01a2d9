//! `FirmIndex`: the one writer and the one reader of the process, and every
//! operation on stored records. Writes are serialised by a mutex around the
//! `IndexWriter`; each write commits (tantivy fsyncs on commit, so an acknowledged
//! write survives `kill -9`) and reloads the reader before returning, so a caller
//! reads its own writes.
//!
//! This module owns storage (open, write, read back); the reads that rank live
//! beside it: `search` (the user's filtered full-text search) and `retrieval`
//! (the BM25 candidate retrieval the recommenders use).

mod retrieval;
mod search;

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use klynge_models::{Collaboration, Firm};
use serde::{Deserialize, Serialize};
use tantivy::collector::{Count, DocSetCollector, TopDocs};
use tantivy::directory::MmapDirectory;
use tantivy::query::{Query, QueryParser, TermQuery};
use tantivy::schema::{IndexRecordOption, Value};
use tantivy::{DocAddress, Index, IndexReader, IndexWriter, ReloadPolicy, Searcher, TantivyDocument, Term};

use crate::schema::{Fields, build_schema, language_slot, register_analyzers};
use crate::schema::{region_prefixes, sector_prefixes};

use retrieval::Numbering;
pub use retrieval::TextMatch;
pub use search::{SearchHit, SearchPage, SearchRequest};

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
}

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
