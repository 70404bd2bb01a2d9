//! `/v1/feedback`: the cluster manager's accept / reject decisions on proposed
//! firms (store: [`crate::feedback`]). Writes need the write key and are durable
//! before the 201. The decisions take effect at once: [`rejected_for`] gives the
//! firms a recommendation must leave out, and since they become part of the
//! request, they are part of its cache key too, so an answer cached before a
//! rejection is never served after it.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use crate::api::firms::checked_id;
use crate::api::{blocking, read_body};
use crate::error::ApiError;
use crate::feedback::{Decision, ListQuery, Record, Scope};
use crate::state::AppState;

const MAX_NOTE: usize = 2000;
const MAX_AUTHOR: usize = 200;
const MAX_LIMIT: usize = 1000;
const MAX_OFFSET: usize = 1_000_000;

/// A decision on a proposed firm: about an `anchor` or an `opportunity` (or
/// both), unless `scope` is `everywhere`.
// The limits are the ones `validate` enforces; the either-or rule above is
// added to the spec by `crate::api::contract`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // documents the body; the handler validates the JSON field by field
pub struct FeedbackBody {
    /// The firm the proposal was for (required unless `scope` is `everywhere`
    /// or `opportunity` is given); not the proposed firm itself.
    #[schema(value_type = Option<crate::api::contract::FirmId>)]
    anchor: Option<String>,
    /// The opportunity text the proposal answered (matched case- and
    /// spacing-insensitively); used when no anchor is given.
    #[schema(max_length = 5000, pattern = r"\S")]
    opportunity: Option<String>,
    /// The proposed firm.
    #[schema(value_type = crate::api::contract::FirmId)]
    firm: String,
    /// `accept` or `reject`.
    #[schema(value_type = Decision)]
    decision: String,
    /// `anchor` (default: this anchor, or this opportunity) or `everywhere`.
    #[schema(value_type = Option<Scope>)]
    scope: Option<String>,
    #[schema(max_length = 2000)]
    note: Option<String>,
    #[schema(max_length = 200)]
    author: Option<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    #[param(value_type = Option<crate::api::contract::FirmId>)]
    anchor: Option<String>,
    #[param(value_type = Option<crate::api::contract::FirmId>)]
    firm: Option<String>,
    /// `accept` or `reject`.
    #[param(value_type = Option<Decision>)]
    decision: Option<String>,
    /// RFC 3339 instant: only decisions stored at or after it.
    #[param(format = DateTime)]
    since: Option<String>,
    /// Page size, 1..=1000 (default 50).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// Records to skip (newest first), 0..=1000000.
    #[param(minimum = 0, maximum = 1000000)]
    offset: Option<usize>,
}

#[derive(Serialize, ToSchema)]
pub struct FeedbackPage {
    total: usize,
    offset: usize,
    limit: usize,
    feedback: Vec<Record>,
}

#[utoipa::path(post, path = "/v1/feedback", tag = "feedback", request_body = FeedbackBody,
    responses((status = 201, body = Record, description = "stored durably; replaces the earlier decision on the same (anchor or opportunity, firm)"),
        (status = 422, description = "validation_failed: a missing or invalid field, an unknown firm, or a firm proposed to itself; `field` names it")),
    security(("bearer" = [])))]
pub async fn create(
    state: web::Data<AppState>,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    let body = read_body(&request, payload, state.settings.server.max_body_bytes).await?;
    let value: Value =
        serde_json::from_slice(&body).map_err(|error| ApiError::malformed(format!("malformed JSON: {error}")))?;
    let mut record = validate(&value)?;
    let (engine, feedback) = (state.engine.clone(), state.feedback.clone());
    let stored = blocking(move || {
        let mut ids = vec![record.firm.clone()];
        ids.extend(record.anchor.clone());
        let missing = engine.missing_firms(&ids)?;
        for (field, id) in [("firm", Some(&record.firm)), ("anchor", record.anchor.as_ref())] {
            if let Some(id) = id
                && missing.contains(id)
            {
                return Err(ApiError::invalid(field, format!("no firm with id `{id}`")));
            }
        }
        record.id = uuid::Uuid::new_v4().to_string();
        record.time = crate::ingest::now_rfc3339();
        if let Some(replaced) = feedback.put(record.clone())? {
            record.id = replaced.id;
        }
        Ok(record)
    })
    .await?;
    metrics::counter!("klynge_feedback_total", "decision" => match stored.decision {
        Decision::Accept => "accept",
        Decision::Reject => "reject",
    })
    .increment(1);
    Ok(HttpResponse::Created().insert_header((header::LOCATION, format!("/v1/feedback/{}", stored.id))).json(stored))
}

