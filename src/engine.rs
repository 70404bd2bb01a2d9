//! The use-cases that join the index and the models: writes that keep both in
//! step, and the queries (shortlists, networks) the API and batch jobs share.
//! Everything here is synchronous and may block; async callers reach it through
//! `spawn_blocking`.

use std::sync::Arc;

use klynge_index::{FirmIndex, IndexError, StoredFirm};
use klynge_models::Collaboration;
use serde_json::Value;

pub struct Engine {
    index: Arc<FirmIndex>,
}

impl Engine {
    pub fn new(index: Arc<FirmIndex>) -> Engine {
        Engine { index }
    }

    pub fn index(&self) -> &FirmIndex {
        &self.index
    }

    pub fn upsert_firms(&self, firms: &[StoredFirm]) -> Result<u64, IndexError> {
        self.index.upsert_firms(firms)
    }

    pub fn delete_firm(&self, id: &str) -> Result<bool, IndexError> {
        self.index.delete_firm(id)
    }

    pub fn upsert_collaborations(
        &self,
        collaborations: &[Collaboration],
    ) -> Result<u64, IndexError> {
        self.index.upsert_collaborations(collaborations)
    }

    pub fn model_info(&self) -> Value {
        Value::Null
    }
}
