//! The catalogue side of the benchmarks: CORDIS organisations and projects read
//! from a consortium directory and turned into klynge profiles and
//! collaborations, and fresh in-memory engines fitted on them (optionally with a
//! manager's decisions to learn from).

use std::io::BufRead;
use std::path::Path;
use std::sync::Arc;

use klynge_index::{FirmIndex, StoredFirm};
use klynge_models::model::ModelParams;
use klynge_models::{Collaboration, validate_collaboration, validate_profile};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::engine::Engine;

pub fn read_lines<T: for<'de> Deserialize<'de>>(path: &Path) -> anyhow::Result<Vec<T>> {
    let file = std::fs::File::open(path).map_err(|e| anyhow::anyhow!("cannot open {}: {e}", path.display()))?;
    std::io::BufReader::new(file)
        .lines()
        .enumerate()
        .filter(|(_, line)| line.as_ref().map_or(true, |l| !l.trim().is_empty()))
        .map(|(n, line)| serde_json::from_str(&line?).map_err(|e| anyhow::anyhow!("{}:{}: {e}", path.display(), n + 1)))
        .collect()
}

/// A CORDIS organisation as a klynge profile; optional fields that do not pass
/// validation (a NUTS code outside its country, say) are dropped, not the org.
pub fn org_profile(org: &Value) -> Option<Value> {
    let get = |key: &str| org.get(key).filter(|v| !v.is_null()).cloned();
    let mut profile = serde_json::Map::new();
    profile.insert("id".into(), get("id")?);
    profile.insert("name".into(), get("name")?);
    profile.insert("kind".into(), get("kind").unwrap_or(json!("other")));
    profile.insert("description".into(), get("description").unwrap_or(json!("")));
    if let Some(Value::Array(topics)) = get("topics") {
        profile.insert("tags".into(), Value::Array(topics.into_iter().take(100).collect()));
    }
    for (from, to) in [("country", "country"), ("nuts", "region"), ("city", "city"), ("sme", "sme"), ("url", "website")]
    {
        if let Some(value) = get(from) {
            profile.insert(to.into(), value);
        }
    }
    let mut value = Value::Object(profile);
    loop {
        match validate_profile(&value) {
            Ok(_) => return Some(value),
            Err(errors) => {
                let object = value.as_object_mut()?;
                let before = object.len();
                for error in errors {
                    let field = error.field.split('[').next().unwrap_or_default().to_string();
                    if !matches!(field.as_str(), "id" | "name") {
                        object.remove(&field);
                    }
                }
                if object.len() == before {
                    return None;
                }
            }
        }
    }
}

/// A CORDIS project as a klynge collaboration record; the call topic describes
/// the project as much as its title does, so the title carries both.
pub fn collaboration_record(project: &Value) -> Option<Value> {
    let title: String =
        [project.get("title")?.as_str()?, project.get("topic_title").and_then(Value::as_str).unwrap_or_default()]
            .iter()
            .filter(|part| !part.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(". ")
            .chars()
            .take(500)
            .collect();
    Some(json!({ "id": project.get("id")?, "title": title, "members": project.get("members")? }))
}

/// Loads a consortium catalogue directory into a fresh in-memory engine and fits it.
pub fn load_catalogue(dir: &Path) -> anyhow::Result<(Engine, Vec<Value>)> {
    let orgs: Vec<Value> = read_lines(&dir.join("orgs.jsonl"))?;
    let collaborations: Vec<Value> = read_lines(&dir.join("collaborations.jsonl"))?;
    engine_over(orgs, &collaborations)
}

pub(super) fn engine_over(orgs: Vec<Value>, collaborations: &[Value]) -> anyhow::Result<(Engine, Vec<Value>)> {
    engine_fitted(orgs, collaborations, None)
}

/// [`engine_over`] whose fit learns from `feedback`'s decisions.
pub(super) fn engine_with_feedback(
    orgs: Vec<Value>,
    collaborations: &[Value],
    feedback: Arc<crate::feedback::FeedbackStore>,
) -> anyhow::Result<Engine> {
    engine_fitted(orgs, collaborations, Some(feedback)).map(|(engine, _)| engine)
}

fn engine_fitted(
    orgs: Vec<Value>,
    collaborations: &[Value],
    feedback: Option<Arc<crate::feedback::FeedbackStore>>,
) -> anyhow::Result<(Engine, Vec<Value>)> {
    let updated_at = crate::ingest::now_rfc3339();
    let firms: Vec<StoredFirm> = orgs
        .iter()
        .filter_map(org_profile)
        .map(|profile| StoredFirm {
            firm: validate_profile(&profile).expect("checked"),
            raw: profile.to_string(),
            updated_at: updated_at.clone(),
        })
        .collect();
    let collaborations: Vec<Collaboration> = collaborations
        .iter()
        .filter_map(collaboration_record)
        .filter_map(|value| validate_collaboration(&value).ok())
        .collect();
    let index = FirmIndex::in_memory()?;
    index.upsert_firms(&firms)?;
    index.upsert_collaborations(&collaborations)?;
    let mut engine = Engine::new(Arc::new(index), None, ModelParams::default());
    if let Some(feedback) = feedback {
        engine = engine.with_feedback(feedback);
    }
    let started = std::time::Instant::now();
    engine.fit()?;
    eprintln!("model: {}", engine.model_info());
    eprintln!(
        "catalogue: {} profiles, {} collaborations; model fitted in {:.1} s",
        firms.len(),
        collaborations.len(),
        started.elapsed().as_secs_f64()
    );
    Ok((engine, orgs))
}

/// A catalogue directory's profiles (as JSON, before validation) and
/// collaboration records.
pub(super) fn catalogue_parts(dir: &Path) -> anyhow::Result<(Vec<Value>, Vec<Value>, Vec<Collaboration>)> {
    let orgs: Vec<Value> = read_lines(&dir.join("orgs.jsonl"))?;
    let profiles: Vec<Value> = orgs.iter().filter_map(org_profile).collect();
    let collaborations: Vec<Collaboration> = read_lines::<Value>(&dir.join("collaborations.jsonl"))?
        .iter()
        .filter_map(collaboration_record)
        .filter_map(|value| validate_collaboration(&value).ok())
        .collect();
    Ok((orgs, profiles, collaborations))
}

/// A fresh in-memory engine over these profiles and collaborations, fitted.
pub(super) fn fitted_engine(profiles: &[Value], collaborations: &[Collaboration]) -> anyhow::Result<Engine> {
    let updated_at = crate::ingest::now_rfc3339();
    let firms: Vec<StoredFirm> = profiles
        .iter()
        .map(|profile| StoredFirm {
            firm: validate_profile(profile).expect("checked"),
            raw: profile.to_string(),
            updated_at: updated_at.clone(),
        })
        .collect();
    let index = FirmIndex::in_memory()?;
    index.upsert_firms(&firms)?;
    index.upsert_collaborations(collaborations)?;
    let engine = Engine::new(Arc::new(index), None, ModelParams::default());
    engine.fit()?;
    Ok(engine)
}
