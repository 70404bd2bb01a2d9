//! `POST /v1/networks`: a whole network of at least five partners around anchors
//! and/or an opportunity, with alternatives, as JSON or — for cluster managers'
//! spreadsheets — CSV (`Accept: text/csv`). Cached like shortlists.

use std::collections::BTreeMap;
use std::sync::Arc;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use klynge_models::Kind;
use serde::Deserialize;
use serde_json::json;

use crate::api::firms::{checked_id, parse_country, parse_region, parse_sector, request_digest, shown};
use crate::api::recommend::parse_json_body;
use crate::api::{X_CACHE, query};
use crate::error::ApiError;
use crate::networks::{NetworkRequest, NetworkResponse, STAGES};
use crate::state::AppState;

/// Smallest network a cluster programme funds.
const MIN_NETWORK: usize = 5;
const MAX_NETWORK: usize = 50;
/// Limits on the lists inside a network request (documented in the README).
const MAX_ANCHORS: usize = 50;
const MAX_EXCLUDED: usize = 1000;
const MAX_PLACES: usize = 100;
const MAX_KIND_RULES: usize = 6;
const MAX_SECTOR_RULES: usize = 20;

// Named apart from the network in the answer (`crate::networks::NetworkBody`):
// two schemas of one name would be one component in the spec.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[schema(as = NetworkRequestBody)]
#[serde(deny_unknown_fields)]
pub struct NetworkBody {
    /// Firms that must be in the network.
    #[serde(default)]
    #[schema(value_type = Vec<crate::api::contract::FirmId>, max_items = 50)]
    anchor: Vec<String>,
    /// The business opportunity in words (this, `anchor`, or both).
    #[schema(max_length = 5000)]
    opportunity: Option<String>,
    #[serde(default, deserialize_with = "object_or_null")]
    size: Option<SizeRange>,
    #[serde(default, deserialize_with = "object_or_null")]
    require: Option<Requirements>,
    /// Allowed countries (ISO alpha-2); empty = any.
    #[serde(default)]
    #[schema(value_type = Vec<crate::api::contract::CountryCode>, max_items = 100)]
    countries: Vec<String>,
    /// Allowed NUTS regions or prefixes; empty = any.
    #[serde(default)]
    #[schema(value_type = Vec<crate::api::contract::RegionCode>, max_items = 100)]
    regions: Vec<String>,
    /// At least 1; with `countries`, `countries × max_per_country` must hold `size.min`.
    #[schema(minimum = 1)]
    max_per_country: Option<usize>,
    /// Firms that must stay in the network.
    #[serde(default)]
    #[schema(value_type = Vec<crate::api::contract::FirmId>, max_items = 50)]
    lock: Vec<String>,
    /// Firms never proposed; none may also be in `anchor` or `lock`.
    #[serde(default)]
    #[schema(value_type = Vec<crate::api::contract::FirmId>, max_items = 1000)]
    exclude: Vec<String>,
    /// How many other networks to return (default 3, at most 10).
    #[schema(minimum = 0, maximum = 10)]
    alternatives: Option<usize>,
    /// Candidates considered for the set selection (default 100, 20..=500).
    #[schema(minimum = 20, maximum = 500)]
    k_candidates: Option<usize>,
}

/// `size` and `require` must be JSON objects (or null): serde would otherwise
/// also read a struct from an array (`"size": [5, 8]`), which the spec does not
/// allow and a caller would not mean.
fn object_or_null<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: serde::de::DeserializeOwned,
{
    use serde::de::Error;
    match Option::<serde_json::Value>::deserialize(deserializer)? {
        None | Some(serde_json::Value::Null) => Ok(None),
        Some(value @ serde_json::Value::Object(_)) => serde_path_to_error::deserialize(value)
            .map(Some)
            .map_err(|error| D::Error::custom(format!("{}: {}", error.path(), error.inner()))),
        Some(_) => Err(D::Error::custom("invalid type: expected an object")),
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SizeRange {
    /// At least 5 (default 5); at most `max`.
    #[schema(minimum = 5, maximum = 50)]
    min: Option<usize>,
    /// At most 50 (default the larger of `min` and 8).
    #[schema(minimum = 5, maximum = 50)]
    max: Option<usize>,
}

#[derive(Debug, Deserialize, Default, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Requirements {
    /// Minimum members per kind: company, university, research, public, other, or
    /// `academic` (university or research).
    #[serde(default)]
    kinds: BTreeMap<String, usize>,
    /// Minimum SMEs (at most `size.max`).
    #[schema(maximum = 50)]
    sme: Option<usize>,
    /// Sector codes or prefixes each covered by a member.
    #[serde(default)]
    #[schema(value_type = Vec<crate::api::contract::NaceCode>, max_items = 20)]
    sectors: Vec<String>,
    /// Value-chain stages each covered by a member.
    #[serde(default)]
    #[schema(value_type = Vec<crate::api::contract::StageName>, max_items = 14)]
    stages: Vec<String>,
}

#[utoipa::path(post, path = "/v1/networks", tag = "recommendations", request_body = NetworkBody,
    responses((status = 200, body = NetworkResponse,
            description = "the best network and alternatives, as JSON or CSV (Accept: text/csv; one row per member with its role, stage and chain position). Each network is a value chain: `chain` lists its stages upstream first (covered ones and gaps, each with its position and members), every member carries its `stage` and `position`, and `links` has one entry per pair of members that supply, complement or have worked with each other, drawn from → to with its reasons"),
        (status = 400), (status = 422, description = "invalid or unsatisfiable constraints, with the reason")))]
