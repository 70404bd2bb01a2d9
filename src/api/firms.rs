//! `/v1/firms`: bulk upsert (JSON, NDJSON, CSV; all-or-nothing), single-profile
//! put/get/delete, and filtered full-text search.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use klynge_models::{Kind, SizeClass, check_id, nace, normalise_country, normalise_region};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use utoipa::{IntoParams, ToSchema};

use crate::api::{blocking, json_bytes, read_body};
use crate::engine::{ProfileFilter, SearchRequest, StoredFirm};
use crate::error::{ApiError, ErrorCode};
use crate::ingest::{self, Format, now_rfc3339, profile_response};
use crate::state::AppState;

/// Outcome of a bulk upsert.
#[derive(Serialize, ToSchema)]
pub struct UpsertSummary {
    pub upserted: usize,
    pub generation: u64,
}

#[utoipa::path(post, path = "/v1/firms", tag = "firms",
    request_body(content = Vec<Object>, description = "JSON array of profiles, NDJSON (application/x-ndjson) or CSV (text/csv, lists `;`-separated)"),
    responses((status = 200, body = UpsertSummary), (status = 400), (status = 413), (status = 415), (status = 422)),
    security(("bearer" = [])))]
pub async fn bulk_upsert(
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let format = content_format(&request)?;
    let body = read_body(&request, payload, state.settings.server.max_body_bytes).await?;
    let engine = state.engine.clone();
    // Parsing, validating and converting up to `server.max_body_bytes` of NDJSON
    // or CSV takes far longer than an executor turn should: all of it runs on the
    // blocking pool, with the write.
    let (count, generation) = blocking(move || {
        let items = ingest::parse_items(&body, format)?;
        if items.is_empty() {
            return Err(ApiError::invalid("body", "the body holds no profiles"));
        }
        let (accepted, rejected) = ingest::validate_items(&items, &now_rfc3339());
        if !rejected.is_empty() {
            return Err(ApiError::new(
                ErrorCode::ValidationFailed,
                format!("{} of {} profiles are invalid; nothing was written", rejected.len(), items.len()),
            )
            .with_details(serde_json::to_value(&rejected).expect("serialisable")));
        }
        Ok((accepted.len(), engine.upsert_firms(&accepted)?))
    })
    .await?;
    state.changed();
    Ok(HttpResponse::Ok().json(UpsertSummary { upserted: count, generation }))
}

#[utoipa::path(put, path = "/v1/firms/{id}", tag = "firms",
    params(("id" = String, Path, description = "firm id")),
    request_body(content = Object, description = "one profile; its `id` must match the path or be left out"),
    responses((status = 200, description = "the stored profile"), (status = 422)),
    security(("bearer" = [])))]
pub async fn put(
    state: web::Data<AppState>,
    request: HttpRequest,
    path: web::Path<String>,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let id = checked_id(&path)?;
    if content_format(&request)? != Format::Json {
        return Err(unsupported_type());
    }
    let body = read_body(&request, payload, state.settings.server.max_body_bytes).await?;
    let engine = state.engine.clone();
    // A profile may be as large as a bulk body: read and validated off the executor.
    let stored = blocking(move || {
        let mut value: Value =
            serde_json::from_slice(&body).map_err(|error| ApiError::malformed(format!("malformed JSON: {error}")))?;
        let Some(object) = value.as_object_mut() else {
            return Err(ApiError::invalid("body", "a profile must be a JSON object"));
        };
        let raw = match object.get("id") {
            Some(Value::String(body_id)) if *body_id == id => String::from_utf8_lossy(&body).into_owned(),
            Some(_) => {
                return Err(ApiError::invalid("id", format!("the body's id must be `{id}`, as in the path")));
            }
            None => {
                object.insert("id".to_string(), Value::String(id.clone()));
                value.to_string()
            }
        };
        let item = ingest::Item { line: None, raw };
        let (mut accepted, rejected) = ingest::validate_items(std::slice::from_ref(&item), &now_rfc3339());
        if let Some(rejected) = rejected.into_iter().next() {
            let first_field = rejected.errors.first().map(|error| error.field.clone()).unwrap_or_default();
            return Err(ApiError::new(ErrorCode::ValidationFailed, "the profile is invalid")
                .with_field(first_field)
                .with_details(serde_json::to_value(&rejected.errors).expect("serialisable")));
        }
        let stored = accepted.pop().expect("one valid item");
        engine.upsert_firms(std::slice::from_ref(&stored))?;
        Ok(stored)
    })
    .await?;
    state.changed();
    Ok(profile_http(&stored, &[]))
}

