//! Realistic synthetic catalogues for scale tests and benchmarks: the real
//! companies of `shared/data/firms` (FinanceDatabase, MIT) turned into klynge
//! profiles, and resampled to any size with perturbed text, sectors, countries,
//! sizes and value-chain ties — deterministic by seed, so a benchmark at 200k is
//! the same catalogue on every machine.

use std::collections::HashMap;
use std::io::BufRead;
use std::path::Path;

use klynge_models::valuechain;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
struct ListedCompany {
    id: String,
    name: String,
    description: String,
    sector: Option<String>,
    industry_group: Option<String>,
    industry: Option<String>,
    country: Option<String>,
    city: Option<String>,
    size_band: Option<String>,
    website: Option<String>,
}

/// GICS industry groups (and sectors, for rows without a group) → NACE divisions.
const GICS_TO_NACE: &[(&str, &[&str])] = &[
    ("Materials", &["C20", "C24"]),
    ("Capital Goods", &["C28", "F42"]),
    ("Diversified Financials", &["K64", "K66"]),
    ("Financials", &["K64"]),
    ("Pharmaceuticals, Biotechnology & Life Sciences", &["C21", "M72"]),
    ("Real Estate", &["L68"]),
    ("Software & Services", &["J62", "J63"]),
    ("Information Technology", &["J62"]),
    ("Technology Hardware & Equipment", &["C26"]),
    ("Consumer Durables & Apparel", &["C14", "C31"]),
    ("Energy", &["B06", "C19"]),
    ("Banks", &["K64"]),
    ("Health Care Equipment & Services", &["C32", "Q86"]),
    ("Health Care", &["Q86", "C21"]),
    ("Consumer Services", &["I55", "I56"]),
    ("Consumer Discretionary", &["G47"]),
    ("Transportation", &["H49", "H52"]),
    ("Industrials", &["C28"]),
    ("Commercial & Professional Services", &["N82", "M70"]),
    ("Telecommunication Services", &["J61"]),
    ("Communication Services", &["J61", "J58"]),
    ("Automobiles & Components", &["C29"]),
    ("Food, Beverage & Tobacco", &["C10", "C11"]),
    ("Consumer Staples", &["C10"]),
    ("Utilities", &["D35", "E36"]),
    ("Food & Staples Retailing", &["G47", "G46"]),
    ("Retailing", &["G47"]),
    ("Household & Personal Products", &["C20"]),
    ("Media & Entertainment", &["J59", "J60"]),
    ("Semiconductors & Semiconductor Equipment", &["C26"]),
    ("Insurance", &["K65"]),
];

/// English country names of the source whose ISO 3166 name differs.
const COUNTRY_ALIASES: &[(&str, &str)] = &[
    ("United States", "US"),
    ("United Kingdom", "GB"),
    ("South Korea", "KR"),
    ("Taiwan", "TW"),
    ("Russia", "RU"),
    ("Vietnam", "VN"),
    ("Czech Republic", "CZ"),
    ("Iran", "IR"),
    ("Venezuela", "VE"),
    ("Bolivia", "BO"),
    ("Tanzania", "TZ"),
    ("Macau", "MO"),
    ("British Virgin Islands", "VG"),
    ("Ivory Coast", "CI"),
    ("Netherlands", "NL"),
    ("Turkey", "TR"),
    ("Moldova", "MD"),
    ("Laos", "LA"),
    ("Syria", "SY"),
    ("Curacao", "CW"),
];

fn country_code(name: &str) -> Option<String> {
    if let Some((_, code)) = COUNTRY_ALIASES.iter().find(|(alias, _)| alias.eq_ignore_ascii_case(name)) {
        return Some(code.to_string());
    }
    isocountry::CountryCode::as_array()
        .iter()
        .find(|code| code.name().eq_ignore_ascii_case(name) || code.name().starts_with(&format!("{name} ")))
        .map(|code| code.alpha2().to_string())
}

fn size_class(band: &str) -> Option<&'static str> {
    match band {
        "Mega Cap" | "Large Cap" | "Mid Cap" => Some("large"),
        "Small Cap" => Some("medium"),
        "Micro Cap" => Some("small"),
        "Nano Cap" => Some("micro"),
        _ => None,
    }
}

/// What a company says it offers: the clauses after "offers", "provides",
/// "manufactures" … up to the end of the sentence, cut into short phrases.
fn offers(description: &str) -> Vec<String> {
    const VERBS: [&str; 7] =
        [" offers ", " provides ", " manufactures ", " produces ", " develops ", " supplies ", " sells "];
    let mut found = Vec::new();
    for sentence in description.split(". ") {
        for verb in VERBS {
            let Some((_, rest)) = sentence.split_once(verb) else { continue };
            for phrase in rest.split([',', ';']).flat_map(|p| p.split(" and ")) {
                let phrase = phrase.trim().trim_start_matches("a ").trim_start_matches("an ").trim();
                let words = phrase.split_whitespace().count();
                if (2..=8).contains(&words) && found.len() < 6 && !found.iter().any(|f: &String| f == phrase) {
                    found.push(phrase.chars().take(200).collect());
                }
            }
        }
    }
    found
}

