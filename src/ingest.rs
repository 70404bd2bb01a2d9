//! Turning request bodies and files (JSON array, NDJSON, CSV) into validated,
//! storable profiles. Parsing keeps each item's exact source text, so a profile
//! reads back byte-for-byte as it was sent; validation collects every problem of
//! every item before anything is written.

use klynge_index::StoredFirm;
use klynge_models::{FieldError, validate_profile};
use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Ndjson,
    Csv,
}

impl Format {
    /// From a `Content-Type` header value; `None` for unsupported types.
    pub fn from_content_type(content_type: &str) -> Option<Format> {
        let essence = content_type.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
        match essence.as_str() {
            "application/json" => Some(Format::Json),
            "application/x-ndjson" | "application/jsonl" | "application/jsonlines" => Some(Format::Ndjson),
            "text/csv" => Some(Format::Csv),
            _ => None,
        }
    }

    /// From a file name (`.json`, `.ndjson`/`.jsonl`, `.csv`, each optionally `.gz`).
    pub fn from_path(path: &str) -> Option<Format> {
        let path = path.strip_suffix(".gz").unwrap_or(path);
        let extension = path.rsplit('.').next()?.to_ascii_lowercase();
        match extension.as_str() {
            "json" => Some(Format::Json),
            "ndjson" | "jsonl" => Some(Format::Ndjson),
            "csv" => Some(Format::Csv),
            _ => None,
        }
    }
}

/// One record as it appeared in the input.
#[derive(Debug, Clone)]
pub struct Item {
    /// 1-based line of the record (NDJSON and CSV).
    pub line: Option<usize>,
    pub raw: String,
}

/// The body could not be read as the format at all (400).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError {
    pub message: String,
    pub line: Option<usize>,
}

/// One record that failed validation (422 when the API receives it).
#[derive(Debug, Clone, Serialize)]
pub struct Rejected {
    pub index: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub errors: Vec<FieldError>,
}

const CSV_LIST_FIELDS: [&str; 5] = ["offers", "needs", "sectors", "tags", "languages"];

pub fn parse_items(body: &[u8], format: Format) -> Result<Vec<Item>, ParseError> {
    let text = std::str::from_utf8(body)
        .map_err(|error| ParseError { message: format!("body is not UTF-8: {error}"), line: None })?;
    match format {
        Format::Json => parse_json(text),
        Format::Ndjson => parse_ndjson(text),
        Format::Csv => parse_csv(text),
    }
}

fn parse_json(text: &str) -> Result<Vec<Item>, ParseError> {
    let trimmed = text.trim_start();
    let error =
        |error: serde_json::Error| ParseError { message: format!("malformed JSON: {error}"), line: Some(error.line()) };
    if trimmed.starts_with('{') {
        let raw: Box<RawValue> = serde_json::from_str(text).map_err(error)?;
        return Ok(vec![Item { line: None, raw: raw.get().to_string() }]);
    }
    let items: Vec<Box<RawValue>> = serde_json::from_str(text).map_err(error)?;
    Ok(items.into_iter().map(|raw| Item { line: None, raw: raw.get().to_string() }).collect())
}

fn parse_ndjson(text: &str) -> Result<Vec<Item>, ParseError> {
    ndjson_lines(text).collect()
}

/// Each non-empty NDJSON line as an item, or the reason it is not JSON: the API
/// refuses the whole body on the first bad line, the CLI reports it and goes on.
pub fn ndjson_lines(text: &str) -> impl Iterator<Item = Result<Item, ParseError>> + '_ {
    text.lines().enumerate().filter(|(_, line)| !line.trim().is_empty()).map(|(number, line)| {
        let raw: Box<RawValue> = serde_json::from_str(line.trim()).map_err(|error| ParseError {
            message: format!("malformed JSON on line {}: {error}", number + 1),
            line: Some(number + 1),
        })?;
        Ok(Item { line: Some(number + 1), raw: raw.get().to_string() })
    })
}

/// CSV: a header row naming profile fields; list fields are `;`-separated, and
/// `location` is `lat;lon`. Empty cells are left out.
fn parse_csv(text: &str) -> Result<Vec<Item>, ParseError> {
    let mut reader = csv::ReaderBuilder::new().flexible(false).from_reader(text.as_bytes());
    let headers = reader
        .headers()
        .map_err(|error| ParseError { message: format!("malformed CSV header: {error}"), line: Some(1) })?
        .clone();
    let mut items = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|error| ParseError {
            message: format!("malformed CSV: {error}"),
            line: error.position().map(|position| position.line() as usize),
        })?;
        let line = record.position().map(|position| position.line() as usize);
        let mut object = Map::new();
        for (header, cell) in headers.iter().zip(record.iter()) {
            let cell = cell.trim();
            if cell.is_empty() {
                continue;
            }
            object.insert(header.to_string(), csv_cell(header, cell));
        }
        items.push(Item { line, raw: Value::Object(object).to_string() });
    }
    Ok(items)
}

fn csv_cell(header: &str, cell: &str) -> Value {
    let list = || cell.split(';').map(str::trim).filter(|part| !part.is_empty());
    match header {
        _ if CSV_LIST_FIELDS.contains(&header) => Value::Array(list().map(|part| Value::String(part.into())).collect()),
        "employees" => cell.parse::<u64>().map(Value::from).unwrap_or_else(|_| Value::String(cell.into())),
        "sme" => match cell.to_ascii_lowercase().as_str() {
            "true" | "yes" | "1" => Value::Bool(true),
            "false" | "no" | "0" => Value::Bool(false),
            _ => Value::String(cell.into()),
        },
        "location" => {
            let parts: Vec<f64> = list().filter_map(|part| part.parse().ok()).collect();
            match parts.as_slice() {
                [lat, lon] => serde_json::json!({"lat": lat, "lon": lon}),
                _ => Value::String(cell.into()),
            }
        }
        _ => Value::String(cell.into()),
    }
}

