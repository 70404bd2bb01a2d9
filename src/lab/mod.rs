//! The lab: benchmark and generator code behind the command line's `eval`,
//! `eval-links`, `gen`, `demo-catalogue` and `fit-defaults`, kept out of the
//! service. It builds on the service's use-cases (it answers with the same code
//! the API runs), but no service module names it: only `cli` does
//! (`tests/fitness.rs` checks).
//!
//! - `eval`: the CORDIS consortium benchmark and its runs (holdout, completion,
//!   feedback rounds, learning check, network-objective tuning);
//! - `eval_links`: real supplier and customer links against partner lists;
//! - `synthetic`: realistic synthetic catalogues of any size, for scale tests
//!   and benchmarks;
//! - `demo_catalogue`: rebuilds the demo catalogue the service embeds.

pub mod demo_catalogue;
pub mod eval;
pub mod eval_links;
pub mod synthetic;
