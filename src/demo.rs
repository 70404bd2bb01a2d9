//! The demo catalogue compiled into the binary (see `data/demo/README.md` for its
//! sources and licences): real organisations and companies, loaded into an empty
//! index by `klynge serve --demo` so a new user sees real results at once.
//! Rebuilding the files from the shared data sets is benchmark tooling and lives
//! in `lab::demo_catalogue`.

use std::io::Read;

use flate2::read::GzDecoder;
use klynge_models::{Collaboration, validate_collaboration};

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
    if engine.firm_count()? > 0 {
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
