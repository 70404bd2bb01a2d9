//! `klynge demo-catalogue`: rebuilds the demo catalogue the service embeds
//! (`data/demo/`, loaded by `demo::load_if_empty`) from the shared data sets.

use std::io::Write;
use std::path::Path;

use serde_json::Value;

/// European countries: the demo is about European cluster programmes, so its
/// companies come from where its research organisations are.
const EUROPE: &[&str] = &[
    "AT", "BE", "BG", "CH", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GB", "GR", "HR", "HU", "IE", "IS", "IT",
    "LI", "LT", "LU", "LV", "MT", "NL", "NO", "PL", "PT", "RO", "SE", "SI", "SK",
];

/// Rebuilds `data/demo/` from the shared data: every CORDIS organisation with its
/// consortia, plus `companies` European listed companies (with NACE sectors) spread
/// evenly over the FinanceDatabase extract. Run by `scripts/make_demo_catalogue.sh`.
pub fn build(consortia: &Path, firms: &Path, companies: usize, out: &Path) -> anyhow::Result<(usize, usize)> {
    let orgs: Vec<Value> = super::eval::read_lines(&consortia.join("orgs.jsonl"))?;
    let mut profiles: Vec<Value> = orgs.iter().filter_map(super::eval::org_profile).collect();
    let european: Vec<Value> = super::synthetic::source_profiles(firms)?
        .into_iter()
        .filter(|p| p["country"].as_str().is_some_and(|c| EUROPE.contains(&c)))
        .filter(|p| p["sectors"].as_array().is_some_and(|s| !s.is_empty()))
        .collect();
    let step = (european.len() as f64 / companies.max(1) as f64).max(1.0);
    profiles.extend((0..companies.min(european.len())).map(|i| european[(i as f64 * step) as usize].clone()));
    let collaborations: Vec<Value> = super::eval::read_lines::<Value>(&consortia.join("collaborations.jsonl"))?
        .iter()
        .filter_map(super::eval::collaboration_record)
        .collect();
    std::fs::create_dir_all(out)?;
    for (name, records) in [("firms.ndjson.gz", &profiles), ("collaborations.ndjson.gz", &collaborations)] {
        let file = std::fs::File::create(out.join(name))?;
        let mut writer = flate2::write::GzEncoder::new(std::io::BufWriter::new(file), flate2::Compression::best());
        for record in records {
            serde_json::to_writer(&mut writer, record)?;
            writer.write_all(b"\n")?;
        }
        writer.finish()?.flush()?;
    }
    Ok((profiles.len(), collaborations.len()))
}
