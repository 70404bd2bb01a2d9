//! What the model keeps of each firm, and sector inference: a firm without
//! stated sectors is placed on the input-output table by its text, with a
//! calibrated confidence that says when the guess is too unsure to use.

use ndarray::{Array1, Array2, ArrayView1};
use rayon::prelude::*;

use super::{FirmMeta, MIN_SECTOR_CONFIDENCE};
use crate::text::{TextModel, normalise};
use crate::{Firm, Kind, nace, valuechain};

pub(super) fn build_meta(firms: &[Firm], text: &TextModel, embeddings: &Array2<f32>) -> Vec<FirmMeta> {
    let table = valuechain::table();
    let rows_of = |sectors: &[String]| -> Vec<u16> {
        let mut rows: Vec<u16> = sectors.iter().filter_map(|s| table.row(s)).map(|r| r as u16).collect();
        rows.sort_unstable();
        rows.dedup();
        rows
    };
    // Each input-output row gets a text centroid from the firms that declare it
    // plus its official NACE titles, so that firms without sectors can be placed.
    let mut centroids = Array2::<f32>::zeros((table.len(), text.dim()));
    for division in nace::all_divisions() {
        if let Some(row) = table.row(&division.code) {
            let mut centroid = centroids.row_mut(row);
            centroid += &(text.embed(&division.title) * 2.0);
        }
    }
    for (firm, profile) in firms.iter().enumerate() {
        for row in rows_of(&profile.sectors) {
            let mut centroid = centroids.row_mut(row as usize);
            centroid += &embeddings.row(firm);
        }
    }
    let sums = centroids.clone();
    for row in centroids.outer_iter_mut() {
        normalise(row);
    }
    let inference = SectorInference::calibrate(firms, &sums, embeddings, &rows_of);
    firms
        .par_iter()
        .enumerate()
        .map(|(firm, profile)| {
            // How far the chosen sector's stage stands above every other stage, in
            // cosine: what a network role needs to be named from a guess.
            let stage_margin = |row: usize| {
                let scores = centroids.dot(&embeddings.row(firm));
                let stage = valuechain::stage(table.code(row));
                let runner_up = (0..scores.len())
                    .filter(|&other| valuechain::stage(table.code(other)) != stage)
                    .map(|other| scores[other])
                    .fold(0.0f32, f32::max);
                (scores[row] - runner_up).max(0.0)
            };
            let (sectors, inferred, confidence, rows, margin) = if profile.sectors.is_empty() {
                match inference.infer(&centroids, embeddings.row(firm)) {
                    Some((row, confidence)) => {
                        let sectors = vec![division_code(table.code(row))];
                        let usable = confidence.is_none_or(|c| c >= MIN_SECTOR_CONFIDENCE);
                        let rows = if usable { rows_of(&sectors) } else { Vec::new() };
                        (sectors, true, confidence, rows, stage_margin(row))
                    }
                    None => (Vec::new(), false, None, Vec::new(), 0.0),
                }
            } else {
                (profile.sectors.clone(), false, None, rows_of(&profile.sectors), 1.0)
            };
            FirmMeta {
                name: profile.name.clone(),
                kind: profile.kind,
                size: profile.size,
                country: profile.country.clone(),
                region: profile.region.clone(),
                sme: profile.is_sme(),
                rows,
                sectors,
                sectors_inferred: inferred,
                sector_confidence: confidence,
                stage_margin: margin,
                offers: profile.offers.clone(),
                needs: profile.needs.clone(),
                // Public funders and research foundations named "… Fund" are partners.
                financial_vehicle: profile.kind == Kind::Company && profile.is_financial_vehicle(),
                domain: profile.website_domain(),
                name_key: profile.name_key(),
            }
        })
        .collect()
}

/// Sector inference that knows when it does not know. A firm without sectors gets
/// the input-output row whose text centroid is nearest to its profile; how likely
/// that guess is right is estimated from the firms that *state* their sectors:
/// their own guess is made the same way (leaving the firm out of the centroids
/// of its own sectors, or every guess would look right), and a logistic regression (linfa) of
/// "the guess is one of its stated rows" on the best similarity and its margin
/// over the second best gives the confidence of every other firm's guess. With
/// too few stated sectors to calibrate on, the guess is kept when its similarity
/// passes [`UNCALIBRATED_MIN_SIMILARITY`], without a confidence.
pub(super) struct SectorInference {
    /// Weights of (best similarity, margin) and intercept, when calibrated.
    calibration: Option<([f64; 2], f64)>,
}

/// Firms with stated sectors needed to calibrate, and the most used.
const MIN_CALIBRATION_FIRMS: usize = 50;
const MAX_CALIBRATION_FIRMS: usize = 20_000;

/// The similarity an uncalibrated guess needs (the rule before calibration).
const UNCALIBRATED_MIN_SIMILARITY: f32 = 0.15;

