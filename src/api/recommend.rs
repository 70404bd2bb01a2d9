//! Recommendations: a firm's partners, shortlists for a business opportunity,
//! and the model administration behind them. Answers are cached under the index
//! and model generation, so any profile change or refit makes old entries
//! unreachable; a repeat is served from the cache (`x-cache: hit`).

use std::sync::Arc;

use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::IntoParams;

use crate::api::firms::{checked_id, profile_filter_of, request_digest};
use crate::api::{json_bytes, query, read_body};
use crate::engine::{Filters, Partner, ProfileFilter, Relation, Shortlist, ShortlistRequest};
use crate::error::{ApiError, ErrorCode};
use crate::state::AppState;

const MAX_K: usize = 200;

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PartnerParams {
    /// How many partners, 1..=200 (default 20).
    #[param(minimum = 1, maximum = 200)]
    k: Option<usize>,
    #[param(value_type = Option<crate::api::contract::KindName>)]
    kind: Option<String>,
    #[param(value_type = Option<crate::api::contract::CountryCode>)]
    country: Option<String>,
    /// NUTS code or prefix.
    #[param(value_type = Option<crate::api::contract::RegionCode>)]
    region: Option<String>,
    /// NACE code or prefix.
    #[param(value_type = Option<crate::api::contract::NaceCode>)]
    sector: Option<String>,
    #[param(value_type = Option<crate::api::contract::SizeName>)]
    size: Option<String>,
    sme: Option<bool>,
    /// Comma-separated firm ids never to propose (at most 1000).
    #[param(pattern = r"^ *([A-Za-z0-9._:-]{1,128})? *(, *([A-Za-z0-9._:-]{1,128})? *)*$")]
    exclude: Option<String>,
    /// Lowest score to return, 0..1.
    #[param(minimum = 0.0, maximum = 1.0)]
    min_score: Option<f64>,
    /// `supplier`, `customer` or `any` (default): the side of the value chain.
    #[param(value_type = Option<crate::api::contract::RelationName>)]
    relation: Option<String>,
    /// Also propose funds, ETFs, bond lines, trusts and SPACs (default false).
    include_financial_vehicles: Option<bool>,
}

/// Shortlist for a business opportunity described in words.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ShortlistBody {
    /// What the network should do, e.g. "low-carbon housing".
    #[schema(min_length = 1, max_length = 5000, pattern = r"\S")]
    opportunity: String,
    /// Firms the shortlist is for (they are never proposed).
    #[serde(default)]
    #[schema(value_type = Vec<crate::api::contract::FirmId>, max_items = 50)]
    anchor: Vec<String>,
    #[schema(minimum = 1, maximum = 200)]
    k: Option<usize>,
    #[schema(value_type = Option<crate::api::contract::KindName>)]
    kind: Option<String>,
    #[schema(value_type = Option<crate::api::contract::CountryCode>)]
    country: Option<String>,
    #[schema(value_type = Option<crate::api::contract::RegionCode>)]
    region: Option<String>,
    #[schema(value_type = Option<crate::api::contract::NaceCode>)]
    sector: Option<String>,
    #[schema(value_type = Option<crate::api::contract::SizeName>)]
    size: Option<String>,
    sme: Option<bool>,
    #[serde(default)]
    #[schema(value_type = Vec<crate::api::contract::FirmId>, max_items = 1000)]
    exclude: Vec<String>,
    #[schema(minimum = 0.0, maximum = 1.0)]
    min_score: Option<f64>,
    /// `supplier`, `customer` or `any` (default).
    #[schema(value_type = Option<crate::api::contract::RelationName>)]
    relation: Option<String>,
    #[serde(default)]
    include_financial_vehicles: bool,
}

#[utoipa::path(get, path = "/v1/firms/{id}/partners", tag = "recommendations",
    params(("id" = String, Path, description = "firm id"), PartnerParams),
    responses((status = 200, description = "ranked partners with per-signal contributions and reasons; `x-cache` says hit, miss or precomputed"), (status = 404), (status = 422), (status = 503)))]
pub async fn partners(
    state: web::Data<AppState>,
    path: web::Path<String>,
    params: web::Query<PartnerParams>,
) -> Result<HttpResponse, ApiError> {
    let id = checked_id(&path)?;
    let params = params.into_inner();
    let exclude = params
        .exclude
        .as_deref()
        .map(|list| {
            list.split(',').map(str::trim).filter(|s| !s.is_empty()).map(checked_exclude).collect::<Result<Vec<_>, _>>()
        })
        .transpose()?
        .unwrap_or_default();
    let profile = profile_filter_of!(params)?;
    let mut filters = filters(profile, exclude, params.min_score)?;
    filters.relation = parse_relation(params.relation.as_deref())?;
    filters.include_financial_vehicles = params.include_financial_vehicles.unwrap_or(false);
    let request = ShortlistRequest { anchors: vec![id.clone()], opportunity: None, k: checked_k(params.k)?, filters };
    respond(&state, "partners", request, Some(id)).await
}

