//! The one error type of the HTTP API and the one table of its codes. Every
//! failure a caller can cause maps to a 4xx with a stable machine `code`; only
//! faults of the service itself become a 500, and those are logged with their
//! cause while the caller sees a generic text.
//! Body: `{"error": {"code", "message", "field"?, "details"?}}`.
//!
//! [`ErrorCode`] is the only place a code, its HTTP status and its meaning are
//! written: handlers name a variant, the OpenAPI document (`api::contract`) is
//! built from [`ErrorCode::ALL`], so the two cannot drift. The use-cases'
//! errors become API errors here, in the `From` conversions at the end, rather
//! than in each handler.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use serde::Serialize;
use serde_json::{Value, json};

use crate::engine::EngineError;
use crate::feedback::FeedbackError;
use crate::ingest::ParseError;
use crate::networks::NetworkError;

/// Declares [`ErrorCode`] from one table: variant, wire name, status, meaning.
macro_rules! error_codes {
    ($($variant:ident => $code:literal, $status:ident, $meaning:literal;)+) => {
        /// The stable error codes; callers branch on these, never on the message.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ErrorCode {
            $(#[doc = $meaning] $variant,)+
        }

        impl ErrorCode {
            /// Every code, in the order of the table.
            pub const ALL: &'static [ErrorCode] = &[$(ErrorCode::$variant),+];

            /// The snake_case name on the wire.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $code,)+
                }
            }

            /// The one HTTP status this code is answered with.
            pub const fn status(self) -> StatusCode {
                match self {
                    $(ErrorCode::$variant => StatusCode::$status,)+
                }
            }

            /// What the code means, for the OpenAPI document.
            pub const fn meaning(self) -> &'static str {
                match self {
                    $(ErrorCode::$variant => $meaning,)+
                }
            }
        }
    };
}

error_codes! {
    BadQuery => "bad_query", BAD_REQUEST,
        "the query string is not UTF-8 once decoded, or a parameter is unknown or of the wrong type";
    BadPath => "bad_path", BAD_REQUEST, "a path segment cannot be read";
    BadBody => "bad_body", BAD_REQUEST, "the body could not be read";
    MalformedBody => "malformed_body", BAD_REQUEST, "the body is not well-formed JSON, NDJSON or CSV";
    Unauthorized => "unauthorized", UNAUTHORIZED, "no key was presented where one is needed";
    Forbidden => "forbidden", FORBIDDEN, "the key may not do this";
    WritesDisabled => "writes_disabled", FORBIDDEN, "no write key is configured, so writes are refused";
    NotFound => "not_found", NOT_FOUND, "no such firm, collaboration, feedback, job or route";
    RefreshRunning => "refresh_running", CONFLICT, "a refresh is already running (`details.job_id`)";
    TrainRunning => "train_running", CONFLICT, "a training job is already running (`details.job_id`)";
    PayloadTooLarge => "payload_too_large", PAYLOAD_TOO_LARGE, "the body is over `server.max_body_bytes`";
    QueryTooLong => "query_too_long", URI_TOO_LONG, "the query string is over 8 KiB";
    UnsupportedMediaType => "unsupported_media_type", UNSUPPORTED_MEDIA_TYPE,
        "the body's content type is not accepted";
    ValidationFailed => "validation_failed", UNPROCESSABLE_ENTITY,
        "a value is invalid, or names ids without a profile, or the constraints cannot be met";
    RateLimited => "rate_limited", TOO_MANY_REQUESTS, "over the per-key rate limit; see `Retry-After`";
    Unavailable => "unavailable", SERVICE_UNAVAILABLE, "no model is fitted yet; retry shortly";
    Internal => "internal", INTERNAL_SERVER_ERROR, "a fault of the service; the message may carry the request id";
}

impl Serialize for ErrorCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub field: Option<String>,
    pub details: Option<Value>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorFields<'a>,
}

