//! Text vectors: TF-IDF (linfa-preprocessing) over a profile's description,
//! offers, needs and tags, reduced to a dense, L2-normalised embedding by latent
//! semantic analysis: a truncated SVD of the catalogue's TF-IDF matrix
//! ([`crate::lsa`]), each term a row of `dim` weights. It replaced a sparse random
//! projection of the TF-IDF vector, whose cosine is TF-IDF cosine plus noise of
//! about 1/√dim: on the 40k firm catalogue the share of a firm's 50 nearest
//! profiles in its own GICS industry was 0.20 with the projection, 0.37 with exact
//! TF-IDF and 0.42 with the SVD (the truncation groups words that occur together,
//! so "smartphones" and "handsets" land near each other).

use std::collections::{HashMap, HashSet};
use std::sync::OnceLock;

use linfa_preprocessing::CountVectorizer;
use ndarray::{Array1, Array2, ArrayView1};
use rayon::prelude::*;
use regex::Regex;
use serde::{Deserialize, Serialize};

/// The SVD is fitted on at most this many profiles (an even sample of the
/// catalogue): its time and memory grow with the rows, the leading directions of
/// a million profiles are those of a tenth of them.
const SVD_SAMPLE: usize = 100_000;

/// Seed of the SVD's random start, so a fit on the same catalogue gives the same
/// model on every run.
const SVD_SEED: u64 = 42;

/// Words too common in profiles to tell firms apart.
const STOPWORDS: &[&str] = &[
    "the",
    "and",
    "for",
    "with",
    "its",
    "our",
    "are",
    "was",
    "were",
    "has",
    "have",
    "that",
    "this",
    "from",
    "into",
    "also",
    "well",
    "such",
    "other",
    "which",
    "their",
    "they",
    "them",
    "both",
    "all",
    "any",
    "can",
    "may",
    "more",
    "most",
    "through",
    "based",
    "company",
    "companies",
    "inc",
    "ltd",
    "limited",
    "co",
    "corporation",
    "corp",
    "group",
    "headquartered",
    "founded",
    "incorporated",
    "operates",
    "provides",
    "offers",
    "engages",
    "engaged",
    "together",
    "subsidiaries",
    "products",
    "services",
    "various",
    "including",
    "include",
    "includes",
    "as",
    "in",
    "of",
    "on",
    "to",
    "by",
    "an",
    "or",
    "is",
    "be",
    "at",
    "it",
    "we",
    "us",
    "not",
    "but",
    "than",
    "og",
    "af",
    "til",
    "med",
    "den",
    "det",
    "der",
    "som",
    "en",
    "et",
    "er",
    "på",
    "vi",
    "fra",
];

/// The token pattern of linfa's `CountVectorizer`, so that query-time tokens are the
/// ones the vocabulary was fitted on.
fn tokens(text: &str) -> impl Iterator<Item = String> + '_ {
    static PATTERN: OnceLock<Regex> = OnceLock::new();
    PATTERN
        .get_or_init(|| Regex::new(r"\b\w\w+\b").expect("static pattern"))
        .find_iter(text)
        .map(|found| found.as_str().to_lowercase())
}

/// `text` without the words of `cut`, each removed as many times as `cut` has
/// it: a profile made of project titles as it reads without one of them. Only
/// the tokens the text model reads are kept (lower-cased, in order), so no word
/// of `cut` can reach a model fitted on the result unless `text` has it more
/// often than `cut` does, from somewhere else.
pub fn without_words(text: &str, cut: &str) -> String {
    let mut left: HashMap<String, usize> = HashMap::new();
    for token in tokens(cut) {
        *left.entry(token).or_default() += 1;
    }
    let kept: Vec<String> = tokens(text)
        .filter(|token| match left.get_mut(token) {
            Some(count) if *count > 0 => {
                *count -= 1;
                false
            }
            _ => true,
        })
        .collect();
    kept.join(" ")
}

/// The vocabulary comes from linfa's `CountVectorizer` (document-frequency bounds,
/// stop words, size cap); the idf is computed here over the whole catalogue, because
/// linfa's TF-IDF transform takes document frequencies from the batch it is given,
/// which is meaningless for a single query.
#[derive(Clone, Serialize, Deserialize)]
pub struct TextModel {
    terms: Vec<String>,
    idf: Vec<f32>,
    dim: usize,
    /// `terms × dim`, row-major: the latent weights of each term. Not in the
    /// model's JSON (millions of numbers): the store keeps them as raw f32.
    #[serde(skip)]
    components: Vec<f32>,
    #[serde(skip)]
    lookup: OnceLock<HashMap<String, u32>>,
}

