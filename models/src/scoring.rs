//! One scoring function for every recommendation: a logistic model over a small
//! set of interpretable signals. The weights are learnt (linfa-logistic) from
//! known collaborations against sampled non-collaborators of the same query
//! (pairwise, then calibrated), never hand-set, and a
//! score splits exactly into per-signal contributions, which is what lets a
//! cluster manager see *why* a partner ranks where it does.

use linfa::prelude::*;
use linfa_logistic::LogisticRegression;
use ndarray::{Array1, Array2};
use serde::{Deserialize, Serialize};

/// The signals, in feature-vector order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    /// Cosine of text embeddings (query/anchors vs candidate).
    TextSimilarity,
    /// BM25 of the opportunity/anchor key terms against the candidate's profile.
    TextMatch,
    /// BM25 of needs against offers, both ways.
    OfferNeed,
    /// Strongest input-output coefficient between the sectors.
    ValueChain,
    /// Past collaborations with the anchors.
    Ties,
    /// Shared partners with the anchors (resource allocation).
    PartnersOfPartners,
    /// Learnt lift of the candidate's kind given the anchors' kinds.
    KindFit,
    /// Same NUTS-2 region as an anchor.
    SameRegion,
    /// Same country as an anchor.
    SameCountry,
    /// How many collaborations the candidate took part in.
    Experience,
    /// Same latent cluster as the query.
    SameCluster,
    /// Took part in past collaborations whose titles resemble the query.
    SimilarProjects,
}

pub const SIGNALS: [Signal; 12] = [
    Signal::TextSimilarity,
    Signal::TextMatch,
    Signal::OfferNeed,
    Signal::ValueChain,
    Signal::Ties,
    Signal::PartnersOfPartners,
    Signal::KindFit,
    Signal::SameRegion,
    Signal::SameCountry,
    Signal::Experience,
    Signal::SameCluster,
    Signal::SimilarProjects,
];

pub const SIGNAL_COUNT: usize = SIGNALS.len();

pub type Features = [f32; SIGNAL_COUNT];

impl Signal {
    pub fn name(self) -> &'static str {
        match self {
            Signal::TextSimilarity => "text_similarity",
            Signal::TextMatch => "text_match",
            Signal::OfferNeed => "offer_need",
            Signal::ValueChain => "value_chain",
            Signal::Ties => "ties",
            Signal::PartnersOfPartners => "partners_of_partners",
            Signal::KindFit => "kind_fit",
            Signal::SameRegion => "same_region",
            Signal::SameCountry => "same_country",
            Signal::Experience => "experience",
            Signal::SameCluster => "same_cluster",
            Signal::SimilarProjects => "similar_projects",
        }
    }
}

/// Partner/non-partner pairs the ranking is fitted on at most.
const MAX_PAIRS: usize = 50_000;

/// Learnt weights over standardised features.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Weights {
    pub mean: Vec<f32>,
    pub scale: Vec<f32>,
    pub coefficients: Vec<f32>,
    pub intercept: f32,
    /// Training pairs (positives, negatives) the weights came from.
    pub positives: usize,
    pub negatives: usize,
    /// Of those, the cluster manager's decisions (accepted, rejected) that were
    /// learnt from ([`Weights::fit_with_feedback`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub feedback_positives: usize,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub feedback_negatives: usize,
}

fn is_zero(count: &usize) -> bool {
    *count == 0
}

