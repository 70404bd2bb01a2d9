//! Validation of a firm profile. It works on the raw JSON object rather than
//! through serde's derive so that a caller gets *every* problem at once, each with
//! its field path, instead of only the first one serde trips over.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Firm, GeoPoint, Kind, SizeClass, TextLanguage};
use crate::nace;

/// Longest accepted id, in characters.
pub const MAX_ID_LEN: usize = 128;
const MAX_NAME_LEN: usize = 300;
const MAX_DESCRIPTION_LEN: usize = 20_000;
const MAX_SHORT_TEXT_LEN: usize = 300;
const MAX_LIST_ITEMS: usize = 100;
const MAX_SECTORS: usize = 20;

/// One problem with one field of a profile.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldError {
    /// JSON path of the field, e.g. `sectors[2]`.
    pub field: String,
    /// Stable machine code, e.g. `unknown_field`, `invalid_country`.
    pub code: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, code: &str, message: impl Into<String>) -> FieldError {
        FieldError { field: field.into(), code: code.to_string(), message: message.into() }
    }
}

const KNOWN_FIELDS: [&str; 19] = [
    "id",
    "name",
    "kind",
    "description",
    "offers",
    "needs",
    "sectors",
    "tags",
    "country",
    "region",
    "city",
    "location",
    "employees",
    "size",
    "sme",
    "languages",
    "website",
    "language",
    "updated_at",
];

/// Checks an id against the id rules; shared by profiles, collaborations and paths.
pub fn check_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.chars().count() > MAX_ID_LEN {
        return Err(format!("must be 1 to {MAX_ID_LEN} characters long"));
    }
    if !id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-')) {
        return Err("may only contain letters, digits and . _ : -".to_string());
    }
    Ok(())
}

