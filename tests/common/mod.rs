//! Shared helpers of the integration tests: a real `redis-server` child process,
//! the real application on a free port over a temporary data directory, and a
//! small but realistic catalogue of firm profiles and collaborations.
//!
//! Each test builds its own application (own data directory, own port, own
//! Redis), so the tests run in parallel without sharing state. The application
//! runs on its own thread inside its own actix `System`, exactly as `klynge serve`
//! runs it, so the debounced retrainer (an actix local task) works too.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::Value;
use tempfile::TempDir;

use klynge::app::Application;
use klynge::settings::{Settings, SettingsSources};

/// The write key every test application accepts.
pub const WRITE_KEY: &str = "test-write-key";
/// The read key of applications built with [`TestAppBuilder::read_key`].
pub const READ_KEY: &str = "test-read-key";

// ---------------------------------------------------------------------------
// Redis
// ---------------------------------------------------------------------------

/// A `redis-server` child process on a free local port, killed on drop.
pub struct RedisServer {
    port: u16,
    child: Option<Child>,
    dir: TempDir,
}

impl RedisServer {
    /// Starts a fresh server; panics with a hint when `redis-server` is missing.
    pub fn start() -> RedisServer {
        let mut last_error = String::new();
        // Another process may take the free port between our probe and redis binding it: retry.
        for _ in 0..5 {
            let dir = tempfile::tempdir().expect("temporary directory for redis");
            let mut server = RedisServer { port: free_port(), child: None, dir };
            match server.spawn() {
                Ok(()) => return server,
                Err(error) => last_error = error,
            }
        }
        panic!("could not start redis-server: {last_error}");
    }