/// Reads the FinanceDatabase extract and turns each company into a profile.
pub fn source_profiles(path: &Path) -> anyhow::Result<Vec<Value>> {
    let bytes = crate::ingest::read_input(path)?;
    let mut profiles = Vec::new();
    for line in bytes.lines() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let company: ListedCompany = serde_json::from_str(&line)?;
        let id: String = company
            .id
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-') { c } else { '-' })
            .take(128)
            .collect();
        let group = company.industry_group.as_deref().or(company.sector.as_deref());
        let sectors: Vec<&str> = group
            .and_then(|g| GICS_TO_NACE.iter().find(|(name, _)| *name == g))
            .map_or(&[][..], |(_, codes)| codes)
            .to_vec();
        let tags: Vec<&String> =
            [&company.sector, &company.industry_group, &company.industry].into_iter().flatten().collect();
        let mut profile = json!({
            "id": id,
            "name": company.name.chars().take(300).collect::<String>(),
            "kind": "company",
            "description": company.description.chars().take(5000).collect::<String>(),
            "offers": offers(&company.description),
            "sectors": sectors,
            "tags": tags,
        });
        let object = profile.as_object_mut().expect("object");
        if let Some(country) = company.country.as_deref().and_then(country_code) {
            object.insert("country".into(), json!(country));
        }
        if let Some(city) = company.city {
            object.insert("city".into(), json!(city.chars().take(300).collect::<String>()));
        }
        if let Some(size) = company.size_band.as_deref().and_then(size_class) {
            object.insert("size".into(), json!(size));
        }
        if let Some(website) = company.website.filter(|w| w.len() <= 300) {
            object.insert("website".into(), json!(website));
        }
        profiles.push(profile);
    }
    Ok(profiles)
}

/// `count` profiles resampled from `source`, and about `count / 8` collaborations
/// of 3–8 members whose sectors trade with each other. The first
/// `source.len()` profiles are the source itself (when `count` allows), so a run
/// at the source size is the real catalogue.
pub fn generate(source: &[Value], count: usize, seed: u64) -> (Vec<Value>, Vec<Value>) {
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let countries: Vec<Value> = source.iter().filter_map(|p| p.get("country").cloned()).collect();
    let sizes = ["micro", "small", "medium", "large"];
    let mut firms = Vec::with_capacity(count);
    for i in 0..count {
        let base = &source[if i < source.len() { i } else { rng.gen_range(0..source.len()) }];
        if i < source.len() {
            firms.push(base.clone());
            continue;
        }
        let mut profile = base.clone();
        let object = profile.as_object_mut().expect("profiles are objects");
        object.insert("id".into(), json!(format!("gen-{seed}-{i}")));
        let name = object["name"].as_str().unwrap_or_default();
        object.insert(
            "name".into(),
            json!(format!("{name} {}", ["Nordic", "Labs", "Group", "Partners", "Tech", "Systems"][i % 6])),
        );
        let description = object["description"].as_str().unwrap_or_default();
        let mut sentences: Vec<&str> = description.split(". ").collect();
        sentences.shuffle(&mut rng);
        let keep = sentences.len().saturating_sub(usize::from(sentences.len() > 2 && rng.gen_bool(0.5)));
        object.insert("description".into(), json!(sentences[..keep].join(". ")));
        if rng.gen_bool(0.2) && !countries.is_empty() {
            object.insert("country".into(), countries[rng.gen_range(0..countries.len())].clone());
        }
        object.remove("city");
        object.remove("website");
        object.insert("size".into(), json!(sizes[rng.gen_range(0..sizes.len())]));
        if rng.gen_bool(0.3) {
            object.insert("needs".into(), json!(needs_for(object.get("sectors"), &mut rng)));
        }
        firms.push(profile);
    }
    let collaborations = collaborations(&firms, count / 8, &mut rng);
    (firms, collaborations)
}

/// Needs phrased from the sectors the firm's sector buys most from.
fn needs_for(sectors: Option<&Value>, rng: &mut Xoshiro256PlusPlus) -> Vec<String> {
    let table = valuechain::table();
    let rows: Vec<usize> =
        sectors.and_then(Value::as_array).into_iter().flatten().filter_map(|s| table.row(s.as_str()?)).collect();
    let partners = table.partner_rows(&rows, 5);
    partners
        .choose_multiple(rng, 2)
        .filter_map(|(row, _)| {
            let division = table.code(*row).split('-').next()?;
            klynge_models::nace::entry(division).map(|entry| entry.title.to_lowercase())
        })
        .collect()
}

fn collaborations(firms: &[Value], count: usize, rng: &mut Xoshiro256PlusPlus) -> Vec<Value> {
    let table = valuechain::table();
    let mut by_row: HashMap<usize, Vec<usize>> = HashMap::new();
    for (i, firm) in firms.iter().enumerate() {
        for sector in firm.get("sectors").and_then(Value::as_array).into_iter().flatten() {
            if let Some(row) = sector.as_str().and_then(|s| table.row(s)) {
                by_row.entry(row).or_default().push(i);
            }
        }
    }
    let mut out = Vec::with_capacity(count);
    for c in 0..count {
        let seed_firm = rng.gen_range(0..firms.len());
        let mut members = vec![seed_firm];
        let rows: Vec<usize> = firms[seed_firm]
            .get("sectors")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(|s| table.row(s.as_str()?))
            .collect();
        let partner_rows = table.partner_rows(&rows, 8);
        let size = rng.gen_range(3..=8);
        while members.len() < size {
            let pick = partner_rows
                .choose(rng)
                .and_then(|(row, _)| by_row.get(row))
                .and_then(|list| list.choose(rng).copied())
                .unwrap_or_else(|| rng.gen_range(0..firms.len()));
            if !members.contains(&pick) {
                members.push(pick);
            }
        }
        let ids: Vec<&Value> = members.iter().map(|&m| &firms[m]["id"]).collect();
        out.push(json!({ "id": format!("gen-c{c}"), "title": format!("Value-chain project {c}"), "members": ids }));
    }
    out
}
