//! Ingest and search at the size of the real catalogue (~40k listed companies of
//! `shared/data/firms`).
//!
//! * `ingest_40k/parse_validate`: NDJSON bytes → validated `StoredFirm`s (CPU only).
//! * `ingest_40k/parse_validate_upsert`: the same plus upserts into a fresh on-disk
//!   index in a tempdir, 5 000 profiles per commit (what `klynge ingest` does; each
//!   commit fsyncs). Throughput is in profiles/s.
//! * `search_40k/*`: `FirmIndex::search` (20 hits with snippets) for typical
//!   queries, with and without filters.
//!
//! `cargo bench --bench ingest`; the catalogue path can be overridden with
//! `KLYNGE_FIRMS_SOURCE`.

mod common;

use std::hint::black_box;
use std::time::Duration;

use criterion::{BatchSize, Criterion, SamplingMode, Throughput, criterion_group, criterion_main};
use klynge::ingest::{Format, parse_items, validate_items};
use klynge_index::{FirmIndex, SearchRequest};
use klynge_models::SizeClass;
use klynge_models::model::ProfileFilter;

/// Profiles per commit, as in `klynge ingest`.
const CHUNK: usize = 5_000;

fn ndjson(profiles: &[serde_json::Value]) -> Vec<u8> {
    let mut out = Vec::with_capacity(profiles.len() * 1_200);
    for profile in profiles {
        serde_json::to_writer(&mut out, profile).expect("serialisable");
        out.push(b'\n');
    }
    out
}

/// Parses, validates and upserts like `klynge ingest`; returns profiles accepted.
fn ingest(bytes: &[u8], index: Option<&FirmIndex>) -> usize {
    let items = parse_items(bytes, Format::Ndjson).expect("valid NDJSON");
    let updated_at = klynge::ingest::now_rfc3339();
    let mut accepted_total = 0;
    for chunk in items.chunks(CHUNK) {
        let (accepted, rejected) = validate_items(chunk, &updated_at);
        black_box(&rejected);
        if let Some(index) = index {
            index.upsert_firms(&accepted).expect("upsert");
        }
        accepted_total += accepted.len();
    }
    accepted_total
}

fn benches(c: &mut Criterion) {
    let Some(mut profiles) = common::source_profiles() else {
        return;
    };
    if !common::benchmarking() {
        profiles.truncate(common::SMOKE_PROFILES);
    }
    let bytes = ndjson(&profiles);
    let accepted = ingest(&bytes, None);
    eprintln!("{} profiles, {:.1} MB of NDJSON, {} valid", profiles.len(), bytes.len() as f64 / 1e6, accepted);

    let mut group = c.benchmark_group("ingest_40k");
    group.sample_size(10).sampling_mode(SamplingMode::Flat).throughput(Throughput::Elements(profiles.len() as u64));
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("parse_validate", |b| b.iter(|| ingest(black_box(&bytes), None)));
    group.measurement_time(Duration::from_secs(60));
    group.bench_function("parse_validate_upsert", |b| {
        b.iter_batched(
            || {
                let dir = tempfile::tempdir().expect("tempdir");
                let index = FirmIndex::open(dir.path()).expect("open index");
                (dir, index)
            },
            // The index and its directory are dropped after the timing.
            |(dir, index)| {
                black_box(ingest(&bytes, Some(&index)));
                (index, dir)
            },
            BatchSize::PerIteration,
        )
    });
    group.finish();

    let dir = tempfile::tempdir().expect("tempdir");
    let index = FirmIndex::open(dir.path()).expect("open index");
    ingest(&bytes, Some(&index));
    eprintln!(
        "search index: {} firms, {:.1} MB on disk",
        index.num_firms().unwrap_or(0),
        index.size_on_disk() as f64 / 1e6
    );
    let text = |q: &str| Some(q.to_string());
    let queries: [(&str, SearchRequest); 6] = [
        ("text_solar_panels", SearchRequest { query: text("solar panels"), ..Default::default() }),
        (
            "text_semiconductor_equipment_long",
            SearchRequest {
                query: text("semiconductor wafer inspection equipment and lithography systems for chip makers"),
                ..Default::default()
            },
        ),
        (
            "text_cloud_software_country_us",
            SearchRequest {
                query: text("cloud software"),
                filter: ProfileFilter { country: text("US"), ..Default::default() },
                ..Default::default()
            },
        ),
        (
            "text_biotech_sector_c21_sme",
            SearchRequest {
                query: text("oncology antibodies"),
                filter: ProfileFilter { sector: text("C21"), sme: Some(true), ..Default::default() },
                ..Default::default()
            },
        ),
        (
            "filters_only_country_jp_size_small",
            SearchRequest {
                filter: ProfileFilter { country: text("JP"), size: Some(SizeClass::Small), ..Default::default() },
                ..Default::default()
            },
        ),
        (
            "text_logistics_offset_100",
            SearchRequest { query: text("logistics warehousing"), offset: 100, ..Default::default() },
        ),
    ];
    let mut group = c.benchmark_group("search_40k");
    group.sample_size(50).measurement_time(Duration::from_secs(5));
    for (name, mut request) in queries {
        request.limit = 20;
        let page = index.search(&request).expect("search");
        eprintln!("{name}: {} matches", page.total);
        group.bench_function(name, |b| b.iter(|| index.search(black_box(&request)).expect("search")));
    }
    group.finish();
}

criterion_group!(ingest_benches, benches);
criterion_main!(ingest_benches);
