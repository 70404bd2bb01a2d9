//! The firm profile — the one record every part of klynge shares: its kinds,
//! size classes, text language and what is derived from it (its text for the
//! model, website domain, name key, SME status). Its validation lives in
//! `validate`.

mod validate;

use std::sync::OnceLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

pub use validate::{FieldError, MAX_ID_LEN, check_id, normalise_country, normalise_region, validate_profile};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Company,
    University,
    Research,
    Public,
    Other,
}

impl Kind {
    pub const ALL: [Kind; 5] = [Kind::Company, Kind::University, Kind::Research, Kind::Public, Kind::Other];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Company => "company",
            Kind::University => "university",
            Kind::Research => "research",
            Kind::Public => "public",
            Kind::Other => "other",
        }
    }

    pub fn parse(text: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.as_str() == text)
    }

    pub fn index(self) -> usize {
        self as usize
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SizeClass {
    Micro,
    Small,
    Medium,
    Large,
}

impl SizeClass {
    pub const ALL: [SizeClass; 4] = [SizeClass::Micro, SizeClass::Small, SizeClass::Medium, SizeClass::Large];

    pub fn as_str(self) -> &'static str {
        match self {
            SizeClass::Micro => "micro",
            SizeClass::Small => "small",
            SizeClass::Medium => "medium",
            SizeClass::Large => "large",
        }
    }

    pub fn parse(text: &str) -> Option<SizeClass> {
        SizeClass::ALL.into_iter().find(|size| size.as_str() == text)
    }

    /// The EU size classes by head count (Recommendation 2003/361/EC).
    pub fn from_employees(employees: u64) -> SizeClass {
        match employees {
            0..10 => SizeClass::Micro,
            10..50 => SizeClass::Small,
            50..250 => SizeClass::Medium,
            _ => SizeClass::Large,
        }
    }
}

/// Language of a profile's free text, which picks the stemmer in the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
pub enum TextLanguage {
    #[default]
    #[serde(rename = "en")]
    English,
    #[serde(rename = "da")]
    Danish,
}