/// Validates items; returns the storable profiles and the rejected items. A
/// repeated id within one input is rejected too, since "last one wins" would
/// silently drop data.
pub fn validate_items(items: &[Item], updated_at: &str) -> (Vec<StoredFirm>, Vec<Rejected>) {
    let mut accepted = Vec::with_capacity(items.len());
    let mut rejected = Vec::new();
    let mut seen = std::collections::HashSet::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        let value: Value = match serde_json::from_str(&item.raw) {
            Ok(value) => value,
            Err(error) => {
                let error = FieldError::new("", "malformed", error.to_string());
                rejected.push(Rejected { index, line: item.line, id: None, errors: vec![error] });
                continue;
            }
        };
        match validate_profile(&value) {
            Ok(firm) if !seen.insert(firm.id.clone()) => rejected.push(Rejected {
                index,
                line: item.line,
                id: Some(firm.id.clone()),
                errors: vec![FieldError::new("id", "duplicate_id", "this id appears more than once in the input")],
            }),
            Ok(firm) => {
                let raw = without_updated_at(&item.raw, &value);
                accepted.push(StoredFirm { firm, raw, updated_at: updated_at.to_string() });
            }
            Err(errors) => rejected.push(Rejected {
                index,
                line: item.line,
                id: value.get("id").and_then(Value::as_str).map(str::to_string),
                errors,
            }),
        }
    }
    (accepted, rejected)
}

/// The service owns `updated_at`: a profile sent back with one keeps its other
/// fields but loses that one (and then cannot keep its exact bytes).
fn without_updated_at(raw: &str, value: &Value) -> String {
    match value.as_object() {
        Some(object) if object.contains_key("updated_at") => {
            let mut object = object.clone();
            object.remove("updated_at");
            Value::Object(object).to_string()
        }
        _ => raw.to_string(),
    }
}

/// Now, as RFC 3339 in UTC with second precision.
pub fn now_rfc3339() -> String {
    let now = time::OffsetDateTime::now_utc().replace_nanosecond(0).expect("0 is a valid nanosecond");
    now.format(&time::format_description::well_known::Rfc3339).expect("RFC 3339 formats every UTC time")
}

/// A stored profile as the API returns it: the exact JSON the caller sent with the
/// service's fields appended before the closing brace.
pub fn profile_response(raw: &str, extra: &[(&str, Value)]) -> String {
    let body = raw.trim_end();
    let Some(without_brace) = body.strip_suffix('}') else {
        return body.to_string();
    };
    let without_brace = without_brace.trim_end();
    let mut out = String::with_capacity(body.len() + 256);
    out.push_str(without_brace);
    let mut empty = without_brace.ends_with('{');
    for (key, value) in extra {
        if !empty {
            out.push(',');
        }
        empty = false;
        out.push_str(&serde_json::to_string(key).expect("string"));
        out.push(':');
        out.push_str(&value.to_string());
    }
    out.push('}');
    out
}

/// Reads an input file (profiles, collaborations, links), un-gzipping `.gz`.
pub fn read_input(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(|error| anyhow::anyhow!("cannot read {}: {error}", path.display()))?;
    if path.extension().is_some_and(|extension| extension == "gz") {
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(bytes.as_slice()), &mut out)?;
        return Ok(out);
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_items_keep_their_exact_bytes() {
        let items =
            parse_items(r#"[ {"id":"a",  "name":"Ä"} , {"name":"B","id":"b"} ]"#.as_bytes(), Format::Json).unwrap();
        assert_eq!(items[0].raw, r#"{"id":"a",  "name":"Ä"}"#);
        assert_eq!(items[1].raw, r#"{"name":"B","id":"b"}"#);
    }

    #[test]
    fn csv_splits_lists_and_types_cells() {
        let body = "id,name,sectors,employees,sme,location\nx,X,C10;M72,12,yes,56.1;10.2\n";
        let items = parse_items(body.as_bytes(), Format::Csv).unwrap();
        let value: Value = serde_json::from_str(&items[0].raw).unwrap();
        assert_eq!(value["sectors"], serde_json::json!(["C10", "M72"]));
        assert_eq!(value["employees"], 12);
        assert_eq!(value["sme"], true);
        assert_eq!(value["location"]["lon"], 10.2);
        assert_eq!(items[0].line, Some(2));
    }

    #[test]
    fn ndjson_errors_name_the_line() {
        let error = parse_items(b"{\"id\":\"a\"}\n\n{oops\n", Format::Ndjson).unwrap_err();
        assert_eq!(error.line, Some(3));
    }

    #[test]
    fn duplicate_ids_are_rejected() {
        let items =
            parse_items(b"{\"id\":\"a\",\"name\":\"A\"}\n{\"id\":\"a\",\"name\":\"B\"}", Format::Ndjson).unwrap();
        let (accepted, rejected) = validate_items(&items, "now");
        assert_eq!(accepted.len(), 1);
        assert_eq!(rejected[0].errors[0].code, "duplicate_id");
    }

    #[test]
    fn service_fields_are_appended() {
        let out = profile_response(r#"{"id":"a"}"#, &[("updated_at", Value::from("t"))]);
        assert_eq!(out, r#"{"id":"a","updated_at":"t"}"#);
    }
}
