//! Uncached recommendation latency at catalogue sizes of 40k (the real companies
//! of `shared/data/firms`) and 200k (`lab::synthetic::generate(source, 200_000, 42)`):
//!
//! * `recommend_<n>/partners`: a firm's partners (`GET /v1/firms/{id}/partners`, k = 20);
//! * `recommend_<n>/opportunity_shortlist`: `POST /v1/shortlists` with text only (k = 20);
//! * `recommend_<n>/network`: `POST /v1/networks` with one anchor and a text, 5–8
//!   members, at least one SME, 3 alternatives, 100 candidates (the API defaults).
//! * `recommend_<n>/network_locked_4`: the same with four more firms in `lock`
//!   (completion from the firms at the table: the group of five scores every
//!   candidate, `Engine::relevance`); the locked firms are the anchor's past
//!   partners when it has four, else the next firms of the shuffled list.
//!
//! These call the engine directly (no HTTP, no cache). Every call takes the next
//! anchor of a shuffled list of all firms, and the next of 128 opportunity texts,
//! so no two calls in a run ask the same thing. The catalogue is indexed (on disk,
//! in a tempdir) and fitted once per size, outside the timings. Besides
//! criterion's estimates, each benchmark prints p50/p90/p99 of its individually
//! timed calls.
//!
//! `KLYNGE_BENCH_SIZES=40000 cargo bench --bench recommend` (default: 40000,200000).

mod common;

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, SamplingMode, criterion_group, criterion_main};
use klynge::engine::{Engine, ShortlistRequest};
use klynge::networks::NetworkRequest;
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_xoshiro::Xoshiro256PlusPlus;

const PRODUCTS: [&str; 16] = [
    "solar inverters and battery storage",
    "offshore wind turbine foundations",
    "precision machining of aerospace parts",
    "biodegradable food packaging",
    "cloud software for logistics planning",
    "contract manufacturing of generic drugs",
    "semiconductor test equipment",
    "low-carbon cement and building materials",
    "electric vehicle charging infrastructure",
    "cold-chain transport of fresh produce",
    "medical imaging devices",
    "recycling of lithium-ion batteries",
    "hydrogen electrolysers",
    "smart grid metering and analytics",
    "plant-based dairy alternatives",
    "cybersecurity services for banks",
];

const MARKETS: [&str; 8] = [
    "for European utilities",
    "for hospitals in Asia",
    "for small retailers",
    "for the automotive supply chain",
    "for municipal housing renovation",
    "for mining companies",
    "for export to North America",
    "for a regional cluster of food producers",
];

fn opportunities() -> Vec<String> {
    PRODUCTS.iter().flat_map(|product| MARKETS.iter().map(move |market| format!("{product} {market}"))).collect()
}

/// `KLYNGE_BENCH_SIZES`, e.g. "40000" or "40000,200000" (the default).
fn sizes() -> Vec<usize> {
    let text = std::env::var("KLYNGE_BENCH_SIZES").unwrap_or_else(|_| "40000,200000".to_string());
    let sizes: Vec<usize> = text.split(',').filter_map(|s| s.trim().replace('_', "").parse().ok()).collect();
    if sizes.is_empty() {
        eprintln!("KLYNGE_BENCH_SIZES={text:?} names no sizes; using 40000");
        return vec![40_000];
    }
    sizes
}

/// Times each call on its own; criterion gets the total, the caller the list.
fn timed<T>(times: &mut Vec<Duration>, iters: u64, mut call: impl FnMut() -> T) -> Duration {
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let started = Instant::now();
        black_box(call());
        let elapsed = started.elapsed();
        times.push(elapsed);
        total += elapsed;
    }
    total
}

fn network_request(anchor: &str, opportunity: &str) -> NetworkRequest {
    NetworkRequest {
        opportunity: Some(opportunity.to_string()),
        min_sme: 1,
        alternatives: 3,
        ..NetworkRequest::around(anchor)
    }
}