#[utoipa::path(post, path = "/v1/shortlists", tag = "recommendations", request_body = ShortlistBody,
    responses((status = 200, description = "ranked firms for the opportunity"), (status = 400), (status = 422)))]
pub async fn shortlist(
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body: ShortlistBody = parse_json_body(&state, &request, payload).await?;
    let opportunity = crate::api::opportunity_text(&body.opportunity)?
        .ok_or_else(|| ApiError::invalid("opportunity", "opportunity must describe the business opportunity"))?;
    if body.anchor.len() > 50 {
        return Err(ApiError::invalid("anchor", "at most 50 anchors"));
    }
    let anchors = body
        .anchor
        .iter()
        .map(|id| checked_id(id).map_err(|e| e.with_field("anchor")))
        .collect::<Result<Vec<_>, _>>()?;
    let exclude = body.exclude.iter().map(|id| checked_exclude(id)).collect::<Result<Vec<_>, _>>()?;
    let profile = profile_filter_of!(body)?;
    let mut filters = filters(profile, exclude, body.min_score)?;
    filters.relation = parse_relation(body.relation.as_deref())?;
    filters.include_financial_vehicles = body.include_financial_vehicles;
    let request = ShortlistRequest { anchors, opportunity: Some(opportunity), k: checked_k(body.k)?, filters };
    respond(&state, "shortlist", request, None).await
}

async fn respond(
    state: &web::Data<AppState>,
    kind: &'static str,
    request: ShortlistRequest,
    firm: Option<String>,
) -> Result<HttpResponse, ApiError> {
    let mut request = request;
    let rejected = crate::api::feedback::rejected_for(state, &request.anchors, request.opportunity.as_deref());
    crate::api::feedback::merge_exclusions(&mut request.filters.exclude, rejected);
    let engine = state.engine.clone();
    if let Some(id) = firm.clone()
        && engine.precomputed_is_fresh()
    {
        let (engine, request) = (engine.clone(), request.clone());
        let precomputed = query(move || {
            Ok(engine.precomputed_shortlist(&id, &request).map(|shortlist| shortlist_body(&shortlist, Some(id))))
        })
        .await?;
        if let Some(body) = precomputed {
            metrics::counter!("klynge_recommendations_total", "kind" => "precomputed").increment(1);
            return Ok(json_bytes(body.into(), "precomputed"));
        }
    }
    let normalised = serde_json::to_string(&request).expect("serialisable");
    let key = state.cache.key(engine.cache_generation(), kind, &request_digest(&normalised));
    if let Some(body) = state.cache.get(&key).await {
        return Ok(json_bytes(body, "hit"));
    }
    let body = query(move || {
        // Asked of the id term, not by loading the stored profile: that read was a
        // twentieth of an uncached request.
        if let Some(id) = &firm
            && !engine.missing_firms([id])?.is_empty()
        {
            return Err(ApiError::not_found(format!("no firm with id `{id}`")));
        }
        let shortlist = engine.shortlist(&request)?;
        Ok(shortlist_body(&shortlist, firm))
    })
    .await?;
    let body: Arc<[u8]> = body.into();
    state.cache.set(key, body.clone()).await;
    metrics::counter!("klynge_recommendations_total", "kind" => kind).increment(1);
    Ok(json_bytes(body, "miss"))
}

/// A shortlist as answered, with the firm it was asked for. Serialised straight
/// to bytes: going through a `serde_json::Value` first was a tenth of an
/// uncached request.
#[derive(Serialize)]
struct Answer<'a> {
    candidates_scored: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    firm: Option<String>,
    generation: u64,
    model_generation: u64,
    partners: &'a [Partner],
}

fn shortlist_body(shortlist: &Shortlist, firm: Option<String>) -> Vec<u8> {
    let answer = Answer {
        candidates_scored: shortlist.candidates_scored,
        firm,
        generation: shortlist.generation,
        model_generation: shortlist.model_generation,
        partners: &shortlist.partners,
    };
    // Sized for the answer up front: a partner is about a kilobyte of JSON, and
    // growing the buffer from empty copied each answer several times over.
    let mut body = Vec::with_capacity(512 + 1_280 * answer.partners.len());
    serde_json::to_writer(&mut body, &answer).expect("serialisable");
    body
}