impl SectorInference {
    fn calibrate(
        firms: &[Firm],
        sums: &Array2<f32>,
        embeddings: &Array2<f32>,
        rows_of: &(dyn Fn(&[String]) -> Vec<u16> + Sync),
    ) -> SectorInference {
        let stated: Vec<usize> = (0..firms.len()).filter(|&f| !rows_of(&firms[f].sectors).is_empty()).collect();
        if stated.len() < MIN_CALIBRATION_FIRMS {
            return SectorInference { calibration: None };
        }
        let step = stated.len().div_ceil(MAX_CALIBRATION_FIRMS).max(1);
        let samples: Vec<([f64; 2], bool)> = stated
            .par_iter()
            .step_by(step)
            .filter_map(|&f| {
                let own = rows_of(&firms[f].sectors);
                let embedding = embeddings.row(f);
                let scores: Array1<f32> = sums
                    .outer_iter()
                    .enumerate()
                    .map(|(row, sum)| {
                        let dot = sum.dot(&embedding);
                        let norm2 = sum.dot(&sum);
                        // Without the firm itself: (s − e)·e / |s − e|, with |e| = 1.
                        let (dot, norm2) = if own.contains(&(row as u16)) {
                            let self_dot = embedding.dot(&embedding);
                            (dot - self_dot, norm2 - 2.0 * dot + self_dot)
                        } else {
                            (dot, norm2)
                        };
                        if norm2 > 1e-12 { dot / norm2.sqrt() } else { 0.0 }
                    })
                    .collect();
                let (row, best, margin) = Self::best_of(&scores)?;
                Some(([best as f64, margin as f64], own.contains(&(row as u16))))
            })
            .collect();
        let right = samples.iter().filter(|(_, ok)| *ok).count();
        if right == 0 || right == samples.len() {
            return SectorInference { calibration: None };
        }
        let records = Array2::from_shape_fn((samples.len(), 2), |(i, j)| samples[i].0[j]);
        let labels = Array1::from_iter(samples.iter().map(|(_, ok)| *ok));
        let calibration = crate::scoring::fit_logistic(records, labels)
            .ok()
            .map(|(weights, intercept)| ([weights[0], weights[1]], intercept));
        SectorInference { calibration }
    }

    /// The nearest row, its similarity and the margin over the second nearest.
    fn nearest(centroids: &Array2<f32>, embedding: ArrayView1<f32>) -> Option<(usize, f32, f32)> {
        Self::best_of(&centroids.dot(&embedding))
    }

    fn best_of(scores: &Array1<f32>) -> Option<(usize, f32, f32)> {
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
        let best = *order.first()?;
        let second = order.get(1).map_or(0.0, |&r| scores[r]);
        (scores[best] > 0.0).then(|| (best, scores[best], scores[best] - second))
    }

    /// The guessed row and, when calibrated, the probability it is right.
    fn infer(&self, centroids: &Array2<f32>, embedding: ArrayView1<f32>) -> Option<(usize, Option<f32>)> {
        let (row, best, margin) = Self::nearest(centroids, embedding)?;
        match self.calibration {
            Some((w, b)) => {
                let linear = w[0] * best as f64 + w[1] * margin as f64 + b;
                Some((row, Some((1.0 / (1.0 + (-linear).exp())) as f32)))
            }
            None => (best > UNCALIBRATED_MIN_SIMILARITY).then_some((row, None)),
        }
    }
}

/// A table code such as `B06-07` names its first division (`B06`).
fn division_code(table_code: &str) -> String {
    table_code.split('-').next().unwrap_or(table_code).to_string()
}

#[cfg(test)]
mod tests {
    use crate::model::{FittedModel, MIN_SECTOR_CONFIDENCE, ModelParams};
    use crate::{Firm, validate_profile, valuechain};

    fn profile(id: String, name: &str, sectors: &[&str], description: String) -> Firm {
        validate_profile(&serde_json::json!({"id": id, "name": name, "sectors": sectors, "description": description}))
            .unwrap()
    }

    #[test]
    fn an_unsure_sector_guess_is_shown_but_not_used() {
        let fruit = ["apple", "pears", "cherries", "plums"];
        let chips = ["semiconductors", "displays", "batteries", "sensors"];
        let mut firms = Vec::new();
        for i in 0..60 {
            let f = fruit[i % 4];
            let c = chips[i % 4];
            firms.push(profile(
                format!("farm{i}"),
                "Farm",
                &["A01"],
                format!("Orchard growing {f}, fruit and cereals."),
            ));
            firms.push(profile(
                format!("chip{i}"),
                "Maker",
                &["C26"],
                format!("Smartphones, computers and {c}; electronic devices."),
            ));
        }
        // Stated electronics makers whose few words read like a farm's: the
        // weak guesses the calibration learns to distrust.
        for i in 0..20 {
            let f = fruit[i % 4];
            firms.push(profile(format!("odd{i}"), "Farm", &["C26"], format!("{f}.")));
        }
        firms.push(profile(
            "phone".into(),
            "Phone Co",
            &[],
            "Smartphones, computers and displays; electronic devices.".into(),
        ));
        // Its only known word is its name, which a quarter of the farms use.
        firms.push(profile("apple".into(), "Apple", &[], "Designs products.".into()));
        let model = FittedModel::fit(&firms, &[], 1, ModelParams { dim: 32, ..ModelParams::default() }).unwrap();
        let table = valuechain::table();
        let phone = &model.meta[model.position("phone").unwrap() as usize];
        assert!(phone.sectors_inferred && phone.sector_confidence.unwrap() >= MIN_SECTOR_CONFIDENCE, "{phone:?}");
        assert!(!phone.rows.is_empty(), "a confident guess is used: {phone:?}");
        let apple = &model.meta[model.position("apple").unwrap() as usize];
        assert!(apple.sectors_inferred && apple.sectors == ["A01"], "{apple:?}");
        assert!(apple.sector_confidence.unwrap() < MIN_SECTOR_CONFIDENCE, "{apple:?}");
        assert!(
            !apple.rows.contains(&(table.row("A01").unwrap() as u16)),
            "a firm named Apple is not a farm for the value chain: {apple:?}"
        );
    }
}
