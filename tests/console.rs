//! The console (`/`) in a real browser: headless Chromium from the distribution,
//! driven over WebDriver (fantoccini → chromedriver), against the real
//! application with read keys on. It walks what a cluster manager does — give a
//! key when asked, search, open a firm, build a network for an opportunity, check
//! its drawing (columns in the API's chain order, a link's reason under the
//! pointer, the keyboard walk), lock one member and exclude another, ask again,
//! reopen the share link, compare alternatives, download the CSV, save a draft,
//! accept a member (the page asks for the write key), the print picture, 768 px —
//! and checks the browser saw no console error and asked no host but the service
//! (Chromium resolves no name but 127.0.0.1, and its network log is read back).
//!
//! `scripts/test.sh` installs `chromium` and `chromium-driver` when missing. If
//! they truly cannot be installed it sets `KLYNGE_SKIP_BROWSER_TEST=1` and says so;
//! only then does this test skip (loudly). The network view's screenshots are saved
//! to `target/console-network.png` and `target/console-network-768.png` (or
//! `$KLYNGE_CONSOLE_SCREENSHOT` and its `-768` sibling).
//!
//! With `KLYNGE_CONSOLE_URL` set (e.g. `http://127.0.0.1:8080`, a running
//! `klynge serve --demo`), the same walk runs against that service instead, with
//! the demo's opportunity: "assistive-living homes for the elderly" in the
//! Nordic countries (that is how the README's screenshot is made). The accept
//! step runs there only with `KLYNGE_CONSOLE_WRITE_KEY` set, since it writes.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::actions::{InputSource, MouseActions, PointerAction};
use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt;
use serde_json::{Value, json};

use common::{READ_KEY, TestApp, WRITE_KEY, free_port};

/// A `chromedriver` child process on a free local port, killed on drop.
struct ChromeDriver {
    child: Child,
    port: u16,
}