/// Field by field, so every error names the field (serde's messages name the
/// offending value for a bad enum, not the field).
fn validate(value: &Value) -> Result<Record, ApiError> {
    let Some(object) = value.as_object() else {
        return Err(ApiError::invalid("body", "feedback must be a JSON object"));
    };
    const FIELDS: [&str; 7] = ["anchor", "opportunity", "firm", "decision", "scope", "note", "author"];
    if let Some(unknown) = object.keys().find(|key| !FIELDS.contains(&key.as_str())) {
        return Err(ApiError::invalid(unknown.clone(), format!("unknown field `{unknown}`; fields are {FIELDS:?}")));
    }
    // Free texts: the length limit is the spec's `maxLength`, so it counts the text as
    // sent; surrounding spaces are then dropped, and a blank text is no text.
    let text = |field: &str, max: usize| -> Result<Option<String>, ApiError> {
        match object.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) if text.chars().count() > max => {
                Err(ApiError::invalid(field, format!("{field} must be at most {max} characters")))
            }
            Some(Value::String(text)) => Ok(Some(text.trim().to_string()).filter(|t| !t.is_empty())),
            Some(_) => Err(ApiError::invalid(field, format!("`{field}` must be a string"))),
        }
    };
    // Ids and the two enums are taken as given, not trimmed: `""` or `" accept"`
    // is refused, as the spec (id pattern, enums) says.
    let exact = |field: &str| -> Result<Option<String>, ApiError> {
        match object.get(field) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(text)) => Ok(Some(text.clone())),
            Some(_) => Err(ApiError::invalid(field, format!("`{field}` must be a string"))),
        }
    };
    let id = |field: &str| -> Result<Option<String>, ApiError> {
        exact(field)?.map(|id| checked_id(&id).map_err(|e| e.with_field(field))).transpose()
    };
    let firm = id("firm")?.ok_or_else(|| ApiError::invalid("firm", "`firm` (the proposed firm's id) is required"))?;
    let decision =
        exact("decision")?.ok_or_else(|| ApiError::invalid("decision", "`decision` is required: accept or reject"))?;
    let decision = Decision::parse(&decision)
        .ok_or_else(|| ApiError::invalid("decision", format!("decision `{decision}` is not accept or reject")))?;
    let scope = match exact("scope")? {
        None => Scope::Anchor,
        Some(scope) => Scope::parse(&scope)
            .ok_or_else(|| ApiError::invalid("scope", format!("scope `{scope}` is not anchor or everywhere")))?,
    };
    let anchor = id("anchor")?;
    let opportunity = text("opportunity", crate::api::MAX_OPPORTUNITY)?;
    // A blank opportunity is refused rather than read as none (as note and author
    // are): the spec's pattern says so, and a caller who sends one has lost the
    // text the decision was about.
    if opportunity.is_none() && object.get("opportunity").is_some_and(Value::is_string) {
        return Err(ApiError::invalid("opportunity", "opportunity must not be blank; leave it out instead"));
    }
    if scope == Scope::Anchor && anchor.is_none() && opportunity.is_none() {
        return Err(ApiError::invalid(
            "anchor",
            "give the `anchor` (or the `opportunity`) the decision is about, or scope `everywhere`",
        ));
    }
    if anchor.as_ref() == Some(&firm) {
        return Err(ApiError::invalid("firm", "a firm cannot be proposed to itself"));
    }
    let note = text("note", MAX_NOTE)?;
    let author = text("author", MAX_AUTHOR)?;
    Ok(Record { id: String::new(), time: String::new(), anchor, opportunity, firm, decision, scope, note, author })
}

#[utoipa::path(get, path = "/v1/feedback", tag = "feedback", params(ListParams),
    responses((status = 200, body = FeedbackPage, description = "live decisions, newest first"),
        (status = 422, description = "validation_failed: a parameter is out of range or malformed; `field` names it")))]