pub async fn create(
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body: NetworkBody = parse_json_body(&state, &request, payload).await?;
    let mut network_request = validate(body)?;
    let group: Vec<String> = network_request.anchors.iter().chain(&network_request.lock).cloned().collect();
    let rejected = crate::api::feedback::rejected_for(&state, &group, network_request.opportunity.as_deref());
    crate::api::feedback::merge_exclusions(&mut network_request.exclude, rejected);
    let (body, outcome) = cached_network(&state, "network", network_request, None).await?;
    Ok(reply(&request, body, outcome, "network.csv"))
}

/// The firm's network takes no query parameters (its shape is the refresh's:
/// 5–8 members, no constraints; `POST /v1/networks` takes them all): a
/// misspelt or unsupported one is refused rather than silently ignored.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoParams {}

#[utoipa::path(get, path = "/v1/firms/{id}/network", tag = "recommendations",
    params(("id" = String, Path, description = "firm id")),
    responses((status = 200, body = NetworkResponse, description = "the network of 5-8 around the firm, as JSON or CSV (Accept: text/csv); `x-cache` says precomputed (by the batch refresh), hit or miss"),
        (status = 400, description = "a query parameter was given; this endpoint takes none"),
        (status = 404), (status = 422, description = "no network can be built around the firm, with the reason")))]
pub async fn around(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    _params: web::Query<NoParams>,
) -> Result<HttpResponse, ApiError> {
    let id = checked_id(&path)?;
    let filename = format!("network-{id}.csv");
    let rejected = crate::api::feedback::rejected_for(&state, std::slice::from_ref(&id), None);
    if state.engine.precomputed_is_fresh() {
        let (engine, firm, exclude) = (state.engine.clone(), id.clone(), rejected.clone());
        let precomputed = query(move || {
            engine
                .precomputed_network(&firm, &exclude)
                .transpose()
                .map_err(ApiError::from)
                .map(|response| response.map(|r| serde_json::to_vec(&r).expect("serialisable")))
        })
        .await?;
        if let Some(body) = precomputed {
            metrics::counter!("klynge_recommendations_total", "kind" => "precomputed").increment(1);
            return Ok(reply(&request, body.into(), "precomputed", &filename));
        }
    }
    let network_request = NetworkRequest { exclude: rejected, ..NetworkRequest::around(&id) };
    let (body, outcome) = cached_network(&state, "firm_network", network_request, Some(id)).await?;
    Ok(reply(&request, body, outcome, &filename))
}

/// The answer to `request` from the cache, or assembled off the executor and
/// cached; `firm`, when given, must exist (404 otherwise).
async fn cached_network(
    state: &web::Data<AppState>,
    kind: &'static str,
    request: NetworkRequest,
    firm: Option<String>,
) -> Result<(Arc<[u8]>, &'static str), ApiError> {
    let engine = state.engine.clone();
    let normalised = serde_json::to_string(&request).expect("serialisable");
    let key = state.cache.key(engine.cache_generation(), kind, &request_digest(&normalised));
    if let Some(body) = state.cache.get(&key).await {
        return Ok((body, "hit"));
    }
    let body = query(move || {
        if let Some(id) = &firm
            && !engine.missing_firms([id])?.is_empty()
        {
            return Err(ApiError::not_found(format!("no firm with id `{id}`")));
        }
        let response = engine.network(&request).map_err(ApiError::from)?;
        Ok(serde_json::to_vec(&response).expect("serialisable"))
    })
    .await?;
    let body: Arc<[u8]> = body.into();
    state.cache.set(key, body.clone()).await;
    metrics::counter!("klynge_recommendations_total", "kind" => kind).increment(1);
    Ok((body, "miss"))
}

/// JSON, or CSV when the caller's `Accept` asks for it.
fn reply(request: &HttpRequest, json_body: Arc<[u8]>, outcome: &'static str, filename: &str) -> HttpResponse {
    let wants_csv = request
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/csv"));
    if wants_csv {
        let response: serde_json::Value = serde_json::from_slice(&json_body).expect("we serialised it");
        return HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header((X_CACHE, outcome))
            .insert_header((header::CONTENT_DISPOSITION, format!("attachment; filename=\"{filename}\"")))
            .body(to_csv(&response));
    }
    HttpResponse::Ok().content_type("application/json").insert_header((X_CACHE, outcome)).body(json_body.to_vec())
}

