//! Latent clusters of firms: KMeans (linfa-clustering) over the text embeddings.
//! A firm's cluster is shown in reasons and used for diversity in networks; the
//! cluster lists double as an inverted-file index, so nearest-neighbour search
//! scans only the lists nearest to the query instead of every firm.

use linfa::prelude::*;
use linfa_clustering::KMeans;
use ndarray::{Array2, ArrayView1, ArrayView2, Axis};
use rand::SeedableRng;
use rand::seq::index::sample;
use rand_xoshiro::Xoshiro256Plus;
use serde::{Deserialize, Serialize};

use crate::text::{quantise_into, quantised_dot};

/// KMeans is fitted on at most this many firms, then every firm is assigned: the
/// centroids barely move past this size and fitting stays within seconds at 1M.
const FIT_SAMPLE: usize = 20_000;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Clusters {
    pub centroids: Array2<f32>,
    /// Cluster of each firm.
    pub assignment: Vec<u32>,
    /// Firms of each cluster.
    pub lists: Vec<Vec<u32>>,
    /// The members' embeddings per list, for fast scans ([`Clusters::index`]).
    #[serde(skip)]
    scan: Vec<ScanList>,
    /// Where each firm's row sits in `scan`: (list, place in the list).
    #[serde(skip)]
    slots: Vec<(u32, u32)>,
    /// The largest L1 norm of a scan row (scale × Σ|value|), which bounds how far
    /// an integer dot can fall from [`quantised_dot`] ([`best_rows`]).
    #[serde(skip)]
    max_l1: f32,
}

/// One list's embeddings, contiguous and quantised to i8 with a scale per row.
/// A scan then reads memory in order instead of jumping across the whole
/// embedding matrix: at 200k firms those jumps, not the arithmetic, were most
/// of a query's neighbour search. Used to rank neighbours only; signals use the
/// exact embeddings.
#[derive(Debug, Clone, Default)]
struct ScanList {
    rows: Vec<i8>,
    scales: Vec<f32>,
}

impl Clusters {
    /// About √(n/2) clusters, between 1 and 512.
    pub fn default_count(firms: usize) -> usize {
        ((firms as f64 / 2.0).sqrt().round() as usize).clamp(1, 512)
    }

    pub fn fit(embeddings: ArrayView2<f32>, count: usize, seed: u64) -> Clusters {
        let n = embeddings.nrows();
        let count = count.clamp(1, n.max(1));
        if n == 0 {
            return Clusters {
                centroids: Array2::zeros((0, embeddings.ncols())),
                assignment: Vec::new(),
                lists: Vec::new(),
                scan: Vec::new(),
                slots: Vec::new(),
                max_l1: 0.0,
            };
        }
        let mut rng = Xoshiro256Plus::seed_from_u64(seed);
        let mut rows: Vec<usize> = sample(&mut rng, n, n.min(FIT_SAMPLE)).into_vec();
        rows.sort_unstable();
        let training = embeddings.select(Axis(0), &rows).mapv(f64::from);
        let centroids = KMeans::params_with_rng(count, rng)
            .max_n_iterations(30)
            .tolerance(1e-4)
            .n_runs(1)
            .fit(&DatasetBase::from(training))
            .map(|model| model.centroids().mapv(|x| x as f32))
            .unwrap_or_else(|_| embeddings.select(Axis(0), &rows[..count.min(rows.len())]));
        let mut clusters = Clusters {
            centroids,
            assignment: Vec::new(),
            lists: Vec::new(),
            scan: Vec::new(),
            slots: Vec::new(),
            max_l1: 0.0,
        };
        clusters.assignment = embeddings.outer_iter().map(|row| clusters.nearest(row, 1)[0]).collect();
        clusters.lists = vec![Vec::new(); clusters.centroids.nrows()];
        for (firm, &cluster) in clusters.assignment.iter().enumerate() {
            clusters.lists[cluster as usize].push(firm as u32);
        }
        clusters.index(embeddings);
        clusters
    }

