//! The cluster manager's accept / reject decisions on proposed firms, and their
//! durable store. A decision names a firm and what it applies to: one anchor, one
//! opportunity text (normalised), or everywhere. The latest decision for the same
//! (target, firm) replaces the earlier one, so the store holds at most one live
//! decision per pair and the listing reads as the manager's current view.
//!
//! On disk (`<data dir>/feedback/feedback.jsonl`) the store is an append-only log
//! of `put` and `delete` entries, each written and `fsync`ed before the caller is
//! answered, so a kill -9 after a 201 loses nothing; replaying the log at start-up
//! rebuilds the state. A line torn by a crash mid-append (never acknowledged) is
//! cut off at replay. Every change bumps [`FeedbackStore::generation`].
//!
//! Serving reads the rejections that apply to a request's group (its anchors and
//! locked members) and opportunity text, and keeps those firms out of the answer;
//! the next fit reads the anchor-scoped decisions as training pairs.

use std::collections::{BTreeSet, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// Where the log lives: `<data dir>/feedback`.
pub fn feedback_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("feedback")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Accept,
    Reject,
}

impl Decision {
    pub fn parse(text: &str) -> Option<Decision> {
        match text {
            "accept" => Some(Decision::Accept),
            "reject" => Some(Decision::Reject),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// The anchor given (or, without one, the opportunity text given).
    Anchor,
    /// Every request.
    Everywhere,
}

impl Scope {
    pub fn parse(text: &str) -> Option<Scope> {
        match text {
            "anchor" => Some(Scope::Anchor),
            "everywhere" => Some(Scope::Everywhere),
            _ => None,
        }
    }
}

/// One stored decision, as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Record {
    pub id: String,
    /// When it was stored (RFC 3339, UTC).
    pub time: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub anchor: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opportunity: Option<String>,
    pub firm: String,
    pub decision: Decision,
    pub scope: Scope,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
}

/// What a decision applies to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    Anchor(String),
    Opportunity(String),
    Everywhere,
}

impl Record {
    /// An anchor-scoped decision applies to its anchor when it has one, else to
    /// its opportunity text: a decision made on an anchor's page is about that
    /// firm's partners whatever the text that led there.
    pub fn target(&self) -> Target {
        match (self.scope, &self.anchor, &self.opportunity) {
            (Scope::Everywhere, _, _) => Target::Everywhere,
            (Scope::Anchor, Some(anchor), _) => Target::Anchor(anchor.clone()),
            (Scope::Anchor, None, Some(text)) => Target::Opportunity(normalise_opportunity(text)),
            // Refused at validation; kept total so a hand-edited log cannot panic us.
            (Scope::Anchor, None, None) => Target::Everywhere,
        }
    }
}

/// The form an opportunity text is matched in: case, spacing and surrounding
/// punctuation do not make a different opportunity.
pub fn normalise_opportunity(text: &str) -> String {
    let words: Vec<String> = text
        .split_whitespace()
        .map(|word| word.trim_matches(|c: char| !c.is_alphanumeric()).to_lowercase())
        .filter(|word| !word.is_empty())
        .collect();
    words.join(" ")
}

/// One line of the log.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
enum Entry {
    Put(Record),
    Delete { id: String, time: String },
}

/// Filters and paging of a listing.
#[derive(Debug, Clone, Default)]
pub struct ListQuery {
    pub anchor: Option<String>,
    pub firm: Option<String>,
    pub decision: Option<Decision>,
    /// Only records stored at or after this instant.
    pub since: Option<time::OffsetDateTime>,
    pub offset: usize,
    pub limit: usize,
}

pub struct Page {
    pub total: usize,
    pub records: Vec<Record>,
}

#[derive(Default)]
struct State {
    /// Live records by sequence number (the log order).
    records: std::collections::BTreeMap<u64, Record>,
    by_id: HashMap<String, u64>,
    /// The live decision of each (target, firm).
    by_target: HashMap<Target, HashMap<String, u64>>,
    next: u64,
}