/// A score with its split by signal.
#[derive(Debug, Clone, PartialEq)]
pub struct Scored {
    /// Probability-like score in 0..1 (the logistic of the linear score).
    pub score: f32,
    /// Each signal's share of the linear score, relative to an average candidate.
    pub contributions: Features,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot learn weights: {0}")]
pub struct WeightsError(pub String);

/// What one training query yields: the features of its real partners and of
/// non-partners drawn from the pool serving would rank for it.
#[derive(Debug, Clone, Default)]
pub struct TrainingQuery {
    pub positives: Vec<Features>,
    pub negatives: Vec<Features>,
}

impl Weights {
    /// Learns the weights in two steps. Ranking: a logistic regression on the
    /// differences between a partner and a non-partner of the *same* query
    /// (pairwise, as RankNet does), so what is learnt is what orders one query's
    /// pool; pooled pointwise samples mix pools that differ wholesale (a very
    /// connected anchor brings hundreds of tied firms, a newcomer none), and a
    /// signal that orders each pool well can look useless across them. Calibration: a
    /// one-feature logistic regression of the labels on that ranking score (Platt
    /// scaling), so scores stay probability-like for `min_score` and networks.
    /// L2 regularisation keeps weights of rare signals from running away on a
    /// small catalogue.
    pub fn fit(queries: &[TrainingQuery]) -> Result<Weights, WeightsError> {
        Weights::fit_with_feedback(queries, &[])
    }

    /// [`Weights::fit`] with the cluster manager's decisions as further queries:
    /// per anchor, the accepted firms are positives, the rejected ones (and firms
    /// of the pool nobody decided on) negatives. Every one of their pairs is kept,
    /// whatever the subsampling of the catalogue's pairs: a decision is a label
    /// someone gave on this very catalogue, a held-out collaboration only a proxy
    /// for one. Beyond that they count as any pair does (no weight is set on them).
    pub fn fit_with_feedback(queries: &[TrainingQuery], feedback: &[TrainingQuery]) -> Result<Weights, WeightsError> {
        let feedback_positives: usize = feedback.iter().map(|q| q.positives.len()).sum();
        let feedback_negatives: usize = feedback.iter().map(|q| q.negatives.len()).sum();
        let catalogue = queries;
        let queries: Vec<&TrainingQuery> = catalogue.iter().chain(feedback).collect();
        let positives: usize = queries.iter().map(|q| q.positives.len()).sum();
        let negatives: usize = queries.iter().map(|q| q.negatives.len()).sum();
        if positives < 5 || negatives < 5 {
            return Err(WeightsError(format!(
                "need at least 5 positive and 5 negative pairs, have {positives} and {negatives}"
            )));
        }
        let samples: Vec<&Features> = queries.iter().flat_map(|q| q.positives.iter().chain(&q.negatives)).collect();
        let n = samples.len() as f64;
        let mut mean = vec![0.0f64; SIGNAL_COUNT];
        for features in &samples {
            for (m, &x) in mean.iter_mut().zip(features.iter()) {
                *m += x as f64 / n;
            }
        }
        let mut scale = vec![0.0f64; SIGNAL_COUNT];
        for features in &samples {
            for ((s, &x), m) in scale.iter_mut().zip(features.iter()).zip(&mean) {
                *s += (x as f64 - m).powi(2) / n;
            }
        }
        let scale: Vec<f64> =
            scale.into_iter().map(|variance| if variance > 1e-12 { variance.sqrt() } else { 1.0 }).collect();
        let standardised = |features: &Features, j: usize| (features[j] as f64 - mean[j]) / scale[j];

        // Every partner against every non-partner of its query, the order of each
        // pair alternating so both classes are equally common. Beyond
        // `MAX_PAIRS`, every n-th pair: the solver's time grows with the pairs,
        // the weights (a dozen) stop moving long before (the CORDIS pair model:
        // 130k pairs took 4.2 s, every third of them 0.07 s, dev unchanged).
        let all: usize = catalogue.iter().map(|q| q.positives.len() * q.negatives.len()).sum();
        let stride = all.div_ceil(MAX_PAIRS).max(1);
        let mut differences: Vec<f64> = Vec::new();
        let mut labels: Vec<bool> = Vec::new();
        let mut seen = 0usize;
        for (number, query) in queries.iter().enumerate() {
            let from_feedback = number >= catalogue.len();
            for positive in &query.positives {
                for negative in &query.negatives {
                    let keep = from_feedback || seen.is_multiple_of(stride);
                    seen += 1;
                    if !keep {
                        continue;
                    }
                    let first = labels.len().is_multiple_of(2);
                    let (a, b) = if first { (positive, negative) } else { (negative, positive) };
                    differences.extend((0..SIGNAL_COUNT).map(|j| standardised(a, j) - standardised(b, j)));
                    labels.push(first);
                }
            }
        }
        let pairs = labels.len();
        if pairs < 10 {
            return Err(WeightsError(format!("need at least 10 partner/non-partner pairs, have {pairs}")));
        }
        let records = Array2::from_shape_vec((pairs, SIGNAL_COUNT), differences).expect("pairs × signals");
        let ranking = fit_logistic(records, Array1::from(labels))?;
        let direction: Vec<f64> = ranking.0;

        let linear = |features: &Features| (0..SIGNAL_COUNT).map(|j| direction[j] * standardised(features, j)).sum();
        let scores = Array2::from_shape_fn((samples.len(), 1), |(i, _)| linear(samples[i]));
        let labels = Array1::from_iter(queries.iter().flat_map(|q| {
            std::iter::repeat_n(true, q.positives.len()).chain(std::iter::repeat_n(false, q.negatives.len()))
        }));
        let (slope, intercept) = fit_logistic(scores, labels).map(|(w, b)| (w[0], b))?;
        // A calibration that reverses the ranking would mean the pairwise fit found
        // nothing; keep the ranking and let the intercept carry the base rate.
        let slope = slope.max(1e-3);
        Ok(Weights {
            mean: mean.iter().map(|&m| m as f32).collect(),
            scale: scale.iter().map(|&s| s as f32).collect(),
            coefficients: direction.iter().map(|&w| (slope * w) as f32).collect(),
            intercept: intercept as f32,
            positives,
            negatives,
            feedback_positives,
            feedback_negatives,
        })
    }