#[derive(Debug, thiserror::Error)]
#[error("text model: {0}")]
pub struct TextError(String);

impl TextModel {
    /// Fits the vocabulary and idf on `documents`. Terms in fewer than two documents
    /// or in more than half of them carry no matching signal and are dropped.
    pub fn fit(documents: &[String], dim: usize, max_terms: usize) -> Result<TextModel, TextError> {
        let small = documents.len() < 20;
        let max_df = if small { 1.0 } else { 0.5 };
        let min_df = if small { 0.0 } else { 2.0 / documents.len() as f32 };
        let corpus = Array1::from_iter(documents.iter().map(|document| document.as_str()));
        let vectorizer = CountVectorizer::params()
            .convert_to_lowercase(true)
            .document_frequency(min_df, max_df)
            .stopwords(STOPWORDS)
            .fit(&corpus)
            .map_err(|error| TextError(error.to_string()))?;
        // The vectorizer's vocabulary comes in HashMap order and its `max_features`
        // breaks ties the same way; the projection hashes term positions, so the
        // order is fixed here (most frequent first, ties by term, then sorted) to
        // make a fit on the same catalogue give the same model on every machine.
        let mut terms = vectorizer.vocabulary().clone();
        terms.sort_unstable();
        let mut document_frequency = document_frequencies(documents, &terms);
        if terms.len() > max_terms {
            let mut order: Vec<usize> = (0..terms.len()).collect();
            order.sort_by(|&a, &b| document_frequency[b].cmp(&document_frequency[a]).then(a.cmp(&b)));
            order.truncate(max_terms);
            order.sort_unstable();
            terms = order.iter().map(|&i| terms[i].clone()).collect();
            document_frequency = order.iter().map(|&i| document_frequency[i]).collect();
        }
        let n = documents.len() as f32;
        let idf = document_frequency.iter().map(|&df| ((1.0 + n) / (1.0 + df as f32)).ln() + 1.0).collect();
        let mut model = TextModel { terms, idf, dim, components: Vec::new(), lookup: OnceLock::new() };
        model.components = model.fit_components(documents)?;
        Ok(model)
    }

    /// The SVD of the TF-IDF rows of (a sample of) `documents`, padded with zero
    /// columns to `dim` when the catalogue has fewer independent directions.
    fn fit_components(&self, documents: &[String]) -> Result<Vec<f32>, TextError> {
        let step = documents.len().div_ceil(SVD_SAMPLE).max(1);
        let sample: Vec<&String> = documents.iter().step_by(step).collect();
        let rows: Vec<Vec<(u32, f32)>> = sample.par_iter().map(|document| self.sparse(document)).collect();
        let mut triplets = sprs::TriMat::new((rows.len(), self.terms.len()));
        for (row, weights) in rows.iter().enumerate() {
            for &(term, weight) in weights {
                triplets.add_triplet(row, term as usize, weight as f64);
            }
        }
        let mut out = vec![0.0f32; self.terms.len() * self.dim];
        if self.terms.is_empty() || rows.is_empty() {
            return Ok(out);
        }
        let components = crate::lsa::components(&triplets.to_csr(), self.dim, SVD_SEED)
            .map_err(|error| TextError(format!("SVD: {error}")))?;
        for (term, row) in components.outer_iter().enumerate() {
            for (j, &value) in row.iter().enumerate() {
                out[term * self.dim + j] = value;
            }
        }
        Ok(out)
    }

    /// The term weights ([`TextModel::fit`]), `terms × dim` row-major, for storage.
    pub fn components(&self) -> &[f32] {
        &self.components
    }

    /// Puts back the term weights read from storage.
    pub fn set_components(&mut self, components: Vec<f32>) -> Result<(), TextError> {
        if components.len() != self.terms.len() * self.dim {
            return Err(TextError(format!(
                "{} term weights for {} terms × {} dimensions",
                components.len(),
                self.terms.len(),
                self.dim
            )));
        }
        self.components = components;
        Ok(())
    }