    /// Builds the scan lists of [`Clusters::nearest_firms`] (after a fit, and after
    /// loading, since they are not saved).
    pub fn index(&mut self, embeddings: ArrayView2<f32>) {
        self.slots = vec![(0, 0); self.assignment.len()];
        for (list, firms) in self.lists.iter().enumerate() {
            for (place, &firm) in firms.iter().enumerate() {
                self.slots[firm as usize] = (list as u32, place as u32);
            }
        }
        self.scan = self
            .lists
            .iter()
            .map(|list| {
                let mut scan = ScanList {
                    rows: Vec::with_capacity(list.len() * embeddings.ncols()),
                    scales: Vec::with_capacity(list.len()),
                };
                for &firm in list {
                    let scale = quantise_into(embeddings.row(firm as usize), &mut scan.rows);
                    scan.scales.push(scale);
                }
                scan
            })
            .collect();
        let dim = embeddings.ncols().max(1);
        self.max_l1 = self
            .scan
            .iter()
            .flat_map(|scan| {
                scan.rows
                    .chunks_exact(dim)
                    .zip(&scan.scales)
                    .map(|(row, &scale)| scale * row.iter().map(|&v| (v as i32).unsigned_abs() as f32).sum::<f32>())
            })
            .fold(0.0f32, f32::max);
    }

    /// Approximate nearest firms by cosine: scan the nearest lists, up to `probes`
    /// of them, and stop once `budget` firms were scanned, through the contiguous
    /// quantised scan lists (scores within about 1 % of the exact ones). The
    /// budget keeps the cost of a query flat as the catalogue grows (lists grow
    /// with it), which is what lets the batch refresh scale linearly rather than
    /// quadratically. KMeans on real catalogues leaves a few very large clusters
    /// (near duplicates, generic texts); a query landing in one would scan all of
    /// it, so the budget also cuts inside a list (a fixed, deterministic part).
    ///
    /// `order` is the clusters nearest the query first ([`Clusters::order`]); the
    /// first `probes` are scanned.
    pub fn nearest_firms(
        &self,
        query: ArrayView1<f32>,
        order: &[u32],
        probes: usize,
        budget: usize,
        limit: usize,
    ) -> Vec<(u32, f32)> {
        let dim = query.len();
        let query: Vec<f32> = query.iter().copied().collect();
        let mut rows: Vec<(u32, &[i8], f32)> = Vec::with_capacity(budget.min(self.assignment.len()));
        for &cluster in order.iter().take(probes.max(1)) {
            let room = budget.saturating_sub(rows.len());
            if room == 0 {
                break;
            }
            let (list, scan) = (&self.lists[cluster as usize], &self.scan[cluster as usize]);
            rows.extend(
                list.iter()
                    .zip(scan.rows.chunks_exact(dim))
                    .zip(&scan.scales)
                    .take(room)
                    .map(|((&firm, row), &scale)| (firm, row, scale)),
            );
        }
        best_rows(&rows, &query, self.max_l1, limit)
    }

    /// A scan of `firms` alone ([`SubsetScan`]): their quantised rows copied
    /// together, grouped by cluster.
    pub fn subset_scan(&self, firms: &[u32]) -> SubsetScan {
        let dim = self.centroids.ncols();
        let mut grouped: Vec<u32> = firms.to_vec();
        grouped.sort_by_key(|&firm| (self.slots[firm as usize], firm));
        let mut subset = SubsetScan {
            rows: Vec::with_capacity(grouped.len() * dim),
            scales: Vec::with_capacity(grouped.len()),
            max_l1: self.max_l1,
            ..SubsetScan::default()
        };
        for &firm in &grouped {
            let (list, place) = self.slots[firm as usize];
            let (scan, place) = (&self.scan[list as usize], place as usize);
            subset.rows.extend_from_slice(&scan.rows[place * dim..(place + 1) * dim]);
            subset.scales.push(scan.scales[place]);
            if subset.groups.last().is_none_or(|&(cluster, _)| cluster != list) {
                subset.groups.push((list, subset.firms.len() as u32));
            }
            subset.firms.push(firm);
        }
        subset
    }

    /// The `probes` clusters whose centroids are most similar to `vector`.
    pub fn nearest(&self, vector: ArrayView1<f32>, probes: usize) -> Vec<u32> {
        let mut order = self.order(vector);
        order.truncate(probes.max(1));
        order
    }

    /// Every cluster, the one whose centroid is most similar to `vector` first.
    pub fn order(&self, vector: ArrayView1<f32>) -> Vec<u32> {
        let scores = self.centroids.dot(&vector);
        let mut order: Vec<u32> = (0..scores.len() as u32).collect();
        order.sort_by(|a, b| scores[*b as usize].total_cmp(&scores[*a as usize]).then(a.cmp(b)));
        order
    }
}

