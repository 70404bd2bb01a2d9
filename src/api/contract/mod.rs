//! The parts of the OpenAPI contract that no single handler owns: the error
//! body and its stable codes, the statuses every operation shares (the
//! query-string guard, bearer keys, the rate limit, body limits), the bearer
//! scheme per operation, unique operation ids, the links a stateful client
//! follows (a written firm → its profile, partners, network; a job → its
//! status; a feedback decision → read it, delete it), and the value sets the
//! validation accepts (`schemas`: ids, ISO countries, NUTS codes, NACE codes,
//! kinds, sizes, value-chain stages), built from the same tables the validation
//! uses so the two cannot drift. `scripts/schemathesis.sh` checks the service
//! against the result.

mod schemas;

use std::borrow::Cow;

use klynge_models::Kind;
use utoipa::openapi::link::Link;
use utoipa::openapi::path::Operation;
use utoipa::openapi::response::Response;
use utoipa::openapi::schema::{AllOfBuilder, AnyOfBuilder, ArrayBuilder, ObjectBuilder, Schema, Type};
use utoipa::openapi::security::SecurityRequirement;
use utoipa::openapi::{Content, OpenApi, Ref, RefOr};
use utoipa::{Modify, PartialSchema, ToSchema};

use crate::error::ErrorCode;

pub use schemas::{
    CollaborationBody, CountryCode, ErrorBody, ErrorDetail, FirmId, ID_PATTERN, JobView, KindName, Location, NaceCode,
    ProfileFields, REGION_PATTERN, RegionCode, RelationName, ShortText, ShortlistResponse, SizeName, StageName,
    StoredProfile,
};

/// The description of an error status: each code it can carry, with its meaning.
fn describe(codes: &[ErrorCode]) -> String {
    codes.iter().map(|code| format!("{}: {}", code.as_str(), code.meaning())).collect::<Vec<_>>().join("; ")
}

/// Adds what the handlers' annotations leave to the whole API (see the module
/// documentation).
pub struct Contract;

/// Operation ids by method and path: unique (the handlers' function names are
/// not: three are `get`), and the names links refer to.
const OPERATION_IDS: &[(&str, &str, &str)] = &[
    ("get", "/v1/firms", "searchFirms"),
    ("post", "/v1/firms", "upsertFirms"),
    ("get", "/v1/firms/{id}", "getFirm"),
    ("put", "/v1/firms/{id}", "putFirm"),
    ("delete", "/v1/firms/{id}", "deleteFirm"),
    ("get", "/v1/firms/{id}/partners", "getPartners"),
    ("get", "/v1/firms/{id}/network", "getFirmNetwork"),
    ("post", "/v1/shortlists", "createShortlist"),
    ("post", "/v1/networks", "createNetwork"),
    ("post", "/v1/collaborations", "createCollaboration"),
    ("get", "/v1/collaborations/{id}", "getCollaboration"),
    ("post", "/v1/admin/train", "train"),
    ("get", "/v1/admin/model", "getModel"),
    ("post", "/v1/admin/refresh", "startRefresh"),
    ("get", "/v1/admin/jobs/{id}", "getJob"),
    ("post", "/v1/feedback", "createFeedback"),
    ("get", "/v1/feedback", "listFeedback"),
    ("get", "/v1/feedback/{id}", "getFeedback"),
    ("delete", "/v1/feedback/{id}", "deleteFeedback"),
    ("get", "/health/live", "live"),
    ("get", "/health/ready", "ready"),
    ("get", "/metrics", "metrics"),
];

