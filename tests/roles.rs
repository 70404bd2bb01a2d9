//! How far a company's value-chain stage can be read from its text: the demo
//! catalogue's listed companies state their sectors, so hiding them from every
//! fifth one and inferring them back (as the model does for profiles without
//! sectors) measures the guess against the truth, by the guess's confidence.
//! This is what `network::SECTOR_CONFIDENCE`, the margin above which a
//! network names a company's stage from an inferred sector, rests on.

use std::io::Read;

use klynge_models::model::{FittedModel, ModelParams};
use klynge_models::network::SECTOR_CONFIDENCE;
use klynge_models::{Firm, validate_profile, valuechain};

fn demo_firms() -> Vec<Firm> {
    let mut text = String::new();
    flate2::read::GzDecoder::new(&include_bytes!("../data/demo/firms.ndjson.gz")[..])
        .read_to_string(&mut text)
        .expect("the demo catalogue is gzip");
    text.lines()
        .map(|line| validate_profile(&serde_json::from_str(line).expect("JSON")).expect("a valid profile"))
        .collect()
}

#[test]
#[ignore = "a measurement over the whole demo catalogue; run with --release -- --ignored --nocapture"]
fn confident_sector_guesses_name_the_right_stage() {
    let mut firms = demo_firms();
    let mut truth = Vec::new();
    let mut listed = 0;
    for (position, firm) in firms.iter_mut().enumerate() {
        if firm.sectors.is_empty() {
            continue;
        }
        listed += 1;
        if listed % 5 == 0 {
            truth.push((position, firm.sectors.iter().map(|s| valuechain::stage(s)).collect::<Vec<_>>()));
            firm.sectors.clear();
        }
    }
    // No collaborations: only the text model and the sector centroids are needed.
    let model = FittedModel::fit(&firms, &[], 1, ModelParams::default()).expect("fitted");
    let mut buckets = [(0usize, 0usize); 2];
    let mut by_margin: Vec<(f32, bool)> = Vec::new();
    for (position, stages) in &truth {
        let meta = &model.meta[*position];
        let right = meta.sectors.first().is_some_and(|s| stages.contains(&valuechain::stage(s)));
        let bucket = &mut buckets[usize::from(meta.stage_margin >= SECTOR_CONFIDENCE)];
        bucket.0 += 1;
        bucket.1 += usize::from(right);
        by_margin.push((meta.stage_margin, right));
    }
    by_margin.sort_by(|a, b| b.0.total_cmp(&a.0));
    for share in [0.1, 0.2, 0.3, 0.5, 0.7, 1.0] {
        let top = &by_margin[..((by_margin.len() as f64 * share) as usize).max(1)];
        println!(
            "most confident {:>3.0} %: margin ≥ {:.3}, stage right {:.1} %",
            share * 100.0,
            top.last().unwrap().0,
            100.0 * top.iter().filter(|(_, right)| *right).count() as f64 / top.len() as f64
        );
    }
    let rate = |(n, right): (usize, usize)| right as f64 / n.max(1) as f64;
    println!(
        "{} companies with hidden sectors; margin ≥ {SECTOR_CONFIDENCE}: {} named, stage right {:.1} %; below: {}, right {:.1} %",
        truth.len(),
        buckets[1].0,
        100.0 * rate(buckets[1]),
        buckets[0].0,
        100.0 * rate(buckets[0])
    );
    assert!(buckets[1].0 > 0 && rate(buckets[1]) > rate(buckets[0]), "confidence must mean something: {buckets:?}");
    assert!(rate(buckets[1]) >= 0.6, "a named stage is right most of the time: {buckets:?}");
}