    pub fn score(&self, features: &Features) -> Scored {
        let mut contributions = [0.0f32; SIGNAL_COUNT];
        let mut linear = self.intercept;
        for j in 0..SIGNAL_COUNT {
            contributions[j] = self.coefficients[j] * (features[j] - self.mean[j]) / self.scale[j];
            linear += contributions[j];
        }
        Scored { score: 1.0 / (1.0 + (-linear).exp()), contributions }
    }

    /// The weight on the raw (unstandardised) feature: how much one unit of the
    /// signal moves the log-odds. Shown by `GET /v1/admin/model`.
    pub fn raw_weight(&self, signal: usize) -> f32 {
        self.coefficients[signal] / self.scale[signal]
    }
}

/// The signals a catalogue without collaborations can have, and the only ones
/// the shipped default weights use: what the firms' texts say, their offers and
/// needs, and the input-output link of their sectors. Geography is left out on
/// purpose: the defaults are fitted on EU research consortia, which must span
/// several countries by rule, so same-country would be learnt as a penalty that
/// says nothing about suppliers and customers.
pub const DAY_ONE_SIGNALS: [Signal; 4] =
    [Signal::TextSimilarity, Signal::TextMatch, Signal::OfferNeed, Signal::ValueChain];

/// The shipped weights for a catalogue with nothing to learn from, and where
/// they come from (`models/data/default_weights.json`, written by
/// `klynge fit-defaults` from `models/data/default_training.csv`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DefaultWeights {
    pub fitted_on: String,
    pub command: String,
    pub weights: Weights,
}

const DEFAULT_WEIGHTS_JSON: &str = include_str!("../data/default_weights.json");

/// The shipped default weights.
pub fn default_weights() -> &'static DefaultWeights {
    static DEFAULTS: std::sync::OnceLock<DefaultWeights> = std::sync::OnceLock::new();
    DEFAULTS.get_or_init(|| serde_json::from_str(DEFAULT_WEIGHTS_JSON).expect("the shipped default weights parse"))
}

