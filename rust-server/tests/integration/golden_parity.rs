//! Engine parity: the Rust engine against the Python engine's answers in
//! ../tests/golden/golden.json (written by scripts/make_golden.py), within
//! trackprint.fingerprint.PARITY_TOLERANCE (copied to tolerance.json).

use serde_json::Value;
use std::path::PathBuf;
use trackprint_server::engine::{analyze_file, Limits};
use trackprint_server::features::DIMENSIONS;

fn golden_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/golden")
}

fn load(name: &str) -> Value {
    let path = golden_dir().join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e} (run scripts/make_golden.py)", path.display()));
    serde_json::from_str(&text).expect("valid JSON")
}

#[test]
fn rust_engine_matches_python_golden_values() {
    let golden = load("golden.json");
    let tolerance = load("tolerance.json");
    let names: Vec<&str> = golden["dimensions"].as_array().expect("dimensions").iter().filter_map(Value::as_str).collect();
    assert_eq!(names, DIMENSIONS, "the Rust DIMENSIONS are not golden.json's (trackprint.fingerprint.DIMENSIONS)");
    let files = golden["files"].as_object().expect("files");
    assert!(files.len() >= 20, "expected the full golden set");
    let mut failures = Vec::new();
    let mut worst = vec![0f64; DIMENSIONS.len()];
    for (name, expected) in files {
        let path = golden_dir().join(name);
        let result = analyze_file(&path, &Limits::default(), None);
        if expected["ok"] != Value::Bool(true) {
            match result {
                Err(e) if e.code.as_str() == expected["code"].as_str().unwrap_or("") => {}
                other => failures.push(format!("{name}: expected error {}, got {other:?}", expected["code"])),
            }
            continue;
        }
        let out = match result {
            Ok(out) => out,
            Err(e) => {
                failures.push(format!("{name}: {e}"));
                continue;
            }
        };
        for (i, dim) in DIMENSIONS.iter().enumerate() {
            let want = expected["fingerprint"][dim].as_f64().expect("number");
            let got = out.fingerprint.get(dim).expect("a Rust dimension of that name");
            let tol = tolerance[dim].as_f64().expect("tolerance");
            let diff = (got - want).abs();
            worst[i] = worst[i].max(diff);
            if diff > tol {
                failures.push(format!("{name}: {dim} rust={got:.6} python={want:.6} diff={diff:.6} > {tol}"));
            }
        }
    }
    for (dim, w) in DIMENSIONS.iter().zip(&worst) {
        println!("max |rust - python| {dim:<24} {w:.6}");
    }
    assert!(failures.is_empty(), "parity failures:\n{}", failures.join("\n"));
}

/// The engine decodes on one thread and analyses on another, handing blocks over a channel with
/// reused buffers: every file must give exactly the 25 numbers of its whole decoded signal analysed
/// in one piece (a stale or lost block would change them).
#[test]
fn handing_blocks_between_threads_changes_no_value() {
    use trackprint_server::engine::decode_file;
    use trackprint_server::features::accumulator::fingerprint_of;
    let golden = load("golden.json");
    let mut compared = 0;
    for (name, expected) in golden["files"].as_object().expect("files") {
        if expected["ok"] != Value::Bool(true) {
            continue;
        }
        let path = golden_dir().join(name);
        let mut samples = Vec::new();
        let facts = decode_file(&path, &Limits::default(), |block| {
            samples.extend_from_slice(block);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let whole = fingerprint_of(&samples, facts.sample_rate, facts.channels).unwrap_or_else(|e| panic!("{name}: {e}"));
        let streamed = analyze_file(&path, &Limits::default(), None).unwrap_or_else(|e| panic!("{name}: {e}"));
        for dim in DIMENSIONS {
            let (a, b) = (streamed.fingerprint.get(dim).unwrap(), whole.get(dim).unwrap());
            assert!(a == b || (a - b).abs() <= 1e-9 * a.abs().max(1.0), "{name}: {dim} streamed {a} whole {b}");
        }
        compared += 1;
    }
    assert!(compared >= 15, "only {compared} golden files decoded");
}
