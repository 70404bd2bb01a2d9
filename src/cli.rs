//! The command line: `serve`, `ingest`, `search` and the batch commands. Every
//! command builds the same `Settings` (flags override file and environment) and
//! prints one clear message on failure.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use klynge_index::{FirmIndex, SearchRequest};

use crate::engine::Engine;
use crate::ingest::{self, Format, read_input};
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
        #[arg(long, required_unless_present_any = ["holdout", "tune_networks"])]
        queries: Option<PathBuf>,
        /// Where to write one prediction line per query.
        #[arg(long, required_unless_present_any = ["holdout", "tune_networks", "learning_check"])]
        predictions: Option<PathBuf>,
        /// Instead of a query file, measure `--lock` completion on held-out
        /// collaborations of the catalogue itself (what its rule is chosen on).
        #[arg(long)]
        holdout: bool,
        /// Also simulate a manager over R rounds: accept the real members
        /// proposed, reject the others, ask again; score each round's new proposals.
        #[arg(long, default_value_t = 0)]
        feedback_rounds: usize,
        #[arg(long, default_value_t = 50)]
        k: usize,
        /// Also measure completion: lock this many real members of each query
        /// besides the anchor (comma-separated for several runs, e.g. 1,2,4) and
        /// report the precision of the other proposed members.
        #[arg(long, value_delimiter = ',')]
        lock: Vec<usize>,
        /// Instead: choose the network objective's weights by cross-validation on
        /// the catalogue's own collaborations (the queries are not read).
        #[arg(long)]
        tune_networks: bool,
        /// Instead: the learning check. A simulated manager decides on the
        /// networks of half the queries (`--feedback-rounds` rounds, at least
        /// one), the model is refitted with those decisions, and the other half
        /// is scored with and without them.
        #[arg(long, requires = "queries")]
        learning_check: bool,
    },
    /// Measure how many of firms' real suppliers and customers their partner lists
    /// find, next to a text-similarity baseline (fresh in-memory index; no data dir).
    EvalLinks {
        /// Profiles (NDJSON, JSON or CSV, optionally .gz), e.g. from firms_to_profiles.py --nace.
        #[arg(long, value_name = "FILE")]
        profiles: PathBuf,
        /// `customer,supplier` id pairs, one a line (optional header).
        #[arg(long, value_name = "FILE.csv")]
        links: PathBuf,
        /// Cut-offs, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "10,50,200")]
        k: Vec<usize>,
        /// Write each scored firm's linked firms and both rankings as JSON Lines.
        #[arg(long, value_name = "OUT")]
        predictions: Option<PathBuf>,
    },
    /// Refit the shipped default weights (used while a catalogue has no
    /// collaborations) from a consortium catalogue: writes default_training.csv and
    /// default_weights.json (fitted on exactly that file) into --out.
    FitDefaults {
        /// Directory with orgs.jsonl and collaborations.jsonl.
        #[arg(long)]
        catalogue: PathBuf,
        #[arg(long, default_value = "models/data")]
        out: PathBuf,
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
            // The manager's decisions are learnt from here as by the service's fits
            // (the index above is opened only when no service holds the data dir).
            let feedback = crate::feedback::FeedbackStore::open(&crate::feedback::feedback_dir(&settings.data.dir))?;
            let engine = Engine::new(std::sync::Arc::new(index), Some(store), Default::default())
                .with_feedback(std::sync::Arc::new(feedback));
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
            let profiles = crate::lab::synthetic::source_profiles(&source)?;
            anyhow::ensure!(!profiles.is_empty(), "{} holds no companies", source.display());
            let (firms, collaborations) = crate::lab::synthetic::generate(&profiles, count, seed);
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
            let (profiles, collaborations) = crate::lab::demo_catalogue::build(&consortia, &firms, companies, &out)?;
            println!("{profiles} profiles and {collaborations} collaborations written to {}", out.display());
            Ok(())
        }
        Command::Eval {
            catalogue,
            queries,
            predictions,
            k,
            lock,
            holdout,
            feedback_rounds,
            tune_networks,
            learning_check,
        } => {
            anyhow::ensure!((1..=200).contains(&k), "--k must be from 1 to 200");
            anyhow::ensure!(feedback_rounds <= 10, "--feedback-rounds must be at most 10");
            if tune_networks {
                return crate::lab::eval::tune_networks(&catalogue);
            }
            if let (true, Some(queries)) = (learning_check, &queries) {
                return crate::lab::eval::learning_check(&catalogue, queries, k, feedback_rounds.max(1));
            }
            match (queries, predictions) {
                (Some(queries), Some(predictions)) if !holdout => {
                    crate::lab::eval::run(&catalogue, &queries, &predictions, k, &lock, feedback_rounds)
                }
                _ => crate::lab::eval::run_holdout(&catalogue, &lock, feedback_rounds),
            }
        }
        Command::EvalLinks { profiles, links, k, predictions } => {
            anyhow::ensure!(
                !k.is_empty() && k.iter().all(|k| (1..=1000).contains(k)),
                "--k takes cut-offs from 1 to 1000"
            );
            let report = crate::lab::eval_links::run(&profiles, &links, &k, predictions.as_deref())?;
            println!(
                "{} profiles ({} rejected), {} links ({} bad lines); {} firms with at least {} links scored",
                report.profiles,
                report.rejected_profiles,
                report.links,
                report.bad_lines.len(),
                report.firms,
                crate::lab::eval_links::MIN_LINKS
            );
            println!("{}", report.table());
            Ok(())
        }
        Command::FitDefaults { catalogue, out } => {
            use klynge_models::scoring;
            let (engine, _) = crate::lab::eval::load_catalogue(&catalogue)?;
            let model = engine.model().ok_or_else(|| anyhow::anyhow!("the catalogue is empty"))?;
            let firms = engine.index().all_firms()?;
            let collaborations = engine.index().all_collaborations()?;
            let csv = scoring::training_csv(&model.day_one_training(&firms, &collaborations));
            // Fitted on the file as written, so the shipped weights follow from it alone.
            let queries = scoring::read_training_csv(&csv)?;
            let defaults = scoring::fit_defaults(&queries, scoring::DEFAULTS_FITTED_ON)?;
            std::fs::write(out.join("default_training.csv"), &csv)?;
            std::fs::write(out.join("default_weights.json"), serde_json::to_string_pretty(&defaults)? + "\n")?;
            let per_unit: Vec<String> = scoring::DAY_ONE_SIGNALS
                .iter()
                .map(|&s| format!("{} {:.3}", s.name(), defaults.weights.raw_weight(s as usize)))
                .collect();
            println!(
                "{} queries ({} partners, {} non-partners); weight per unit: {}; written to {}",
                queries.len(),
                defaults.weights.positives,
                defaults.weights.negatives,
                per_unit.join(", "),
                out.display()
            );
            Ok(())
        }
        Command::Search { data, query, limit } => {
            let settings = load_settings(cli.config, vec![data_override(&data)])?;
            let dir = settings.data.dir.join("index");
            anyhow::ensure!(dir.join("meta.json").exists(), "no index in {}; ingest profiles first", dir.display());
            let index = FirmIndex::open_read_only(&dir)?;
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

/// The CLI ingest keeps the valid records and reports the rest by line, unlike the
/// all-or-nothing API: a nightly import of 40k rows should not fail on one typo.
fn ingest_files(settings: &Settings, files: &[PathBuf], collaboration_files: &[PathBuf]) -> anyhow::Result<()> {
    let index = FirmIndex::open(&settings.data.dir.join("index"))?;
    let engine = Engine::new(std::sync::Arc::new(index), None, Default::default());
    let journal = IngestJournal::path(&settings.data.dir);
    if let Some(previous) = IngestJournal::read(&journal) {
        eprintln!(
            "note: an earlier ingest (started {}, files {}) did not finish: it had committed {} profiles \
             (up to index generation {}); they are in the index, and rerunning it loads the rest (upserts by id)",
            previous.started_at,
            previous.files.join(", "),
            previous.committed_profiles,
            previous.generation
        );
    }
    let mut progress_journal = IngestJournal {
        started_at: ingest::now_rfc3339(),
        files: files.iter().chain(collaboration_files).map(|path| path.display().to_string()).collect(),
        committed_profiles: 0,
        generation: engine.index().generation(),
    };
    progress_journal.write(&journal)?;
    let (mut accepted_total, mut rejected_total) = (0usize, 0usize);
    for path in files {
        let name = path.display().to_string();
        let format = Format::from_path(&name).ok_or_else(|| {
            anyhow::anyhow!("{name}: unknown format (use .json, .ndjson, .jsonl or .csv, optionally .gz)")
        })?;
        let bytes = read_input(path)?;
        let items = if format == Format::Ndjson {
            // One malformed line must not cost the other 40k: report it and go on.
            let text = std::str::from_utf8(&bytes).map_err(|error| anyhow::anyhow!("{name}: not UTF-8: {error}"))?;
            let mut items = Vec::new();
            for line in ingest::ndjson_lines(text) {
                match line {
                    Ok(item) => items.push(item),
                    Err(error) => {
                        rejected_total += 1;
                        eprintln!("{name}: rejected: {}", error.message);
                    }
                }
            }
            items
        } else {
            ingest::parse_items(&bytes, format)
                .map_err(|error| anyhow::anyhow!("{name}: {} (line {:?})", error.message, error.line))?
        };
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
                // Printed beside the bar, not through it: a hidden bar (no terminal,
                // as under cron) would swallow the report.
                progress.suspend(|| eprintln!("{name} {line}: rejected: {}", problems.join("; ")));
            }
            if !accepted.is_empty() {
                progress_journal.generation = engine.upsert_firms(&accepted)?;
            }
            accepted_total += accepted.len();
            progress_journal.committed_profiles = accepted_total;
            progress_journal.write(&journal)?;
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
    std::fs::remove_file(&journal)?;
    println!(
        "accepted {accepted_total} profiles and {collaborations_total} collaborations, rejected {rejected_total}; index generation {}",
        engine.index().generation()
    );
    Ok(())
}

/// What an offline ingest has committed so far, kept beside the index while it
/// runs and removed when it ends, so that the next run can say what a killed one
/// left behind.
#[derive(serde::Serialize, serde::Deserialize)]
struct IngestJournal {
    started_at: String,
    files: Vec<String>,
    committed_profiles: usize,
    generation: u64,
}

impl IngestJournal {
    fn path(data_dir: &std::path::Path) -> PathBuf {
        data_dir.join("ingest-in-progress.json")
    }

    fn read(path: &std::path::Path) -> Option<IngestJournal> {
        serde_json::from_slice(&std::fs::read(path).ok()?).ok()
    }

    /// Written to a temporary file and renamed, so a kill leaves the old or the new record.
    fn write(&self, path: &std::path::Path) -> anyhow::Result<()> {
        let temporary = path.with_extension("json.tmp");
        std::fs::write(&temporary, serde_json::to_vec(self)?)?;
        std::fs::rename(&temporary, path)?;
        Ok(())
    }
}