/// The training file of the defaults: one line per sample, `query,label,` then
/// the [`DAY_ONE_SIGNALS`] in order (`label` 1 for a partner, 0 for a non-partner
/// of that query).
pub fn training_csv(queries: &[TrainingQuery]) -> String {
    let mut out = String::from("query,label");
    for signal in DAY_ONE_SIGNALS {
        out.push(',');
        out.push_str(signal.name());
    }
    out.push('\n');
    for (q, query) in queries.iter().enumerate() {
        for (label, samples) in [(1, &query.positives), (0, &query.negatives)] {
            for features in samples {
                out.push_str(&format!("{q},{label}"));
                for signal in DAY_ONE_SIGNALS {
                    out.push_str(&format!(",{}", features[signal as usize]));
                }
                out.push('\n');
            }
        }
    }
    out
}

/// Reads [`training_csv`] back (other signals zero).
pub fn read_training_csv(text: &str) -> Result<Vec<TrainingQuery>, WeightsError> {
    let mut queries: Vec<TrainingQuery> = Vec::new();
    for (number, line) in text.lines().enumerate().skip(1).filter(|(_, l)| !l.trim().is_empty()) {
        let bad = |what: &str| WeightsError(format!("line {}: {what}", number + 1));
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != 2 + DAY_ONE_SIGNALS.len() {
            return Err(bad("wrong number of fields"));
        }
        let query: usize = fields[0].parse().map_err(|_| bad("query is not a number"))?;
        if query > queries.len() {
            return Err(bad("queries must be numbered in order"));
        }
        if query == queries.len() {
            queries.push(TrainingQuery::default());
        }
        let mut features = [0.0f32; SIGNAL_COUNT];
        for (signal, value) in DAY_ONE_SIGNALS.iter().zip(&fields[2..]) {
            features[*signal as usize] = value.parse().map_err(|_| bad("feature is not a number"))?;
        }
        match fields[1] {
            "1" => queries[query].positives.push(features),
            "0" => queries[query].negatives.push(features),
            _ => return Err(bad("label must be 0 or 1")),
        }
    }
    Ok(queries)
}

/// Fits the default weights on the samples of [`training_csv`]; the JSON of the
/// result is the shipped file, byte for byte.
///
/// The value-chain weight is kept at zero or above: on the consortium catalogue
/// every sector is inferred from the very texts the text signals read, so firms
/// whose texts differ get different guessed sectors and an input-output link,
/// and the fit makes the link stand in for "less similar text" (−0.32 per unit
/// when last fitted). That says nothing about stated sectors of suppliers and
/// customers, so it may not count against them; there is no open data to fit a
/// positive weight on either, so none is invented.
///
/// A day-one signal the training data never shows (offers ↔ needs: CORDIS
/// profiles state none) cannot be fitted; it is a cosine of text embeddings like
/// the profile ↔ profile text match, so it gets that signal's weight per unit
/// rather than none.
pub fn fit_defaults(queries: &[TrainingQuery], fitted_on: &str) -> Result<DefaultWeights, WeightsError> {
    let mut weights = Weights::fit(queries)?;
    let value_chain = &mut weights.coefficients[Signal::ValueChain as usize];
    *value_chain = value_chain.max(0.0);
    let text_match = weights.raw_weight(Signal::TextMatch as usize);
    for signal in DAY_ONE_SIGNALS {
        let j = signal as usize;
        let unseen = queries.iter().all(|q| q.positives.iter().chain(&q.negatives).all(|f| f[j] == 0.0));
        if unseen {
            weights.mean[j] = 0.0;
            weights.scale[j] = 1.0;
            weights.coefficients[j] = text_match;
        }
    }
    Ok(DefaultWeights {
        fitted_on: fitted_on.to_string(),
        command: "klynge fit-defaults --catalogue ../shared/data/consortia --out models/data".to_string(),
        weights,
    })
}

/// What the committed training file was made from (kept with it so a refit says so).
pub const DEFAULTS_FITTED_ON: &str = "the CORDIS consortium catalogue (shared/data/consortia: 5,318 organisations, their collaborations): held-out consortia as anchored queries, partners the candidate pool holds against sampled non-partners, day-one signals only";

