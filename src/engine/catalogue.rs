//! Catalogue reads the API answers from: one firm (with its collaborations), one
//! collaboration, which ids have no profile, a search page, and the index's size
//! and generation. Handlers call these rather than the index itself, so the
//! HTTP layer never holds an index handle (`tests/fitness.rs` checks).

use klynge_index::{IndexError, SearchPage};
use klynge_models::Collaboration;

use super::{Engine, SearchRequest, StoredFirm};

impl Engine {
    /// The stored profile of `id` and the collaborations it is a member of (by id).
    pub fn firm_with_collaborations(&self, id: &str) -> Result<Option<(StoredFirm, Vec<Collaboration>)>, IndexError> {
        let Some(stored) = self.index.get_firm(id)? else {
            return Ok(None);
        };
        Ok(Some((stored, self.index.collaborations_of(id)?)))
    }

    pub fn collaboration(&self, id: &str) -> Result<Option<Collaboration>, IndexError> {
        self.index.get_collaboration(id)
    }

    /// Which of `ids` have no stored profile.
    pub fn missing_firms<'a>(&self, ids: impl IntoIterator<Item = &'a String>) -> Result<Vec<String>, IndexError> {
        self.index.missing_firms(ids)
    }

    /// One page of the full-text and filtered search of profiles.
    pub fn search(&self, request: &SearchRequest) -> Result<SearchPage, IndexError> {
        self.index.search(request)
    }

    /// The catalogue's generation: it increases on every write.
    pub fn index_generation(&self) -> u64 {
        self.index.generation()
    }

    pub fn firm_count(&self) -> Result<usize, IndexError> {
        self.index.num_firms()
    }

    /// Bytes the index files use on disk (0 in memory).
    pub fn index_size_on_disk(&self) -> u64 {
        self.index.size_on_disk()
    }
}
