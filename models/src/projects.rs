//! Past collaborations as exact sparse TF-IDF vectors of their titles, with an
//! impact-ordered inverted index: "which past projects resemble this
//! opportunity". Titles are a dozen words, too short for the 128-dimension
//! projection of [`crate::text`] (its noise, about 1/√128, is as large as the
//! similarities that matter here), so they keep their terms.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::text::TextModel;

/// Query terms looked up, heaviest first: the rest move scores very little.
const QUERY_TERMS: usize = 16;
/// Postings read per query term, heaviest first, so a common term in a huge
/// catalogue costs no more than a rare one.
const POSTINGS_PER_TERM: usize = 20_000;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ProjectTexts {
    /// Each project's unit TF-IDF vector, by term index.
    vectors: Vec<Vec<(u32, f32)>>,
    /// Each project's title, named in reasons ("closest: …").
    titles: Vec<String>,
    /// For each term, the projects using it and its weight there, heaviest first.
    #[serde(skip)]
    postings: HashMap<u32, Vec<(u32, f32)>>,
}

impl ProjectTexts {
    pub fn build(text: &TextModel, titles: &[String]) -> ProjectTexts {
        let mut texts = ProjectTexts {
            vectors: titles.iter().map(|title| text.sparse(title)).collect(),
            titles: titles.to_vec(),
            ..Default::default()
        };
        texts.index();
        texts
    }

    /// Rebuilds the inverted index (it is not saved).
    pub fn index(&mut self) {
        let mut postings: HashMap<u32, Vec<(u32, f32)>> = HashMap::new();
        for (project, vector) in self.vectors.iter().enumerate() {
            for &(term, weight) in vector {
                postings.entry(term).or_default().push((project as u32, weight));
            }
        }
        for list in postings.values_mut() {
            list.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        }
        self.postings = postings;
    }

    pub fn len(&self) -> usize {
        self.vectors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.vectors.is_empty()
    }

    pub fn vector(&self, project: u32) -> &[(u32, f32)] {
        &self.vectors[project as usize]
    }

    /// The project's title, unless it has none.
    pub fn title(&self, project: u32) -> Option<&str> {
        self.titles.get(project as usize).map(String::as_str).filter(|title| !title.trim().is_empty())
    }

    /// The `top` projects most similar (cosine) to `query`, best first; ties go
    /// to the lower project number.
    pub fn most_similar(&self, query: &[(u32, f32)], top: usize) -> Vec<(u32, f32)> {
        let mut terms: Vec<(u32, f32)> = query.to_vec();
        terms.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let mut scores: HashMap<u32, f32> = HashMap::new();
        for &(term, weight) in terms.iter().take(QUERY_TERMS) {
            for &(project, w) in
                self.postings.get(&term).map_or(&[][..], |list| &list[..list.len().min(POSTINGS_PER_TERM)])
            {
                *scores.entry(project).or_default() += weight * w;
            }
        }
        let mut scored: Vec<(u32, f32)> = scores.into_iter().collect();
        let top = top.min(scored.len());
        if top == 0 {
            return Vec::new();
        }
        let order = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        scored.select_nth_unstable_by(top - 1, order);
        scored.truncate(top);
        scored.sort_by(order);
        scored
    }
}

/// Adds sparse vectors (sorted by term) and scales the sum to unit length.
pub fn sum_unit(vectors: &[&[(u32, f32)]]) -> Vec<(u32, f32)> {
    let mut sum: HashMap<u32, f32> = HashMap::new();
    for vector in vectors {
        for &(term, weight) in *vector {
            *sum.entry(term).or_default() += weight;
        }
    }
    let norm = sum.values().map(|w| w * w).sum::<f32>().sqrt();
    let mut out: Vec<(u32, f32)> =
        sum.into_iter().filter(|_| norm > 0.0).map(|(term, weight)| (term, weight / norm)).collect();
    out.sort_unstable_by_key(|(term, _)| *term);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_project_sharing_the_rare_words() {
        let docs: Vec<String> = [
            "solar panel recycling for rural homes",
            "cold chain logistics for fresh fish",
            "hydrogen buses for city transport",
            "recycling of solar panel glass",
            "fish farming and fresh seafood logistics",
            "training for city bus drivers",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let text = TextModel::fit(&docs, 16, 1_000).unwrap();
        let projects = ProjectTexts::build(&text, &docs);
        let query = text.sparse("recycling solar panels");
        let found = projects.most_similar(&query, 2);
        let ids: Vec<u32> = found.iter().map(|(p, _)| *p).collect();
        assert_eq!(ids.len(), 2);
        assert!(ids.contains(&0) && ids.contains(&3), "{found:?}");
        assert!(found[0].1 >= found[1].1 && found[1].1 > 0.0);
        assert_eq!(projects.title(3), Some("recycling of solar panel glass"));
        let exact = projects.most_similar(projects.vector(1), 1);
        assert_eq!(exact[0].0, 1);
        assert!((exact[0].1 - 1.0).abs() < 1e-5);
    }
}