#[utoipa::path(get, path = "/v1/firms/{id}", tag = "firms",
    params(("id" = String, Path, description = "firm id")),
    responses((status = 200, description = "the profile as sent, plus `updated_at` and `ties`"), (status = 404)))]
pub async fn get(state: web::Data<AppState>, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let id = checked_id(&path)?;
    let engine = state.engine.clone();
    let (stored, collaborations) = blocking(move || {
        engine.firm_with_collaborations(&id)?.ok_or_else(|| ApiError::not_found(format!("no firm with id `{id}`")))
    })
    .await?;
    let ties: Vec<Value> = collaborations
        .into_iter()
        .map(|collaboration| {
            let partners: Vec<&String> =
                collaboration.members.iter().filter(|member| **member != stored.firm.id).collect();
            json!({ "collaboration": collaboration.id, "title": collaboration.title, "partners": partners })
        })
        .collect();
    Ok(profile_http(&stored, &[("ties", Value::Array(ties))]))
}

#[utoipa::path(delete, path = "/v1/firms/{id}", tag = "firms",
    params(("id" = String, Path, description = "firm id")),
    responses((status = 204), (status = 404)), security(("bearer" = [])))]
pub async fn delete(state: web::Data<AppState>, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let id = checked_id(&path)?;
    let engine = state.engine.clone();
    let deleted = blocking({
        let id = id.clone();
        move || Ok(engine.delete_firm(&id)?)
    })
    .await?;
    if deleted {
        state.changed();
        Ok(HttpResponse::NoContent().finish())
    } else {
        Err(ApiError::not_found(format!("no firm with id `{id}`")))
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct SearchParams {
    /// Full-text query (tantivy syntax; stray symbols are tolerated).
    #[param(max_length = 1000)]
    q: Option<String>,
    /// company | university | research | public | other
    #[param(value_type = Option<crate::api::contract::KindName>)]
    kind: Option<String>,
    /// ISO 3166-1 alpha-2
    #[param(value_type = Option<crate::api::contract::CountryCode>)]
    country: Option<String>,
    /// NUTS code or prefix (`DK04`, `DK`)
    #[param(value_type = Option<crate::api::contract::RegionCode>)]
    region: Option<String>,
    /// NACE code or prefix (`C10`, `C10.51`, `10.51`)
    #[param(value_type = Option<crate::api::contract::NaceCode>)]
    sector: Option<String>,
    /// micro | small | medium | large
    #[param(value_type = Option<crate::api::contract::SizeName>)]
    size: Option<String>,
    sme: Option<bool>,
    /// 1..=100, default 20
    #[param(minimum = 1, maximum = 100)]
    limit: Option<usize>,
    /// 0..=10000, default 0
    #[param(minimum = 0, maximum = 10000)]
    offset: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct SearchResponse {
    total: usize,
    limit: usize,
    offset: usize,
    hits: Vec<SearchHitBody>,
}

#[derive(Serialize, ToSchema)]
pub struct SearchHitBody {
    id: String,
    name: String,
    #[schema(value_type = crate::api::contract::KindName)]
    kind: Kind,
    #[serde(skip_serializing_if = "Option::is_none")]
    country: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    region: Option<String>,
    sectors: Vec<String>,
    score: f32,
    /// HTML fragment with `<b>` around matched words.
    #[serde(skip_serializing_if = "Option::is_none")]
    snippet: Option<String>,
}

#[utoipa::path(get, path = "/v1/firms", tag = "firms", params(SearchParams),
    responses((status = 200, body = SearchResponse), (status = 400), (status = 422)))]
pub async fn search(state: web::Data<AppState>, params: web::Query<SearchParams>) -> Result<HttpResponse, ApiError> {
    let request = search_request(params.into_inner())?;
    let generation = state.engine.index_generation();
    let key = state.cache.key(generation, "search", &request_digest(&format!("{request:?}")));
    if let Some(body) = state.cache.get(&key).await {
        return Ok(json_bytes(body, "hit"));
    }
    let engine = state.engine.clone();
    let body = blocking(move || {
        let page = engine.search(&request)?;
        let hits = page
            .hits
            .into_iter()
            .map(|hit| SearchHitBody {
                id: hit.firm.firm.id,
                name: hit.firm.firm.name,
                kind: hit.firm.firm.kind,
                country: hit.firm.firm.country,
                region: hit.firm.firm.region,
                sectors: hit.firm.firm.sectors,
                score: hit.score,
                snippet: hit.snippet,
            })
            .collect();
        let response = SearchResponse { total: page.total, limit: request.limit, offset: request.offset, hits };
        Ok(serde_json::to_vec(&response).expect("serialisable"))
    })
    .await?;
    let body: std::sync::Arc<[u8]> = body.into();
    state.cache.set(key, body.clone()).await;
    Ok(json_bytes(body, "miss"))
}

fn search_request(params: SearchParams) -> Result<SearchRequest, ApiError> {
    let limit = params.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::invalid("limit", "limit must be from 1 to 100"));
    }
    let offset = params.offset.unwrap_or(0);
    if offset > 10_000 {
        return Err(ApiError::invalid("offset", "offset must be at most 10000"));
    }
    if params.q.as_ref().is_some_and(|q| q.chars().count() > 1000) {
        return Err(ApiError::invalid("q", "q must be at most 1000 characters"));
    }
    let filter = profile_filter_of!(params)?;
    Ok(SearchRequest { query: params.q, filter, limit, offset })
}