/// Some firms' quantised rows, contiguous and grouped by cluster, for the
/// day-one scans of one sector's firms nearest a query: reading them where the
/// cluster lists keep them jumped across the whole catalogue (two cache misses
/// a firm), and those scans were a sixth of a day-one request.
#[derive(Debug, Clone, Default)]
pub struct SubsetScan {
    firms: Vec<u32>,
    rows: Vec<i8>,
    scales: Vec<f32>,
    /// (cluster, first place in `firms`), in cluster order.
    groups: Vec<(u32, u32)>,
    max_l1: f32,
}

impl SubsetScan {
    /// The `limit` firms nearest to `query`, best first, among those in the
    /// clusters `near` marks, or among all when those hold fewer than `least`.
    pub fn nearest(&self, query: &[f32], near: &[bool], least: usize, limit: usize) -> Vec<(u32, f32)> {
        let dim = query.len();
        let bounds = |g: usize| {
            let end = self.groups.get(g + 1).map_or(self.firms.len(), |&(_, start)| start as usize);
            self.groups[g].1 as usize..end
        };
        let in_near: Vec<usize> = (0..self.groups.len()).filter(|&g| near[self.groups[g].0 as usize]).collect();
        let nearby: usize = in_near.iter().map(|&g| bounds(g).len()).sum();
        let groups: Vec<usize> = if nearby >= least { in_near } else { (0..self.groups.len()).collect() };
        let mut rows: Vec<(u32, &[i8], f32)> =
            Vec::with_capacity(if nearby >= least { nearby } else { self.firms.len() });
        for g in groups {
            let range = bounds(g);
            let values = self.rows[range.start * dim..range.end * dim].chunks_exact(dim);
            rows.extend(
                self.firms[range.clone()]
                    .iter()
                    .zip(values)
                    .zip(&self.scales[range])
                    .map(|((&firm, row), &scale)| (firm, row, scale)),
            );
        }
        best_rows(&rows, query, self.max_l1, limit)
    }
}

/// The `limit` of `rows` (firm, quantised row, scale) with the highest
/// [`quantised_dot`] with `query`, best first, ties by firm: exactly what
/// scoring every row that way and keeping the best gives, in a third of the
/// time. A first pass scores every row against the query quantised to i8 too
/// (integer products, sixteen at a time); that score is within `max_l1` ×
/// (the query's scale) / 2 of the exact one, so only rows within twice that of
/// the first pass's `limit`-th best can still be among the best, and only they
/// are scored exactly.
fn best_rows(rows: &[(u32, &[i8], f32)], query: &[f32], max_l1: f32, limit: usize) -> Vec<(u32, f32)> {
    let exact = |&(firm, row, scale): &(u32, &[i8], f32)| (firm, quantised_dot(row, scale, query));
    let mut quantised = Vec::with_capacity(query.len());
    let query_scale = quantise_into(ArrayView1::from(query), &mut quantised);
    if rows.len() <= limit || query_scale == 0.0 {
        return top(rows.iter().map(exact).collect(), limit);
    }
    let first = integer_scores(rows, &quantised, query_scale);
    let mut sorted = first.clone();
    let (_, &mut kth, _) = sorted.select_nth_unstable_by(limit - 1, |a, b| b.total_cmp(a));
    // Twice the bound, and room for the rounding of both scores.
    let cut = kth - max_l1 * query_scale - 1e-4;
    top(rows.iter().zip(&first).filter(|&(_, &score)| score >= cut).map(|(row, _)| exact(row)).collect(), limit)
}

/// Each row's Σ row·query over i8 values (in i32: 127 × 127 × 130k dimensions
/// would fit) times the two scales. One dispatched call for all rows, so the
/// AVX2 build of the inner product is inlined into the loop. Plain loops, not
/// closures: a closure is compiled without its function's target features.
#[multiversion::multiversion(targets("x86_64+avx2"))]
fn integer_scores(rows: &[(u32, &[i8], f32)], query: &[i8], query_scale: f32) -> Vec<f32> {
    let mut scores = Vec::with_capacity(rows.len());
    for &(_, row, scale) in rows {
        let mut dot = 0i32;
        for (&r, &q) in row.iter().zip(query) {
            dot += r as i32 * q as i32;
        }
        scores.push(dot as f32 * scale * query_scale);
    }
    scores
}

