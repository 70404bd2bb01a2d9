//! `klynge eval-links`: how many of a firm's real suppliers and customers its
//! partner list finds. Profiles are loaded into a fresh in-memory index and
//! fitted exactly as the service does; for every firm with at least
//! [`MIN_LINKS`] links (`customer,supplier` id pairs, in either role) the share
//! of its linked firms among its top k partners is averaged, next to the
//! text-similarity yardstick of the Python peer service (TF-IDF → SVD 128 →
//! cosine on descriptions, [`klynge_models::lsa`]) computed in the same run.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use klynge_index::FirmIndex;
use klynge_models::model::ModelParams;
use rayon::prelude::*;
use serde_json::json;

use crate::engine::{Engine, ShortlistRequest};
use crate::ingest::{self, Format};

/// Firms with fewer links are not scored: one or two links say little about a
/// ranking of thousands.
pub const MIN_LINKS: usize = 3;

/// Dimensions of the text-similarity yardstick (the peer's `TruncatedSVD(128)`).
const BASELINE_RANK: usize = 128;

/// A line of the links file that was not used, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadLine {
    pub line: usize,
    pub problem: String,
}

/// What one system scored: mean share of linked firms in the top k, per k.
#[derive(Debug, Clone)]
pub struct Row {
    pub system: String,
    pub recall: Vec<f64>,
}

#[derive(Debug, Clone)]
pub struct Report {
    pub profiles: usize,
    pub rejected_profiles: usize,
    pub links: usize,
    pub bad_lines: Vec<BadLine>,
    /// Firms with at least [`MIN_LINKS`] links.
    pub firms: usize,
    pub ks: Vec<usize>,
    pub rows: Vec<Row>,
}

impl Report {
    pub fn table(&self) -> String {
        let mut out = String::from("| system |");
        for k in &self.ks {
            out.push_str(&format!(" top {k} |"));
        }
        out.push_str("\n|---|");
        out.push_str(&"---|".repeat(self.ks.len()));
        for row in &self.rows {
            out.push_str(&format!("\n| {} |", row.system));
            for value in &row.recall {
                out.push_str(&format!(" {value:.3} |"));
            }
        }
        out
    }
}

/// Reads `customer,supplier` pairs (an optional header line of those two words);
/// lines that are malformed, name an unknown id or link a firm to itself are
/// reported by line and skipped.
pub fn read_links(text: &str, known: &dyn Fn(&str) -> bool) -> (Vec<(String, String)>, Vec<BadLine>) {
    let mut links = BTreeSet::new();
    let mut bad = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let line_number = number + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').map(str::trim).collect();
        if number == 0 && fields.iter().map(|f| f.to_ascii_lowercase()).eq(["customer", "supplier"]) {
            continue;
        }
        let mut report = |problem: String| bad.push(BadLine { line: line_number, problem });
        if fields.len() != 2 {
            report(format!("expected `customer,supplier`, found {} fields", fields.len()));
            continue;
        }
        if let Some(problem) =
            fields.iter().find_map(|id| klynge_models::firm::check_id(id).err().map(|e| format!("id `{id}` {e}")))
        {
            report(problem);
            continue;
        }
        let unknown: Vec<&str> = fields.iter().copied().filter(|id| !known(id)).collect();
        if !unknown.is_empty() {
            report(format!("unknown id {}", unknown.join(" and ")));
            continue;
        }
        if fields[0] == fields[1] {
            report(format!("`{}` is linked to itself", fields[0]));
            continue;
        }
        links.insert((fields[0].to_string(), fields[1].to_string()));
    }
    (links.into_iter().collect(), bad)
}

/// Share of `linked` among the first `k` of `ranked`.
fn recall(ranked: &[String], linked: &BTreeSet<&str>, k: usize) -> f64 {
    ranked.iter().take(k).filter(|id| linked.contains(id.as_str())).count() as f64 / linked.len().max(1) as f64
}