    fn lookup(&self) -> &HashMap<String, u32> {
        self.lookup.get_or_init(|| self.terms.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect())
    }

    pub fn dim(&self) -> usize {
        self.dim
    }

    pub fn vocabulary_size(&self) -> usize {
        self.terms.len()
    }

    /// Sparse TF-IDF weights of a document (sublinear tf), by term index.
    fn weights(&self, document: &str) -> Vec<(u32, f32)> {
        let lookup = self.lookup();
        let mut counts: HashMap<u32, u32> = HashMap::new();
        for token in tokens(document) {
            if let Some(&term) = lookup.get(&token) {
                *counts.entry(term).or_default() += 1;
            }
        }
        let mut weights: Vec<(u32, f32)> = counts
            .into_iter()
            .map(|(term, count)| (term, (1.0 + (count as f32).ln()) * self.idf[term as usize]))
            .collect();
        weights.sort_unstable_by_key(|(term, _)| *term);
        weights
    }

    /// The document's TF-IDF vector scaled to unit length, by term index: what
    /// the embedding approximates, kept exact for short texts.
    pub fn sparse(&self, document: &str) -> Vec<(u32, f32)> {
        let mut weights = self.weights(document);
        let norm = weights.iter().map(|(_, w)| w * w).sum::<f32>().sqrt();
        if norm > 0.0 {
            weights.iter_mut().for_each(|(_, w)| *w /= norm);
        }
        weights
    }

    /// Embeds documents in parallel; each row has unit length (or is zero when no
    /// known term occurs).
    pub fn embed_all(&self, documents: &[String]) -> Array2<f32> {
        let mut out = Array2::zeros((documents.len(), self.dim));
        out.axis_iter_mut(ndarray::Axis(0))
            .into_par_iter()
            .zip(documents.par_iter())
            .for_each(|(row, document)| self.embed_into(document, row));
        out
    }

    pub fn embed(&self, document: &str) -> Array1<f32> {
        let mut out = Array1::zeros(self.dim);
        self.embed_into(document, out.view_mut());
        out
    }

    fn embed_into(&self, document: &str, mut embedding: ndarray::ArrayViewMut1<f32>) {
        if self.components.is_empty() {
            return;
        }
        let out = embedding.as_slice_mut().expect("embedding rows are contiguous");
        for (term, weight) in self.weights(document) {
            let row = &self.components[term as usize * self.dim..(term as usize + 1) * self.dim];
            for (value, component) in out.iter_mut().zip(row) {
                *value += weight * component;
            }
        }
        normalise(embedding);
    }

    /// The `limit` terms of `document` with the highest TF-IDF weight: a short,
    /// distinctive query for BM25 retrieval, much faster than the whole text.
    pub fn key_terms(&self, document: &str, limit: usize) -> Vec<String> {
        let mut weighted = self.weights(document);
        weighted.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        weighted.into_iter().take(limit).map(|(term, _)| self.terms[term as usize].clone()).collect()
    }
}

/// Which of `terms` occur in `document`, in the order of `terms` (at most `limit`).
pub fn terms_in<'a>(terms: &'a [String], document: &str, limit: usize) -> Vec<&'a str> {
    let present: HashSet<String> = tokens(document).collect();
    terms.iter().filter(|term| present.contains(*term)).take(limit).map(String::as_str).collect()
}

/// In how many of `documents` each of `terms` (sorted) occurs.
fn document_frequencies(documents: &[String], terms: &[String]) -> Vec<u32> {
    let lookup: HashMap<&str, u32> = terms.iter().enumerate().map(|(i, t)| (t.as_str(), i as u32)).collect();
    documents
        .par_iter()
        .fold(
            || vec![0u32; terms.len()],
            |mut counts, document| {
                let mut seen: Vec<u32> =
                    tokens(document).filter_map(|token| lookup.get(token.as_str()).copied()).collect();
                seen.sort_unstable();
                seen.dedup();
                for term in seen {
                    counts[term as usize] += 1;
                }
                counts
            },
        )
        .reduce(|| vec![0u32; terms.len()], |a, b| a.iter().zip(&b).map(|(x, y)| x + y).collect())
}

/// Scales a vector to unit length in place (zero vectors stay zero).
pub fn normalise(mut vector: ndarray::ArrayViewMut1<f32>) {
    let norm = vector.dot(&vector).sqrt();
    if norm > 0.0 {
        vector /= norm;
    }
}

