//! The nightly batch refresh: every firm's top-k partners (and, when asked, the
//! network around it) recomputed with the current model (refitted first when
//! profiles changed), written under the model's generation and switched in at once.
//!
//! On disk (`<data dir>/refresh/`) a run works in `work-<generation>/`, one file
//! per chunk of firms, each written to a temporary name and renamed when whole:
//! a run killed halfway leaves only complete chunks, and a rerun on the same
//! generation skips them. Scoring is deterministic for a model and an index, so
//! a resumed run ends with the same bytes as an uninterrupted one. When every
//! chunk is done they are joined into `partners-<generation>.jsonl`, published
//! to Redis when one is configured (a hash per generation, then the pointer
//! `<prefix>:refresh:current`), and only then is `CURRENT` renamed to point at
//! them; a failure anywhere before leaves the previous results serving. A run
//! with networks names its files `<generation>-networks` instead, so it never
//! resumes from, or counts as fresh, a run without them (and the reverse).

use std::fs;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use klynge_models::model::FittedModel;
use rayon::prelude::*;
use serde::Serialize;

use crate::engine::{Engine, Serving, ShortlistRequest};
use crate::networks::{NetworkError, NetworkRequest, NetworkResponse};
pub use crate::precomputed::{NetworkLine, PartnerLine, Precomputed, PrecomputedNetwork, ScoredId, model_key};

/// Firms per checkpoint: small enough that a kill loses seconds of work, large
/// enough that the rayon pool stays busy between checkpoints.
pub const CHUNK: usize = 1_000;

#[derive(Debug, Clone)]
pub struct RefreshOptions {
    pub k: usize,
    /// `redis://…` to publish the results to; `None` keeps them on disk only.
    pub redis_url: Option<String>,
    pub key_prefix: String,
    pub export: Option<PathBuf>,
    /// Firms per checkpoint ([`CHUNK`]).
    pub chunk: usize,
    /// Also assemble the network around every firm (several times the cost of
    /// its partners alone).
    pub networks: bool,
}

impl RefreshOptions {
    /// The name a run's files carry: the model's key (its generation, and the
    /// digest of the decisions it learnt from), marked when it has networks.
    fn stem(&self, model: &FittedModel) -> String {
        let key = model_key(model);
        if self.networks { format!("{key}-networks") } else { key }
    }
}

/// Shared with whoever watches the run (the job API, a progress bar, metrics).
#[derive(Debug, Default)]
pub struct Progress {
    /// `fitting`, `scoring`, `publishing` or `done`; empty before the run starts.
    pub phase: std::sync::Mutex<&'static str>,
    /// When scoring started, for the rate: fitting time is not scoring time.
    scoring_since: std::sync::OnceLock<Instant>,
    pub total: AtomicU64,
    pub done: AtomicU64,
    /// Firms whose partners came from an earlier, interrupted run.
    pub resumed: AtomicU64,
}

#[derive(Debug, Clone, Serialize)]
pub struct RefreshOutcome {
    pub generation: u64,
    pub firms: usize,
    pub resumed: usize,
    pub results: Option<PathBuf>,
    pub already_fresh: bool,
    pub seconds: f64,
}

impl Progress {
    pub fn set_phase(&self, phase: &'static str) {
        if phase == "scoring" {
            let _ = self.scoring_since.set(Instant::now());
        }
        *self.phase.lock().unwrap_or_else(|p| p.into_inner()) = phase;
    }

    pub fn phase(&self) -> &'static str {
        *self.phase.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Serving what a refresh left behind that needs the network assembly: here,
/// not in the engine, so the engine does not depend on the networks built on it.
impl Engine {
    /// The network around `id` from the last batch refresh, explained, when that
    /// refresh computed networks on the index and model serving now and none of
    /// its members is in `exclude` (a network that lost a member is rebuilt live,
    /// so it never falls under its minimum size).
    pub fn precomputed_network(&self, id: &str, exclude: &[String]) -> Option<Result<NetworkResponse, NetworkError>> {
        let Serving { model: Some(model), precomputed: Some(precomputed) } = self.serving() else {
            return None;
        };
        if !precomputed.serves(&model, self.index().generation()) {
            return None;
        }
        let network = precomputed.network(model.position(id)?)?;
        if network.members.iter().any(|&m| exclude.iter().any(|id| id == model.id(m))) {
            return None;
        }
        let request = NetworkRequest::around(id);
        Some(self.explain_network(&model, &request, &network.members, network.score, network.breakdown.clone()))
    }
}

/// Where the refresh keeps its results: `<data dir>/refresh`.
pub fn refresh_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("refresh")
}

