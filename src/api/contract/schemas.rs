//! The schemas of the contract: the error body and its codes, the value sets
//! the validation accepts (built from its own tables: ids, ISO countries, NUTS
//! codes, NACE codes, kinds, sizes, relations, value-chain stages), and the
//! bodies no handler declares on its own (profiles, collaborations,
//! shortlists, jobs).

use klynge_models::{Kind, SizeClass, nace};
use serde::Deserialize;
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
use utoipa::{PartialSchema, ToSchema};

use crate::error::ErrorCode;

/// Every error answer: `{"error": {"code", "message", "field"?, "details"?}}`.
#[derive(ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(ToSchema)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    /// For people; may change between versions.
    pub message: String,
    /// The offending input by its path in the body or its parameter name
    /// (`size.min`, `anchor`, `require.kinds.company`).
    pub field: Option<String>,
    /// Machine-readable specifics: `unknown_ids`, `reason`, `line`, `job_id`, or
    /// the per-field errors of a profile or a bulk load (a list).
    pub details: Option<serde_json::Value>,
}

/// The stable error codes, as [`ErrorCode`] declares them: the schema lists each
/// code with its status and meaning, so the document cannot name a code the
/// service does not send.
impl PartialSchema for ErrorCode {
    fn schema() -> RefOr<Schema> {
        let lines: Vec<String> = ErrorCode::ALL
            .iter()
            .map(|code| format!("- `{}` ({}): {}", code.as_str(), code.status().as_u16(), code.meaning()))
            .collect();
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(ErrorCode::ALL.iter().map(|code| code.as_str())))
            .description(Some(format!(
                "The stable error codes; callers branch on these, never on the message.\n\n{}",
                lines.join("\n")
            )))
            .into()
    }
}
impl ToSchema for ErrorCode {}

/// A firm (or collaboration) id.
pub struct FirmId;
pub const ID_PATTERN: &str = "^[A-Za-z0-9._:-]{1,128}$";

impl PartialSchema for FirmId {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(klynge_models::firm::MAX_ID_LEN))
            .pattern(Some(ID_PATTERN))
            .description(Some("1 to 128 letters, digits and . _ : -"))
            .examples([serde_json::json!("dk-novo-nordisk")])
            .into()
    }
}
impl ToSchema for FirmId {}

/// An ISO 3166-1 alpha-2 code (upper case here; the service also takes lower case).
pub struct CountryCode;

impl PartialSchema for CountryCode {
    fn schema() -> RefOr<Schema> {
        let codes: Vec<&str> = isocountry::CountryCode::iter().map(|code| code.alpha2()).collect();
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(codes))
            .description(Some("ISO 3166-1 alpha-2 country code"))
            .into()
    }
}
impl ToSchema for CountryCode {}

/// A NUTS code or prefix (`DK`, `DK04`, `FR101`), either case.
pub struct RegionCode;
pub const REGION_PATTERN: &str = "^[A-Za-z]{2}[A-Za-z0-9]{0,3}$";

impl PartialSchema for RegionCode {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(REGION_PATTERN))
            .description(Some("NUTS code or prefix: two letters, then up to three letters or digits"))
            .into()
    }
}
impl ToSchema for RegionCode {}

/// A NACE Rev. 2 code: section letter with or without the numeric code (`C`,
/// `C10`, `C10.51`), or the numeric code alone (`10.51`).
pub struct NaceCode;

impl PartialSchema for NaceCode {
    fn schema() -> RefOr<Schema> {
        let mut codes: Vec<String> = Vec::new();
        for code in nace::all_codes() {
            codes.push(code.to_string());
            if code.len() > 1 {
                codes.push(code[1..].to_string());
            }
        }
        codes.sort();
        codes.dedup();
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(codes))
            .description(Some("NACE Rev. 2 code or prefix (C10, C10.51 or 10.51); case-insensitive"))
            .into()
    }
}
impl ToSchema for NaceCode {}

fn string_enum(values: impl IntoIterator<Item = &'static str>, description: &str) -> RefOr<Schema> {
    ObjectBuilder::new().schema_type(Type::String).enum_values(Some(values)).description(Some(description)).into()
}

/// company | university | research | public | other
pub struct KindName;
impl PartialSchema for KindName {
    fn schema() -> RefOr<Schema> {
        string_enum(Kind::ALL.iter().map(|kind| kind.as_str()), "kind of organisation")
    }
}
impl ToSchema for KindName {}

/// micro | small | medium | large
pub struct SizeName;
impl PartialSchema for SizeName {
    fn schema() -> RefOr<Schema> {
        string_enum(SizeClass::ALL.iter().map(|size| size.as_str()), "EU size class")
    }
}
impl ToSchema for SizeName {}