impl TextLanguage {
    pub fn parse(text: &str) -> Option<TextLanguage> {
        match text {
            "en" => Some(TextLanguage::English),
            "da" => Some(TextLanguage::Danish),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct GeoPoint {
    pub lat: f64,
    pub lon: f64,
}

/// A validated firm profile. Only [`validate_profile`] builds one from caller input,
/// so every `Firm` in the system satisfies the rules documented on its fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Firm {
    /// 1–128 characters of `[A-Za-z0-9._:-]`.
    pub id: String,
    pub name: String,
    pub kind: Kind,
    pub description: String,
    pub offers: Vec<String>,
    pub needs: Vec<String>,
    /// Normalised NACE Rev. 2 codes (`C10.51`), deduplicated, in input order.
    pub sectors: Vec<String>,
    pub tags: Vec<String>,
    /// ISO 3166-1 alpha-2, upper case.
    pub country: Option<String>,
    /// NUTS code, upper case.
    pub region: Option<String>,
    pub city: Option<String>,
    pub location: Option<GeoPoint>,
    pub employees: Option<u64>,
    /// Given, or derived from `employees`.
    pub size: Option<SizeClass>,
    pub sme: Option<bool>,
    pub languages: Vec<String>,
    pub website: Option<String>,
    pub language: TextLanguage,
}

impl Firm {
    /// Whether the firm counts as a small or medium-sized enterprise: the explicit
    /// flag wins, otherwise its size class decides.
    pub fn is_sme(&self) -> bool {
        self.sme.unwrap_or(matches!(self.size, Some(SizeClass::Micro | SizeClass::Small | SizeClass::Medium)))
    }

    /// Whether the profile is a financial vehicle rather than an operating
    /// organisation: a fund, ETF/ETC/ETN, bond, note, preferred or certificate
    /// line, an investment, unit or royalty trust, a SPAC or blank-check company.
    /// Such listings have no suppliers or customers, so they are never proposed as
    /// partners unless a request asks for them. The rule, on the profile's own
    /// words:
    ///
    /// * its **name** names a vehicle: `ETF`, `ETC`, `ETN`, `ETP`, `LOF`, `SPAC`;
    ///   `fund(s)` (not in "fund management"/"fund manager"); "special purpose
    ///   acquisition", "acquisition corp(oration)/company/co"; "royalty trust",
    ///   "unit trust", "investment trust" (not "real estate investment trust");
    ///   a percentage (`5.000% … Preferred Stock`, `4.20% 2025` bond lines);
    ///   "notes due", "depositary shares", "preferred stock/shares"; or an issuer
    ///   product family (iShares, Xtrackers, WisdomTree, GraniteShares, Leverage
    ///   Shares, SPDR, Lyxor) or a turbo certificate (`TL.Z./`, `TS.Z./`);
    /// * or its **description's first sentence** says it is one: "… is an
    ///   exchange-traded fund/commodity/note/product", "a closed-end(ed) or
    ///   open-end(ed) fund/investment company", "an investment/mutual/index/bond/
    ///   equity/hedge fund", "a unit/royalty/investment/statutory/grantor trust",
    ///   "a blank check company", "a special purpose acquisition company".
    ///
    /// Real estate investment trusts, banks, insurers and fund managers are
    /// operating companies and stay partners.
    pub fn is_financial_vehicle(&self) -> bool {
        static NAME: OnceLock<Regex> = OnceLock::new();
        static DESCRIPTION: OnceLock<Regex> = OnceLock::new();
        let name_rule = NAME.get_or_init(|| {
            Regex::new(
                r"(?i)\b(ETF|ETC|ETN|ETP|LOF|SPAC)s?\b|\bfunds?\b|special purpose acquisition|\bacquisition (corp|corporation|company|co)\b|\b(royalty|unit|investment) trust\b|\d\s?%|\bnotes? due\b|\bdepositary shares\b|\bpreferred (stock|shares)\b|\b(ishares|xtrackers|wisdomtree|graniteshares|leverage shares|spdr|lyxor)\b|\bT[LS]\.Z\./",
            )
            .expect("static pattern")
        });
        let description_rule = DESCRIPTION.get_or_init(|| {
            Regex::new(
                r"(?i)^[^.]{0,200}?\b(is|are|operates as) an? (exchange[- ]traded (fund|commodity|note|product)|closed[- ]end(ed)? (fund|investment)|open[- ]end(ed)? (fund|investment)|(investment|mutual|index|bond|equity|hedge) fund|(unit|royalty|investment|statutory|grantor) trust|blank[- ]check company|special purpose acquisition)",
            )
            .expect("static pattern")
        });
        // Managers and real estate trusts operate; their names alone say nothing.
        let name = self
            .name
            .to_lowercase()
            .replace("fund management", " ")
            .replace("fund manager", " ")
            .replace("real estate investment trust", " ");
        name_rule.is_match(&name) || description_rule.is_match(&self.description)
    }

    /// The website's host without `www.` (`toray.com` of `https://www.toray.com/en/`):
    /// two profiles with one domain are one organisation.
    pub fn website_domain(&self) -> Option<String> {
        let website = self.website.as_deref()?.trim().to_lowercase();
        let rest = website.split_once("://").map_or(website.as_str(), |(_, rest)| rest);
        let host = rest.split(['/', '?', '#']).next()?.split(':').next()?;
        let host = host.strip_prefix("www.").unwrap_or(host);
        (host.contains('.') && host.len() > 3).then(|| host.to_string())
    }

    /// The name as one organisation's listings share it: lower case, words only,
    /// common abbreviations spelt out, legal and holding suffixes dropped
    /// (`TORAY IND.` and `Toray Industries, Inc.` both give `toray industries`).
    pub fn name_key(&self) -> String {
        const SUFFIXES: [&str; 39] = [
            "inc",
            "incorporated",
            "co",
            "corp",
            "corporation",
            "company",
            "ltd",
            "limited",
            "plc",
            "ag",
            "sa",
            "se",
            "nv",
            "bv",
            "spa",
            "gmbh",
            "kgaa",
            "asa",
            "ab",
            "oyj",
            "llc",
            "lp",
            "tbk",
            "pt",
            "pcl",
            "bhd",
            "berhad",
            "kk",
            "holdings",
            "holding",
            "group",
            "the",
            "and",
            "adr",
            "reg",
            "shs",
            "as",
            "aps",
            "oy",
        ];
        // `S.A.`, `Co.` and `A/S` are one word each before the name is split.
        let mut words: Vec<String> = self
            .name
            .to_lowercase()
            .replace('.', "")
            .replace("a/s", "as")
            .replace('&', " and ")
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .map(|w| match w {
                "ind" | "inds" => "industries".to_string(),
                "mfg" => "manufacturing".to_string(),
                "intl" => "international".to_string(),
                other => other.to_string(),
            })
            .collect();
        while words.len() > 1 && words.last().is_some_and(|w| SUFFIXES.contains(&w.as_str())) {
            words.pop();
        }
        if words.len() > 1 && words[0] == "the" {
            words.remove(0);
        }
        words.join(" ")
    }

    /// All free text of the profile, for text models.
    pub fn text(&self) -> String {
        let mut text = String::with_capacity(self.description.len() + 256);
        text.push_str(&self.name);
        text.push_str(". ");
        text.push_str(&self.description);
        for list in [&self.offers, &self.needs, &self.tags] {
            for item in list {
                text.push_str(". ");
                text.push_str(item);
            }
        }
        text
    }
}
