//! The klynge service: settings, HTTP API, cache, CLI and batch jobs, around the
//! use-cases in [`engine`] that join the tantivy index (`klynge-index`) and the
//! models (`klynge-models`). Beside it, [`lab`] holds the benchmarks and
//! generators behind the command line's `eval`, `eval-links`, `gen` and
//! `demo-catalogue`; only [`cli`] names it.

pub mod api;
pub mod app;
pub mod cache;
pub mod cli;
pub mod demo;
pub mod engine;
pub mod error;
pub mod feedback;
pub mod ingest;
pub mod jobs;
pub mod lab;
pub mod memory;
pub mod networks;
pub mod precomputed;
pub mod ratelimit;
pub mod refresh;
pub mod settings;
pub mod state;
pub mod store;
pub mod telemetry;
