//! Value-chain complementarity between sectors, from the UK 2010 input-output
//! table (shipped in `data/`): how much of a buyer sector's output is made of
//! inputs from a supplier sector. Two firms complement each other when one's
//! sector is a large supplier of the other's — "C10 buys 7 % of its inputs from
//! A01" — and the stage of the chain each sector sits at lets a network cover a
//! whole chain instead of five competitors.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::Serialize;

use crate::nace;

/// ONS input-output analytical tables 2010 (OGL v3), see `data/README.md`.
const IO_CSV: &str = include_str!("../data/io_nace_uk_2010.csv");

pub struct ValueChain {
    codes: Vec<String>,
    /// NACE division (`C10`) → row of the table; range codes (`B06-07`) appear once
    /// per division they cover.
    by_division: HashMap<String, usize>,
    /// `coefficients[supplier * n + buyer]`.
    coefficients: Vec<f32>,
    /// `flows[supplier * n + buyer]`: £ million a year (which way goods mostly go).
    flows: Vec<f32>,
}

/// The strongest supply relation between two firms' sectors.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SectorLink {
    /// Division that supplies (`A01`).
    pub supplier: String,
    /// Division that buys (`C10`).
    pub buyer: String,
    /// Share of the buyer's output made of the supplier's products.
    pub coefficient: f32,
    /// True when the candidate is the supplier and the focal firm the buyer.
    pub candidate_supplies: bool,
}

pub fn table() -> &'static ValueChain {
    static TABLE: OnceLock<ValueChain> = OnceLock::new();
    TABLE.get_or_init(ValueChain::load)
}

impl ValueChain {
    fn load() -> ValueChain {
        let mut reader = csv::Reader::from_reader(IO_CSV.as_bytes());
        let rows: Vec<(String, String, f32, f32)> = reader
            .records()
            .map(|record| {
                let record = record.expect("the shipped input-output table is valid CSV");
                (
                    record[0].to_string(),
                    record[1].to_string(),
                    record[3].parse().expect("coefficient is a number"),
                    record[2].parse().expect("flow is a number"),
                )
            })
            .collect();
        let mut codes: Vec<String> = rows.iter().flat_map(|(s, b, _, _)| [s.clone(), b.clone()]).collect();
        codes.sort();
        codes.dedup();
        let position: HashMap<&str, usize> = codes.iter().enumerate().map(|(i, c)| (c.as_str(), i)).collect();
        let n = codes.len();
        let mut coefficients = vec![0.0; n * n];
        let mut flows = vec![0.0; n * n];
        for (supplier, buyer, coefficient, flow) in &rows {
            coefficients[position[supplier.as_str()] * n + position[buyer.as_str()]] = *coefficient;
            flows[position[supplier.as_str()] * n + position[buyer.as_str()]] = *flow;
        }
        let mut by_division = HashMap::new();
        for (row, code) in codes.iter().enumerate() {
            let section = &code[..1];
            match code[1..].split_once('-') {
                Some((from, to)) => {
                    let (from, to): (u32, u32) = (from.parse().unwrap_or(0), to.parse().unwrap_or(0));
                    for division in from..=to {
                        by_division.insert(format!("{section}{division:02}"), row);
                    }
                }
                None => {
                    by_division.insert(code.clone(), row);
                }
            }
        }
        ValueChain { codes, by_division, coefficients, flows }
    }

    /// Table row of any normalised NACE code (class, group or division).
    pub fn row(&self, code: &str) -> Option<usize> {
        self.by_division.get(nace::division(code)?).copied()
    }

    pub fn len(&self) -> usize {
        self.codes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.codes.is_empty()
    }

    pub fn code(&self, row: usize) -> &str {
        &self.codes[row]
    }

    /// Share of `buyer`'s output made of `supplier`'s products (rows of the table).
    pub fn coefficient(&self, supplier: usize, buyer: usize) -> f32 {
        self.coefficients[supplier * self.codes.len() + buyer]
    }

    /// Yearly value of `supplier`'s products bought by `buyer` (£ million, rows of
    /// the table): where two sectors supply each other, the larger flow says which
    /// way the chain runs.
    pub fn flow(&self, supplier: usize, buyer: usize) -> f32 {
        self.flows[supplier * self.codes.len() + buyer]
    }

    /// The strongest supplier/customer relation between two sets of table rows,
    /// ignoring a sector's use of its own products (two firms of one sector are
    /// more often competitors than partners).
    pub fn best_link(&self, focal: &[usize], candidate: &[usize]) -> Option<SectorLink> {
        self.strongest_link(focal, candidate, &[true, false], false)
    }

    /// The strongest coefficient between two sets of rows, without building a link.
    pub fn strength<C: Copy + Into<usize>>(&self, focal: &[usize], candidate: &[C]) -> f32 {
        let mut best = 0.0f32;
        for &f in focal {
            for c in candidate.iter().map(|&c| c.into()) {
                if f != c {
                    best = best.max(self.coefficient(c, f)).max(self.coefficient(f, c));
                }
            }
        }
        best
    }

