//! The demo catalogue compiled into the binary (see `data/demo/README.md` for its
//! sources and licences): real organisations and companies, loaded into an empty
//! index by `klynge serve --demo` so a new user sees real results at once.

use std::io::{Read, Write};
use std::path::Path;

use flate2::read::GzDecoder;
use klynge_models::{Collaboration, validate_collaboration};
use serde_json::Value;

use crate::engine::Engine;
use crate::ingest::{self, Format};

const FIRMS: &[u8] = include_bytes!("../data/demo/firms.ndjson.gz");
const COLLABORATIONS: &[u8] = include_bytes!("../data/demo/collaborations.ndjson.gz");

fn gunzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    GzDecoder::new(bytes).read_to_end(&mut out).expect("the shipped demo files are valid gzip");
    out
}

/// Loads the catalogue when the index holds no firm; returns how many profiles
/// were loaded (0 when the index already had data).
pub fn load_if_empty(engine: &Engine) -> anyhow::Result<usize> {
    if engine.index().num_firms()? > 0 {
        return Ok(0);
    }
    let items = ingest::parse_items(&gunzip(FIRMS), Format::Ndjson).map_err(|error| anyhow::anyhow!(error.message))?;
    let (firms, rejected) = ingest::validate_items(&items, &ingest::now_rfc3339());
    anyhow::ensure!(rejected.is_empty(), "the shipped demo catalogue has invalid profiles: {:?}", &rejected[..1]);
    let collaborations = String::from_utf8(gunzip(COLLABORATIONS))?
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            let value = serde_json::from_str(line)?;
            validate_collaboration(&value).map_err(|errors| anyhow::anyhow!("invalid demo collaboration: {errors:?}"))
        })
        .collect::<anyhow::Result<Vec<Collaboration>>>()?;
    engine.upsert_firms(&firms)?;
    engine.upsert_collaborations(&collaborations)?;
    Ok(firms.len())
}

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
    let orgs: Vec<Value> = crate::eval::read_lines(&consortia.join("orgs.jsonl"))?;
    let mut profiles: Vec<Value> = orgs.iter().filter_map(crate::eval::org_profile).collect();
    let european: Vec<Value> = crate::synthetic::source_profiles(firms)?
        .into_iter()
        .filter(|p| p["country"].as_str().is_some_and(|c| EUROPE.contains(&c)))
        .filter(|p| p["sectors"].as_array().is_some_and(|s| !s.is_empty()))
        .collect();
    let step = (european.len() as f64 / companies.max(1) as f64).max(1.0);
    profiles.extend((0..companies.min(european.len())).map(|i| european[(i as f64 * step) as usize].clone()));
    let collaborations: Vec<Value> = crate::eval::read_lines::<Value>(&consortia.join("collaborations.jsonl"))?
        .iter()
        .filter_map(crate::eval::collaboration_record)
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