/// Appends `vector` quantised to i8 with one scale (its largest component / 127)
/// to `out` and returns the scale, 0 for a zero vector (its row is all zeros): a
/// quarter of f32's memory, dot products within about 1 % of the exact ones.
pub fn quantise_into(vector: ArrayView1<f32>, out: &mut Vec<i8>) -> f32 {
    let largest = vector.iter().fold(0.0f32, |m, x| m.max(x.abs()));
    if largest == 0.0 {
        out.extend(std::iter::repeat_n(0, vector.len()));
        return 0.0;
    }
    let scale = largest / 127.0;
    out.extend(vector.iter().map(|x| (x / scale).round() as i8));
    scale
}

/// The dot product of a row from [`quantise_into`], with its scale, and `query`.
///
/// Compiled twice, for plain x86-64 and for AVX2 (chosen once at run time): a
/// portable build converts i8 to f32 four lanes at a time, an AVX2 one eight,
/// and the neighbour scans spend most of their time here. Both add the same
/// products in the same order, so they return the same bits.
#[multiversion::multiversion(targets("x86_64+avx2"))]
pub fn quantised_dot(row: &[i8], scale: f32, query: &[f32]) -> f32 {
    if scale == 0.0 {
        return 0.0;
    }
    // Eight running sums instead of one: a single sum is a chain the compiler may
    // not reorder, eight independent ones it turns into vector instructions. The
    // neighbour scans spend most of their time here.
    let mut lanes = [0.0f32; 8];
    let (rows, queries) = (row.chunks_exact(8), query.chunks_exact(8));
    let tail: f32 = rows.remainder().iter().zip(queries.remainder()).map(|(&r, &q)| r as f32 * q).sum();
    for (r, q) in rows.zip(queries) {
        for ((sum, &r), &q) in lanes.iter_mut().zip(r).zip(q) {
            *sum += r as f32 * q;
        }
    }
    (lanes.iter().sum::<f32>() + tail) * scale
}

pub fn cosine(a: ArrayView1<f32>, b: ArrayView1<f32>) -> f32 {
    a.dot(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_a_title_word_by_word_as_often_as_it_has_each_word() {
        let profile = "Solar panel recycling. Cold-chain logistics for SOLAR farms";
        assert_eq!(without_words(profile, "solar panel recycling"), "cold chain logistics for solar farms");
        // Punctuation and case do not protect a word; a word the title lacks stays.
        assert_eq!(without_words("Fish-farming (EU), fish", "FISH farming"), "eu fish");
        assert_eq!(without_words("Heat pumps", ""), "heat pumps");
    }

    fn corpus() -> Vec<String> {
        [
            "dairy cheese milk production",
            "cheese and yoghurt dairy farm",
            "refrigerated trucking cold chain logistics",
            "cold chain warehouse logistics",
            "software for hospitals and clinics",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    #[test]
    fn similar_texts_are_close() {
        let docs = corpus();
        let model = TextModel::fit(&docs, 512, 1000).unwrap();
        let embeddings = model.embed_all(&docs);
        let dairy = cosine(embeddings.row(0), embeddings.row(1));
        let unrelated = cosine(embeddings.row(0), embeddings.row(4));
        assert!(dairy > unrelated + 0.2, "dairy {dairy} vs unrelated {unrelated}");
        let norm = embeddings.row(2).dot(&embeddings.row(2));
        assert!((norm - 1.0).abs() < 1e-4);
    }

    #[test]
    fn terms_in_keeps_the_order_of_the_terms() {
        let terms: Vec<String> = ["heat", "pumps", "timber", "housing"].map(String::from).to_vec();
        assert_eq!(terms_in(&terms, "Housing with heat-pumps; no wood.", 5), vec!["heat", "pumps", "housing"]);
        assert_eq!(terms_in(&terms, "Housing with heat-pumps; no wood.", 2), vec!["heat", "pumps"]);
        assert!(terms_in(&terms, "dairy", 5).is_empty());
    }

    #[test]
    fn key_terms_are_the_distinctive_words() {
        let model = TextModel::fit(&corpus(), 64, 1000).unwrap();
        let terms = model.key_terms("cold chain logistics for cheese", 2);
        assert_eq!(terms.len(), 2);
        assert!(!terms.contains(&"for".to_string()));
    }
}