impl State {
    /// The id of the live record for `record`'s (target, firm), if any.
    fn live_id(&self, record: &Record) -> Option<String> {
        let seq = self.by_target.get(&record.target())?.get(&record.firm)?;
        self.records.get(seq).map(|live| live.id.clone())
    }

    fn put(&mut self, record: Record) -> Option<Record> {
        let seq = self.next;
        self.next += 1;
        let target = record.target();
        let replaced = self
            .by_target
            .entry(target)
            .or_default()
            .insert(record.firm.clone(), seq)
            .and_then(|old| self.records.remove(&old));
        if let Some(old) = &replaced {
            self.by_id.remove(&old.id);
        }
        self.by_id.insert(record.id.clone(), seq);
        self.records.insert(seq, record);
        replaced
    }

    fn delete(&mut self, id: &str) -> Option<Record> {
        let seq = self.by_id.remove(id)?;
        let record = self.records.remove(&seq)?;
        let target = record.target();
        if let Some(firms) = self.by_target.get_mut(&target) {
            firms.remove(&record.firm);
            if firms.is_empty() {
                self.by_target.remove(&target);
            }
        }
        Some(record)
    }

    fn firms(&self, target: &Target, decision: Decision, into: &mut BTreeSet<String>) {
        if let Some(firms) = self.by_target.get(target) {
            for (firm, seq) in firms {
                if self.records.get(seq).is_some_and(|r| r.decision == decision) {
                    into.insert(firm.clone());
                }
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum FeedbackError {
    #[error("feedback log {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("feedback log {path}, line {line}: {message}")]
    Corrupt { path: PathBuf, line: usize, message: String },
}

pub struct FeedbackStore {
    state: Mutex<(State, Option<File>)>,
    path: Option<PathBuf>,
    generation: AtomicU64,
}

impl FeedbackStore {
    /// A store that keeps nothing on disk (the evaluation's simulated manager).
    pub fn in_memory() -> FeedbackStore {
        FeedbackStore { state: Mutex::new((State::default(), None)), path: None, generation: AtomicU64::new(0) }
    }

    /// Opens (or creates) the log in `dir` and replays it.
    pub fn open(dir: &Path) -> Result<FeedbackStore, FeedbackError> {
        let path = dir.join("feedback.jsonl");
        let io = |source| FeedbackError::Io { path: path.clone(), source };
        fs::create_dir_all(dir).map_err(io)?;
        let mut file = OpenOptions::new().create(true).read(true).append(true).open(&path).map_err(io)?;
        let mut state = State::default();
        let mut reader = BufReader::new(&mut file);
        let (mut good, mut line_number) = (0u64, 0usize);
        let mut line = String::new();
        loop {
            line.clear();
            let read = reader.read_line(&mut line).map_err(io)?;
            if read == 0 {
                break;
            }
            line_number += 1;
            if !line.ends_with('\n') {
                // A torn append: the process died mid-write, before answering.
                tracing::warn!(path = %path.display(), line = line_number, "cutting off a torn last feedback entry");
                break;
            }
            match serde_json::from_str::<Entry>(line.trim_end()) {
                Ok(Entry::Put(record)) => {
                    state.put(record);
                }
                Ok(Entry::Delete { id, .. }) => {
                    state.delete(&id);
                }
                Err(error) => {
                    return Err(FeedbackError::Corrupt {
                        path: path.clone(),
                        line: line_number,
                        message: error.to_string(),
                    });
                }
            }
            good += read as u64;
        }
        drop(reader);
        if file.metadata().map_err(io)?.len() != good {
            file.set_len(good).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        file.seek(SeekFrom::End(0)).map_err(io)?;
        if let Ok(directory) = File::open(dir) {
            // The file's own entry must be durable too the first time it is made.
            let _ = directory.sync_all();
        }
        Ok(FeedbackStore { state: Mutex::new((state, Some(file))), path: Some(path), generation: AtomicU64::new(0) })
    }

    /// Bumped by every change: cached answers that depend on feedback key on it.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    pub fn len(&self) -> usize {
        self.lock().0.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (State, Option<File>)> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn append(&self, file: &mut Option<File>, entry: &Entry) -> Result<(), FeedbackError> {
        let Some(file) = file else { return Ok(()) };
        let path = self.path.clone().unwrap_or_default();
        let mut line = serde_json::to_vec(entry).expect("serialisable");
        line.push(b'\n');
        file.write_all(&line).map_err(|source| FeedbackError::Io { path: path.clone(), source })?;
        file.sync_data().map_err(|source| FeedbackError::Io { path, source })
    }

    /// Stores `record` durably (it replaces the live decision for the same
    /// target and firm, which is returned). A replacing record keeps the
    /// replaced one's id, so a pair's decision has one address whatever its
    /// latest value: an id a client was given stays readable and deletable.
    pub fn put(&self, mut record: Record) -> Result<Option<Record>, FeedbackError> {
        let mut guard = self.lock();
        let (state, file) = &mut *guard;
        if let Some(id) = state.live_id(&record) {
            record.id = id;
        }
        let entry = Entry::Put(record);
        self.append(file, &entry)?;
        let Entry::Put(record) = entry else { unreachable!() };
        let replaced = state.put(record);
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(replaced)
    }

    /// Removes the record `id`; `None` when there is none.
    pub fn delete(&self, id: &str, time: String) -> Result<Option<Record>, FeedbackError> {
        let mut guard = self.lock();
        let (state, file) = &mut *guard;
        if !state.by_id.contains_key(id) {
            return Ok(None);
        }
        self.append(file, &Entry::Delete { id: id.to_string(), time })?;
        let deleted = state.delete(id);
        self.generation.fetch_add(1, Ordering::AcqRel);
        Ok(deleted)
    }

    pub fn get(&self, id: &str) -> Option<Record> {
        let guard = self.lock();
        let seq = guard.0.by_id.get(id)?;
        guard.0.records.get(seq).cloned()
    }

    /// Live records matching `query`, newest first.
    pub fn list(&self, query: &ListQuery) -> Page {
        let guard = self.lock();
        let since = query.since;
        let matching: Vec<&Record> = guard
            .0
            .records
            .values()
            .rev()
            .filter(|r| query.anchor.as_ref().is_none_or(|a| r.anchor.as_ref() == Some(a)))
            .filter(|r| query.firm.as_ref().is_none_or(|f| &r.firm == f))
            .filter(|r| query.decision.is_none_or(|d| r.decision == d))
            .filter(|r| {
                since.is_none_or(|since| {
                    time::OffsetDateTime::parse(&r.time, &time::format_description::well_known::Rfc3339)
                        .is_ok_and(|t| t >= since)
                })
            })
            .collect();
        Page {
            total: matching.len(),
            records: matching.into_iter().skip(query.offset).take(query.limit).cloned().collect(),
        }
    }

    /// Firms with `decision` for a request whose group is `group` (anchors and
    /// locked members) and whose opportunity is `opportunity`: decisions on any
    /// member of the group, on the same text, and everywhere.
    pub fn decided(&self, group: &[String], opportunity: Option<&str>, decision: Decision) -> BTreeSet<String> {
        let guard = self.lock();
        let state = &guard.0;
        let mut firms = BTreeSet::new();
        if state.by_target.is_empty() {
            return firms;
        }
        state.firms(&Target::Everywhere, decision, &mut firms);
        for anchor in group {
            state.firms(&Target::Anchor(anchor.clone()), decision, &mut firms);
        }
        if let Some(text) = opportunity {
            state.firms(&Target::Opportunity(normalise_opportunity(text)), decision, &mut firms);
        }
        firms
    }

    /// Firms rejected for such a request, never proposed in its answer.
    pub fn rejected(&self, group: &[String], opportunity: Option<&str>) -> BTreeSet<String> {
        self.decided(group, opportunity, Decision::Reject)
    }

    /// Every live anchor-scoped decision with an anchor, sorted: the pairs a fit
    /// learns from (see [`crate::engine::Engine::fit_detached`]).
    pub fn anchor_decisions(&self) -> Vec<Record> {
        let guard = self.lock();
        let mut records: Vec<Record> =
            guard.0.records.values().filter(|r| r.scope == Scope::Anchor && r.anchor.is_some()).cloned().collect();
        records.sort_by(|a, b| (&a.anchor, &a.opportunity, &a.firm).cmp(&(&b.anchor, &b.opportunity, &b.firm)));
        records
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(
        id: &str,
        anchor: Option<&str>,
        text: Option<&str>,
        firm: &str,
        decision: Decision,
        scope: Scope,
    ) -> Record {
        Record {
            id: id.to_string(),
            time: "2026-01-01T00:00:00Z".to_string(),
            anchor: anchor.map(str::to_string),
            opportunity: text.map(str::to_string),
            firm: firm.to_string(),
            decision,
            scope,
            note: None,
            author: None,
        }
    }

    #[test]
    fn the_latest_decision_for_a_pair_replaces_the_earlier_one() {
        let store = FeedbackStore::in_memory();
        store.put(record("1", Some("a"), None, "x", Decision::Reject, Scope::Anchor)).unwrap();
        let replaced = store.put(record("2", Some("a"), None, "x", Decision::Accept, Scope::Anchor)).unwrap();
        assert_eq!(replaced.map(|r| r.id), Some("1".to_string()));
        assert!(store.rejected(&["a".to_string()], None).is_empty());
        assert_eq!(store.len(), 1);
        let live = store.get("1").expect("the pair keeps its first id");
        assert_eq!(live.decision, Decision::Accept);
        assert!(store.get("2").is_none());
    }

    #[test]
    fn scopes_apply_to_their_targets_only() {
        let store = FeedbackStore::in_memory();
        store.put(record("1", Some("a"), None, "x", Decision::Reject, Scope::Anchor)).unwrap();
        store.put(record("2", None, Some("Green  Hydrogen!"), "y", Decision::Reject, Scope::Anchor)).unwrap();
        store.put(record("3", None, None, "z", Decision::Reject, Scope::Everywhere)).unwrap();
        let ids = |set: BTreeSet<String>| set.into_iter().collect::<Vec<_>>();
        assert_eq!(ids(store.rejected(&["a".to_string()], None)), ["x", "z"]);
        assert_eq!(ids(store.rejected(&["b".to_string()], Some("green hydrogen"))), ["y", "z"]);
        assert_eq!(ids(store.rejected(&["b".to_string(), "a".to_string()], Some("other"))), ["x", "z"]);
        store.delete("3", String::new()).unwrap();
        assert!(store.rejected(&["b".to_string()], None).is_empty());
    }

    #[test]
    fn the_log_replays_and_a_torn_tail_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        {
            let store = FeedbackStore::open(dir.path()).unwrap();
            store.put(record("1", Some("a"), None, "x", Decision::Reject, Scope::Anchor)).unwrap();
            store.put(record("2", Some("a"), None, "y", Decision::Accept, Scope::Anchor)).unwrap();
            store.delete("2", String::new()).unwrap();
        }
        let path = dir.path().join("feedback.jsonl");
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"put\":{\"id\":\"3\",").unwrap();
        drop(file);
        let store = FeedbackStore::open(dir.path()).unwrap();
        assert_eq!(store.len(), 1);
        assert_eq!(store.get("1").map(|r| r.firm), Some("x".to_string()));
        store.put(record("4", Some("b"), None, "z", Decision::Reject, Scope::Anchor)).unwrap();
        drop(store);
        let store = FeedbackStore::open(dir.path()).unwrap();
        assert_eq!(store.len(), 2);
        assert_eq!(store.anchor_decisions().len(), 2);
    }

    #[test]
    fn opportunity_texts_match_whatever_their_case_and_spacing() {
        assert_eq!(normalise_opportunity("  Low-carbon   HOUSING. "), "low-carbon housing");
    }
}