/// Runs a refresh to the end (blocking, uses every core) and switches `engine`
/// to the new model and results. Returns at once for an empty catalogue.
pub fn run(
    engine: &Engine,
    dir: &Path,
    options: &RefreshOptions,
    progress: &Progress,
) -> anyhow::Result<RefreshOutcome> {
    let started = Instant::now();
    progress.set_phase("fitting");
    let Some(model) = engine.fit_detached()? else {
        progress.set_phase("done");
        return Ok(RefreshOutcome {
            generation: engine.index().generation(),
            firms: 0,
            resumed: 0,
            results: None,
            already_fresh: true,
            seconds: started.elapsed().as_secs_f64(),
        });
    };
    let generation = model.generation;
    let stem = options.stem(&model);
    let results = dir.join(format!("partners-{stem}.jsonl"));
    let current = fs::read_to_string(dir.join("CURRENT")).ok();
    let already_fresh = current.as_deref().map(str::trim) == Some(stem.as_str())
        && results.exists()
        && (options.redis_url.is_none() || redis_is_current(options, generation));
    progress.total.store(model.len() as u64, Ordering::Relaxed);

    let lines = if already_fresh {
        read_lines(&results)?
    } else {
        let work = dir.join(format!("work-{stem}"));
        fs::create_dir_all(&work)?;
        progress.set_phase("scoring");
        compute_chunks(engine, &model, &work, options, progress)?;
        progress.set_phase("publishing");
        let lines = join_chunks(&work, model.len(), options.chunk, &results)?;
        if options.redis_url.is_some() {
            publish_to_redis(options, generation, &lines)?;
        }
        switch_current(dir, &stem)?;
        remove_other_generations(dir, &stem);
        lines
    };
    progress.done.store(model.len() as u64, Ordering::Relaxed);
    if let Some(export) = &options.export {
        fs::copy(&results, export).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", export.display()))?;
    }
    let firms = lines.len();
    let precomputed = Precomputed::from_lines(&model, options.k, lines.into_iter().map(Ok))?;
    engine.install(model.clone(), Some(Arc::new(precomputed)));
    progress.set_phase("done");
    let outcome = RefreshOutcome {
        generation,
        firms,
        resumed: progress.resumed.load(Ordering::Relaxed) as usize,
        results: Some(results),
        already_fresh,
        seconds: started.elapsed().as_secs_f64(),
    };
    tracing::info!(
        generation,
        firms = outcome.firms,
        resumed = outcome.resumed,
        seconds = outcome.seconds,
        "refresh done"
    );
    Ok(outcome)
}

/// The results of the last finished refresh, when they were computed with `model`.
pub fn load_current(dir: &Path, model: &FittedModel, k: usize) -> anyhow::Result<Option<Precomputed>> {
    let Ok(current) = fs::read_to_string(dir.join("CURRENT")) else {
        return Ok(None);
    };
    let stem = current.trim();
    if stem.split('-').next() != Some(model_key(model).as_str()) {
        return Ok(None);
    }
    let file = BufReader::new(fs::File::open(dir.join(format!("partners-{stem}.jsonl")))?);
    let lines = file.lines().map(|line| Ok(serde_json::from_str(&line?)?));
    Precomputed::from_lines(model, k, lines).map(Some)
}

