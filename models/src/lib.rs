//! klynge-models owns the firm profile type, its validation, and the pure
//! computation of matchmaking: text vectors, embeddings, latent clusters,
//! value-chain complementarity, partner scoring and network assembly. It knows
//! nothing of HTTP, tantivy or Redis, so every model can be tested and
//! benchmarked on plain data.

pub mod firm;
pub mod lsa;
pub mod model;
pub mod nace;
pub mod network;
pub mod projects;

pub use firm::{
    FieldError, Firm, GeoPoint, Kind, SizeClass, TextLanguage, check_id, normalise_country, normalise_region,
    validate_profile,
};
pub mod collaboration;
pub use collaboration::{Collaboration, validate_collaboration};
pub mod cluster;
pub mod graph;
pub mod scoring;
pub mod text;
pub mod valuechain;