fn validate(body: NetworkBody) -> Result<NetworkRequest, ApiError> {
    let opportunity = body.opportunity.as_deref().map(crate::api::opportunity_text).transpose()?.flatten();
    if body.anchor.is_empty() && opportunity.is_none() {
        return Err(ApiError::invalid("opportunity", "give an opportunity text, anchor firms, or both"));
    }
    let size = body.size.unwrap_or(SizeRange { min: None, max: None });
    let min = size.min.unwrap_or(MIN_NETWORK);
    let max = size.max.unwrap_or(min.max(8));
    if min < MIN_NETWORK {
        return Err(ApiError::invalid("size.min", format!("a network has at least {MIN_NETWORK} partners")));
    }
    if max > MAX_NETWORK {
        return Err(ApiError::invalid("size.max", format!("size.max must be at most {MAX_NETWORK}")));
    }
    if min > max {
        return Err(ApiError::invalid("size", format!("size.min ({min}) is larger than size.max ({max})")));
    }
    // Every list is bounded before any of it is parsed: the work done per entry
    // (sector parsing, requirement checks against the catalogue) is not free.
    let bounded = |field: &str, len: usize, limit: usize| -> Result<(), ApiError> {
        if len > limit { Err(ApiError::invalid(field, format!("at most {limit} entries"))) } else { Ok(()) }
    };
    bounded("anchor", body.anchor.len(), MAX_ANCHORS)?;
    bounded("lock", body.lock.len(), MAX_NETWORK)?;
    bounded("exclude", body.exclude.len(), MAX_EXCLUDED)?;
    bounded("countries", body.countries.len(), MAX_PLACES)?;
    bounded("regions", body.regions.len(), MAX_PLACES)?;
    if let Some(require) = &body.require {
        bounded("require.kinds", require.kinds.len(), MAX_KIND_RULES)?;
        bounded("require.sectors", require.sectors.len(), MAX_SECTOR_RULES)?;
        bounded("require.stages", require.stages.len(), STAGES.len())?;
    }
    let ids = |field: &str, ids: Vec<String>| -> Result<Vec<String>, ApiError> {
        let mut unique: Vec<String> = Vec::new();
        for id in ids {
            let id = checked_id(&id).map_err(|e| e.with_field(field))?;
            if !unique.contains(&id) {
                unique.push(id);
            }
        }
        Ok(unique)
    };
    let anchors = ids("anchor", body.anchor)?;
    let lock = ids("lock", body.lock)?;
    let exclude = ids("exclude", body.exclude)?;
    let contradictions: Vec<&String> = exclude.iter().filter(|id| lock.contains(id) || anchors.contains(id)).collect();
    if !contradictions.is_empty() {
        return Err(ApiError::invalid("exclude", "ids are both required (anchor/lock) and excluded")
            .with_details(json!({ "ids": contradictions })));
    }
    let require = body.require.unwrap_or_default();
    let mut kinds = Vec::new();
    for (name, need) in require.kinds {
        let accepted = match name.as_str() {
            "academic" => vec![Kind::University, Kind::Research],
            other => vec![Kind::parse(other).ok_or_else(|| {
                ApiError::invalid(
                    format!("require.kinds.{}", shown(other)),
                    "kinds are company, university, research, public, other or academic",
                )
            })?],
        };
        if need > max {
            return Err(ApiError::invalid(
                format!("require.kinds.{name}"),
                format!("{need} {name} cannot fit in at most {max} partners"),
            ));
        }
        if need > 0 {
            kinds.push((accepted, need));
        }
    }
    let min_sme = require.sme.unwrap_or(0);
    if min_sme > max {
        return Err(ApiError::invalid("require.sme", format!("{min_sme} SMEs cannot fit in at most {max} partners")));
    }
    let sectors = require
        .sectors
        .iter()
        .map(|s| parse_sector(s).map_err(|e| e.with_field("require.sectors")))
        .collect::<Result<Vec<_>, _>>()?;
    for stage in &require.stages {
        if !STAGES.contains(&stage.as_str()) {
            return Err(ApiError::invalid(
                "require.stages",
                format!("unknown stage `{}`; stages are: {}", shown(stage), STAGES.join(", ")),
            ));
        }
    }
    let countries = body
        .countries
        .iter()
        .map(|c| parse_country(c).map_err(|e| e.with_field("countries")))
        .collect::<Result<Vec<_>, _>>()?;
    let regions = body
        .regions
        .iter()
        .map(|r| parse_region(r).map_err(|e| e.with_field("regions")))
        .collect::<Result<Vec<_>, _>>()?;
    if body.max_per_country == Some(0) {
        return Err(ApiError::invalid("max_per_country", "max_per_country must be at least 1"));
    }
    // A cap above the network's size caps nothing; clamping keeps the arithmetic
    // below (and the cache key) free of absurd values.
    let max_per_country = body.max_per_country.map(|limit| limit.min(max));
    if let Some(limit) = max_per_country
        && !countries.is_empty()
        && limit.saturating_mul(countries.len()) < min
    {
        return Err(ApiError::invalid(
            "max_per_country",
            format!("{} countries × {limit} per country cannot hold {min} partners", countries.len()),
        ));
    }
    let alternatives = body.alternatives.unwrap_or(3);
    if alternatives > 10 {
        return Err(ApiError::invalid("alternatives", "alternatives must be at most 10"));
    }
    let k_candidates = body.k_candidates.unwrap_or(100);
    if !(20..=500).contains(&k_candidates) {
        return Err(ApiError::invalid("k_candidates", "k_candidates must be from 20 to 500"));
    }
    Ok(NetworkRequest {
        objective: Default::default(),
        anchors,
        opportunity,
        min,
        max,
        kinds,
        min_sme,
        sectors,
        stages: require.stages,
        countries,
        regions,
        max_per_country,
        lock,
        exclude,
        alternatives,
        k_candidates,
    })
}