/// The `limit` best `(firm, score)`, best first, ties by firm.
fn top(mut scored: Vec<(u32, f32)>, limit: usize) -> Vec<(u32, f32)> {
    let limit = limit.min(scored.len());
    if limit == 0 {
        return Vec::new();
    }
    scored.select_nth_unstable_by(limit - 1, |a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored.truncate(limit);
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn separates_two_groups_and_finds_neighbours() {
        let embeddings = array![[1.0f32, 0.0], [0.99, 0.14], [0.0, 1.0], [0.14, 0.99]];
        let clusters = Clusters::fit(embeddings.view(), 2, 7);
        assert_eq!(clusters.assignment[0], clusters.assignment[1]);
        assert_ne!(clusters.assignment[0], clusters.assignment[2]);
        let query = array![1.0f32, 0.0];
        let near = top(embeddings.outer_iter().enumerate().map(|(f, row)| (f as u32, row.dot(&query))).collect(), 2);
        assert_eq!(near.iter().map(|(f, _)| *f).collect::<Vec<_>>(), vec![0, 1]);
        let fast = clusters.nearest_firms(query.view(), &clusters.order(query.view()), 1, 100, 2);
        assert_eq!(fast.iter().map(|(f, _)| *f).collect::<Vec<_>>(), vec![0, 1]);
        for ((_, exact), (_, quantised)) in near.iter().zip(&fast) {
            assert!((exact - quantised).abs() < 0.01, "{exact} vs {quantised}");
        }
    }

    #[test]
    fn a_subset_scan_finds_what_a_scan_of_its_firms_finds() {
        let embeddings = array![[1.0f32, 0.0], [0.99, 0.14], [0.0, 1.0], [0.14, 0.99], [0.7, 0.7], [0.6, 0.8]];
        let clusters = Clusters::fit(embeddings.view(), 2, 7);
        let subset = clusters.subset_scan(&[5, 0, 3, 1]);
        let query = [0.0f32, 1.0];
        let scan = |firms: &[u32]| {
            let scored = firms
                .iter()
                .map(|&f| {
                    let mut row = Vec::new();
                    let scale = quantise_into(embeddings.row(f as usize), &mut row);
                    (f, quantised_dot(&row, scale, &query))
                })
                .collect();
            top(scored, 2)
        };
        let near_query = clusters.assignment[2] as usize;
        let mut near = vec![false; 2];
        near[near_query] = true;
        let in_near: Vec<u32> =
            [5, 0, 3, 1].into_iter().filter(|&f| near[clusters.assignment[f as usize] as usize]).collect();
        assert_eq!(subset.nearest(&query, &near, 1, 2), scan(&in_near));
        // Fewer nearby than asked for: the whole subset is scanned.
        assert_eq!(subset.nearest(&query, &near, in_near.len() + 1, 2), scan(&[5, 0, 3, 1]));
        assert_eq!(subset.nearest(&query, &[false, false], 1, 2), scan(&[5, 0, 3, 1]));
    }

    #[test]
    fn the_integer_first_pass_keeps_exactly_the_best_rows() {
        use rand::{Rng, SeedableRng};
        let mut rng = Xoshiro256Plus::seed_from_u64(3);
        let dim = 32;
        let mut values = Vec::new();
        let mut scales = Vec::new();
        for _ in 0..2_000 {
            let mut row = ndarray::Array1::from_shape_fn(dim, |_| rng.gen_range(-1.0f32..1.0));
            crate::text::normalise(row.view_mut());
            scales.push(quantise_into(row.view(), &mut values));
        }
        let rows: Vec<(u32, &[i8], f32)> =
            values.chunks_exact(dim).zip(&scales).enumerate().map(|(f, (row, &s))| (f as u32, row, s)).collect();
        let max_l1 =
            rows.iter().map(|(_, r, s)| s * r.iter().map(|&v| (v as f32).abs()).sum::<f32>()).fold(0.0, f32::max);
        for _ in 0..20 {
            let mut query = ndarray::Array1::from_shape_fn(dim, |_| rng.gen_range(-1.0f32..1.0));
            crate::text::normalise(query.view_mut());
            let query = query.to_vec();
            let every = top(rows.iter().map(|&(f, r, s)| (f, quantised_dot(r, s, &query))).collect(), 50);
            assert_eq!(best_rows(&rows, &query, max_l1, 50), every);
        }
    }
}
