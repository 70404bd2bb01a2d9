//! The command line: `serve`, `ingest`, `search` and the batch commands. Every
//! command builds the same `Settings` (flags override file and environment) and
//! prints one clear message on failure.

use std::io::Read;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use klynge_index::{FirmIndex, SearchRequest};

use crate::engine::Engine;
use crate::ingest::{self, Format};
use crate::settings::{Settings, SettingsSources};

#[derive(Parser)]
#[command(
    name = "klynge",
    version,
    about = "Matchmaking for business clusters: partner shortlists and value-chain networks"
)]
struct Cli {
    /// Settings file (TOML); defaults to ./klynge.toml when present.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Clone)]
struct DataDir {
    /// Directory holding the index and model files.
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP service.
    Serve {
        #[arg(long)]
        port: Option<u16>,
        #[arg(long)]
        host: Option<String>,
        #[command(flatten)]
        data: DataDir,
        /// Load the shipped demo catalogue when the index is empty.
        #[arg(long)]
        demo: bool,
    },
    /// Load profiles from JSON, NDJSON or CSV files (optionally .gz) straight into the
    /// data directory; the service must not be running on it.
    Ingest {
        #[command(flatten)]
        data: DataDir,
        /// Files to load; the format comes from the extension.
        files: Vec<PathBuf>,
        /// NDJSON files of collaborations (`{"id", "title"?, "members"}`), loaded after the profiles.
        #[arg(long, value_name = "FILE")]
        collaborations: Vec<PathBuf>,
    },
    /// Fit the models on the data directory's catalogue (the service does this by
    /// itself after ingests; use this for an offline refit).
    Train {
        #[command(flatten)]
        data: DataDir,
    },
    /// Recompute every firm's top-k partners (refitting the model first when profiles
    /// changed) and switch the service's precomputed results to them. Resumable: a
    /// rerun after a kill continues from its last checkpoint. The service must not be
    /// running on the data directory (use `POST /v1/admin/refresh` then).
    Refresh {
        #[command(flatten)]
        data: DataDir,
        /// Also publish the results to this Redis (default: `cache.redis_url`).
        #[arg(long, value_name = "URL")]
        redis: Option<String>,
        /// Partners per firm (default: `refresh.k`).
        #[arg(long)]
        k: Option<usize>,
        /// Also write the results as JSON Lines to this file.
        #[arg(long, value_name = "FILE.jsonl")]
        export: Option<PathBuf>,
        /// Also assemble the network around every firm (default: `refresh.networks`).
        #[arg(long)]
        networks: bool,
    },
    /// Build a synthetic catalogue of N profiles by resampling the real companies of
    /// a FinanceDatabase extract (shared/data/firms/firms.jsonl.gz), with ties.
    Gen {
        /// The source extract (.jsonl or .jsonl.gz).
        #[arg(long)]
        source: PathBuf,
        #[arg(long)]
        count: usize,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Directory to write firms.ndjson and collaborations.ndjson into.
        #[arg(long)]
        out: PathBuf,
    },
    /// Rebuild the shipped demo catalogue (data/demo) from the shared data sets.
    #[command(hide = true)]
    DemoCatalogue {
        /// Directory with the CORDIS orgs.jsonl and collaborations.jsonl.
        #[arg(long)]
        consortia: PathBuf,
        /// The FinanceDatabase extract (firms.jsonl.gz).
        #[arg(long)]
        firms: PathBuf,
        #[arg(long, default_value_t = 2500)]
        companies: usize,
        #[arg(long, default_value = "data/demo")]
        out: PathBuf,
    },
    /// Measure recommendation quality on a consortium benchmark (CORDIS format).
    Eval {
        /// Directory with orgs.jsonl and collaborations.jsonl.
        #[arg(long)]
        catalogue: PathBuf,
        /// Query file (queries-dev.jsonl or queries-sealed.jsonl format).
        #[arg(long, required_unless_present = "tune_networks")]
        queries: Option<PathBuf>,
        /// Where to write one prediction line per query.
        #[arg(long, required_unless_present = "tune_networks")]
        predictions: Option<PathBuf>,
        #[arg(long, default_value_t = 50)]
        k: usize,
        /// Instead: choose the network objective's weights by cross-validation on
        /// the catalogue's own collaborations (the queries are not read).
        #[arg(long)]
        tune_networks: bool,
    },
    /// Full-text search of the index in the data directory.
    Search {
        #[command(flatten)]
        data: DataDir,
        query: String,
        #[arg(long, default_value_t = 10)]
        limit: usize,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_settings(config: Option<PathBuf>, overrides: Vec<(&str, Option<String>)>) -> anyhow::Result<Settings> {
    let sources = SettingsSources {
        file: config,
        overrides: overrides.into_iter().filter_map(|(key, value)| Some((key.to_string(), value?))).collect(),
    };
    Ok(Settings::load(&sources)?)
}

fn data_override(data: &DataDir) -> (&'static str, Option<String>) {
    ("data.dir", data.data_dir.as_ref().map(|dir| dir.display().to_string()))
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve { port, host, data, demo } => {
            let settings = load_settings(
                cli.config,
                vec![
                    ("server.port", port.map(|port| port.to_string())),
                    ("server.host", host),
                    data_override(&data),
                    ("server.demo", demo.then(|| "true".to_string())),
                ],
            )?;
            crate::telemetry::init_logging(&settings.log);
            actix_web::rt::System::new().block_on(async move {
                let app = crate::app::Application::build(settings).await?;
                tracing::info!(port = app.port(), "klynge is listening");
                app.run_until_stopped().await?;
                Ok(())
            })
        }
        Command::Ingest { data, files, collaborations } => {
            anyhow::ensure!(
                !files.is_empty() || !collaborations.is_empty(),
                "give profile files and/or --collaborations files"
            );
            let settings = load_settings(cli.config, vec![data_override(&data)])?;
            crate::telemetry::init_logging(&settings.log);
            ingest_files(&settings, &files, &collaborations)
        }
        Command::Train { data } => {
            let settings = load_settings(cli.config, vec![data_override(&data)])?;
            crate::telemetry::init_logging(&settings.log);
            let index = FirmIndex::open(&settings.data.dir.join("index"))?;
            let store = crate::store::ModelStore::new(crate::engine::model_dir(&settings.data.dir));
            let engine = Engine::new(std::sync::Arc::new(index), Some(store), Default::default());
            let started = std::time::Instant::now();
            match engine.fit()? {
                Some(model) => println!(
                    "model generation {} fitted on {} firms in {:.1} s (weights learnt: {})",
                    model.generation,
                    model.len(),
                    started.elapsed().as_secs_f64(),
                    model.weights_learnt
                ),
                None => println!("the catalogue is empty; nothing to fit"),
            }
            Ok(())
        }
        Command::Refresh { data, redis, k, export, networks } => {
            let settings = load_settings(
                cli.config,
                vec![
                    data_override(&data),
                    ("cache.redis_url", redis),
                    ("refresh.k", k.map(|k| k.to_string())),
                    ("refresh.networks", networks.then(|| "true".to_string())),
                ],
            )?;
            crate::telemetry::init_logging(&settings.log);
            refresh(&settings, export)
        }
        Command::Gen { source, count, seed, out } => {
            anyhow::ensure!(count > 0, "--count must be positive");
            let started = std::time::Instant::now();
            let profiles = crate::synthetic::source_profiles(&source)?;
            anyhow::ensure!(!profiles.is_empty(), "{} holds no companies", source.display());
            let (firms, collaborations) = crate::synthetic::generate(&profiles, count, seed);
            std::fs::create_dir_all(&out)?;
            for (name, records) in [("firms.ndjson", &firms), ("collaborations.ndjson", &collaborations)] {
                let mut writer = std::io::BufWriter::new(std::fs::File::create(out.join(name))?);
                for record in records {
                    serde_json::to_writer(&mut writer, record)?;
                    std::io::Write::write_all(&mut writer, b"\n")?;
                }
                std::io::Write::flush(&mut writer)?;
            }
            println!(
                "{} firms and {} collaborations written to {} in {:.1} s",
                firms.len(),
                collaborations.len(),
                out.display(),
                started.elapsed().as_secs_f64()
            );
            Ok(())
        }
        Command::DemoCatalogue { consortia, firms, companies, out } => {
            let (profiles, collaborations) = crate::demo::build(&consortia, &firms, companies, &out)?;
            println!("{profiles} profiles and {collaborations} collaborations written to {}", out.display());
            Ok(())
        }
        Command::Eval { catalogue, queries, predictions, k, tune_networks } => {
            anyhow::ensure!((1..=200).contains(&k), "--k must be from 1 to 200");
            match (tune_networks, queries, predictions) {
                (true, _, _) => crate::eval::tune_networks(&catalogue),
                (false, Some(queries), Some(predictions)) => crate::eval::run(&catalogue, &queries, &predictions, k),
                _ => anyhow::bail!("--queries and --predictions are needed unless --tune-networks"),
            }
        }
        Command::Search { data, query, limit } => {
            let settings = load_settings(cli.config, vec![data_override(&data)])?;
            let index = FirmIndex::open(&settings.data.dir.join("index"))?;
            let page = index.search(&SearchRequest {
                query: Some(query),
                limit: limit.clamp(1, 100),
                ..Default::default()
            })?;
            println!("{} firms match", page.total);
            for hit in page.hits {
                let firm = &hit.firm.firm;
                println!(
                    "{:>7.2}  {:<24} {} ({}, {})",
                    hit.score,
                    firm.id,
                    firm.name,
                    firm.kind.as_str(),
                    firm.country.as_deref().unwrap_or("-")
                );
            }
            Ok(())
        }
    }
}

fn refresh(settings: &Settings, export: Option<PathBuf>) -> anyhow::Result<()> {
    let index = FirmIndex::open(&settings.data.dir.join("index"))?;
    let store = crate::store::ModelStore::new(crate::engine::model_dir(&settings.data.dir));
    let engine = Engine::new(std::sync::Arc::new(index), Some(store), Default::default());
    let options = crate::refresh::RefreshOptions {
        k: settings.refresh.k,
        redis_url: settings.cache.redis_url.as_ref().map(|url| url.expose().to_string()),
        key_prefix: settings.cache.key_prefix.clone(),
        export,
        chunk: crate::refresh::CHUNK,
        networks: settings.refresh.networks,
    };
    let progress = std::sync::Arc::new(crate::refresh::Progress::default());
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("refresh [{bar:30}] {pos}/{len} firms {per_sec} eta {eta}")
            .expect("static template")
            .progress_chars("=> "),
    );
    let watcher = {
        let (progress, bar) = (progress.clone(), bar.clone());
        std::thread::spawn(move || {
            while !bar.is_finished() {
                bar.set_length(progress.total.load(std::sync::atomic::Ordering::Relaxed));
                bar.set_position(progress.done.load(std::sync::atomic::Ordering::Relaxed));
                std::thread::sleep(std::time::Duration::from_millis(200));
            }
        })
    };
    let result = crate::refresh::run(&engine, &crate::refresh::refresh_dir(&settings.data.dir), &options, &progress);
    bar.finish_and_clear();
    let _ = watcher.join();
    let outcome = result?;
    println!(
        "refresh of generation {}: {} firms ({} resumed from a checkpoint{}) in {:.1} s{}",
        outcome.generation,
        outcome.firms,
        outcome.resumed,
        if outcome.already_fresh { ", results were already current" } else { "" },
        outcome.seconds,
        options.export.as_ref().map(|p| format!("; exported to {}", p.display())).unwrap_or_default()
    );
    Ok(())
}

/// Reads a file, un-gzipping `.gz`.
pub fn read_input(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(|error| anyhow::anyhow!("cannot read {}: {error}", path.display()))?;
    if path.extension().is_some_and(|extension| extension == "gz") {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes.as_slice()).read_to_end(&mut out)?;
        return Ok(out);
    }
    Ok(bytes)
}