/// (method, path, status) of a response → links from it: (name, operation id),
/// and where the target's `id` parameter is taken from.
type LinkSpec = (&'static str, &'static str, &'static str, &'static [(&'static str, &'static str)], &'static str);

const LINKS: &[LinkSpec] = &[
    (
        "put",
        "/v1/firms/{id}",
        "200",
        &[
            ("GetFirm", "getFirm"),
            ("GetPartners", "getPartners"),
            ("GetFirmNetwork", "getFirmNetwork"),
            ("DeleteFirm", "deleteFirm"),
        ],
        "$response.body#/id",
    ),
    (
        "get",
        "/v1/firms",
        "200",
        &[("GetFirm", "getFirm"), ("GetPartners", "getPartners"), ("GetFirmNetwork", "getFirmNetwork")],
        "$response.body#/hits/0/id",
    ),
    ("post", "/v1/collaborations", "201", &[("GetCollaboration", "getCollaboration")], "$response.body#/id"),
    ("post", "/v1/admin/refresh", "202", &[("GetJob", "getJob")], "$response.body#/id"),
    ("post", "/v1/admin/train", "202", &[("GetJob", "getJob")], "$response.body#/id"),
    (
        "post",
        "/v1/feedback",
        "201",
        &[("GetFeedback", "getFeedback"), ("DeleteFeedback", "deleteFeedback")],
        "$response.body#/id",
    ),
    ("get", "/v1/feedback", "200", &[("GetFeedback", "getFeedback")], "$response.body#/feedback/0/id"),
];

/// Paths whose `{id}` is a firm or collaboration id (the FirmId schema; a
/// malformed one answers 422). Job and feedback ids are the service's own
/// UUIDs: an id it never issued is simply not found (404).
fn firm_id_path(path: &str) -> bool {
    path.contains("{id}") && !path.starts_with("/v1/admin/") && !path.starts_with("/v1/feedback/")
}

/// Error codes one operation can answer beyond those all share (added in
/// [`Contract::modify`]; the status is the code's): a recommendation answers 503
/// until the first model is fitted; a second training job is refused while one runs.
const EXTRA_CODES: &[(&str, &str, &[ErrorCode])] = &[
    ("get", "/v1/firms/{id}/partners", &[ErrorCode::Unavailable]),
    ("get", "/v1/firms/{id}/network", &[ErrorCode::Unavailable]),
    ("post", "/v1/shortlists", &[ErrorCode::Unavailable]),
    ("post", "/v1/networks", &[ErrorCode::Unavailable]),
    ("get", "/v1/admin/model", &[ErrorCode::Unavailable]),
    ("post", "/v1/admin/refresh", &[ErrorCode::RefreshRunning]),
    ("post", "/v1/admin/train", &[ErrorCode::TrainRunning]),
];

/// Adds a response for each status among `codes` that the operation does not
/// document yet, describing every code it can carry.
fn add_error_statuses(responses: &mut std::collections::BTreeMap<String, RefOr<Response>>, codes: &[ErrorCode]) {
    let mut statuses: Vec<u16> = codes.iter().map(|code| code.status().as_u16()).collect();
    statuses.dedup();
    for status in statuses {
        let same: Vec<ErrorCode> = codes.iter().copied().filter(|code| code.status().as_u16() == status).collect();
        responses.entry(status.to_string()).or_insert_with(|| error_response(&describe(&same)));
    }
}

/// Success bodies by (method, path, status) → schema component.
const SUCCESS_SCHEMAS: &[(&str, &str, &str, &str)] = &[
    ("put", "/v1/firms/{id}", "200", "StoredProfile"),
    ("get", "/v1/firms/{id}", "200", "StoredProfile"),
    ("post", "/v1/collaborations", "201", "CollaborationBody"),
    ("get", "/v1/collaborations/{id}", "200", "CollaborationBody"),
    ("get", "/v1/firms/{id}/partners", "200", "ShortlistResponse"),
    ("post", "/v1/shortlists", "200", "ShortlistResponse"),
    ("post", "/v1/admin/refresh", "202", "JobView"),
    ("post", "/v1/admin/train", "202", "JobView"),
    ("get", "/v1/admin/jobs/{id}", "200", "JobView"),
];

fn json_content(schema: impl Into<RefOr<Schema>>) -> Content {
    Content::new(Some(schema.into()))
}

fn error_response(description: &str) -> RefOr<Response> {
    let mut response = Response::new(description);
    response.content.insert("application/json".to_string(), Content::new(Some(Ref::from_schema_name("ErrorBody"))));
    RefOr::T(response)
}

fn operations(item: &mut utoipa::openapi::path::PathItem) -> Vec<(&'static str, &mut Operation)> {
    [
        ("get", item.get.as_mut()),
        ("put", item.put.as_mut()),
        ("post", item.post.as_mut()),
        ("delete", item.delete.as_mut()),
        ("patch", item.patch.as_mut()),
        ("head", item.head.as_mut()),
        ("options", item.options.as_mut()),
    ]
    .into_iter()
    .filter_map(|(method, operation)| operation.map(|operation| (method, operation)))
    .collect()
}

impl Modify for Contract {
    fn modify(&self, openapi: &mut OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let named: [(Cow<'static, str>, RefOr<Schema>); 11] = [
            (ErrorBody::name(), ErrorBody::schema()),
            (ErrorDetail::name(), ErrorDetail::schema()),
            (ErrorCode::name(), ErrorCode::schema()),
            (FirmId::name(), FirmId::schema()),
            (CountryCode::name(), CountryCode::schema()),
            (RegionCode::name(), RegionCode::schema()),
            (NaceCode::name(), NaceCode::schema()),
            (KindName::name(), KindName::schema()),
            (SizeName::name(), SizeName::schema()),
            (StageName::name(), StageName::schema()),
            (RelationName::name(), RelationName::schema()),
        ];
        for (name, schema) in named {
            components.schemas.entry(name.into_owned()).or_insert(schema);
        }
        for (name, schema) in [
            (ShortText::name(), ShortText::schema()),
            (Location::name(), Location::schema()),
            (StoredProfile::name(), StoredProfile::schema()),
            (ProfileFields::name(), ProfileFields::schema()),
            (CollaborationBody::name(), CollaborationBody::schema()),
            (ShortlistResponse::name(), ShortlistResponse::schema()),
            (JobView::name(), JobView::schema()),
        ] {
            components.schemas.entry(name.into_owned()).or_insert(schema);
        }
        // A profile in a bulk load: the same fields with `id` required.
        if let Some(RefOr::T(Schema::Object(fields))) = components.schemas.get("ProfileFields") {
            let mut profile = fields.clone();
            profile.properties.insert("id".to_string(), Ref::from_schema_name("FirmId").into());
            profile.required.insert(0, "id".to_string());
            components.schemas.insert("FirmProfile".to_string(), RefOr::T(Schema::Object(profile)));
        }

        // `require.kinds`: at most 6 rules, named by kind (or `academic`).
        if let Some(RefOr::T(Schema::Object(require))) = components.schemas.get_mut("Requirements")
            && let Some(RefOr::T(Schema::Object(kinds))) = require.properties.get_mut("kinds")
        {
            let names = Kind::ALL.iter().map(|kind| kind.as_str()).chain(["academic"]);
            kinds.max_properties = Some(6);
            kinds.property_names = Some(Box::new(Schema::Object(
                ObjectBuilder::new().schema_type(Type::String).enum_values(Some(names)).build(),
            )));
        }
        // A network needs an opportunity text, anchors, or both.
        if let Some(RefOr::T(Schema::Object(network))) = components.schemas.get("NetworkRequestBody") {
            let with_text = ObjectBuilder::new()
                .property("opportunity", ObjectBuilder::new().schema_type(Type::String).pattern(Some(r"\S")))
                .required("opportunity");
            let with_anchor = ObjectBuilder::new()
                .property("anchor", ArrayBuilder::new().items(Ref::from_schema_name("FirmId")).min_items(Some(1)))
                .required("anchor");
            let either = AnyOfBuilder::new().item(with_text).item(with_anchor);
            let body = AllOfBuilder::new().item(Schema::Object(network.clone())).item(either);
            components.schemas.insert("NetworkRequestBody".to_string(), body.into());
        }

        // Feedback needs the anchor (or the opportunity) it is about, unless it
        // applies everywhere.
        if let Some(RefOr::T(Schema::Object(feedback))) = components.schemas.get("FeedbackBody") {
            let with_anchor =
                ObjectBuilder::new().property("anchor", Ref::from_schema_name("FirmId")).required("anchor");
            let with_text = ObjectBuilder::new()
                .property("opportunity", ObjectBuilder::new().schema_type(Type::String).pattern(Some(r"\S")))
                .required("opportunity");
            let everywhere = ObjectBuilder::new()
                .property("scope", ObjectBuilder::new().schema_type(Type::String).enum_values(Some(["everywhere"])))
                .required("scope");
            let either = AnyOfBuilder::new().item(with_anchor).item(with_text).item(everywhere);
            let body = AllOfBuilder::new().item(Schema::Object(feedback.clone())).item(either);
            components.schemas.insert("FeedbackBody".to_string(), body.into());
        }

        for (path, item) in openapi.paths.paths.iter_mut() {
            let api = path.starts_with("/v1/");
            for (method, operation) in operations(item) {
                if let Some((_, _, id)) = OPERATION_IDS.iter().find(|(m, p, _)| *m == method && p == path) {
                    operation.operation_id = Some(id.to_string());
                } else {
                    // An operation added without an entry above still gets a unique id.
                    let slug: String = path.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect();
                    operation.operation_id = Some(format!("{method}{slug}"));
                }
                // Request bodies whose schema is not a Rust type of the handler.
                let body_schema: Option<RefOr<Schema>> = match (method, path.as_str()) {
                    ("post", "/v1/firms") => {
                        Some(ArrayBuilder::new().items(Ref::from_schema_name("FirmProfile")).min_items(Some(1)).into())
                    }
                    ("put", "/v1/firms/{id}") => Some(Ref::from_schema_name("ProfileFields").into()),
                    ("post", "/v1/collaborations") => Some(Ref::from_schema_name("CollaborationBody").into()),
                    _ => None,
                };
                if let (Some(schema), Some(body)) = (body_schema, operation.request_body.as_mut()) {
                    body.content.clear();
                    body.content.insert("application/json".to_string(), json_content(schema));
                    body.required = Some(utoipa::openapi::Required::True);
                }
                let responses = &mut operation.responses.responses;
                for (m, p, status, schema) in SUCCESS_SCHEMAS {
                    if *m == method
                        && p == path
                        && let Some(RefOr::T(response)) = responses.get_mut(*status)
                    {
                        response
                            .content
                            .insert("application/json".to_string(), json_content(Ref::from_schema_name(*schema)));
                    }
                }
                for (m, p, codes) in EXTRA_CODES {
                    if *m == method && p == path {
                        add_error_statuses(responses, codes);
                    }
                }
                let mut shared = vec![ErrorCode::BadQuery, ErrorCode::QueryTooLong];
                if api || path == "/metrics" {
                    shared.extend([ErrorCode::Unauthorized, ErrorCode::Forbidden, ErrorCode::WritesDisabled]);
                }
                if api {
                    shared.push(ErrorCode::RateLimited);
                }
                if operation.request_body.is_some() {
                    shared.extend([
                        ErrorCode::MalformedBody,
                        ErrorCode::PayloadTooLarge,
                        ErrorCode::UnsupportedMediaType,
                    ]);
                }
                shared.sort_by_key(|code| code.status().as_u16());
                add_error_statuses(responses, &shared);
                if firm_id_path(path) {
                    responses.entry("422".to_string()).or_insert_with(|| {
                        error_response(&format!(
                            "{}: the id is not 1 to 128 letters, digits and . _ : -",
                            ErrorCode::ValidationFailed
                        ))
                    });
                }
                for (status, response) in responses.iter_mut() {
                    if let RefOr::T(response) = response
                        && !status.starts_with('2')
                        && !status.starts_with('3')
                        && response.content.is_empty()
                    {
                        response.content.insert(
                            "application/json".to_string(),
                            Content::new(Some(Ref::from_schema_name("ErrorBody"))),
                        );
                    }
                }
                if api && operation.security.is_none() {
                    // Reads are open unless `auth.read_keys` is set: the key is optional.
                    operation.security = Some(vec![
                        SecurityRequirement::default(),
                        SecurityRequirement::new("bearer", Vec::<String>::new()),
                    ]);
                }
                if firm_id_path(path) {
                    for parameter in operation.parameters.iter_mut().flatten() {
                        if parameter.name == "id" {
                            parameter.schema = Some(Ref::from_schema_name("FirmId").into());
                        }
                    }
                }
            }
        }
        for (method, path, status, links, from) in LINKS {
            let Some(item) = openapi.paths.paths.get_mut(*path) else { continue };
            for (m, operation) in operations(item) {
                if m != *method {
                    continue;
                }
                if let Some(RefOr::T(response)) = operation.responses.responses.get_mut(*status) {
                    for (name, operation_id) in links.iter() {
                        let mut link = Link::builder().parameter("id", *from).build();
                        // utoipa 5.5 writes `Link::operation_id` as `operation_id`, which
                        // no client reads; the extensions map is written as given.
                        link.extensions =
                            Some([("operationId", serde_json::json!(operation_id))].into_iter().collect());
                        response.links.insert(name.to_string(), RefOr::T(link));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use klynge_models::nace;

    use super::*;

    fn spec() -> serde_json::Value {
        use utoipa::OpenApi as _;
        serde_json::to_value(crate::api::docs::ApiDoc::openapi()).unwrap()
    }

    #[test]
    fn operation_ids_are_unique_and_links_name_real_operations() {
        let spec = spec();
        let mut ids = Vec::new();
        for (_, item) in spec["paths"].as_object().unwrap() {
            for (_, operation) in item.as_object().unwrap() {
                if let Some(id) = operation.get("operationId").and_then(|id| id.as_str()) {
                    ids.push(id.to_string());
                }
            }
        }
        let count = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), count, "duplicate operation ids: {ids:?}");
        for (method, path, status, links, _) in LINKS {
            for (name, target) in links.iter() {
                assert!(ids.iter().any(|id| id == target), "link to unknown operation {target}");
                let link = &spec["paths"][path][method]["responses"][status]["links"][name];
                assert_eq!(link["operationId"], *target, "{method} {path} {status} {name}: {link}");
            }
        }
    }

    #[test]
    fn every_error_status_has_the_error_body() {
        let spec = spec();
        for (path, item) in spec["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                for (status, response) in operation["responses"].as_object().unwrap() {
                    // Readiness answers 503 with its own state body, not an error.
                    let readiness = path == "/health/ready" && status == "503";
                    if (status.starts_with('4') || status.starts_with('5')) && !readiness {
                        assert_eq!(
                            response["content"]["application/json"]["schema"]["$ref"], "#/components/schemas/ErrorBody",
                            "{method} {path} {status}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn schemas_accept_what_the_validation_accepts() {
        let id = regex::Regex::new(ID_PATTERN).unwrap();
        let region = regex::Regex::new(REGION_PATTERN).unwrap();
        for text in ["a", "dk-123", "x.y_z:1", &"a".repeat(128), &"a".repeat(129), "", "a b", "é", "a/b"] {
            assert_eq!(id.is_match(text), klynge_models::check_id(text).is_ok(), "id {text:?}");
        }
        for text in ["DK", "dk04", "FR101", "D", "DK0401", "1K", "DKé", "D-1", "EL30"] {
            assert_eq!(region.is_match(text), klynge_models::normalise_region(text).is_some(), "region {text:?}");
        }
        let RefOr::T(Schema::Object(nace_schema)) = NaceCode::schema() else { panic!("an object schema") };
        let codes = nace_schema.enum_values.unwrap();
        assert!(codes.len() > 1000, "{} NACE codes", codes.len());
        for code in &codes {
            assert!(nace::normalise(code.as_str().unwrap()).is_some(), "{code}");
        }
        let RefOr::T(Schema::Object(countries)) = CountryCode::schema() else { panic!("an object schema") };
        for code in countries.enum_values.unwrap() {
            assert!(klynge_models::normalise_country(code.as_str().unwrap()).is_some(), "{code}");
        }
    }
}
