//! The command line as an operator runs it: the real `klynge` binary over a
//! temporary data directory.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{TestApp, catalogue};

fn klynge(data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_klynge"))
        .args(args)
        .arg("--data-dir")
        .arg(data)
        .env("KLYNGE__LOG__LEVEL", "warn")
        .output()
        .expect("run klynge")
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

#[test]
fn ingest_reports_bad_lines_by_number_and_loads_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("firms.ndjson");
    let mut lines: Vec<String> = catalogue().iter().take(5).map(|firm| firm.to_string()).collect();
    lines.insert(2, r#"{"id": "fz-1", "name": "Fuzz", "kind": "company", "country": "DK", "region": "Dø"}"#.into());
    lines.insert(4, r#"{"id": "broken", "name": "#.into());
    std::fs::write(&file, lines.join("\n")).unwrap();
    let output = klynge(&dir.path().join("data"), &["ingest", file.to_str().unwrap()]);
    let said = text(&output);
    assert!(output.status.success(), "{said}");
    assert!(said.contains("line 3") && said.contains("region"), "the bad region is reported by line: {said}");
    assert!(said.contains("line 5"), "the malformed line is reported: {said}");
    assert!(said.contains("accepted 5 profiles"), "{said}");
    assert!(!said.contains("panicked"), "{said}");
}

#[test]
fn the_next_ingest_says_what_a_killed_one_left() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("firms.ndjson");
    let lines: Vec<String> = catalogue().iter().map(|firm| firm.to_string()).collect();
    std::fs::write(&file, lines.join("\n")).unwrap();
    assert!(klynge(&data, &["ingest", file.to_str().unwrap()]).status.success());
    // What a run killed after its first commit leaves beside the index.
    std::fs::write(
        data.join("ingest-in-progress.json"),
        r#"{"started_at": "2026-11-30T02:00:00Z", "files": ["nightly.ndjson"], "committed_profiles": 5000, "generation": 7}"#,
    )
    .unwrap();
    let output = klynge(&data, &["ingest", file.to_str().unwrap()]);
    let said = text(&output);
    assert!(output.status.success(), "{said}");
    assert!(said.contains("did not finish") && said.contains("5000") && said.contains("nightly.ndjson"), "{said}");
    assert!(!data.join("ingest-in-progress.json").exists(), "a finished run clears the journal");
    let again = text(&klynge(&data, &["ingest", file.to_str().unwrap()]));
    assert!(!again.contains("did not finish"), "{again}");
}

#[tokio::test]
async fn search_reads_the_index_while_the_service_holds_it() {
    let app = TestApp::spawn().await;
    app.load_catalogue().await;
    let data = app.data_dir().join("data");
    let output = tokio::task::spawn_blocking(move || klynge(&data, &["search", "dairy"])).await.unwrap();
    let said = text(&output);
    assert!(output.status.success(), "{said}");
    assert!(said.contains("firms match") && said.contains("dk-dairy"), "{said}");
}