/// Validates one profile given as a JSON value. `updated_at` is accepted (so that a
/// profile read back can be sent again) but ignored: the service sets it.
pub fn validate_profile(value: &Value) -> Result<Firm, Vec<FieldError>> {
    let Some(object) = value.as_object() else {
        return Err(vec![FieldError::new("", "invalid_type", "a profile must be a JSON object")]);
    };
    let mut checker = Checker { object, errors: Vec::new() };
    for key in object.keys() {
        if !KNOWN_FIELDS.contains(&key.as_str()) {
            checker.error(key, "unknown_field", format!("unknown field `{key}`"));
        }
    }

    let id = checker.required_string("id").unwrap_or_default();
    if let Some(value) = object.get("id").and_then(Value::as_str)
        && let Err(message) = check_id(value)
    {
        checker.error("id", "invalid_id", format!("id {message}"));
    }
    let name = checker.required_string("name").unwrap_or_default();
    if name.trim().is_empty() && object.get("name").is_some_and(Value::is_string) {
        checker.error("name", "empty", "name must not be empty");
    }
    checker.max_chars("name", &name, MAX_NAME_LEN);
    let kind = checker.enum_field("kind", Kind::parse, "company, university, research, public or other");
    let kind = match (kind, object.contains_key("kind")) {
        (Some(kind), _) => kind,
        (None, false) => Kind::Company,
        (None, true) => Kind::Other,
    };
    let description = checker.optional_string("description").unwrap_or_default();
    checker.max_chars("description", &description, MAX_DESCRIPTION_LEN);
    let offers = checker.string_list("offers", MAX_LIST_ITEMS);
    let needs = checker.string_list("needs", MAX_LIST_ITEMS);
    let tags = checker.string_list("tags", MAX_LIST_ITEMS);
    let languages = checker.string_list("languages", 20);
    let mut sectors = Vec::new();
    for (index, code) in checker.string_list("sectors", MAX_SECTORS).into_iter().enumerate() {
        match nace::normalise(&code) {
            Some(normalised) if !sectors.contains(&normalised) => sectors.push(normalised),
            Some(_) => {}
            None => checker.error(
                &format!("sectors[{index}]"),
                "invalid_sector",
                format!("`{code}` is not a NACE Rev. 2 code (e.g. C10, C10.51 or 10.51)"),
            ),
        }
    }
    let country = checker.optional_string("country").and_then(|text| {
        if let Some(code) = normalise_country(&text) {
            Some(code)
        } else {
            checker.error("country", "invalid_country", format!("`{text}` is not an ISO 3166-1 alpha-2 country code"));
            None
        }
    });
    let region = checker.optional_string("region").and_then(|text| {
        if let Some(code) = normalise_region(&text) {
            Some(code)
        } else {
            checker.error("region", "invalid_region", format!("`{text}` is not a NUTS code (e.g. DK04, FR101)"));
            None
        }
    });
    if let (Some(country), Some(region)) = (&country, &region) {
        let nuts_country = match country.as_str() {
            "GR" => "EL",
            other => other,
        };
        // NUTS writes the United Kingdom as UK, ISO as GB.
        let matches_country = region.starts_with(nuts_country) || (country == "GB" && region.starts_with("UK"));
        if !matches_country {
            checker.error("region", "invalid_region", format!("region {region} is not in country {country}"));
        }
    }
    let city = checker.optional_string("city");
    if let Some(city) = &city {
        checker.max_chars("city", city, MAX_SHORT_TEXT_LEN);
    }
    let website = checker.optional_string("website");
    if let Some(website) = &website {
        checker.max_chars("website", website, MAX_SHORT_TEXT_LEN);
    }
    let location = checker.location();
    let employees = match object.get("employees") {
        None | Some(Value::Null) => None,
        Some(value) => match value.as_u64() {
            Some(count) if count <= 10_000_000 => Some(count),
            _ => {
                checker.error("employees", "invalid_number", "employees must be a whole number from 0 to 10000000");
                None
            }
        },
    };
    let size = checker.enum_field("size", SizeClass::parse, "micro, small, medium or large");
    let size = size.or(employees.map(SizeClass::from_employees));
    let sme = match object.get("sme") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(flag)) => Some(*flag),
        Some(_) => {
            checker.error("sme", "invalid_type", "sme must be true or false");
            None
        }
    };
    let language = checker.enum_field("language", TextLanguage::parse, "en or da").unwrap_or_default();
    // Ignored (the service sets it), but only in the form it is read back in.
    checker.optional_string("updated_at");

    if !checker.errors.is_empty() {
        return Err(checker.errors);
    }
    Ok(Firm {
        id,
        name,
        kind,
        description,
        offers,
        needs,
        sectors,
        tags,
        country,
        region,
        city,
        location,
        employees,
        size,
        sme,
        languages,
        website,
        language,
    })
}

struct Checker<'a> {
    object: &'a Map<String, Value>,
    errors: Vec<FieldError>,
}

impl Checker<'_> {
    fn error(&mut self, field: &str, code: &str, message: impl Into<String>) {
        self.errors.push(FieldError::new(field, code, message));
    }

    fn required_string(&mut self, field: &str) -> Option<String> {
        if !self.object.contains_key(field) || self.object[field].is_null() {
            self.error(field, "required", format!("{field} is required"));
            return None;
        }
        self.optional_string(field)
    }

    fn optional_string(&mut self, field: &str) -> Option<String> {
        match self.object.get(field) {
            None | Some(Value::Null) => None,
            Some(Value::String(text)) => Some(text.clone()),
            Some(_) => {
                self.error(field, "invalid_type", format!("{field} must be a string"));
                None
            }
        }
    }

    fn max_chars(&mut self, field: &str, text: &str, max: usize) {
        if text.chars().count() > max {
            self.error(field, "too_long", format!("{field} must be at most {max} characters"));
        }
    }

    fn enum_field<T>(&mut self, field: &str, parse: fn(&str) -> Option<T>, allowed: &str) -> Option<T> {
        let text = self.optional_string(field)?;
        let parsed = parse(&text);
        if parsed.is_none() {
            self.error(field, "invalid_value", format!("`{text}` is not one of {allowed}"));
        }
        parsed
    }

    fn string_list(&mut self, field: &str, max_items: usize) -> Vec<String> {
        let items = match self.object.get(field) {
            None | Some(Value::Null) => return Vec::new(),
            Some(Value::Array(items)) => items,
            Some(_) => {
                self.error(field, "invalid_type", format!("{field} must be a list of strings"));
                return Vec::new();
            }
        };
        if items.len() > max_items {
            self.error(field, "too_many", format!("{field} may hold at most {max_items} items"));
        }
        let mut list = Vec::with_capacity(items.len());
        for (index, item) in items.iter().enumerate() {
            let path = format!("{field}[{index}]");
            match item.as_str() {
                Some(text) if text.trim().is_empty() => self.error(&path, "empty", "items must not be empty"),
                Some(text) if text.chars().count() > MAX_SHORT_TEXT_LEN => {
                    self.error(&path, "too_long", format!("items must be at most {MAX_SHORT_TEXT_LEN} characters"))
                }
                Some(text) => list.push(text.to_string()),
                None => self.error(&path, "invalid_type", "items must be strings"),
            }
        }
        list
    }

    fn location(&mut self) -> Option<GeoPoint> {
        let value = self.object.get("location")?;
        if value.is_null() {
            return None;
        }
        let lat = value.get("lat").and_then(Value::as_f64);
        let lon = value.get("lon").and_then(Value::as_f64);
        let only_lat_lon = value.as_object().is_some_and(|o| o.keys().all(|k| k == "lat" || k == "lon"));
        match (lat, lon) {
            (Some(lat), Some(lon))
                if only_lat_lon && (-90.0..=90.0).contains(&lat) && (-180.0..=180.0).contains(&lon) =>
            {
                Some(GeoPoint { lat, lon })
            }
            _ => {
                self.error("location", "invalid_location", "location must be {\"lat\": -90..90, \"lon\": -180..180}");
                None
            }
        }
    }
}