pub fn run(profiles: &Path, links: &Path, ks: &[usize], predictions: Option<&Path>) -> anyhow::Result<Report> {
    let bytes = crate::ingest::read_input(profiles)?;
    let name = profiles.to_string_lossy();
    let format = Format::from_path(name.trim_end_matches(".gz")).ok_or_else(|| {
        anyhow::anyhow!("{}: use .ndjson, .jsonl, .json or .csv (optionally .gz)", profiles.display())
    })?;
    let items = ingest::parse_items(&bytes, format)
        .map_err(|e| anyhow::anyhow!("{}: line {:?}: {}", profiles.display(), e.line, e.message))?;
    let (firms, rejected) = ingest::validate_items(&items, &ingest::now_rfc3339());
    for bad in &rejected {
        let problems: Vec<String> = bad.errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect();
        eprintln!(
            "{} {}: rejected: {}",
            profiles.display(),
            bad.line.map_or(format!("item {}", bad.index), |l| format!("line {l}")),
            problems.join("; ")
        );
    }
    anyhow::ensure!(!firms.is_empty(), "{} holds no valid profile", profiles.display());
    let text = String::from_utf8(crate::ingest::read_input(links)?)?;
    let ids: HashMap<&str, usize> = firms.iter().enumerate().map(|(i, f)| (f.firm.id.as_str(), i)).collect();
    let (pairs, bad_lines) = read_links(&text, &|id| ids.contains_key(id));
    for bad in &bad_lines {
        eprintln!("{}: line {}: {}", links.display(), bad.line, bad.problem);
    }
    let mut linked: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (customer, supplier) in &pairs {
        linked.entry(customer).or_default().insert(supplier);
        linked.entry(supplier).or_default().insert(customer);
    }
    linked.retain(|_, others| others.len() >= MIN_LINKS);

    let started = std::time::Instant::now();
    let index = FirmIndex::in_memory()?;
    index.upsert_firms(&firms)?;
    let engine = Engine::new(Arc::new(index), None, ModelParams::default());
    engine.fit()?;
    eprintln!("{} profiles indexed and fitted in {:.1} s", firms.len(), started.elapsed().as_secs_f64());

    let started = std::time::Instant::now();
    let descriptions: Vec<String> = firms.iter().map(|f| f.firm.description.clone()).collect();
    let reduced = klynge_models::lsa::reduce(&klynge_models::lsa::tfidf(&descriptions, 2), BASELINE_RANK, 42)
        .map_err(|e| anyhow::anyhow!("text baseline: {e}"))?;
    eprintln!("text baseline fitted in {:.1} s", started.elapsed().as_secs_f64());

    let k_max = ks.iter().copied().max().unwrap_or(50);
    let anchors: Vec<(&str, &BTreeSet<&str>)> = linked.iter().map(|(id, others)| (*id, others)).collect();
    let ranked: Vec<(Vec<String>, Vec<String>)> = anchors
        .par_iter()
        .map(|(id, _)| {
            let request = ShortlistRequest { anchors: vec![id.to_string()], k: k_max, ..Default::default() };
            let klynge = match engine.shortlist(&request) {
                Ok(list) => list.partners.into_iter().map(|p| p.id).collect(),
                Err(error) => {
                    eprintln!("{id}: {error}");
                    Vec::new()
                }
            };
            let own = ids[id];
            let scores = reduced.dot(&reduced.row(own));
            let mut order: Vec<usize> = (0..firms.len()).filter(|&i| i != own).collect();
            let cut = k_max.min(order.len());
            if cut > 0 && cut < order.len() {
                order.select_nth_unstable_by(cut - 1, |&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
                order.truncate(cut);
            }
            order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
            let baseline = order.iter().take(k_max).map(|&i| firms[i].firm.id.clone()).collect();
            (klynge, baseline)
        })
        .collect();
    if let Some(path) = predictions {
        let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
        for ((id, others), (klynge, baseline)) in anchors.iter().zip(&ranked) {
            writeln!(out, "{}", json!({ "id": id, "linked": others, "ranked": klynge, "text_baseline": baseline }))?;
        }
        out.flush()?;
    }
    let mean = |baseline: bool| -> Vec<f64> {
        ks.iter()
            .map(|&k| {
                anchors
                    .iter()
                    .zip(&ranked)
                    .map(|((_, others), (klynge, text))| recall(if baseline { text } else { klynge }, others, k))
                    .sum::<f64>()
                    / anchors.len().max(1) as f64
            })
            .collect()
    };
    let rows = vec![
        Row { system: "klynge partners".into(), recall: mean(false) },
        Row { system: "text similarity (TF-IDF → SVD 128, cosine)".into(), recall: mean(true) },
    ];
    Ok(Report {
        profiles: firms.len(),
        rejected_profiles: rejected.len(),
        links: pairs.len(),
        bad_lines,
        firms: anchors.len(),
        ks: ks.to_vec(),
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_lines_are_reported_by_line() {
        let text = "customer,supplier\na,b\n\nc\na,zz\na,a\nb,c,d\na b,c\nb,a\na,b\n";
        let known = |id: &str| ["a", "b", "c"].contains(&id);
        let (links, bad) = read_links(text, &known);
        assert_eq!(links, vec![("a".to_string(), "b".to_string()), ("b".to_string(), "a".to_string())]);
        let lines: Vec<usize> = bad.iter().map(|b| b.line).collect();
        assert_eq!(lines, vec![4, 5, 6, 7, 8]);
        assert!(bad[1].problem.contains("unknown id zz"), "{:?}", bad[1]);
    }

    #[test]
    fn recall_counts_linked_firms_in_the_top_k() {
        let ranked: Vec<String> = ["x", "a", "y", "b"].map(String::from).to_vec();
        let linked: BTreeSet<&str> = ["a", "b", "c", "d"].into_iter().collect();
        assert_eq!(recall(&ranked, &linked, 2), 0.25);
        assert_eq!(recall(&ranked, &linked, 10), 0.5);
    }
}
