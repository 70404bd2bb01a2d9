//! Latent semantic analysis as scikit-learn does it: a TF-IDF matrix
//! (`TfidfVectorizer(sublinear_tf=True, stop_words="english", min_df=2)`) reduced
//! by a randomized truncated SVD (Halko, Martinsson & Tropp 2011) and scaled to
//! unit rows. It is the text-similarity yardstick `klynge eval-links` reports next
//! to klynge, built the same way as the Python peer service so the two figures
//! can be compared. The same factorisation gives klynge's own text embeddings
//! ([`components`], used by [`crate::text::TextModel`]). The sparse products come
//! from `sprs`, the small symmetric eigenproblems from `linfa-linalg`.

use std::collections::HashMap;
use std::sync::OnceLock;

use linfa_linalg::eigh::{EigSort, Eigh};
use ndarray::{Array1, Array2, Axis};
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256Plus;
use rayon::prelude::*;
use regex::Regex;
use sprs::{CsMat, TriMat};

const STOP_WORDS: &str = include_str!("../data/english_stop_words.txt");

/// Extra random directions beyond the wanted rank, and power iterations: the
/// defaults of scikit-learn's `TruncatedSVD` (10 and 5).
const OVERSAMPLES: usize = 10;
const POWER_ITERATIONS: usize = 5;

fn stop_words() -> &'static std::collections::HashSet<&'static str> {
    static WORDS: OnceLock<std::collections::HashSet<&'static str>> = OnceLock::new();
    WORDS.get_or_init(|| STOP_WORDS.lines().map(str::trim).filter(|w| !w.is_empty()).collect())
}

/// scikit-learn's default tokens: runs of two or more word characters, lower-cased.
fn tokens(text: &str) -> impl Iterator<Item = String> + '_ {
    static PATTERN: OnceLock<Regex> = OnceLock::new();
    PATTERN
        .get_or_init(|| Regex::new(r"\b\w\w+\b").expect("static pattern"))
        .find_iter(text)
        .map(|m| m.as_str().to_lowercase())
        .filter(|t| !stop_words().contains(t.as_str()))
}

/// The TF-IDF matrix of `documents` (rows unit length), over the terms in at
/// least `min_df` documents: sublinear tf, smoothed idf `ln((1+n)/(1+df)) + 1`.
pub fn tfidf(documents: &[String], min_df: usize) -> CsMat<f64> {
    let counted: Vec<HashMap<String, u32>> = documents
        .par_iter()
        .map(|document| {
            let mut counts = HashMap::new();
            for token in tokens(document) {
                *counts.entry(token).or_insert(0u32) += 1;
            }
            counts
        })
        .collect();
    let mut df: HashMap<&str, usize> = HashMap::new();
    for counts in &counted {
        for term in counts.keys() {
            *df.entry(term.as_str()).or_default() += 1;
        }
    }
    let mut terms: Vec<&str> = df.iter().filter(|&(_, &d)| d >= min_df).map(|(t, _)| *t).collect();
    terms.sort_unstable();
    let column: HashMap<&str, usize> = terms.iter().enumerate().map(|(i, t)| (*t, i)).collect();
    let n = documents.len() as f64;
    let idf: Vec<f64> = terms.iter().map(|t| ((1.0 + n) / (1.0 + df[t] as f64)).ln() + 1.0).collect();
    let mut triplets = TriMat::new((documents.len(), terms.len()));
    for (row, counts) in counted.iter().enumerate() {
        let mut entries: Vec<(usize, f64)> = counts
            .iter()
            .filter_map(|(term, &count)| {
                let col = *column.get(term.as_str())?;
                Some((col, (1.0 + (count as f64).ln()) * idf[col]))
            })
            .collect();
        entries.sort_unstable_by_key(|&(col, _)| col);
        let norm = entries.iter().map(|(_, w)| w * w).sum::<f64>().sqrt();
        for (col, weight) in entries {
            triplets.add_triplet(row, col, weight / norm);
        }
    }
    triplets.to_csr()
}

/// Orthonormal columns spanning `y` (eigenvectors of the Gram matrix; directions
/// with no weight are dropped).
fn orthonormalise(y: &Array2<f64>) -> Result<Array2<f64>, linfa_linalg::LinalgError> {
    let gram = y.t().dot(y);
    let (values, vectors) = gram.eigh()?.sort_eig_desc();
    let largest = values.first().copied().unwrap_or(0.0).max(0.0);
    let keep: Vec<usize> = (0..values.len()).filter(|&i| values[i] > largest * 1e-12 && values[i] > 0.0).collect();
    let mut basis = Array2::zeros((vectors.nrows(), keep.len()));
    for (j, &i) in keep.iter().enumerate() {
        basis.column_mut(j).assign(&(&vectors.column(i) / values[i].sqrt()));
    }
    Ok(y.dot(&basis))
}