/// An ISO 3166-1 alpha-2 country code in upper case, or `None`.
pub fn normalise_country(text: &str) -> Option<String> {
    let upper = text.to_ascii_uppercase();
    (upper.len() == 2 && isocountry::CountryCode::for_alpha2(&upper).is_ok()).then_some(upper)
}

/// A NUTS code or prefix in upper case (`dk04` → `DK04`), or `None`. Checked char
/// by char before any slicing: callers send arbitrary unicode.
pub fn normalise_region(text: &str) -> Option<String> {
    let upper = text.to_ascii_uppercase();
    let valid = (2..=5).contains(&upper.len())
        && upper.chars().all(|c| c.is_ascii_alphanumeric())
        && upper.chars().take(2).all(|c| c.is_ascii_uppercase());
    valid.then_some(upper)
}

#[cfg(test)]
mod tests {
    proptest::proptest! {
        #[test]
        fn any_profile_text_is_validated_without_panicking(
            id in "[a-z0-9-]{1,12}",
            fields in proptest::collection::vec((0usize..8, proptest::prelude::any::<String>()), 0..8),
        ) {
            let names = ["name", "kind", "country", "region", "description", "website", "size", "city"];
            let mut object = serde_json::Map::new();
            object.insert("id".into(), serde_json::Value::String(id));
            for (which, text) in fields {
                object.insert(names[which].into(), serde_json::Value::String(text));
            }
            let _ = super::validate_profile(&serde_json::Value::Object(object));
        }
    }

    #[test]
    fn region_and_country_parsers_are_char_safe() {
        for text in ["Dø", "ø", "øø", "DKø", "D\u{0301}K", "\u{10FFFF}\u{10FFFF}", "", "🇩🇰"] {
            assert_eq!(super::normalise_region(text), None, "{text}");
            assert_eq!(super::normalise_country(text), None, "{text}");
        }
        assert_eq!(super::normalise_region("dk04").as_deref(), Some("DK04"));
        assert_eq!(super::normalise_country("dk").as_deref(), Some("DK"));
    }

    use super::*;
    use serde_json::json;