fn bench_size(c: &mut Criterion, engine: &Engine, label: &str) {
    let model = engine.model().expect("fitted");
    let mut anchors: Vec<String> = (0..model.len() as u32).map(|i| model.id(i).to_string()).collect();
    anchors.shuffle(&mut Xoshiro256PlusPlus::seed_from_u64(7));
    let texts = opportunities();
    let mut next = 0usize;
    let mut take = || {
        next += 1;
        (&anchors[next % anchors.len()], &texts[next % texts.len()])
    };

    let mut group = c.benchmark_group(format!("recommend_{label}"));
    group.sampling_mode(SamplingMode::Flat).sample_size(20).measurement_time(Duration::from_secs(20));
    if !common::benchmarking() {
        group.sample_size(10);
    }

    let (mut times, mut failures) = (Vec::new(), 0usize);
    group.bench_function("partners", |b| {
        b.iter_custom(|iters| {
            timed(&mut times, iters, || {
                let (anchor, _) = take();
                let request = ShortlistRequest { anchors: vec![anchor.clone()], k: 20, ..Default::default() };
                let outcome = engine.shortlist(&request);
                failures += usize::from(outcome.is_err());
                outcome.map(|list| list.partners.len())
            })
        })
    });
    common::report(&format!("recommend_{label}/partners"), std::mem::take(&mut times), failures);

    failures = 0;
    group.bench_function("opportunity_shortlist", |b| {
        b.iter_custom(|iters| {
            timed(&mut times, iters, || {
                let (_, text) = take();
                let request = ShortlistRequest { opportunity: Some(text.clone()), k: 20, ..Default::default() };
                let outcome = engine.shortlist(&request);
                failures += usize::from(outcome.is_err());
                outcome.map(|list| list.partners.len())
            })
        })
    });
    common::report(&format!("recommend_{label}/opportunity_shortlist"), std::mem::take(&mut times), failures);

    failures = 0;
    let mut first_error = None;
    group.bench_function("network", |b| {
        b.iter_custom(|iters| {
            timed(&mut times, iters, || {
                let (anchor, text) = take();
                let outcome = engine.network(&network_request(anchor, text));
                if let Err(error) = &outcome {
                    failures += 1;
                    first_error.get_or_insert_with(|| format!("{anchor}: {error}"));
                }
                outcome.map(|response| response.network.members.len())
            })
        })
    });
    common::report(&format!("recommend_{label}/network"), std::mem::take(&mut times), failures);
    if let Some(error) = first_error.take() {
        eprintln!("first network failure: {error}");
    }

    failures = 0;
    let mut order = 0usize;
    group.bench_function("network_locked_4", |b| {
        b.iter_custom(|iters| {
            timed(&mut times, iters, || {
                let (anchor, text) = take();
                let position = model.position(anchor).expect("an id of the model");
                let mut lock: Vec<String> =
                    model.graph.partners(position).iter().take(4).map(|&(p, _)| model.id(p).to_string()).collect();
                while lock.len() < 4 {
                    order += 1;
                    let other = &anchors[(order * 7919) % anchors.len()];
                    if other != anchor && !lock.contains(other) {
                        lock.push(other.clone());
                    }
                }
                let request = NetworkRequest { lock, ..network_request(anchor, text) };
                let outcome = engine.network(&request);
                if let Err(error) = &outcome {
                    failures += 1;
                    first_error.get_or_insert_with(|| format!("{anchor}: {error}"));
                }
                outcome.map(|response| response.network.members.len())
            })
        })
    });
    common::report(&format!("recommend_{label}/network_locked_4"), std::mem::take(&mut times), failures);
    if let Some(error) = first_error {
        eprintln!("first locked network failure: {error}");
    }
    group.finish();
}

fn benches(c: &mut Criterion) {
    let Some(mut source) = common::source_profiles() else {
        return;
    };
    let sizes = if common::benchmarking() {
        sizes()
    } else {
        source.truncate(common::SMOKE_PROFILES);
        vec![2 * common::SMOKE_PROFILES]
    };
    for size in sizes {
        let started = Instant::now();
        let (firms, collaborations) = klynge::lab::synthetic::generate(&source, size, 42);
        eprintln!("generated {size} profiles in {:.1} s", started.elapsed().as_secs_f64());
        let dir = tempfile::tempdir().expect("tempdir");
        let engine = common::fitted_engine(dir.path(), &firms, &collaborations);
        drop((firms, collaborations));
        bench_size(c, &engine, &size.to_string());
    }
}

criterion_group!(recommend_benches, benches);
criterion_main!(recommend_benches);