/// An L2-regularised logistic regression (linfa): the weights and intercept with
/// `true` as the positive class.
pub(crate) fn fit_logistic(records: Array2<f64>, labels: Array1<bool>) -> Result<(Vec<f64>, f64), WeightsError> {
    let model = LogisticRegression::default()
        .alpha(1.0)
        .max_iterations(200)
        .fit(&Dataset::new(records, labels))
        .map_err(|error| WeightsError(error.to_string()))?;
    // linfa orders the two classes itself; make `true` the positive one.
    let sign = if model.labels().pos.class { 1.0 } else { -1.0 };
    Ok((model.params().iter().map(|&w| sign * w).collect(), sign * model.intercept()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learns_that_ties_matter_and_splits_scores() {
        let mut queries = Vec::new();
        for q in 0..20 {
            let mut query = TrainingQuery::default();
            for i in 0..10 {
                let mut features = [0.0f32; SIGNAL_COUNT];
                let positive = i % 2 == 0;
                features[Signal::Ties as usize] =
                    if positive { 1.0 + ((i + q) % 3) as f32 } else { ((i + q) % 2) as f32 * 0.2 };
                features[Signal::SameCountry as usize] = ((i + q) % 5 == 0) as u8 as f32;
                if positive { query.positives.push(features) } else { query.negatives.push(features) }
            }
            queries.push(query);
        }
        let weights = Weights::fit(&queries).unwrap();
        assert!(weights.raw_weight(Signal::Ties as usize) > 0.5);
        let mut strong = [0.0f32; SIGNAL_COUNT];
        strong[Signal::Ties as usize] = 3.0;
        let scored = weights.score(&strong);
        assert!(scored.score > 0.8);
        let top =
            (0..SIGNAL_COUNT).max_by(|&a, &b| scored.contributions[a].total_cmp(&scored.contributions[b])).unwrap();
        assert_eq!(top, Signal::Ties as usize);
    }

    #[test]
    fn shipped_default_weights_are_what_the_command_fits() {
        let queries = read_training_csv(include_str!("../data/default_training.csv")).unwrap();
        let fitted = fit_defaults(&queries, DEFAULTS_FITTED_ON).unwrap();
        let json = serde_json::to_string_pretty(&fitted).unwrap() + "\n";
        assert_eq!(json, DEFAULT_WEIGHTS_JSON, "rerun `klynge fit-defaults` and commit its output");
        // The file round-trips exactly, so what the command writes is what a refit reads.
        assert_eq!(read_training_csv(&training_csv(&queries)).unwrap().len(), queries.len());
        assert_eq!(training_csv(&read_training_csv(&training_csv(&queries)).unwrap()), training_csv(&queries));
    }

    /// Rewrites the shipped weights from the committed training file, the fitting
    /// half of `klynge fit-defaults` (which also rebuilds the training file from
    /// the consortium catalogue): `cargo test -p klynge-models -- --ignored regenerate`.
    #[test]
    #[ignore]
    fn regenerate_default_weights() {
        let queries = read_training_csv(include_str!("../data/default_training.csv")).unwrap();
        let fitted = fit_defaults(&queries, DEFAULTS_FITTED_ON).unwrap();
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/data/default_weights.json");
        std::fs::write(path, serde_json::to_string_pretty(&fitted).unwrap() + "\n").unwrap();
    }

    #[test]
    fn training_file_errors_name_the_line() {
        let error = read_training_csv("query,label,a,b,c,d\n0,1,0.1,0.2,0,0\n0,2,0,0,0,0\n").unwrap_err();
        assert!(error.0.contains("line 3"), "{error}");
        assert!(read_training_csv("h\n0,1,0.1\n").is_err());
    }

    #[test]
    fn refuses_too_few_samples() {
        let query = TrainingQuery { positives: vec![[0.0; SIGNAL_COUNT]], negatives: Vec::new() };
        assert!(Weights::fit(&[query]).is_err());
    }
}