    /// The strongest coefficient in one direction — `candidate` supplying `focal`
    /// when `candidate_supplies`, buying from it otherwise — counting a sector's
    /// use of its own products too: asked for suppliers, a maker of electronics
    /// should meet the makers of its components, who share its division.
    pub fn directed_strength<C: Copy + Into<usize>>(
        &self,
        focal: &[usize],
        candidate: &[C],
        candidate_supplies: bool,
    ) -> f32 {
        let mut best = 0.0f32;
        for &f in focal {
            for c in candidate.iter().map(|&c| c.into()) {
                let (supplier, buyer) = if candidate_supplies { (c, f) } else { (f, c) };
                best = best.max(self.coefficient(supplier, buyer));
            }
        }
        best
    }

    /// The link behind [`ValueChain::directed_strength`].
    pub fn best_directed_link(
        &self,
        focal: &[usize],
        candidate: &[usize],
        candidate_supplies: bool,
    ) -> Option<SectorLink> {
        self.strongest_link(focal, candidate, &[candidate_supplies], true)
    }

    /// The strongest link between two sets of rows in the given directions
    /// (`true`: the candidate supplies), first found wins a tie; `own_use` counts a
    /// sector buying from itself.
    fn strongest_link(
        &self,
        focal: &[usize],
        candidate: &[usize],
        directions: &[bool],
        own_use: bool,
    ) -> Option<SectorLink> {
        let mut best: Option<SectorLink> = None;
        for &f in focal {
            for &c in candidate {
                if f == c && !own_use {
                    continue;
                }
                for &candidate_supplies in directions {
                    let (supplier, buyer) = if candidate_supplies { (c, f) } else { (f, c) };
                    let coefficient = self.coefficient(supplier, buyer);
                    if coefficient > best.as_ref().map_or(0.0, |link| link.coefficient) {
                        best = Some(SectorLink {
                            supplier: self.codes[supplier].clone(),
                            buyer: self.codes[buyer].clone(),
                            coefficient,
                            candidate_supplies,
                        });
                    }
                }
            }
        }
        best
    }

    /// Rows that supply most to, or buy most from, the given rows: the sectors a
    /// firm should meet, strongest first.
    pub fn partner_rows(&self, rows: &[usize], limit: usize) -> Vec<(usize, f32)> {
        let n = self.codes.len();
        let mut strength: Vec<(usize, f32)> = (0..n)
            .filter(|other| !rows.contains(other))
            .map(|other| {
                let best = rows
                    .iter()
                    .map(|&row| self.coefficient(other, row).max(self.coefficient(row, other)))
                    .fold(0.0f32, f32::max);
                (other, best)
            })
            .filter(|(_, strength)| *strength > 0.0)
            .collect();
        strength.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        strength.truncate(limit);
        strength
    }
}

/// Every stage [`stage`] can return.
pub const STAGES: [&str; 14] = [
    "research & development",
    "education & research",
    "primary production",
    "manufacturing",
    "energy & utilities",
    "construction",
    "trade & distribution",
    "transport & logistics",
    "information & communication",
    "finance & property",
    "business services",
    "public administration",
    "health & care",
    "consumer services",
];

/// The value-chain stage a sector belongs to, used to describe a network member's
/// role and to reward networks that span several stages.
pub fn stage(code: &str) -> &'static str {
    let division = nace::division(code).unwrap_or(code);
    match division {
        "M72" => "research & development",
        d if d.starts_with('P') => "education & research",
        d if d.starts_with('A') || d.starts_with('B') => "primary production",
        d if d.starts_with('C') => "manufacturing",
        d if d.starts_with('D') || d.starts_with('E') => "energy & utilities",
        d if d.starts_with('F') => "construction",
        d if d.starts_with('G') => "trade & distribution",
        d if d.starts_with('H') => "transport & logistics",
        d if d.starts_with('J') => "information & communication",
        d if d.starts_with('K') || d.starts_with('L') => "finance & property",
        d if d.starts_with('M') || d.starts_with('N') => "business services",
        d if d.starts_with('O') => "public administration",
        d if d.starts_with('Q') => "health & care",
        _ => "consumer services",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn food_buys_from_farming() {
        let table = table();
        let food = table.row("C10.51").unwrap();
        let farming = table.row("A01").unwrap();
        assert!(table.coefficient(farming, food) > 0.05);
        let link = table.best_link(&[food], &[farming]).unwrap();
        assert!(link.candidate_supplies);
        assert_eq!((link.supplier.as_str(), link.buyer.as_str()), ("A01", "C10"));
    }

    #[test]
    fn ranges_cover_their_divisions() {
        let table = table();
        assert_eq!(table.row("F42"), table.row("F41"));
        assert_eq!(table.code(table.row("B07").unwrap()), "B06-07");
        assert!(table.row("T98").is_none());
    }

    #[test]
    fn direction_is_kept_and_own_division_counts() {
        let table = table();
        let (food, farming) = (table.row("C10").unwrap(), table.row("A01").unwrap());
        assert!(table.directed_strength(&[food], &[farming], true) > 0.05, "farms supply food makers");
        let reverse = table.directed_strength(&[food], &[farming], false);
        assert!(reverse < table.directed_strength(&[food], &[farming], true));
        let electronics = table.row("C26").unwrap();
        assert!(table.directed_strength(&[electronics], &[electronics], true) > 0.0);
        assert_eq!(table.strength(&[electronics], &[electronics]), 0.0);
    }

    #[test]
    fn partners_of_food_include_farming() {
        let table = table();
        let food = table.row("C10").unwrap();
        let partners = table.partner_rows(&[food], 5);
        assert!(partners.iter().any(|(row, _)| table.code(*row) == "A01"), "{partners:?}");
    }
}
