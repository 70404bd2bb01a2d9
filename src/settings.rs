//! Settings: defaults in code → optional `klynge.toml` → environment
//! (`KLYNGE__SECTION__KEY`) → command-line flags, merged by the `config` crate
//! and checked once at start-up so that a bad value stops the service with one
//! message naming the setting. Secrets are wrapped so they never reach a log.

use std::fmt;
use std::path::{Path, PathBuf};

use config::{Config, Environment, File, FileFormat};
use serde::Deserialize;

/// A value that must never be printed: `Debug` and `Display` show `***`.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("\"***\"")
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub server: ServerSettings,
    pub data: DataSettings,
    pub auth: AuthSettings,
    pub cache: CacheSettings,
    pub log: LogSettings,
    pub models: ModelSettings,
    pub refresh: RefreshSettings,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerSettings {
    pub host: String,
    pub port: u16,
    /// HTTP worker threads; 0 = one per core.
    pub workers: usize,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Origins allowed by CORS; `*` allows any.
    pub cors_origins: Vec<String>,
    /// Load the shipped demo catalogue when the index is empty.
    pub demo: bool,
    /// Requests per second allowed per API key (or, without a key, per client
    /// address); 0 = no rate limit.
    pub rate_limit_per_second: u32,
    /// Requests a client may send at once above its rate.
    pub rate_limit_burst: u32,
    /// A client that has not sent its whole request head by then gets 408.
    pub client_request_timeout_ms: u64,
    /// How long SIGTERM waits for in-flight requests before the workers stop.
    pub shutdown_timeout_seconds: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataSettings {
    pub dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthSettings {
    /// Keys accepted for writes (`Authorization: Bearer <key>`). None = writes refused.
    pub write_keys: Vec<Secret>,
    /// Keys accepted for reads; empty = reads are open.
    pub read_keys: Vec<Secret>,
    /// Whether `/metrics`, `/openapi.json` and `/docs` stay open when read keys are set.
    pub open_docs: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CacheSettings {
    /// `redis://…`; unset = the in-process cache.
    pub redis_url: Option<Secret>,
    pub key_prefix: String,
    pub ttl_seconds: u64,
    /// Bytes the in-process cache may hold (keys, bodies and per-entry overhead).
    pub memory_bytes: u64,
    /// The entry bound of earlier releases, kept so their settings still load:
    /// `0` turns the in-process cache off (how `../shared/peer/compare.sh`
    /// measures the uncached path); any other value leaves `memory_bytes` in charge.
    #[serde(default)]
    pub memory_capacity: Option<u64>,
    /// Per-command Redis timeout; a slower Redis counts as down for that call.
    pub redis_timeout_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogSettings {
    /// `pretty` or `json`.
    pub format: String,
    /// A tracing filter such as `info` or `klynge=debug,actix_web=info`.
    pub level: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSettings {
    /// Refit automatically this many seconds after the last ingest (0 = never).
    pub retrain_debounce_seconds: u64,
    /// Longest a write waits for its refit while other writes keep coming.
    pub retrain_max_wait_seconds: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshSettings {
    /// Partners computed per firm by the batch refresh.
    pub k: usize,
    /// When the service runs the refresh itself: a cron pattern in UTC
    /// (`minute hour day month weekday`, e.g. `0 2 * * *` for 02:00 nightly); unset = never.
    pub schedule: Option<String>,
    /// Also assemble the network around every firm (served by `GET /v1/firms/{id}/network`).
    pub networks: bool,
}

/// Where settings come from besides the defaults and the environment.
#[derive(Debug, Default, Clone)]
pub struct SettingsSources {
    /// `klynge.toml` unless given; a missing default file is fine, a missing given one is not.
    pub file: Option<PathBuf>,
    /// `section.key` → value pairs from command-line flags, applied last.
    pub overrides: Vec<(String, String)>,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid setting `{setting}`: {message}")]
pub struct SettingsError {
    pub setting: String,
    pub message: String,
}

impl SettingsError {
    fn new(setting: &str, message: impl Into<String>) -> SettingsError {
        SettingsError { setting: setting.to_string(), message: message.into() }
    }
}

impl Settings {
    pub fn load(sources: &SettingsSources) -> Result<Settings, SettingsError> {
        Self::load_with_env(sources, Some(std::env::vars().collect()))
    }

    /// `env` = `None` ignores the process environment (tests build settings this way).
    pub fn load_with_env(
        sources: &SettingsSources,
        env: Option<std::collections::HashMap<String, String>>,
    ) -> Result<Settings, SettingsError> {
        let mut builder = Config::builder().add_source(File::from_str(DEFAULTS, FileFormat::Toml));
        match &sources.file {
            Some(path) => {
                if !path.exists() {
                    return Err(SettingsError::new("--config", format!("file {} does not exist", path.display())));
                }
                builder = builder.add_source(File::from(path.as_path()).format(FileFormat::Toml));
            }
            None => builder = builder.add_source(File::from(Path::new("klynge.toml")).required(false)),
        }
        if let Some(env) = env {
            builder = builder.add_source(
                Environment::with_prefix("KLYNGE")
                    .prefix_separator("__")
                    .separator("__")
                    .list_separator(",")
                    .with_list_parse_key("auth.write_keys")
                    .with_list_parse_key("auth.read_keys")
                    .with_list_parse_key("server.cors_origins")
                    .try_parsing(true)
                    .source(Some(env)),
            );
        }
        for (key, value) in &sources.overrides {
            builder = builder
                .set_override(key.as_str(), value.as_str())
                .map_err(|error| SettingsError::new(key, error.to_string()))?;
        }
        let config = builder.build().map_err(config_error)?;
        let settings: Settings = config.try_deserialize().map_err(config_error)?;
        settings.check()?;
        Ok(settings)
    }

    fn check(&self) -> Result<(), SettingsError> {
        if self.server.rate_limit_per_second > 0 && self.server.rate_limit_burst == 0 {
            return Err(SettingsError::new("server.rate_limit_burst", "must be at least 1 when a rate limit is set"));
        }
        if self.server.max_body_bytes < 1024 {
            return Err(SettingsError::new("server.max_body_bytes", "must be at least 1024"));
        }
        if !matches!(self.log.format.as_str(), "pretty" | "json") {
            return Err(SettingsError::new("log.format", "must be `pretty` or `json`"));
        }
        if tracing_subscriber::EnvFilter::try_new(&self.log.level).is_err() {
            return Err(SettingsError::new("log.level", "is not a valid tracing filter"));
        }
        if let Some(url) = &self.cache.redis_url
            && redis::Client::open(url.expose()).is_err()
        {
            return Err(SettingsError::new("cache.redis_url", "is not a valid redis:// URL"));
        }
        if self.cache.memory_bytes < 1024 * 1024 {
            return Err(SettingsError::new("cache.memory_bytes", "must be at least 1 MiB (1048576)"));
        }
        if self.cache.ttl_seconds == 0 {
            return Err(SettingsError::new("cache.ttl_seconds", "must be at least 1"));
        }
        if self.cache.key_prefix.is_empty() || self.cache.key_prefix.contains(char::is_whitespace) {
            return Err(SettingsError::new("cache.key_prefix", "must be a non-empty word"));
        }
        if self.auth.write_keys.iter().chain(&self.auth.read_keys).any(|key| key.expose().len() < 8) {
            return Err(SettingsError::new("auth.write_keys", "every key must be at least 8 characters"));
        }
        if self.models.retrain_max_wait_seconds < self.models.retrain_debounce_seconds {
            return Err(SettingsError::new(
                "models.retrain_max_wait_seconds",
                "must be at least models.retrain_debounce_seconds",
            ));
        }
        if !(1..=200).contains(&self.refresh.k) {
            return Err(SettingsError::new("refresh.k", "must be from 1 to 200"));
        }
        if let Some(pattern) = &self.refresh.schedule
            && let Err(error) = parse_schedule(pattern)
        {
            return Err(SettingsError::new("refresh.schedule", error));
        }
        Ok(())
    }
}

/// A five-field cron pattern (`minute hour day month weekday`), read in UTC: the
/// form `refresh.schedule` takes, checked here so a bad one stops the start.
pub fn parse_schedule(pattern: &str) -> Result<croner::Cron, String> {
    if pattern.split_whitespace().count() != 5 {
        return Err(format!("`{pattern}` must have five fields: minute hour day month weekday"));
    }
    <croner::Cron as std::str::FromStr>::from_str(pattern)
        .map_err(|error| format!("`{pattern}` is not a cron pattern: {error}"))
}

/// Names the setting in the message when the config crate knows it.
fn config_error(error: config::ConfigError) -> SettingsError {
    let text = error.to_string();
    let setting = text
        .split(" for key `")
        .nth(1)
        .and_then(|rest| rest.split('`').next())
        .or_else(|| text.split("unknown field `").nth(1).and_then(|rest| rest.split('`').next()))
        .unwrap_or("settings");
    SettingsError::new(setting, text.clone())
}

/// The defaults, written as the TOML a user would write, so the README's table and
/// this text can be compared line by line.
pub const DEFAULTS: &str = r#"
[server]
host = "127.0.0.1"
port = 8080
workers = 0
max_body_bytes = 16777216
cors_origins = []
demo = false
rate_limit_per_second = 0
rate_limit_burst = 50
client_request_timeout_ms = 5000
shutdown_timeout_seconds = 30

[data]
dir = "klynge-data"

[auth]
write_keys = []
read_keys = []
open_docs = true

[cache]
key_prefix = "klynge"
ttl_seconds = 86400
memory_bytes = 268435456
redis_timeout_ms = 50

[log]
format = "pretty"
level = "info"

[models]
retrain_debounce_seconds = 5
retrain_max_wait_seconds = 60

[refresh]
k = 20
networks = false
"#;

#[cfg(test)]
mod tests {
    use super::*;

    fn load(env: &[(&str, &str)], overrides: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let sources = SettingsSources {
            file: None,
            overrides: overrides.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
        };
        Settings::load_with_env(&sources, Some(env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()))
    }

    #[test]
    fn environment_overrides_defaults_and_flags_override_environment() {
        let settings =
            load(&[("KLYNGE__SERVER__PORT", "9000"), ("KLYNGE__AUTH__WRITE_KEYS", "key-one-1,key-two-2")], &[])
                .unwrap();
        assert_eq!(settings.server.port, 9000);
        assert_eq!(settings.auth.write_keys.len(), 2);
        let settings = load(&[("KLYNGE__SERVER__PORT", "9000")], &[("server.port", "9100")]).unwrap();
        assert_eq!(settings.server.port, 9100);
    }

    #[test]
    fn bad_values_name_the_setting() {
        let error = load(&[("KLYNGE__SERVER__PORT", "http")], &[]).unwrap_err();
        assert!(error.to_string().contains("server.port"), "{error}");
        let error = load(&[("KLYNGE__LOG__FORMAT", "xml")], &[]).unwrap_err();
        assert_eq!(error.setting, "log.format");
    }

    #[test]
    fn refresh_schedule_is_a_cron_pattern() {
        assert!(load(&[("KLYNGE__REFRESH__SCHEDULE", "0 2 * * *")], &[]).is_ok());
        let error = load(&[("KLYNGE__REFRESH__SCHEDULE", "nightly")], &[]).unwrap_err();
        assert_eq!(error.setting, "refresh.schedule");
    }

    #[test]
    fn refresh_networks_is_a_bool() {
        assert!(load(&[("KLYNGE__REFRESH__NETWORKS", "true")], &[]).unwrap().refresh.networks);
        let error = load(&[("KLYNGE__REFRESH__NETWORKS", "sometimes")], &[]).unwrap_err();
        assert!(error.to_string().contains("refresh.networks"), "{error}");
    }

    #[test]
    fn memory_capacity_is_a_count() {
        assert_eq!(load(&[("KLYNGE__CACHE__MEMORY_CAPACITY", "0")], &[]).unwrap().cache.memory_capacity, Some(0));
        for garbage in ["-1", "lots", "ø🧀", "12 MB"] {
            let error = load(&[("KLYNGE__CACHE__MEMORY_CAPACITY", garbage)], &[]).unwrap_err();
            assert!(error.to_string().contains("memory_capacity"), "{garbage}: {error}");
        }
        let error = load(&[("KLYNGE__SERVER__MAX_BODY_BYTES", "-1")], &[]).unwrap_err();
        assert_eq!(error.setting, "server.max_body_bytes");
    }

    #[test]
    fn secrets_are_not_printed() {
        let settings = load(&[("KLYNGE__CACHE__REDIS_URL", "redis://:hunter2@localhost:6379")], &[]).unwrap();
        assert!(!format!("{settings:?}").contains("hunter2"));
    }
}