    fn spawn(&mut self) -> Result<(), String> {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--dir", &self.dir.path().display().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(child) => child,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => panic!(
                "`redis-server` is not on PATH; the cache tests need a real Redis. \
                 Run scripts/test.sh (it installs redis-server) or install it yourself \
                 (e.g. `apt-get install redis-server`)."
            ),
            Err(error) => return Err(format!("cannot run redis-server: {error}")),
        };
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(format!("redis-server on port {} exited at start with {status}", self.port));
            }
            if redis_ping(self.port) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        self.kill();
        Err(format!("redis-server on port {} did not answer PING within 5 s", self.port))
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills the server and waits until it is gone (the port refuses connections).
    pub fn stop(&mut self) {
        self.kill();
        let deadline = Instant::now() + Duration::from_secs(5);
        while redis_ping(self.port) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(25));
        }
        assert!(!redis_ping(self.port), "redis on port {} still answers after being killed", self.port);
    }

    /// Starts the server again on the same port (empty, since nothing is saved).
    pub fn start_again(&mut self) {
        assert!(self.child.is_none(), "start_again needs a stopped server");
        let mut last_error = String::new();
        // The port was ours a moment ago; retry briefly in case the kernel is slow to let go.
        for _ in 0..20 {
            match self.spawn() {
                Ok(()) => return,
                Err(error) => last_error = error,
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("could not restart redis-server on port {}: {last_error}", self.port);
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

/// Whether a Redis on `port` answers `PING` with `+PONG`.
fn redis_ping(port: u16) -> bool {
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let _ = stream.set_write_timeout(Some(Duration::from_millis(500)));
    if stream.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 16];
    let mut read = 0;
    while read < 7 {
        match stream.read(&mut reply[read..]) {
            Ok(0) | Err(_) => break,
            Ok(n) => read += n,
        }
    }
    reply[..read].starts_with(b"+PONG")
}

// ---------------------------------------------------------------------------
// The application
// ---------------------------------------------------------------------------

/// How to build a [`TestApp`].
#[derive(Clone, Default)]
pub struct TestAppBuilder {
    redis_url: Option<String>,
    read_keys: Vec<String>,
    debounce_seconds: u64,
    max_wait_seconds: Option<u64>,
    rate_limit: Option<(u32, u32)>,
    refresh_networks: bool,
}

impl TestAppBuilder {
    /// Use Redis at `url` instead of the in-process cache.
    pub fn redis(mut self, url: impl Into<String>) -> TestAppBuilder {
        self.redis_url = Some(url.into());
        self
    }

    /// Require [`READ_KEY`] (or the write key) for reads.
    pub fn read_key(mut self) -> TestAppBuilder {
        self.read_keys.push(READ_KEY.to_string());
        self
    }

    /// Refit the model this many seconds after the last write (0 = only on
    /// `POST /v1/admin/train`, the default, so generations change only when a test says so).
    pub fn retrain_after(mut self, seconds: u64) -> TestAppBuilder {
        self.debounce_seconds = seconds;
        self
    }

    /// Refit at the latest this many seconds after the first of a run of writes
    /// (default: the larger of the debounce and 60 s).
    pub fn retrain_max_wait(mut self, seconds: u64) -> TestAppBuilder {
        self.max_wait_seconds = Some(seconds);
        self
    }

    /// Limit `/v1` to `per_second` requests per key or address, with `burst`.
    pub fn rate_limit(mut self, per_second: u32, burst: u32) -> TestAppBuilder {
        self.rate_limit = Some((per_second, burst));
        self
    }

    /// Let the batch refresh assemble every firm's network too.
    pub fn refresh_networks(mut self) -> TestAppBuilder {
        self.refresh_networks = true;
        self
    }

    pub async fn spawn(self) -> TestApp {
        let data = Arc::new(tempfile::tempdir().expect("temporary data directory"));
        TestApp::start(self, data).await
    }

    fn settings(&self, data: &TempDir) -> Settings {
        let quote = |text: &str| serde_json::to_string(text).expect("string");
        let list = |items: &[String]| format!("[{}]", items.iter().map(|i| quote(i)).collect::<Vec<_>>().join(", "));
        let mut toml = format!(
            "[server]\nhost = \"127.0.0.1\"\nport = 0\nworkers = 2\nrate_limit_per_second = {}\nrate_limit_burst = {}\n\n\
             [data]\ndir = {}\n\n\
             [auth]\nwrite_keys = {}\nread_keys = {}\n\n\
             [models]\nretrain_debounce_seconds = {}\nretrain_max_wait_seconds = {}\n\n\
             [refresh]\nnetworks = {}\n\n\
             [log]\nlevel = \"warn\"\n\n",
            self.rate_limit.map_or(0, |(rate, _)| rate),
            self.rate_limit.map_or(50, |(_, burst)| burst),
            quote(&data.path().join("data").display().to_string()),
            list(&[WRITE_KEY.to_string()]),
            list(&self.read_keys),
            self.debounce_seconds,
            self.max_wait_seconds.unwrap_or(self.debounce_seconds.max(60)),
            self.refresh_networks,
        );
        toml.push_str("[cache]\n");
        // Tests check which tier answered, with several services fitting at once on
        // two cores: a slow moment must not read as a Redis failure.
        toml.push_str("redis_timeout_ms = 250\n");
        if let Some(url) = &self.redis_url {
            toml.push_str(&format!("redis_url = {}\n", quote(url)));
        }
        let file: PathBuf = data.path().join("klynge.toml");
        std::fs::write(&file, toml).expect("write the test settings");
        // `None`: the process environment is ignored, so tests never see KLYNGE__* variables.
        Settings::load_with_env(&SettingsSources { file: Some(file), overrides: Vec::new() }, None)
            .expect("test settings are valid")
    }
}

/// The real service on `127.0.0.1:<free port>` over a temporary data directory.
pub struct TestApp {
    pub base_url: String,
    pub port: u16,
    pub client: reqwest::Client,
    builder: TestAppBuilder,
    data: Arc<TempDir>,
    running: Option<Running>,
}

struct Running {
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl TestApp {
    pub fn builder() -> TestAppBuilder {
        TestAppBuilder::default()
    }

    /// An application with the in-process cache and no automatic refits.
    pub async fn spawn() -> TestApp {
        TestAppBuilder::default().spawn().await
    }

    async fn start(builder: TestAppBuilder, data: Arc<TempDir>) -> TestApp {
        let client =
            reqwest::Client::builder().no_proxy().timeout(Duration::from_secs(60)).build().expect("http client");
        let (port, running) = launch(&builder, &data).await;
        TestApp { base_url: format!("http://127.0.0.1:{port}"), port, client, builder, data, running: Some(running) }
    }

    /// Stops the service and builds a new one over the same data directory (a new
    /// port), as a restart of the process would.
    pub async fn restart(&mut self) {
        self.shutdown().await;
        let (port, running) = launch(&self.builder, &self.data).await;
        self.port = port;
        self.base_url = format!("http://127.0.0.1:{port}");
        self.running = Some(running);
    }

    /// Stops the service and waits for its thread (and every task on it) to end.
    pub async fn shutdown(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = running.stop.send(());
            tokio::task::spawn_blocking(move || running.thread.join())
                .await
                .expect("join task")
                .expect("the application thread does not panic");
        }
    }

    pub fn data_dir(&self) -> &std::path::Path {
        self.data.path()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// A request without credentials.
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path))
    }

    /// A request carrying the write key.
    pub fn authed(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.request(method, path).bearer_auth(WRITE_KEY)
    }

    pub async fn get(&self, path: &str) -> Reply {
        Reply::read(self.request(Method::GET, path).send().await).await
    }

    /// POST of a JSON value with the write key.
    pub async fn post_json(&self, path: &str, body: &Value) -> Reply {
        Reply::read(self.authed(Method::POST, path).json(body).send().await).await
    }

    /// POST of a JSON value without credentials (shortlists and networks are reads).
    pub async fn query_json(&self, path: &str, body: &Value) -> Reply {
        Reply::read(self.request(Method::POST, path).json(body).send().await).await
    }

    /// POST of raw bytes with the write key and the given content type.
    pub async fn post_raw(&self, path: &str, content_type: &str, body: impl Into<reqwest::Body>) -> Reply {
        Reply::read(self.authed(Method::POST, path).header("content-type", content_type).body(body).send().await).await
    }

    pub async fn put_json(&self, path: &str, body: &Value) -> Reply {
        Reply::read(self.authed(Method::PUT, path).json(body).send().await).await
    }

    /// PUT of exact JSON text, so tests can check the bytes come back unchanged.
    pub async fn put_raw(&self, path: &str, body: &str) -> Reply {
        Reply::read(
            self.authed(Method::PUT, path)
                .header("content-type", "application/json")
                .body(body.to_string())
                .send()
                .await,
        )
        .await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        Reply::read(self.authed(Method::DELETE, path).send().await).await
    }

    /// Upserts profiles as one JSON array and asserts success.
    pub async fn upsert(&self, profiles: &[Value]) {
        let reply = self.post_json("/v1/firms", &Value::Array(profiles.to_vec())).await;
        reply.assert_status(200);
        assert_eq!(reply.json()["upserted"], profiles.len(), "{}", reply.body);
    }

    /// Stores collaborations and asserts success.
    pub async fn collaborate(&self, collaborations: &[Value]) {
        for collaboration in collaborations {
            self.post_json("/v1/collaborations", collaboration).await.assert_status(201);
        }
    }

    /// Fits the model on the catalogue as it is now (`POST /v1/admin/train`, a
    /// job: 202 with its `Location`, followed until it ends) and returns the
    /// job's outcome, the model then serving.
    pub async fn train(&self) -> Value {
        let reply = Reply::read(self.authed(Method::POST, "/v1/admin/train").send().await).await;
        reply.assert_status(202);
        let job = reply.json();
        assert_eq!(job["kind"], "train", "{job}");
        let location = reply.header("location").expect("a job answers with its Location").to_string();
        assert_eq!(location, format!("/v1/admin/jobs/{}", job["id"].as_str().expect("job id")));
        let deadline = Instant::now() + Duration::from_secs(300);
        let job = loop {
            let reply = Reply::read(self.authed(Method::GET, &location).send().await).await;
            reply.assert_status(200);
            let job = reply.json();
            if job["status"] != "running" {
                break job;
            }
            assert!(Instant::now() < deadline, "the fit did not finish: {job}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        assert_eq!(job["status"], "succeeded", "{job}");
        let info = job["outcome"].clone();
        assert_eq!(info["current"], true, "the model just trained is current: {info}");
        info
    }

    /// Loads [`catalogue`] and [`collaborations`] and fits the model.
    pub async fn load_catalogue(&self) {
        self.upsert(&catalogue()).await;
        self.collaborate(&collaborations()).await;
        self.train().await;
    }

    /// Polls `GET path` until `done` accepts the reply, for at most `seconds`.
    pub async fn poll_until(&self, path: &str, seconds: u64, done: impl Fn(&Reply) -> bool) -> Reply {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        loop {
            let reply = self.get(path).await;
            if done(&reply) {
                return reply;
            }
            assert!(Instant::now() < deadline, "GET {path} did not reach the expected state in {seconds} s: {reply:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(running) = self.running.take() {
            let _ = running.stop.send(());
            let _ = running.thread.join();
        }
    }
}

/// Builds the application on its own thread and actix `System` and waits for its
/// port. A restart may find the previous instance's index lock still held for a
/// moment (its HTTP workers stop asynchronously), so building is retried briefly.
async fn launch(builder: &TestAppBuilder, data: &Arc<TempDir>) -> (u16, Running) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let settings = builder.settings(data);
        let (port_tx, port_rx) = tokio::sync::oneshot::channel::<Result<u16, String>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let app = match Application::build(settings).await {
                    Ok(app) => app,
                    Err(error) => {
                        let _ = port_tx.send(Err(format!("{error:#}")));
                        return;
                    }
                };
                let _ = port_tx.send(Ok(app.port()));
                tokio::select! {
                    result = app.run_until_stopped() => result.expect("the server runs"),
                    _ = stop_rx => {}
                }
            });
        });
        match port_rx.await {
            Ok(Ok(port)) => return (port, Running { stop: stop_tx, thread }),
            Ok(Err(error)) => {
                let _ = thread.join();
                assert!(Instant::now() < deadline, "Application::build failed: {error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(_) => {
                let outcome = thread.join();
                panic!("the application thread ended before reporting its port: {outcome:?}");
            }
        }
    }
}

