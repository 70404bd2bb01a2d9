//! Shared by the benchmarks: where the real firm catalogue is, and how to turn
//! profile values into a fitted engine the way `klynge ingest` + `klynge train` do.
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;

use klynge::engine::Engine;
use klynge_index::{FirmIndex, StoredFirm};
use klynge_models::model::ModelParams;
use klynge_models::{validate_collaboration, validate_profile};
use serde_json::Value;

/// The FinanceDatabase extract (`KLYNGE_FIRMS_SOURCE` overrides the default
/// `../shared/data/firms/firms.jsonl.gz` next to the workspace). `None`, with a
/// message saying so, when it is missing: the benchmarks then skip.
pub fn source_path() -> Option<PathBuf> {
    let path = std::env::var_os("KLYNGE_FIRMS_SOURCE")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data/firms/firms.jsonl.gz")));
    if path.is_file() {
        Some(path)
    } else {
        eprintln!(
            "skipping: the firm catalogue {} is missing (set KLYNGE_FIRMS_SOURCE to a firms.jsonl.gz)",
            path.display()
        );
        None
    }
}

/// The real companies as profile values, or `None` (and a message) when the file
/// is missing or unreadable.
pub fn source_profiles() -> Option<Vec<Value>> {
    let path = source_path()?;
    let started = std::time::Instant::now();
    match klynge::lab::synthetic::source_profiles(&path) {
        Ok(profiles) if !profiles.is_empty() => {
            eprintln!("{} source profiles read in {:.1} s", profiles.len(), started.elapsed().as_secs_f64());
            Some(profiles)
        }
        Ok(_) => {
            eprintln!("skipping: {} holds no companies", path.display());
            None
        }
        Err(error) => {
            eprintln!("skipping: cannot read {}: {error:#}", path.display());
            None
        }
    }
}

/// An engine over an on-disk index in `dir` holding `firms` and
/// `collaborations`, fitted; invalid records are dropped and counted.
pub fn fitted_engine(dir: &std::path::Path, firms: &[Value], collaborations: &[Value]) -> Engine {
    let started = std::time::Instant::now();
    let updated_at = klynge::ingest::now_rfc3339();
    let stored: Vec<StoredFirm> = firms
        .iter()
        .filter_map(|profile| {
            let firm = validate_profile(profile).ok()?;
            Some(StoredFirm { firm, raw: profile.to_string(), updated_at: updated_at.clone() })
        })
        .collect();
    let ties: Vec<_> = collaborations.iter().filter_map(|c| validate_collaboration(c).ok()).collect();
    let index = FirmIndex::open(dir).expect("open the index");
    for chunk in stored.chunks(50_000) {
        index.upsert_firms(chunk).expect("upsert firms");
    }
    index.upsert_collaborations(&ties).expect("upsert collaborations");
    let loaded = started.elapsed();
    let engine = Engine::new(Arc::new(index), None, ModelParams::default());
    let fit_started = std::time::Instant::now();
    engine.fit().expect("fit").expect("a non-empty catalogue");
    eprintln!(
        "catalogue: {} profiles ({} rejected), {} collaborations ({} rejected); indexed in {:.1} s, fitted in {:.1} s",
        stored.len(),
        firms.len() - stored.len(),
        ties.len(),
        collaborations.len() - ties.len(),
        loaded.as_secs_f64(),
        fit_started.elapsed().as_secs_f64()
    );
    engine
}

/// Nearest-rank percentile of sorted durations, in milliseconds.
pub fn percentile_ms(sorted: &[std::time::Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted[rank.min(sorted.len()) - 1].as_secs_f64() * 1e3
}

/// Prints p50/p90/p99/max of individually timed calls.
pub fn report(name: &str, mut times: Vec<std::time::Duration>, failures: usize) {
    if times.is_empty() {
        return; // filtered out
    }
    times.sort_unstable();
    eprintln!(
        "{name}: {} calls ({failures} failed) p50 {:.2} ms  p90 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        times.len(),
        percentile_ms(&times, 50.0),
        percentile_ms(&times, 90.0),
        percentile_ms(&times, 99.0),
        times.last().map_or(f64::NAN, |t| t.as_secs_f64() * 1e3),
    );
}

/// Whether this is a real benchmark run (`cargo bench`), not the one-pass smoke
/// test that `cargo test --all-targets` makes of every bench target.
pub fn benchmarking() -> bool {
    std::env::args().any(|arg| arg == "--bench") && !std::env::args().any(|arg| arg == "--test" || arg == "--list")
}

/// Profiles a smoke test (not `cargo bench`) works with, to stay quick in debug builds.
pub const SMOKE_PROFILES: usize = 400;
