//! The two reference rankers of the benchmark (popularity and TF-IDF over the
//! organisations' descriptions), computed in the same run as klynge's answers.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Deserialize;
use serde_json::Value;

use super::QueryLine;

#[derive(Deserialize)]
struct Org {
    id: String,
    #[serde(default)]
    description: String,
    #[serde(default)]
    projects: u32,
}

/// The two reference rankers of the benchmark README, computed in the same run.
pub(super) struct Baselines {
    by_popularity: Vec<String>,
    projects: HashMap<String, u32>,
    idf: HashMap<String, f64>,
    vectors: Vec<(String, BTreeMap<String, f64>)>,
}

fn words(text: &str) -> Vec<String> {
    static PATTERN: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    PATTERN
        .get_or_init(|| regex::Regex::new(r"\w\w+").expect("static"))
        .find_iter(&text.to_lowercase())
        .map(|m| m.as_str().to_string())
        .collect()
}

/// Ordered maps: float sums in hash order differ in the last bits from run to
/// run, and that would reorder ties between runs.
fn tf_vector(text: &str, idf: &HashMap<String, f64>) -> BTreeMap<String, f64> {
    let mut counts: BTreeMap<String, f64> = BTreeMap::new();
    for word in words(text) {
        *counts.entry(word).or_default() += 1.0;
    }
    let mut vector: BTreeMap<String, f64> =
        counts.into_iter().filter_map(|(w, c)| Some((w.clone(), (1.0 + f64::ln(c)) * idf.get(&w)?))).collect();
    let norm = vector.values().map(|v| v * v).sum::<f64>().sqrt();
    if norm > 0.0 {
        vector.values_mut().for_each(|v| *v /= norm);
    }
    vector
}

impl Baselines {
    pub(super) fn new(orgs: &[Value]) -> Baselines {
        let parsed: Vec<Org> = orgs.iter().filter_map(|o| serde_json::from_value(o.clone()).ok()).collect();
        let mut by_popularity: Vec<&Org> = parsed.iter().collect();
        by_popularity.sort_by(|a, b| b.projects.cmp(&a.projects).then(a.id.cmp(&b.id)));
        let mut df: HashMap<String, f64> = HashMap::new();
        for org in &parsed {
            for word in words(&org.description).into_iter().collect::<HashSet<_>>() {
                *df.entry(word).or_default() += 1.0;
            }
        }
        let n = parsed.len() as f64;
        let idf: HashMap<String, f64> = df.into_iter().map(|(w, d)| (w, ((1.0 + n) / (1.0 + d)).ln() + 1.0)).collect();
        let vectors = parsed.iter().map(|o| (o.id.clone(), tf_vector(&o.description, &idf))).collect();
        Baselines {
            by_popularity: by_popularity.iter().map(|o| o.id.clone()).collect(),
            projects: parsed.iter().map(|o| (o.id.clone(), o.projects)).collect(),
            idf,
            vectors,
        }
    }

    pub(super) fn popularity(&self, anchor: &str, k: usize) -> Vec<String> {
        self.by_popularity.iter().filter(|id| *id != anchor).take(k).cloned().collect()
    }

    pub(super) fn tfidf(&self, query: &QueryLine, k: usize) -> Vec<String> {
        let text = format!("{} {} {} {}", query.title, query.topic, query.topic_title, query.objective);
        let q = tf_vector(&text, &self.idf);
        let mut scored: Vec<(f64, u32, &String)> = self
            .vectors
            .iter()
            .filter(|(id, _)| *id != query.anchor)
            .map(|(id, v)| (q.iter().map(|(w, x)| x * v.get(w).unwrap_or(&0.0)).sum(), self.projects[id], id))
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(b.1.cmp(&a.1)).then(a.2.cmp(b.2)));
        scored.into_iter().take(k).map(|(_, _, id)| id.clone()).collect()
    }
}