/// [`profile_filter`] of a request's six profile fields (`kind`, `country`,
/// `region`, `sector`, `size`, `sme`). Each request type declares them itself:
/// a flattened shared struct could not refuse unknown fields.
macro_rules! profile_filter_of {
    ($request:expr) => {
        $crate::api::firms::profile_filter(
            $request.kind.as_deref(),
            $request.country.as_deref(),
            $request.region.as_deref(),
            $request.sector.as_deref(),
            $request.size.as_deref(),
            $request.sme,
        )
    };
}
pub(crate) use profile_filter_of;

/// The profile filter of a search or a recommendation, each field checked and
/// normalised (a bad one is 422 naming it).
pub fn profile_filter(
    kind: Option<&str>,
    country: Option<&str>,
    region: Option<&str>,
    sector: Option<&str>,
    size: Option<&str>,
    sme: Option<bool>,
) -> Result<ProfileFilter, ApiError> {
    Ok(ProfileFilter {
        kind: kind.map(parse_kind).transpose()?,
        country: country.map(parse_country).transpose()?,
        region: region.map(parse_region).transpose()?,
        sector: sector.map(parse_sector).transpose()?,
        size: size.map(parse_size).transpose()?,
        sme,
    })
}

pub fn parse_kind(text: &str) -> Result<Kind, ApiError> {
    Kind::parse(text).ok_or_else(|| {
        ApiError::invalid(
            "kind",
            format!("`{}` is not one of company, university, research, public, other", shown(text)),
        )
    })
}

pub fn parse_size(text: &str) -> Result<SizeClass, ApiError> {
    SizeClass::parse(text).ok_or_else(|| {
        ApiError::invalid("size", format!("`{}` is not one of micro, small, medium, large", shown(text)))
    })
}

pub fn parse_country(text: &str) -> Result<String, ApiError> {
    normalise_country(text).ok_or_else(|| {
        ApiError::invalid("country", format!("`{}` is not an ISO 3166-1 alpha-2 country code", shown(text)))
    })
}

pub fn parse_region(text: &str) -> Result<String, ApiError> {
    normalise_region(text)
        .ok_or_else(|| ApiError::invalid("region", format!("`{}` is not a NUTS code or prefix", shown(text))))
}

/// A caller's value quoted back in an error message, cut to a readable length
/// (by chars: the value may be any unicode).
pub fn shown(text: &str) -> String {
    const MAX_SHOWN: usize = 64;
    if text.chars().count() <= MAX_SHOWN {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(MAX_SHOWN).collect();
    cut.push('…');
    cut
}

pub fn parse_sector(text: &str) -> Result<String, ApiError> {
    nace::normalise(text)
        .ok_or_else(|| ApiError::invalid("sector", format!("`{}` is not a NACE Rev. 2 code", shown(text))))
}

pub fn checked_id(id: &str) -> Result<String, ApiError> {
    check_id(id).map_err(|message| ApiError::invalid("id", format!("id {message}")))?;
    Ok(id.to_string())
}

/// A short, stable digest of a normalised request, for cache keys.
pub fn request_digest(normalised: &str) -> String {
    hex::encode(&Sha256::digest(normalised.as_bytes())[..16])
}

fn content_format(request: &HttpRequest) -> Result<Format, ApiError> {
    let content_type =
        request.headers().get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).unwrap_or("application/json");
    Format::from_content_type(content_type).ok_or_else(unsupported_type)
}

fn unsupported_type() -> ApiError {
    ApiError::new(ErrorCode::UnsupportedMediaType, "send application/json, application/x-ndjson or text/csv")
}

fn profile_http(stored: &StoredFirm, extra: &[(&str, Value)]) -> HttpResponse {
    let mut fields = vec![("updated_at", Value::String(stored.updated_at.clone()))];
    fields.extend(extra.iter().cloned());
    HttpResponse::Ok().content_type("application/json").body(profile_response(&stored.raw, &fields))
}