#[derive(Serialize)]
struct ErrorFields<'a> {
    code: ErrorCode,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<&'a Value>,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError { code, message: message.into(), field: None, details: None }
    }

    /// The HTTP status, fixed by the code.
    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    pub fn with_field(mut self, field: impl Into<String>) -> ApiError {
        self.field = Some(field.into());
        self
    }

    pub fn with_details(mut self, details: Value) -> ApiError {
        self.details = Some(details);
        self
    }

    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::NotFound, message)
    }

    /// 400: the body is not well-formed.
    pub fn malformed(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::MalformedBody, message)
    }

    /// 422 for one field.
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::ValidationFailed, message).with_field(field)
    }

    /// A fault of the service, not the caller: logged in full, answered generically.
    pub fn internal(cause: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %cause, "internal error");
        ApiError::new(ErrorCode::Internal, "internal error; see the service log")
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status().as_u16(), self.code, self.message)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status()
    }

    fn error_response(&self) -> HttpResponse {
        HttpResponse::build(self.status()).json(ErrorBody {
            error: ErrorFields {
                code: self.code,
                message: &self.message,
                field: self.field.as_deref(),
                details: self.details.as_ref(),
            },
        })
    }
}

impl From<klynge_index::IndexError> for ApiError {
    fn from(error: klynge_index::IndexError) -> ApiError {
        ApiError::internal(error)
    }
}

impl From<tokio::task::JoinError> for ApiError {
    fn from(error: tokio::task::JoinError) -> ApiError {
        ApiError::internal(error)
    }
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> ApiError {
        match error {
            EngineError::UnknownFirms(ids) => ApiError::invalid("anchor", format!("{} ids have no profile", ids.len()))
                .with_details(json!({ "unknown_ids": ids })),
            EngineError::NoModel => ApiError::new(ErrorCode::Unavailable, "the model is not fitted yet; retry shortly"),
            other @ (EngineError::Index(_) | EngineError::Model(_)) => ApiError::internal(other),
        }
    }
}

impl From<NetworkError> for ApiError {
    fn from(error: NetworkError) -> ApiError {
        match error {
            NetworkError::Engine(error) => error.into(),
            NetworkError::UnknownFirms { field, ids } => {
                ApiError::invalid(field, format!("{} ids in `{field}` have no profile", ids.len()))
                    .with_details(json!({ "unknown_ids": ids }))
            }
            NetworkError::Unsatisfiable(reason) => {
                ApiError::invalid("require", reason.clone()).with_details(json!({ "reason": reason }))
            }
        }
    }
}

/// The feedback log failing to write is the service's fault.
impl From<FeedbackError> for ApiError {
    fn from(error: FeedbackError) -> ApiError {
        ApiError::internal(error)
    }
}

/// A bulk body that cannot be read as its format (400, with the line when known).
impl From<ParseError> for ApiError {
    fn from(error: ParseError) -> ApiError {
        let api = ApiError::malformed(error.message);
        match error.line {
            Some(line) => api.with_details(json!({ "line": line })),
            None => api,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_snake_case_and_errors_only() {
        let mut names: Vec<&str> = ErrorCode::ALL.iter().map(|code| code.as_str()).collect();
        for name in &names {
            assert!(name.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'), "{name}");
        }
        let count = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), count, "a code is listed twice");
        for code in ErrorCode::ALL {
            assert!(code.status().is_client_error() || code.status().is_server_error(), "{code}");
        }
    }

    #[test]
    fn the_body_carries_the_code_and_the_status_follows_it() {
        let error = ApiError::invalid("k", "k must be from 1 to 200");
        let response = error.error_response();
        assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let body = serde_json::to_value(ErrorBody {
            error: ErrorFields { code: error.code, message: &error.message, field: Some("k"), details: None },
        })
        .unwrap();
        assert_eq!(
            body,
            json!({"error": {"code": "validation_failed", "message": "k must be from 1 to 200", "field": "k"}})
        );
    }
}