/// A response, read completely, so assertions can print it.
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Reply {
    /// Reads a response; a transport error is a test failure with its cause.
    pub fn read(result: reqwest::Result<reqwest::Response>) -> ReplyFuture {
        ReplyFuture(result)
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|error| panic!("status {} body is not JSON ({error}): {}", self.status, self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|value| value.to_str().ok())
    }

    /// The `x-cache` header (`hit`, `miss`).
    pub fn cache(&self) -> &str {
        self.header("x-cache").unwrap_or_else(|| panic!("no x-cache header: {self:?}"))
    }

    pub fn assert_status(&self, status: u16) -> &Reply {
        assert_eq!(self.status, status, "unexpected status; body: {}", self.body);
        self
    }

    /// Asserts an error reply: `status`, JSON content type and
    /// `{"error": {"code": code, "message": <non-empty>, ...}}`; returns `error`.
    pub fn assert_error(&self, status: u16, code: &str) -> Value {
        self.assert_status(status);
        let content_type = self.header("content-type").unwrap_or_default();
        assert!(content_type.starts_with("application/json"), "error content type {content_type}: {}", self.body);
        let body = self.json();
        let error = body.get("error").unwrap_or_else(|| panic!("no `error` object: {}", self.body)).clone();
        assert_eq!(error["code"], code, "error code: {}", self.body);
        let message = error["message"].as_str().unwrap_or_default();
        assert!(!message.trim().is_empty(), "error message must be non-empty: {}", self.body);
        let keys: Vec<&String> = error.as_object().expect("object").keys().collect();
        assert!(
            keys.iter().all(|k| ["code", "message", "field", "details"].contains(&k.as_str())),
            "unexpected keys in error: {}",
            self.body
        );
        error
    }

    /// Asserts a 422 `validation_failed` naming `field`; returns `error`.
    pub fn assert_invalid(&self, field: &str) -> Value {
        let error = self.assert_error(422, "validation_failed");
        assert_eq!(error["field"], field, "error field: {}", self.body);
        error
    }
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {:?} {}", self.status, self.headers, self.body)
    }
}