/// One row per member of every network, with the network's rank first so a
/// spreadsheet can filter by it, and the member's role, stage and position in
/// the chain (1 = most upstream; empty when its stage is unknown). Works on the JSON form, so a cached answer
/// converts without recomputing.
fn to_csv(response: &serde_json::Value) -> String {
    let mut writer = csv::Writer::from_writer(Vec::new());
    writer
        .write_record([
            "network",
            "network_score",
            "status",
            "id",
            "name",
            "kind",
            "country",
            "role",
            "stage",
            "position",
            "score",
            "reasons",
        ])
        .expect("in-memory write");
    let networks =
        std::iter::once(&response["network"]).chain(response["alternatives"].as_array().into_iter().flatten());
    let text = |value: &serde_json::Value| match value {
        serde_json::Value::String(text) => text.clone(),
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    };
    for (rank, network) in networks.enumerate() {
        for member in network["members"].as_array().into_iter().flatten() {
            let reasons: Vec<String> =
                member["reasons"].as_array().into_iter().flatten().map(|r| text(&r["text"])).collect();
            let record = [
                rank.to_string(),
                text(&network["score"]),
                text(&member["status"]),
                text(&member["id"]),
                text(&member["name"]),
                text(&member["kind"]),
                text(&member["country"]),
                text(&member["role"]),
                text(&member["stage"]),
                text(&member["position"]),
                text(&member["score"]),
                reasons.join("; "),
            ];
            writer.write_record(&record).expect("in-memory write");
        }
    }
    String::from_utf8(writer.into_inner().expect("in-memory flush")).expect("CSV of UTF-8 fields")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Any JSON value, nested a few levels, with the body's own field names
    /// among the keys so that validation (not only deserialisation) is reached.
    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<u64>().prop_map(serde_json::Value::from),
            any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(serde_json::Value::Null, Into::into)),
            any::<String>().prop_map(serde_json::Value::from),
            "[A-Z]{2}[0-9]{0,3}".prop_map(serde_json::Value::from),
        ];
        let keys = prop_oneof![
            Just("anchor".to_string()),
            Just("opportunity".to_string()),
            Just("size".to_string()),
            Just("min".to_string()),
            Just("max".to_string()),
            Just("require".to_string()),
            Just("kinds".to_string()),
            Just("stages".to_string()),
            Just("sectors".to_string()),
            Just("countries".to_string()),
            Just("regions".to_string()),
            Just("max_per_country".to_string()),
            Just("lock".to_string()),
            Just("alternatives".to_string()),
            any::<String>(),
        ];
        leaf.prop_recursive(4, 64, 8, move |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(serde_json::Value::Array),
                prop::collection::btree_map(keys.clone(), inner, 0..8)
                    .prop_map(|map| serde_json::Value::Object(map.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn any_json_body_is_validated_without_panicking(value in json_value()) {
            if let Ok(body) = serde_json::from_value::<NetworkBody>(value) {
                let _ = validate(body);
            }
        }

        #[test]
        fn any_text_in_any_filter_is_validated_without_panicking(text in any::<String>()) {
            let _ = parse_region(&text);
            let _ = parse_country(&text);
            let _ = parse_sector(&text);
            let _ = checked_id(&text);
            let _ = crate::api::firms::parse_kind(&text);
            let _ = crate::api::firms::parse_size(&text);
            prop_assert!(shown(&text).chars().count() <= 65);
        }
    }
}