    #[test]
    fn a_full_profile_validates_and_normalises() {
        let firm = validate_profile(&json!({
            "id": "acme-1", "name": "Acme Foods", "kind": "company", "description": "Dairy",
            "offers": ["cheese"], "needs": ["cold-chain logistics"], "sectors": ["10.51", "C10"],
            "country": "dk", "region": "DK04", "employees": 40, "language": "da",
            "location": {"lat": 56.1, "lon": 10.2}
        }))
        .unwrap();
        assert_eq!(firm.sectors, vec!["C10.51", "C10"]);
        assert_eq!(firm.country.as_deref(), Some("DK"));
        assert_eq!(firm.size, Some(SizeClass::Small));
        assert!(firm.is_sme());
        assert_eq!(firm.language, TextLanguage::Danish);
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let errors = validate_profile(&json!({
            "id": "x".repeat(129), "name": "", "kind": "robot", "sectors": ["C99", "C10"],
            "country": "XX", "colour": "red", "offers": [1]
        }))
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        for expected in ["colour", "id", "name", "kind", "sectors[0]", "country", "offers[0]"] {
            assert!(fields.contains(&expected), "missing {expected} in {fields:?}");
        }
    }

    #[test]
    fn ids_follow_the_charset() {
        assert!(check_id("pic-999997930").is_ok());
        assert!(check_id("7815.T").is_ok());
        assert!(check_id("a b").is_err());
        assert!(check_id("").is_err());
        assert!(check_id(&"a".repeat(128)).is_ok());
        assert!(check_id(&"a".repeat(129)).is_err());
    }

    fn named(name: &str, description: &str) -> Firm {
        validate_profile(&json!({"id": "x", "name": name, "description": description})).unwrap()
    }

    #[test]
    fn financial_vehicles_are_recognised() {
        for name in [
            "Leverage Shares -1x Amazon ETC",
            "Bosera SZSE RAFI 200 Index ETF",
            "Huabao Fund Management Co. Ltd. - S&P China A Shares Quality Value Index Fund",
            "Essence BaoLi Bond(LOF)",
            "Kiwoom No.5 Special Purpose Acquisition Company",
            "Qell Acquisition Corp.",
            "BP Prudhoe Bay Royalty Trust",
            "SUM 24/09/2025 4.20% Summerset",
            "Saul Centers Inc. Depositary shares each representing a 1/100th interest",
            "EGB OE TL.Z./FRESENIUS SE",
        ] {
            assert!(named(name, "").is_financial_vehicle(), "{name}");
        }
        assert!(
            named("Majedie Investments Plc", "Majedie Investments PLC is a closed-ended investment company.")
                .is_financial_vehicle()
        );
        assert!(
            named("Smartshares NZ Mid Cap", "Smartshares NZ Mid Cap is an exchange traded fund launched by")
                .is_financial_vehicle()
        );
        for (name, description) in [
            ("Toray Industries, Inc.", "Toray Industries, Inc. operates in fibers and textiles. It also runs a fund."),
            ("China Southern Fund Management Co", "China Southern manages mutual funds."),
            ("Yuexiu Real Estate Investment Trust", "Yuexiu REIT is a real estate investment trust owning offices."),
            ("Korea Information Certificate Authority, Inc.", "Issues digital certificates."),
            ("Carlsberg A/S", "Carlsberg A/S produces and sells beer. It is a bond of friends."),
        ] {
            assert!(!named(name, description).is_financial_vehicle(), "{name}");
        }
    }

    #[test]
    fn listings_of_one_organisation_share_a_key() {
        assert_eq!(named("TORAY IND.", "").name_key(), named("Toray Industries, Inc.", "").name_key());
        assert_eq!(named("Panasonic Holdings Corporation", "").name_key(), "panasonic");
        assert_eq!(named("Carlsberg A/S", "").name_key(), "carlsberg");
        assert_eq!(named("AMUNDI S.A.", "").name_key(), "amundi");
        assert_ne!(named("Delta Electronics Inc", "").name_key(), named("Delta Corp Limited", "").name_key());
        let mut firm = named("Toray", "");
        firm.website = Some("https://www.Toray.com/en/index.html".into());
        assert_eq!(firm.website_domain().as_deref(), Some("toray.com"));
        firm.website = Some("toray".into());
        assert_eq!(firm.website_domain(), None);
    }

    #[test]
    fn region_must_lie_in_country() {
        assert!(validate_profile(&json!({"id": "a", "name": "A", "country": "DK", "region": "SE11"})).is_err());
        assert!(validate_profile(&json!({"id": "a", "name": "A", "country": "GR", "region": "EL30"})).is_ok());
    }
}