/// `Reply::read(...).await`: reads the body of a sent request.
pub struct ReplyFuture(reqwest::Result<reqwest::Response>);

impl std::future::IntoFuture for ReplyFuture {
    type Output = Reply;
    type IntoFuture = std::pin::Pin<Box<dyn std::future::Future<Output = Reply> + Send>>;

    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move {
            let response = self.0.unwrap_or_else(|error| panic!("request failed: {error:?}"));
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let body = response.text().await.unwrap_or_else(|error| panic!("reading the body failed: {error:?}"));
            Reply { status, headers, body }
        })
    }
}

// ---------------------------------------------------------------------------
// Assertions shared by the API tests
// ---------------------------------------------------------------------------

/// The `id` of every item of a JSON list.
pub fn ids_of(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|item| item["id"].as_str().expect("id").to_string())
        .collect()
}

pub fn is_rfc3339(text: &str) -> bool {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).is_ok()
}

/// The bytes a stored profile comes back with: exactly as sent, with the
/// service's fields appended before the closing brace.
pub fn assert_round_trip(sent: &str, returned: &str) -> Value {
    let prefix = sent.trim_end().strip_suffix('}').expect("sent an object").trim_end();
    assert!(returned.starts_with(prefix), "profile not returned byte-for-byte\nsent:     {sent}\nreturned: {returned}");
    let rest = &returned[prefix.len()..];
    assert!(rest.starts_with(",\"updated_at\":\""), "service fields follow the sent text directly: {rest}");
    let value: Value = serde_json::from_str(returned).expect("returned profile is JSON");
    assert!(is_rfc3339(value["updated_at"].as_str().unwrap_or_default()), "updated_at: {returned}");
    value
}