fn compute_chunks(
    engine: &Engine,
    model: &Arc<FittedModel>,
    work: &Path,
    options: &RefreshOptions,
    progress: &Progress,
) -> anyhow::Result<()> {
    let (firms, size, k) = (model.len(), options.chunk.max(1), options.k);
    let chunks = firms.div_ceil(size);
    let mut last_log = Instant::now();
    for chunk in 0..chunks {
        let range = chunk * size..((chunk + 1) * size).min(firms);
        let path = work.join(format!("chunk-{chunk:06}.jsonl"));
        if path.exists() {
            progress.resumed.fetch_add(range.len() as u64, Ordering::Relaxed);
            progress.done.fetch_add(range.len() as u64, Ordering::Relaxed);
            continue;
        }
        let lines: Vec<String> = range
            .clone()
            .into_par_iter()
            .map(|position| {
                let firm = model.id(position as u32).to_string();
                let request = ShortlistRequest { anchors: vec![firm.clone()], k, ..Default::default() };
                let (candidates_scored, ranked) = engine.rank_with(model, &request)?;
                let network = if options.networks { network_around(engine, model, &firm)? } else { None };
                let line = PartnerLine {
                    firm,
                    generation: model.generation,
                    candidates_scored,
                    partners: ranked
                        .into_iter()
                        .map(|(c, score)| ScoredId { id: model.id(c).to_string(), score })
                        .collect(),
                    network,
                };
                progress.done.fetch_add(1, Ordering::Relaxed);
                Ok(serde_json::to_string(&line)?)
            })
            .collect::<anyhow::Result<_>>()?;
        let staging = work.join(format!(".chunk-{chunk:06}.tmp"));
        let mut writer = BufWriter::new(fs::File::create(&staging)?);
        for line in &lines {
            writeln!(writer, "{line}")?;
        }
        writer.into_inner()?.sync_all()?;
        fs::rename(&staging, &path)?;
        let done = progress.done.load(Ordering::Relaxed);
        metrics::gauge!("klynge_refresh_firms_done").set(done as f64);
        metrics::gauge!("klynge_refresh_firms_total").set(firms as f64);
        if last_log.elapsed() > Duration::from_secs(10) || chunk + 1 == chunks {
            tracing::info!(done, total = firms, "refresh progress");
            last_log = Instant::now();
        }
    }
    Ok(())
}

/// The network around `firm`, or `None` when no network can be built around it
/// (a catalogue too small, say); any other failure fails the run.
fn network_around(engine: &Engine, model: &FittedModel, firm: &str) -> anyhow::Result<Option<NetworkLine>> {
    match engine.network_with(model, &NetworkRequest::around(firm)) {
        Ok(response) => Ok(Some(NetworkLine {
            members: response.network.members.into_iter().map(|m| m.partner.id).collect(),
            score: response.network.score,
            breakdown: response.network.breakdown,
        })),
        Err(NetworkError::Unsatisfiable(_)) => Ok(None),
        Err(NetworkError::Engine(error)) => Err(error.into()),
        Err(error @ NetworkError::UnknownFirms { .. }) => Err(error.into()),
    }
}

fn join_chunks(work: &Path, firms: usize, size: usize, results: &Path) -> anyhow::Result<Vec<PartnerLine>> {
    let staging = results.with_extension("jsonl.tmp");
    let mut writer = BufWriter::new(fs::File::create(&staging)?);
    let mut lines = Vec::with_capacity(firms);
    for chunk in 0..firms.div_ceil(size.max(1)) {
        for line in BufReader::new(fs::File::open(work.join(format!("chunk-{chunk:06}.jsonl")))?).lines() {
            let line = line?;
            writeln!(writer, "{line}")?;
            lines.push(serde_json::from_str(&line)?);
        }
    }
    writer.into_inner()?.sync_all()?;
    fs::rename(&staging, results)?;
    anyhow::ensure!(lines.len() == firms, "joined {} results for {firms} firms", lines.len());
    Ok(lines)
}

fn read_lines(path: &Path) -> anyhow::Result<Vec<PartnerLine>> {
    BufReader::new(fs::File::open(path)?).lines().map(|line| Ok(serde_json::from_str(&line?)?)).collect()
}

fn switch_current(dir: &Path, stem: &str) -> anyhow::Result<()> {
    let staging = dir.join(".CURRENT.tmp");
    fs::write(&staging, stem)?;
    fs::File::open(&staging)?.sync_all()?;
    fs::rename(&staging, dir.join("CURRENT"))?;
    Ok(())
}