/// supplier | customer | any: the side of the value chain partners are on.
pub struct RelationName;
impl PartialSchema for RelationName {
    fn schema() -> RefOr<Schema> {
        string_enum(["supplier", "customer", "any"], "side of the value chain")
    }
}
impl ToSchema for RelationName {}

/// A value-chain stage a network must cover.
pub struct StageName;
impl PartialSchema for StageName {
    fn schema() -> RefOr<Schema> {
        string_enum(crate::networks::STAGES, "value-chain stage")
    }
}
impl ToSchema for StageName {}

/// A non-empty list item of at most 300 characters (offers, needs, tags).
pub struct ShortText;
impl PartialSchema for ShortText {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .min_length(Some(1))
            .max_length(Some(300))
            .pattern(Some(r"\S"))
            .into()
    }
}
impl ToSchema for ShortText {}

/// One profile as `PUT /v1/firms/{id}` takes it (the id comes from the path; a
/// body `id` is accepted when it equals the path's). `POST /v1/firms` takes a
/// list of these with `id` required (`FirmProfile`). Unknown fields are refused.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProfileFields {
    #[schema(min_length = 1, max_length = 300, pattern = r"\S")]
    pub name: String,
    /// Left out: company.
    #[schema(value_type = Option<KindName>)]
    pub kind: Option<String>,
    #[schema(max_length = 20000)]
    pub description: Option<String>,
    #[schema(value_type = Option<Vec<ShortText>>, max_items = 100)]
    pub offers: Option<Vec<String>>,
    #[schema(value_type = Option<Vec<ShortText>>, max_items = 100)]
    pub needs: Option<Vec<String>>,
    #[schema(value_type = Option<Vec<ShortText>>, max_items = 100)]
    pub tags: Option<Vec<String>>,
    #[schema(value_type = Option<Vec<ShortText>>, max_items = 20)]
    pub languages: Option<Vec<String>>,
    #[schema(value_type = Option<Vec<NaceCode>>, max_items = 20)]
    pub sectors: Option<Vec<String>>,
    #[schema(value_type = Option<CountryCode>)]
    pub country: Option<String>,
    /// Must lie in `country` when both are given.
    #[schema(value_type = Option<RegionCode>)]
    pub region: Option<String>,
    #[schema(max_length = 300)]
    pub city: Option<String>,
    #[schema(max_length = 300)]
    pub website: Option<String>,
    pub location: Option<Location>,
    #[schema(minimum = 0, maximum = 10_000_000)]
    pub employees: Option<u64>,
    /// Left out: from `employees`.
    #[schema(value_type = Option<SizeName>)]
    pub size: Option<String>,
    pub sme: Option<bool>,
    /// Language of the texts: en (default) or da.
    #[schema(value_type = Option<String>, pattern = "^(en|da)$")]
    pub language: Option<String>,
    /// Accepted so a profile read back can be sent again; ignored: the service
    /// sets it.
    pub updated_at: Option<String>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Location {
    #[schema(minimum = -90.0, maximum = 90.0)]
    pub lat: f64,
    #[schema(minimum = -180.0, maximum = 180.0)]
    pub lon: f64,
}

/// A stored profile: the fields as sent, plus `updated_at` (and `ties` on `GET`).
#[derive(ToSchema)]
pub struct StoredProfile {
    #[schema(value_type = FirmId)]
    pub id: String,
    pub name: String,
    pub updated_at: String,
    /// Known collaborations: `{collaboration, title, partners}`.
    #[schema(value_type = Option<Vec<Object>>)]
    pub ties: Option<Vec<serde_json::Value>>,
}

/// A collaboration (a past consortium, a known tie) between firms.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CollaborationBody {
    #[schema(value_type = FirmId)]
    pub id: String,
    #[schema(max_length = 500)]
    pub title: Option<String>,
    /// 2 to 500 distinct firm ids, each with a profile.
    #[schema(value_type = Vec<FirmId>, min_items = 2, max_items = 500)]
    pub members: Vec<String>,
}

/// Ranked firms with per-signal contributions and reasons.
#[derive(ToSchema)]
pub struct ShortlistResponse {
    pub generation: u64,
    pub model_generation: u64,
    pub candidates_scored: u64,
    /// Best first; each has at least `id`, `name` and `score`.
    #[schema(value_type = Vec<Object>)]
    pub partners: Vec<serde_json::Value>,
    /// The firm the partners are for (`GET /v1/firms/{id}/partners`).
    #[schema(value_type = Option<FirmId>)]
    pub firm: Option<String>,
}

/// A refresh or training job.
#[derive(ToSchema)]
pub struct JobView {
    pub id: String,
    pub kind: String,
    pub status: String,
    #[schema(value_type = Object)]
    pub progress: serde_json::Value,
}