#[utoipa::path(get, path = "/v1/admin/model", tag = "admin",
    responses((status = 200, description = "fitted weights per signal and model facts")), security(("bearer" = [])))]
pub async fn model(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let mut info = state.engine.model_info();
    if info.is_null() {
        return Err(ApiError::new(
            ErrorCode::Unavailable,
            "no model is fitted yet; POST /v1/admin/train or add profiles",
        ));
    }
    info["feedback"] = crate::api::feedback::summary(&state);
    Ok(HttpResponse::Ok().json(info))
}

fn checked_k(k: Option<usize>) -> Result<usize, ApiError> {
    let k = k.unwrap_or(20);
    if (1..=MAX_K).contains(&k) { Ok(k) } else { Err(ApiError::invalid("k", format!("k must be from 1 to {MAX_K}"))) }
}

fn parse_relation(relation: Option<&str>) -> Result<Relation, ApiError> {
    match relation {
        None => Ok(Relation::Any),
        Some(text) => Relation::parse(text.trim())
            .ok_or_else(|| ApiError::invalid("relation", "relation must be supplier, customer or any")),
    }
}

fn checked_exclude(id: &str) -> Result<String, ApiError> {
    checked_id(id).map_err(|error| error.with_field("exclude"))
}

fn filters(profile: ProfileFilter, exclude: Vec<String>, min_score: Option<f64>) -> Result<Filters, ApiError> {
    // Read and checked as f64: as f32, a tiny negative like -1e-248 rounds to
    // -0.0 and would pass the check the spec (minimum 0) says it fails.
    let min_score = min_score.unwrap_or(0.0);
    if !(0.0..=1.0).contains(&min_score) {
        return Err(ApiError::invalid("min_score", "min_score must be from 0 to 1"));
    }
    let min_score = min_score as f32;
    if exclude.len() > 1000 {
        return Err(ApiError::invalid("exclude", "at most 1000 excluded ids"));
    }
    Ok(Filters { profile, exclude, min_score, ..Default::default() })
}

/// Reads a JSON body into `T`: syntax errors are 400, wrong fields or types 422
/// naming the field where serde says which.
pub async fn parse_json_body<T: for<'de> Deserialize<'de>>(
    state: &web::Data<AppState>,
    request: &HttpRequest,
    payload: web::Payload,
) -> Result<T, ApiError> {
    let content_type =
        request.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("application/json");
    if !content_type.trim_start().to_ascii_lowercase().starts_with("application/json") {
        return Err(ApiError::new(ErrorCode::UnsupportedMediaType, "send application/json"));
    }
    let body = read_body(request, payload, state.settings.server.max_body_bytes).await?;
    let mut deserializer = serde_json::Deserializer::from_slice(&body);
    let value: T = serde_path_to_error::deserialize(&mut deserializer).map_err(json_error)?;
    deserializer.end().map_err(|error| ApiError::malformed(format!("malformed JSON: {error}")))?;
    Ok(value)
}

/// Syntax errors are 400; a wrong field or type is 422 naming the field by its
/// path in the body (`size.min`, `anchor[2]`), or the unknown field's name.
fn json_error(error: serde_path_to_error::Error<serde_json::Error>) -> ApiError {
    use serde_json::error::Category;
    let path = error.path().to_string();
    let inner = error.inner();
    match inner.classify() {
        Category::Syntax | Category::Eof | Category::Io => ApiError::malformed(format!("malformed JSON: {inner}")),
        Category::Data => {
            let mut text = inner.to_string();
            let mut path = path;
            // A nested object read on its own (`networks::object_or_null`) reports
            // its inner path first: "min: invalid type …" under `size`.
            if let Some((inner_path, rest)) = text.split_once(": ")
                && path != "."
                && !inner_path.is_empty()
                && inner_path.chars().all(|c| c.is_ascii_alphanumeric() || "_.[]".contains(c))
            {
                if inner_path != "." {
                    path = format!("{path}.{inner_path}");
                }
                text = rest.to_string();
            }
            let named = |prefix: &str| text.strip_prefix(prefix).and_then(|rest| rest.split('`').next());
            // An unknown or missing field is named by serde itself, below the path.
            let field = match named("unknown field `").or_else(|| named("missing field `")) {
                Some(name) if path == "." => name.to_string(),
                Some(name) if path.ends_with(name) => path,
                Some(name) => format!("{path}.{name}"),
                None if path == "." => "body".to_string(),
                None => path,
            };
            ApiError::invalid(field, text)
        }
    }
}