// ---------------------------------------------------------------------------
// The fixture catalogue
// ---------------------------------------------------------------------------

/// A food value chain across Denmark, Germany and Sweden: farms, dairies,
/// bakeries and breweries, cold-chain logistics, packaging, software, energy,
/// machinery, universities and research institutes. 46 profiles, one JSON object
/// a line, exactly as a client would send them.
const PROFILES_NDJSON: &str = include_str!("../fixtures/profiles.ndjson");

/// Past projects between fixture firms, one a line.
const COLLABORATIONS_NDJSON: &str = include_str!("../fixtures/collaborations.ndjson");

fn ndjson(text: &'static str, file: &str) -> Vec<Value> {
    text.lines()
        .filter(|line| !line.trim().is_empty())
        .enumerate()
        .map(|(n, line)| serde_json::from_str(line).unwrap_or_else(|error| panic!("{file} line {}: {error}", n + 1)))
        .collect()
}

/// The fixture profiles, parsed once per test binary.
fn profiles() -> &'static [Value] {
    static PROFILES: std::sync::LazyLock<Vec<Value>> =
        std::sync::LazyLock::new(|| ndjson(PROFILES_NDJSON, "tests/fixtures/profiles.ndjson"));
    &PROFILES
}

fn text_of<'a>(profile: &'a Value, field: &str) -> &'a str {
    profile[field].as_str().unwrap_or_else(|| panic!("fixture profile without {field}: {profile}"))
}

/// The fixture profiles as JSON objects.
pub fn catalogue() -> Vec<Value> {
    profiles().to_vec()
}

/// The fixture profile with `id`.
pub fn profile(id: &str) -> Value {
    profiles().iter().find(|p| text_of(p, "id") == id).unwrap_or_else(|| panic!("no fixture profile {id}")).clone()
}

/// Ids of the fixture profiles.
pub fn catalogue_ids() -> Vec<&'static str> {
    profiles().iter().map(|p| text_of(p, "id")).collect()
}

/// What filters look at in a fixture profile.
#[derive(Debug, Clone, Copy)]
pub struct Fact {
    pub id: &'static str,
    pub kind: &'static str,
    pub country: &'static str,
    pub sectors: &'static [&'static str],
}

/// The filterable facts of every fixture profile, to count expected results.
pub fn fixture_facts() -> Vec<Fact> {
    static SECTORS: std::sync::LazyLock<Vec<Vec<&'static str>>> = std::sync::LazyLock::new(|| {
        profiles()
            .iter()
            .map(|p| p["sectors"].as_array().into_iter().flatten().filter_map(Value::as_str).collect())
            .collect()
    });
    profiles()
        .iter()
        .zip(SECTORS.iter())
        .map(|(p, sectors)| Fact {
            id: text_of(p, "id"),
            kind: text_of(p, "kind"),
            country: text_of(p, "country"),
            sectors,
        })
        .collect()
}

/// Past projects between fixture firms.
pub fn collaborations() -> Vec<Value> {
    ndjson(COLLABORATIONS_NDJSON, "tests/fixtures/collaborations.ndjson")
}