impl ChromeDriver {
    /// Starts chromedriver, or `None` when it is not installed.
    fn start() -> Option<ChromeDriver> {
        let port = free_port();
        let child = match Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(child) => child,
            Err(error) if error.kind() == std::io::ErrorKind::NotFound => return None,
            Err(error) => panic!("cannot run chromedriver: {error}"),
        };
        Some(ChromeDriver { child, port })
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn capabilities(downloads: &Path) -> serde_json::Map<String, Value> {
    let options = json!({
        "args": [
            "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--window-size=1280,900", "--no-proxy-server", "--no-first-run", "--disable-sync",
            "--disable-background-networking", "--disable-component-update", "--disable-default-apps",
            // Every host name fails to resolve: a script, font or call to another host cannot load.
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        ],
        "prefs": {
            "download.default_directory": downloads.display().to_string(),
            "download.prompt_for_download": false,
        },
    });
    let mut caps = serde_json::Map::new();
    caps.insert("browserName".into(), json!("chrome"));
    caps.insert("goog:chromeOptions".into(), options);
    caps.insert("goog:loggingPrefs".into(), json!({"browser": "ALL", "performance": "ALL"}));
    caps
}

/// The entries of one chromedriver log (`browser` or `performance`) since the last read.
async fn read_log(driver: &ChromeDriver, session: &str, kind: &str) -> Vec<Value> {
    let reply: Value = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("http client")
        .post(format!("{}/session/{session}/se/log", driver.url()))
        .json(&json!({ "type": kind }))
        .send()
        .await
        .expect("chromedriver answers")
        .json()
        .await
        .expect("log as JSON");
    reply["value"].as_array().cloned().unwrap_or_else(|| panic!("no {kind} log: {reply}"))
}

/// Runs `script` (its `return` value as JSON) until `done` accepts it, for at most `seconds`.
async fn wait_until(browser: &Client, what: &str, seconds: u64, script: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        let value = browser.execute(script, vec![]).await.expect("script runs");
        if done(&value) {
            return value;
        }
        if Instant::now() > deadline {
            let status: Value = browser
                .execute("return [...document.querySelectorAll('.status, .notice')].map(e => e.textContent)", vec![])
                .await
                .unwrap_or(Value::Null);
            panic!("timed out waiting for {what}: last value {value}; page status {status}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn click(browser: &Client, css: &str) {
    browser.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no `{css}`: {e}")).click().await.expect("click");
}

async fn type_into(browser: &Client, css: &str, text: &str) {
    let input = browser.find(Locator::Css(css)).await.unwrap_or_else(|e| panic!("no `{css}`: {e}"));
    input.clear().await.expect("clear");
    input.send_keys(text).await.expect("type");
}

/// Members of the proposed network as drawn in its table: (id, status).
const MEMBER_ROWS: &str = "return [...document.querySelectorAll('#net-main tr.member')]\
    .map(r => [r.dataset.id, r.className.replace(/.*status-(\\w+).*/, '$1')])";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_in_headless_chromium() {
    let Some(driver) = ChromeDriver::start() else {
        if std::env::var_os("KLYNGE_SKIP_BROWSER_TEST").is_some() {
            eprintln!(
                "\n!!!!!!!! SKIPPED: the console's browser test did not run: chromedriver is not installed !!!!!!!!\n"
            );
            return;
        }
        panic!(
            "`chromedriver` is not on PATH; the console test needs headless Chromium. Run scripts/test.sh \
             (it installs chromium and chromium-driver) or `apt-get install chromium chromium-driver`."
        );
    };
    // The fixture catalogue behind a read key, or an outside service.
    let (_app, walk_plan) = match std::env::var("KLYNGE_CONSOLE_URL") {
        Ok(base) => (None, Plan::demo(base.trim_end_matches('/'))),
        Err(_) => {
            let app = TestApp::builder().read_key().spawn().await;
            app.load_catalogue().await;
            let plan = Plan::fixture(&app.base_url);
            (Some(app), plan)
        }
    };
    let downloads = tempfile::tempdir().expect("download directory");

    let browser = session(&driver, downloads.path()).await;
    let session = browser.session_id().await.expect("session id").expect("a session");
    let outcome = walk(&browser, &walk_plan, downloads.path()).await;
    let console = read_log(&driver, &session, "browser").await;
    let network = read_log(&driver, &session, "performance").await;
    let _ = browser.close().await;

    // Every request the page made went to the service itself (or stayed in the page).
    let origin = format!("{}/", walk_plan.base);
    let mut requested = Vec::new();
    let mut failed = Vec::new();
    for entry in &network {
        let message: Value = serde_json::from_str(entry["message"].as_str().unwrap_or("{}")).unwrap_or(Value::Null);
        let params = &message["message"]["params"];
        match message["message"]["method"].as_str() {
            Some("Network.requestWillBeSent") => {
                requested.push(params["request"]["url"].as_str().unwrap_or("").to_string())
            }
            Some("Network.loadingFailed") if params["canceled"] != true => failed.push(params.clone()),
            _ => {}
        }
    }
    assert!(requested.iter().any(|url| url.contains("/v1/networks")), "the network log was read: {requested:?}");
    let foreign: Vec<&String> = requested
        .iter()
        .filter(|url| !(url.starts_with(&origin) || url.starts_with("data:") || url.starts_with("blob:")))
        .collect();
    assert!(foreign.is_empty(), "requests to another host: {foreign:?}");
    assert!(failed.is_empty(), "failed requests: {failed:?}");
    // The 401 the first search meets and the 403 the first decision meets (a read
    // key on a write) are the API's answers, not page errors: the browser logs
    // them as failed resources, which are the only messages allowed.
    let errors: Vec<&Value> = console
        .iter()
        .filter(|e| e["level"] == "SEVERE" || e["level"] == "WARNING")
        .filter(|e| {
            let message = e["message"].as_str().unwrap_or("");
            !(message.contains("status of 401") || message.contains("status of 403"))
        })
        .collect();
    assert!(errors.is_empty(), "browser console errors: {errors:?}");
    outcome.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
}

/// The manager's walk; a panic inside is carried out so the logs are still read.
/// What the walk types, and where.
struct Plan {
    base: String,
    /// The read key the service will ask for, if it asks.
    key: Option<&'static str>,
    /// The write key the page will ask for when a decision is sent, if the walk sends one.
    write_key: Option<&'static str>,
    search: &'static str,
    opportunity: &'static str,
    countries: &'static str,
    per_country: &'static str,
}

impl Plan {
    fn fixture(base: &str) -> Plan {
        Plan {
            base: base.to_string(),
            key: Some(READ_KEY),
            write_key: Some(WRITE_KEY),
            search: "dairy",
            opportunity: "organic dairy products in recyclable packaging delivered through a traceable cold chain",
            countries: "DK, SE",
            per_country: "4",
        }
    }

    fn demo(base: &str) -> Plan {
        Plan {
            base: base.to_string(),
            key: None,
            // Deciding writes to the service's data, so the walk does it only when told the key.
            write_key: std::env::var("KLYNGE_CONSOLE_WRITE_KEY").ok().map(|key| &*key.leak()),
            search: "elderly care",
            opportunity: "assistive-living homes for the elderly",
            countries: "DK, SE, NO, FI, IS",
            per_country: "3",
        }
    }
}

async fn walk(browser: &Client, plan: &Plan, downloads: &Path) -> Result<(), Box<dyn std::any::Any + Send>> {
    std::panic::AssertUnwindSafe(steps(browser, plan, downloads)).catch_unwind().await
}

async fn steps(browser: &Client, plan: &Plan, downloads: &Path) {
    // The page itself is open although reads need a key.
    browser.goto(&format!("{}/", plan.base)).await.expect("open the console");
    browser.wait().for_element(Locator::Css("#find-q")).await.expect("the search form");

    // Find: the API answers 401, the page asks for the key, then shows results.
    type_into(browser, "#find-q", plan.search).await;
    browser.find(Locator::Css("#find-kind")).await.unwrap().select_by_value("company").await.unwrap();
    click(browser, "#find-form button[type=submit]").await;
    if let Some(key) = plan.key {
        wait_until(browser, "the key prompt", 10, "return document.getElementById('key-dialog').open", |v| v == true)
            .await;
        type_into(browser, "#key-input", key).await;
        click(browser, "#key-form button[value=save]").await;
    }
    let hits = wait_until(
        browser,
        "search results",
        15,
        "return [...document.querySelectorAll('#find-results li a')].map(a => a.getAttribute('href'))",
        |v| v.as_array().is_some_and(|a| !a.is_empty()),
    )
    .await;
    let status = browser.find(Locator::Css("#find-status")).await.unwrap().text().await.unwrap();
    assert!(status.contains("match"), "{status}");
    assert!(
        browser.execute("return !!document.querySelector('#find-results .snippet b')", vec![]).await.unwrap() == true,
        "snippets highlight the matched words"
    );

    // A firm's page: profile, collaborations, partners and the network around it.
    let first = hits[0].as_str().unwrap().to_string();
    click(browser, &format!("#find-results a[href='{first}']")).await;
    wait_until(
        browser,
        "the firm's page",
        20,
        "const g = document.querySelector('#around-net .graph'); \
         return [document.querySelectorAll('#firm-profile dt').length, document.querySelectorAll('#firm-partners li').length, \
         g && g.cy ? g.cy.nodes('.member').length : 0]",
        |v| v[0].as_u64() > Some(2) && v[1].as_u64() > Some(0) && v[2].as_u64() >= Some(5),
    )
    .await;

    // Its known collaborations name the partners (looked up by id).
    wait_until(
        browser,
        "partner names in the collaborations",
        10,
        "return [...document.querySelectorAll('#firm-ties a')].filter(a => a.textContent === \
         decodeURIComponent(a.getAttribute('href').slice(7))).length",
        |v| v == 0,
    )
    .await;

    // Build a network for an opportunity.
    click(browser, "a[data-nav=network]").await;
    browser.wait().for_element(Locator::Css("#net-opportunity")).await.unwrap();
    type_into(browser, "#net-opportunity", plan.opportunity).await;
    type_into(browser, "#net-max", "7").await;
    type_into(browser, "#net-k-academic", "1").await;
    type_into(browser, "#net-countries", plan.countries).await;
    type_into(browser, "#net-cap", plan.per_country).await;
    click(browser, "#net-submit").await;
    let rows = wait_until(browser, "the proposed network", 20, MEMBER_ROWS, |v| {
        v.as_array().is_some_and(|rows| rows.len() >= 5)
    })
    .await;
    check_drawing(browser, plan, &rows).await;

    // Lock one member, exclude another, ask again.
    let rows: Vec<(String, String)> = serde_json::from_value(rows).unwrap();
    let proposed: Vec<&String> = rows.iter().filter(|(_, status)| status == "proposed").map(|(id, _)| id).collect();
    assert!(proposed.len() >= 2, "{rows:?}");
    let (locked, excluded) = (proposed[0].clone(), proposed[proposed.len() - 1].clone());
    click(browser, &format!("#net-main tr[data-id='{locked}'] button.lock")).await;
    click(browser, &format!("#net-main tr[data-id='{excluded}'] button.exclude")).await;
    click(browser, "#net-again").await;
    let again = wait_until(browser, "the network asked again", 20, MEMBER_ROWS, |v| {
        v.as_array().is_some_and(|rows| rows.iter().any(|r| r[0] == locked.as_str() && r[1] == "locked"))
    })
    .await;
    let again: Vec<(String, String)> = serde_json::from_value(again).unwrap();
    assert!(again.len() >= 5, "{again:?}");
    assert!(again.iter().all(|(id, _)| *id != excluded), "{excluded} is excluded: {again:?}");

    // The address is the share link: opened afresh it rebuilds the same request.
    let link = browser.current_url().await.unwrap().to_string();
    assert!(link.contains("request="), "{link}");
    browser.goto("about:blank").await.unwrap();
    browser.goto(&link).await.unwrap();
    let shared = wait_until(browser, "the shared network", 20, MEMBER_ROWS, |v| {
        v.as_array().is_some_and(|rows| rows.len() >= 5)
    })
    .await;
    let shared: Vec<(String, String)> = serde_json::from_value(shared).unwrap();
    assert_eq!(shared, again, "the share link rebuilds the same network");
    let locked_chips = browser.find(Locator::Css("#net-locked")).await.unwrap().text().await.unwrap();
    assert!(!locked_chips.contains("none"), "the lock came back with the link: {locked_chips}");

    // Alternatives side by side.
    click(browser, "#net-compare").await;
    wait_until(browser, "alternatives", 5, "return document.querySelectorAll('#net-alts-grid .alt').length", |v| {
        v.as_u64() >= Some(2)
    })
    .await;

    // Screenshot of the network view at 1280 px.
    browser.execute("document.getElementById('net-result').scrollIntoView()", vec![]).await.unwrap();
    let png = browser.screenshot().await.expect("screenshot");
    let target = std::env::var_os("KLYNGE_CONSOLE_SCREENSHOT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target").join("console-network.png"));
    if let Some(dir) = target.parent() {
        std::fs::create_dir_all(dir).expect("screenshot directory");
    }
    std::fs::write(&target, png).expect("save the screenshot");

    // CSV download: the network's rows, with the lock kept and the exclusion honoured.
    click(browser, "#net-csv").await;
    let file = downloads.join("network.csv");
    let deadline = Instant::now() + Duration::from_secs(15);
    while !file.exists() {
        assert!(Instant::now() < deadline, "network.csv was not downloaded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut reader = csv::Reader::from_path(&file).expect("the CSV");
    let headers = reader.headers().expect("header row").clone();
    assert_eq!(&headers[0], "network");
    let id_column = headers.iter().position(|h| h == "id").expect("an id column");
    let first_network: Vec<String> =
        reader.records().map(|r| r.expect("row")).filter(|r| &r[0] == "0").map(|r| r[id_column].to_string()).collect();
    let drawn: Vec<String> = again.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(first_network, drawn, "the CSV holds the network on the page");

    // A draft saved in the browser is listed with the link that rebuilds it.
    click(browser, "#net-save").await;
    click(browser, "a[data-nav=drafts]").await;
    let drafts = wait_until(
        browser,
        "the saved draft",
        5,
        "return [...document.querySelectorAll('#drafts-list li.draft a')].map(a => a.getAttribute('href'))",
        |v| v.as_array().is_some_and(|a| !a.is_empty()),
    )
    .await;
    assert!(drafts[0].as_str().is_some_and(|href| href.contains("request=")), "{drafts}");
    browser.back().await.unwrap();
    wait_until(browser, "the network view again", 5, "return !document.getElementById('view-network').hidden", |v| {
        v == true
    })
    .await;

    // Yes / no: the tab holds the read key, so the first decision meets a 403 and
    // the page asks for the write key, then stores the decision.
    if let Some(write_key) = plan.write_key {
        click(browser, "#net-main tr.status-proposed button.feedback.accept").await;
        wait_until(browser, "the write-key prompt", 10, "return document.getElementById('key-dialog').open", |v| {
            v == true
        })
        .await;
        let why = browser.find(Locator::Css("#key-why")).await.unwrap().text().await.unwrap();
        assert!(why.contains("write key"), "{why}");
        type_into(browser, "#key-input", write_key).await;
        click(browser, "#key-form button[value=save]").await;
        wait_until(
            browser,
            "the stored decision",
            10,
            "return document.querySelector('#net-main tr.status-proposed button.feedback.accept').getAttribute('aria-pressed')",
            |v| v == "true",
        )
        .await;
    }

    // Print view: the drawing becomes a picture the printout carries.
    let printed = browser
        .execute(
            "window.dispatchEvent(new Event('beforeprint')); \
             return document.querySelector('#net-main img.graph-print').src.slice(0, 22)",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(printed, "data:image/png;base64,", "the print view has the drawing as a picture");

    // Tablet width: nothing but the drawing (in its own scroller) is wider than the window.
    browser.set_window_size(768, 1000).await.unwrap();
    let overflow = browser.execute("return document.documentElement.scrollWidth - window.innerWidth", vec![]).await;
    assert!(overflow.unwrap().as_i64() <= Some(0), "the page fits 768 px");
    // The drawing scrolls sideways at this width; the shot shows the members as cards.
    browser.execute("document.querySelector('#net-main table.members').scrollIntoView()", vec![]).await.unwrap();
    let png = browser.screenshot().await.expect("screenshot at 768 px");
    std::fs::write(target.with_file_name(format!("{}-768.png", target.file_stem().unwrap().to_string_lossy())), png)
        .expect("save the 768 px screenshot");
}

/// A WebDriver session with headless Chromium (chromedriver may take a moment to listen).
async fn session(driver: &ChromeDriver, downloads: &Path) -> Client {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        match ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities(downloads))
            .connect(&driver.url())
            .await
        {
            Ok(client) => return client,
            Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(200)).await,
            Err(error) => panic!("no WebDriver session with chromedriver: {error}"),
        }
    }
}

/// A 429 from the API shows the manager when to try again (from `Retry-After`),
/// and the search works again after that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_shows_when_to_retry_after_429() {
    if std::env::var_os("KLYNGE_CONSOLE_URL").is_some() {
        return; // the walk against an outside service is the other test's
    }
    let Some(driver) = ChromeDriver::start() else {
        assert!(std::env::var_os("KLYNGE_SKIP_BROWSER_TEST").is_some(), "`chromedriver` is not on PATH");
        eprintln!("\n!!!!!!!! SKIPPED: the console's 429 browser test did not run: no chromedriver !!!!!!!!\n");
        return;
    };
    // An empty catalogue: loading one would itself meet the limit, and a search
    // answers (with no match) all the same.
    let app = TestApp::builder().rate_limit(1, 2).spawn().await;
    let downloads = tempfile::tempdir().expect("download directory");
    let browser = session(&driver, downloads.path()).await;
    let outcome = async {
        browser.goto(&format!("{}/", app.base_url)).await.expect("open the console");
        type_into(&browser, "#find-q", "dairy").await;
        // Searches faster than one a second: the third meets the limit.
        for _ in 0..4 {
            click(&browser, "#find-form button[type=submit]").await;
        }
        let notice = wait_until(
            &browser,
            "the retry notice",
            10,
            "const n = document.getElementById('notice'); return n.hidden ? '' : n.textContent",
            |v| v.as_str().is_some_and(|t| t.contains("try again in")),
        )
        .await;
        assert!(notice.as_str().unwrap().contains(" s"), "{notice}");
        let status = browser.find(Locator::Css("#find-status")).await.unwrap().text().await.unwrap();
        assert!(status.contains("Too many requests"), "the search says why it failed: {status}");
        wait_until(&browser, "the all-clear", 10, "return document.getElementById('notice').textContent", |v| {
            v.as_str().is_some_and(|t| t.contains("try again now"))
        })
        .await;
        click(&browser, "#find-form button[type=submit]").await;
        wait_until(
            &browser,
            "results after waiting",
            10,
            "return document.getElementById('find-status').textContent",
            |v| v.as_str().is_some_and(|t| t.contains("match")),
        )
        .await;
    };
    let outcome = std::panic::AssertUnwindSafe(outcome).catch_unwind().await;
    let _ = browser.close().await;
    outcome.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
}

/// The proposed network's drawing (cytoscape on a canvas): every member is a
/// node, the stages are columns in the order of the API's `chain` (upstream
/// first, gaps included), a link shows its reason when the pointer is on it, and
/// the keyboard walks the members.
async fn check_drawing(browser: &Client, plan: &Plan, rows: &Value) {
    let drawn = wait_until(
        browser,
        "the drawing",
        10,
        "const g = document.querySelector('#net-main .graph'); if (!g || !g.cy) return null; \
         const columns = g.cy.nodes('.column').sort((a, b) => a.position('x') - b.position('x')); \
         return { members: g.cy.nodes('.member').map(n => n.id()), \
                  columns: columns.map(c => [c.data('stage'), c.hasClass('gap')]), \
                  links: g.cy.edges().length, \
                  request: JSON.parse(decodeURIComponent(location.hash.split('request=')[1])) }",
        |v| !v.is_null(),
    )
    .await;
    let mut members: Vec<String> = serde_json::from_value(drawn["members"].clone()).unwrap();
    let mut listed: Vec<String> = rows.as_array().unwrap().iter().map(|r| r[0].as_str().unwrap().to_string()).collect();
    members.sort();
    listed.sort();
    assert_eq!(members, listed, "every member of the table is a node of the drawing");

    // The same request asked of the API directly: its chain is the drawing's columns.
    let mut call = reqwest::Client::builder().no_proxy().build().unwrap().post(format!("{}/v1/networks", plan.base));
    if let Some(key) = plan.key {
        call = call.bearer_auth(key);
    }
    let answer: Value = call.json(&drawn["request"]).send().await.unwrap().json().await.unwrap();
    let mut chain: Vec<(u64, String, bool)> = answer["network"]["chain"]
        .as_array()
        .expect("the answer has a chain")
        .iter()
        .map(|c| (c["position"].as_u64().unwrap(), c["stage"].as_str().unwrap().to_string(), c["gap"] == true))
        .collect();
    chain.sort();
    let expected: Vec<Value> = chain.iter().map(|(_, stage, gap)| json!([stage, gap])).collect();
    let columns = drawn["columns"].as_array().unwrap();
    assert!(columns.len() >= 2, "stages are columns: {columns:?}");
    // A member whose stage is unknown gets a last column of its own, after the chain.
    assert_eq!(
        &columns[..expected.len()],
        &expected[..],
        "columns follow the API's chain, upstream first, gaps included"
    );
    assert_eq!(
        drawn["links"].as_u64(),
        answer["network"]["links"].as_array().map(|l| l.len() as u64),
        "every link is drawn"
    );

    // The pointer on a link shows its direction and reason.
    browser
        .execute("document.querySelector('#net-main .graph').scrollIntoView({block: 'center'})", vec![])
        .await
        .unwrap();
    let midpoints = browser
        .execute(
            "const g = document.querySelector('#net-main .graph'); const r = g.getBoundingClientRect(); \
             const view = g.parentElement.getBoundingClientRect(); \
             return g.cy.edges().map(e => { const m = e.renderedMidpoint(); return [r.left + m.x, r.top + m.y, e.data('text')]; }) \
               .filter(([x, y]) => x > view.left + 2 && x < Math.min(view.right, innerWidth) - 2 && y > Math.max(view.top, 0) + 2 \
                 && y < Math.min(view.bottom, innerHeight) - 2)",
            vec![],
        )
        .await
        .unwrap();
    let mut shown = false;
    for point in midpoints.as_array().unwrap() {
        let (x, y, text) = (point[0].as_f64().unwrap(), point[1].as_f64().unwrap(), point[2].as_str().unwrap());
        let pointer = MouseActions::new("mouse".into()).then(PointerAction::MoveTo {
            duration: None,
            x: x.round(),
            y: y.round(),
        });
        browser.perform_actions(pointer).await.unwrap();
        let tip = browser
            .execute("const t = document.getElementById('tooltip'); return t.hidden ? '' : t.textContent", vec![])
            .await
            .unwrap();
        if tip.as_str() == Some(text) {
            assert!(text.contains('→') || text.contains('↔'), "{text}");
            assert!(text.split(": ").nth(1).is_some_and(|why| !why.is_empty()), "a link says why: {text}");
            shown = true;
            break;
        }
    }
    assert!(shown || drawn["links"] == 0, "pointing at a link shows its reason: {midpoints}");

    // The keyboard: Home focuses the most upstream member, ArrowRight the next stage's.
    let graph = browser.find(Locator::Css("#net-main .graph")).await.unwrap();
    graph.send_keys("\u{E011}").await.unwrap(); // Home
    let focused = "const g = document.querySelector('#net-main .graph'); const t = document.getElementById('tooltip'); \
                   return [document.activeElement === g, g.dataset.focused || null, t.hidden ? '' : t.textContent]";
    let first = browser.execute(focused, vec![]).await.unwrap();
    assert_eq!(first[0], true, "the drawing has the focus");
    assert!(
        first[2].as_str().is_some_and(|t| t.contains("stage")),
        "a focused member tells its stage and links: {first}"
    );
    graph.send_keys("\u{E014}").await.unwrap(); // ArrowRight
    let next = browser.execute(focused, vec![]).await.unwrap();
    if columns.iter().filter(|c| c[1] == false).count() > 1 {
        assert!(next[1].is_string() && next[1] != first[1], "the arrow key moved to another member: {first} -> {next}");
    }
    graph.send_keys("\u{E00C}").await.unwrap(); // Escape
}

/// Without a browser: the page and its assets are served from the binary, open
/// although reads need a key, with a policy that lets them load nothing from
/// another host, and every asset the page names exists.
#[tokio::test]
async fn console_assets_are_served_open_and_self_contained() {
    let app = TestApp::builder().read_key().spawn().await;
    let page = app.get("/").await;
    page.assert_status(200);
    assert!(page.header("content-type").unwrap_or_default().starts_with("text/html"), "{page:?}");
    let policy = page.header("content-security-policy").unwrap_or_default().to_string();
    assert!(policy.contains("default-src 'self'") && policy.contains("connect-src 'self'"), "{policy}");
    let assets: Vec<&str> = page.body.split('"').filter(|part| part.starts_with("/console/")).collect();
    assert_eq!(
        assets,
        [
            "/console/app.css",
            "/console/vendor/cytoscape.min.js",
            "/console/app.js",
            "/console/vendor/cytoscape.LICENSE"
        ],
        "the page names its style, the drawing library, its script and the library's licence"
    );
    for asset in assets {
        let reply = app.get(asset).await;
        reply.assert_status(200);
        let expected = match asset.rsplit('.').next() {
            Some("js") => "text/javascript",
            Some("css") => "text/css",
            _ => "text/plain",
        };
        assert!(reply.header("content-type").unwrap_or_default().starts_with(expected), "{asset}: {reply:?}");
        if asset.ends_with(".LICENSE") {
            assert!(reply.body.contains("Permission is hereby granted"), "the library's MIT licence ships with it");
        } else if asset.contains("/vendor/") {
            // The library as published (its comments name web pages; the browser walk
            // shows it fetches none of them).
            assert!(reply.body.contains("The Cytoscape Consortium"), "the vendored file keeps its licence header");
        } else {
            assert!(!reply.body.contains("http://") && !reply.body.contains("https://"), "{asset} names no other host");
        }
    }
    assert!(!page.body.contains("http://") && !page.body.contains("https://"), "the page names no other host");
    // The API behind it still wants the key.
    app.get("/v1/firms?q=dairy").await.assert_error(401, "unauthorized");
    app.get("/console/missing.js").await.assert_error(404, "not_found");
}