/// A randomized truncated SVD of `x`: an orthonormal basis `q` of its range, `xᵀ q`,
/// and the eigenpairs of `(xᵀ q)ᵀ (xᵀ q)`, largest first (squared singular values
/// and the left singular vectors in the basis `q`).
struct Factors {
    q: Array2<f64>,
    bt: Array2<f64>,
    values: Array1<f64>,
    vectors: Array2<f64>,
}

fn factor(x: &CsMat<f64>, rank: usize, seed: u64) -> Result<Factors, linfa_linalg::LinalgError> {
    let (rows, cols) = x.shape();
    let width = (rank + OVERSAMPLES).min(cols).min(rows).max(1);
    let mut rng = Xoshiro256Plus::seed_from_u64(seed);
    let omega = Array2::from_shape_simple_fn((cols, width), || if rng.r#gen::<bool>() { 1.0 } else { -1.0 });
    let xt = x.transpose_view();
    let mut q = orthonormalise(&(x * &omega))?;
    for _ in 0..POWER_ITERATIONS {
        let z = orthonormalise(&(&xt * &q))?;
        q = orthonormalise(&(x * &z))?;
    }
    // B = Qᵀ X is small (width × cols); its left singular vectors come from B Bᵀ.
    let bt: Array2<f64> = &xt * &q;
    let (values, vectors) = bt.t().dot(&bt).eigh()?.sort_eig_desc();
    Ok(Factors { q, bt, values, vectors })
}

/// The rows of `x` in its `rank` leading singular directions (`U Σ`, as
/// scikit-learn's `fit_transform`), each scaled to unit length.
pub fn reduce(x: &CsMat<f64>, rank: usize, seed: u64) -> Result<Array2<f32>, linfa_linalg::LinalgError> {
    let Factors { q, values, vectors, .. } = factor(x, rank, seed)?;
    let keep = rank.min(values.len());
    let singular: Array1<f64> = values.iter().take(keep).map(|v| v.max(0.0).sqrt()).collect();
    let mut reduced = q.dot(&vectors.slice(ndarray::s![.., ..keep])) * &singular;
    reduced.axis_iter_mut(Axis(0)).for_each(|mut row| {
        let norm = row.dot(&row).sqrt();
        if norm > 0.0 {
            row /= norm;
        }
    });
    Ok(reduced.mapv(|v| v as f32))
}

/// The `rank` leading right singular vectors of `x` as columns (`cols × rank`;
/// fewer columns when `x` has lower rank): a document's TF-IDF row times them
/// is its latent-semantic vector, for documents outside `x` too.
pub fn components(x: &CsMat<f64>, rank: usize, seed: u64) -> Result<Array2<f32>, linfa_linalg::LinalgError> {
    let Factors { bt, values, vectors, .. } = factor(x, rank, seed)?;
    let largest = values.first().copied().unwrap_or(0.0);
    let keep: Vec<usize> =
        (0..rank.min(values.len())).filter(|&i| values[i] > 0.0 && values[i] > largest * 1e-10).collect();
    let mut out = Array2::zeros((bt.nrows(), keep.len()));
    for (j, &i) in keep.iter().enumerate() {
        out.column_mut(j).assign(&(bt.dot(&vectors.column(i)) / values[i].sqrt()).mapv(|v| v as f32));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tfidf_follows_scikit_learn() {
        let docs: Vec<String> =
            ["the cat sat on the mat", "the cat ate", "dogs bark"].iter().map(|s| s.to_string()).collect();
        let x = tfidf(&docs, 2);
        // Only "cat" is in two documents ("the", "on" are stop words).
        assert_eq!(x.shape(), (3, 1));
        assert!((x.get(0, 0).copied().unwrap() - 1.0).abs() < 1e-12);
        assert!(x.get(2, 0).is_none());
    }

    #[test]
    fn reduction_keeps_the_leading_directions() {
        // Two groups of documents on disjoint vocabularies: the reduced rows of a
        // group point the same way and are orthogonal to the other group's.
        let docs: Vec<String> = (0..40)
            .map(|i| {
                if i % 2 == 0 {
                    format!("dairy cheese milk yoghurt butter farm{}", i % 4)
                } else {
                    format!("software cloud database server network code{}", i % 4)
                }
            })
            .collect();
        let z = reduce(&tfidf(&docs, 2), 2, 7).unwrap();
        assert_eq!(z.dim(), (40, 2));
        assert!(z.row(0).dot(&z.row(2)) > 0.95);
        assert!(z.row(0).dot(&z.row(1)).abs() < 0.1);
        // Projecting the rows on the components gives the same directions.
        let x = tfidf(&docs, 2);
        let c = components(&x, 2, 7).unwrap();
        let projected = (&x * &c.mapv(f64::from)).mapv(|v| v as f32);
        let unit = |i: usize| {
            let row = projected.row(i);
            &row / row.dot(&row).sqrt()
        };
        assert!((unit(0).dot(&z.row(0)).abs() - 1.0).abs() < 1e-4);
    }
}