fn remove_other_generations(dir: &Path, keep: &str) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let keep_names = [format!("work-{keep}"), format!("partners-{keep}.jsonl")];
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours = name.starts_with("work-") || name.starts_with("partners-");
        if ours && !keep_names.contains(&name) {
            let path = entry.path();
            let _ = if path.is_dir() { fs::remove_dir_all(path) } else { fs::remove_file(path) };
        }
    }
    // The work directory of the finished generation is no longer needed either.
    let _ = fs::remove_dir_all(dir.join(format!("work-{keep}")));
}

fn redis_connection(options: &RefreshOptions) -> anyhow::Result<redis::Connection> {
    let url = options.redis_url.as_deref().expect("called with a url");
    let fail = |e: redis::RedisError| anyhow::anyhow!("redis unavailable: {e}");
    let client = redis::Client::open(url).map_err(fail)?;
    let connection = client.get_connection_with_timeout(Duration::from_secs(3)).map_err(fail)?;
    connection.set_read_timeout(Some(Duration::from_secs(10))).map_err(fail)?;
    connection.set_write_timeout(Some(Duration::from_secs(10))).map_err(fail)?;
    Ok(connection)
}

fn redis_is_current(options: &RefreshOptions, generation: u64) -> bool {
    let pointer = format!("{}:refresh:current", options.key_prefix);
    redis_connection(options)
        .and_then(|mut c| Ok(redis::cmd("GET").arg(&pointer).query::<Option<u64>>(&mut c)?))
        .is_ok_and(|current| current == Some(generation))
}

/// Writes every firm's list into the hash `<prefix>:refresh:<generation>` (and
/// its network into `<prefix>:refresh:<generation>:networks`), then moves the
/// pointer and drops the previous generation's hashes; other replicas and
/// systems read the generation the pointer names.
fn publish_to_redis(options: &RefreshOptions, generation: u64, lines: &[PartnerLine]) -> anyhow::Result<()> {
    let mut connection = redis_connection(options)?;
    let fail = |e: redis::RedisError| anyhow::anyhow!("redis unavailable: {e}");
    let hash = format!("{}:refresh:{generation}", options.key_prefix);
    let networks = format!("{hash}:networks");
    let pointer = format!("{}:refresh:current", options.key_prefix);
    redis::cmd("UNLINK").arg(&hash).arg(&networks).query::<()>(&mut connection).map_err(fail)?;
    for batch in lines.chunks(1_000) {
        let mut pipe = redis::pipe();
        for line in batch {
            pipe.hset(&hash, &line.firm, serde_json::to_string(&line.partners)?).ignore();
            if let Some(network) = &line.network {
                pipe.hset(&networks, &line.firm, serde_json::to_string(network)?).ignore();
            }
        }
        pipe.query::<()>(&mut connection).map_err(fail)?;
    }
    let previous: Option<u64> = redis::cmd("GET").arg(&pointer).query(&mut connection).map_err(fail)?;
    redis::cmd("SET").arg(&pointer).arg(generation).query::<()>(&mut connection).map_err(fail)?;
    if let Some(previous) = previous.filter(|&p| p != generation) {
        let old = format!("{}:refresh:{previous}", options.key_prefix);
        redis::cmd("UNLINK").arg(&old).arg(format!("{old}:networks")).query::<()>(&mut connection).map_err(fail)?;
    }
    Ok(())
}

/// Firms computed per second and the time left, for progress displays.
pub fn rate_and_eta(progress: &Progress) -> (f64, Option<f64>) {
    let elapsed = progress.scoring_since.get().map_or(Duration::ZERO, Instant::elapsed);
    let done = progress.done.load(Ordering::Relaxed).saturating_sub(progress.resumed.load(Ordering::Relaxed));
    let total = progress.total.load(Ordering::Relaxed);
    let left = total.saturating_sub(progress.done.load(Ordering::Relaxed));
    let rate = done as f64 / elapsed.as_secs_f64().max(1e-3);
    (rate, (rate > 0.0).then(|| left as f64 / rate))
}