/// The CLI ingest keeps the valid records and reports the rest by line, unlike the
/// all-or-nothing API: a nightly import of 40k rows should not fail on one typo.
fn ingest_files(settings: &Settings, files: &[PathBuf], collaboration_files: &[PathBuf]) -> anyhow::Result<()> {
    let index = FirmIndex::open(&settings.data.dir.join("index"))?;
    let engine = Engine::new(std::sync::Arc::new(index), None, Default::default());
    let (mut accepted_total, mut rejected_total) = (0usize, 0usize);
    for path in files {
        let name = path.display().to_string();
        let format = Format::from_path(&name).ok_or_else(|| {
            anyhow::anyhow!("{name}: unknown format (use .json, .ndjson, .jsonl or .csv, optionally .gz)")
        })?;
        let items = ingest::parse_items(&read_input(path)?, format)
            .map_err(|error| anyhow::anyhow!("{name}: {} (line {:?})", error.message, error.line))?;
        let progress = ProgressBar::new(items.len() as u64).with_style(
            ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
                .expect("static template")
                .progress_chars("=> "),
        );
        progress.set_message(name.clone());
        let updated_at = ingest::now_rfc3339();
        for chunk in items.chunks(5_000) {
            let (accepted, rejected) = ingest::validate_items(chunk, &updated_at);
            for bad in &rejected {
                let line = bad.line.map(|line| format!("line {line}")).unwrap_or_else(|| format!("item {}", bad.index));
                let problems: Vec<String> =
                    bad.errors.iter().map(|error| format!("{}: {}", error.field, error.message)).collect();
                progress.println(format!("{name} {line}: rejected: {}", problems.join("; ")));
            }
            engine.upsert_firms(&accepted)?;
            accepted_total += accepted.len();
            rejected_total += rejected.len();
            progress.inc(chunk.len() as u64);
        }
        progress.finish();
    }
    let mut collaborations_total = 0usize;
    for path in collaboration_files {
        let text = String::from_utf8(read_input(path)?)?;
        let mut batch = Vec::new();
        for (number, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let value: serde_json::Value = serde_json::from_str(line)
                .map_err(|error| anyhow::anyhow!("{}:{}: {error}", path.display(), number + 1))?;
            match klynge_models::validate_collaboration(&value) {
                Ok(collaboration) => batch.push(collaboration),
                Err(errors) => {
                    rejected_total += 1;
                    eprintln!("{}:{}: rejected: {errors:?}", path.display(), number + 1);
                }
            }
        }
        collaborations_total += batch.len();
        for chunk in batch.chunks(10_000) {
            engine.upsert_collaborations(chunk)?;
        }
    }
    println!(
        "accepted {accepted_total} profiles and {collaborations_total} collaborations, rejected {rejected_total}; index generation {}",
        engine.index().generation()
    );
    Ok(())
}
