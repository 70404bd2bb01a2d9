//! Known collaborations (ties) between firms: past consortia or projects whose
//! members worked together. They feed the tie signals and are validated here.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::firm::{FieldError, check_id};

const MAX_MEMBERS: usize = 500;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Collaboration {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Distinct member firm ids, sorted.
    pub members: Vec<String>,
}

/// Validates `{ "id", "title"?, "members": [ids] }`; whether the members exist is the
/// caller's check, since only the index knows.
pub fn validate_collaboration(value: &Value) -> Result<Collaboration, Vec<FieldError>> {
    let mut errors = Vec::new();
    let Some(object) = value.as_object() else {
        return Err(vec![FieldError::new("", "invalid_type", "a collaboration must be a JSON object")]);
    };
    for key in object.keys() {
        if !matches!(key.as_str(), "id" | "title" | "members") {
            errors.push(FieldError::new(key, "unknown_field", format!("unknown field `{key}`")));
        }
    }
    let id = match object.get("id").and_then(Value::as_str) {
        Some(id) => {
            if let Err(message) = check_id(id) {
                errors.push(FieldError::new("id", "invalid_id", format!("id {message}")));
            }
            id.to_string()
        }
        None => {
            errors.push(FieldError::new("id", "required", "id is required and must be a string"));
            String::new()
        }
    };
    let title = match object.get("title") {
        None | Some(Value::Null) => None,
        Some(Value::String(title)) if title.chars().count() <= 500 => Some(title.clone()),
        Some(_) => {
            errors.push(FieldError::new("title", "invalid_type", "title must be a string of at most 500 characters"));
            None
        }
    };
    let mut members = Vec::new();
    match object.get("members") {
        Some(Value::Array(items)) => {
            for (index, item) in items.iter().enumerate() {
                match item.as_str().map(|member| (member, check_id(member))) {
                    Some((member, Ok(()))) => members.push(member.to_string()),
                    _ => errors.push(FieldError::new(
                        format!("members[{index}]"),
                        "invalid_id",
                        "members must be firm ids",
                    )),
                }
            }
            members.sort();
            members.dedup();
            if members.len() < 2 || members.len() > MAX_MEMBERS {
                errors.push(FieldError::new(
                    "members",
                    "invalid_length",
                    format!("a collaboration needs 2 to {MAX_MEMBERS} distinct members"),
                ));
            }
        }
        _ => errors.push(FieldError::new("members", "required", "members is required: a list of firm ids")),
    }
    if errors.is_empty() { Ok(Collaboration { id, title, members }) } else { Err(errors) }
}
