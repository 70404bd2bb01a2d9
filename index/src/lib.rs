//! klynge-index owns the tantivy index of firm profiles and collaborations:
//! the schema, durable upsert/delete/get, filtered full-text search with
//! snippets, and the BM25 candidate retrieval the recommenders use. It knows
//! nothing of HTTP or Redis.
//!
//! One index holds both record types (a `doc_type` term tells them apart) so a
//! single commit makes a change durable and bumps one **generation** counter,
//! which is kept in the commit payload and therefore survives restarts.

mod schema;
mod store;

pub use schema::TextField;
pub use store::{FirmIndex, IndexError, SearchHit, SearchPage, SearchRequest, StoredFirm, TextMatch};
