//! The tie graph: which firms have already worked together, how often, and who
//! their partners' partners are. Large consortia would otherwise dominate, so a
//! co-membership in a collaboration of `m` members counts `1/(m-1)` towards the
//! partners-of-partners signal (resource allocation), while direct ties count once.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TieGraph {
    /// For each firm, its partners and how many collaborations they share, by partner.
    neighbours: Vec<Vec<(u32, u16)>>,
    /// Collaborations each firm took part in.
    collaborations: Vec<u32>,
}

impl TieGraph {
    /// `memberships`: each collaboration as the firm indices of its members.
    pub fn build(firms: usize, memberships: &[Vec<u32>]) -> TieGraph {
        let mut pairs: Vec<Vec<u32>> = vec![Vec::new(); firms];
        let mut collaborations = vec![0u32; firms];
        for members in memberships {
            for &a in members {
                collaborations[a as usize] += 1;
                pairs[a as usize].extend(members.iter().copied().filter(|&b| b != a));
            }
        }
        let neighbours = pairs
            .into_iter()
            .map(|mut partners| {
                partners.sort_unstable();
                let mut counted: Vec<(u32, u16)> = Vec::new();
                for partner in partners {
                    match counted.last_mut() {
                        Some((last, count)) if *last == partner => *count = count.saturating_add(1),
                        _ => counted.push((partner, 1)),
                    }
                }
                counted
            })
            .collect();
        TieGraph { neighbours, collaborations }
    }

    pub fn partners(&self, firm: u32) -> &[(u32, u16)] {
        self.neighbours.get(firm as usize).map_or(&[], Vec::as_slice)
    }

    /// Collaborations the firm took part in: its popularity as a partner.
    pub fn collaborations(&self, firm: u32) -> u32 {
        self.collaborations.get(firm as usize).copied().unwrap_or(0)
    }

    /// Collaborations `a` and `b` share.
    pub fn ties(&self, a: u32, b: u32) -> u16 {
        let partners = self.partners(a);
        partners.binary_search_by_key(&b, |(p, _)| *p).map(|i| partners[i].1).unwrap_or(0)
    }

    /// Partners of `anchors` weighted by how exclusive each shared partner is
    /// (resource allocation: a partner with few partners passes more weight), with
    /// the number of distinct shared partners. Anchors themselves are left out.
    pub fn partners_of_partners(&self, anchors: &[u32]) -> rustc_hash::FxHashMap<u32, (f32, u16)> {
        let mut scores: rustc_hash::FxHashMap<u32, (f32, u16)> = rustc_hash::FxHashMap::default();
        for &anchor in anchors {
            for &(middle, _) in self.partners(anchor) {
                let middle_partners = self.partners(middle);
                let weight = 1.0 / middle_partners.len().max(1) as f32;
                for &(candidate, _) in middle_partners {
                    if anchors.contains(&candidate) {
                        continue;
                    }
                    let entry = scores.entry(candidate).or_default();
                    entry.0 += weight;
                    entry.1 += 1;
                }
            }
        }
        scores
    }

    /// Common partners of `a` and `b`.
    pub fn common_partners(&self, a: u32, b: u32) -> Vec<u32> {
        let (left, right) = (self.partners(a), self.partners(b));
        let (mut i, mut j, mut common) = (0, 0, Vec::new());
        while i < left.len() && j < right.len() {
            match left[i].0.cmp(&right[j].0) {
                std::cmp::Ordering::Less => i += 1,
                std::cmp::Ordering::Greater => j += 1,
                std::cmp::Ordering::Equal => {
                    common.push(left[i].0);
                    i += 1;
                    j += 1;
                }
            }
        }
        common
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ties_and_partners_of_partners() {
        // 0-1-2 worked together twice (0,1) and (1,2); 3 only with 2.
        let graph = TieGraph::build(4, &[vec![0, 1], vec![1, 2], vec![0, 1], vec![2, 3]]);
        assert_eq!(graph.ties(0, 1), 2);
        assert_eq!(graph.ties(0, 2), 0);
        assert_eq!(graph.collaborations(1), 3);
        let pop = graph.partners_of_partners(&[0]);
        assert!(pop.contains_key(&2));
        assert!(!pop.contains_key(&0));
        assert_eq!(graph.common_partners(0, 2), vec![1]);
    }
}