pub async fn list(state: web::Data<AppState>, params: web::Query<ListParams>) -> Result<HttpResponse, ApiError> {
    let params = params.into_inner();
    let limit = params.limit.unwrap_or(50);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::invalid("limit", format!("limit must be from 1 to {MAX_LIMIT}")));
    }
    let offset = params.offset.unwrap_or(0);
    if offset > MAX_OFFSET {
        return Err(ApiError::invalid("offset", format!("offset must be from 0 to {MAX_OFFSET}")));
    }
    let since = params
        .since
        .as_deref()
        .map(|since| {
            time::OffsetDateTime::parse(since, &time::format_description::well_known::Rfc3339)
                .map_err(|_| ApiError::invalid("since", "since must be an RFC 3339 time, e.g. 2026-01-31T12:00:00Z"))
        })
        .transpose()?;
    let decision = params
        .decision
        .as_deref()
        .map(|d| Decision::parse(d).ok_or_else(|| ApiError::invalid("decision", "decision is accept or reject")))
        .transpose()?;
    let query = ListQuery {
        anchor: params.anchor.as_deref().map(|a| checked_id(a).map_err(|e| e.with_field("anchor"))).transpose()?,
        firm: params.firm.as_deref().map(|f| checked_id(f).map_err(|e| e.with_field("firm"))).transpose()?,
        decision,
        since,
        offset,
        limit,
    };
    let page = state.feedback.list(&query);
    Ok(HttpResponse::Ok().json(FeedbackPage { total: page.total, offset: query.offset, limit, feedback: page.records }))
}

#[utoipa::path(get, path = "/v1/feedback/{id}", tag = "feedback",
    params(("id" = String, Path, description = "feedback id (a UUID), as `POST /v1/feedback` returned it")),
    responses((status = 200, body = Record), (status = 404, description = "not_found: no live feedback with this id")))]
pub async fn get(state: web::Data<AppState>, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    state
        .feedback
        .get(&path)
        .map(|record| HttpResponse::Ok().json(record))
        .ok_or_else(|| ApiError::not_found(format!("no feedback with id `{}`", path.as_str())))
}

#[utoipa::path(delete, path = "/v1/feedback/{id}", tag = "feedback",
    params(("id" = String, Path, description = "feedback id (a UUID), as `POST /v1/feedback` returned it")),
    responses((status = 204, description = "deleted; the decision no longer applies"),
        (status = 404, description = "not_found: no live feedback with this id")),
    security(("bearer" = [])))]
pub async fn delete(state: web::Data<AppState>, path: web::Path<String>) -> Result<HttpResponse, ApiError> {
    let id = path.into_inner();
    let feedback = state.feedback.clone();
    let deleted = blocking({
        let id = id.clone();
        move || Ok(feedback.delete(&id, crate::ingest::now_rfc3339())?)
    })
    .await?;
    match deleted {
        Some(_) => Ok(HttpResponse::NoContent().finish()),
        None => Err(ApiError::not_found(format!("no feedback with id `{id}`"))),
    }
}

/// The firms a recommendation for `group` (anchors and locked members) and
/// `opportunity` must not propose, minus the group itself: a firm the caller
/// put at the table explicitly stays there.
pub fn rejected_for(state: &AppState, group: &[String], opportunity: Option<&str>) -> Vec<String> {
    state.feedback.rejected(group, opportunity).into_iter().filter(|firm| !group.contains(firm)).collect()
}

/// Adds `more` to a request's exclusions, sorted and without repeats, so that
/// the same exclusions always make the same cache key.
pub fn merge_exclusions(exclude: &mut Vec<String>, more: Vec<String>) {
    if more.is_empty() {
        return;
    }
    exclude.extend(more);
    exclude.sort_unstable();
    exclude.dedup();
}

/// What `GET /v1/admin/model` shows of the feedback: the live decisions and how
/// they act. They filter answers at serve time; fits do not learn from them yet.
pub fn summary(state: &AppState) -> Value {
    let count =
        |decision| state.feedback.list(&ListQuery { decision: Some(decision), limit: 0, ..Default::default() }).total;
    serde_json::json!({
        "decisions": state.feedback.len(),
        "accepted": count(Decision::Accept),
        "rejected": count(Decision::Reject),
        "effect": "rejected firms are left out of every answer they apply to, at once; anchor-scoped decisions are training pairs at the next fit (POST /v1/admin/train), see `feedback_learnt`",
    })
}
