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

/// Long files are decoded on one thread and analysed on another, with blocks handed over a channel
/// in reused buffers: on every golden file, one thread, two threads and the whole decoded signal
/// analysed in one piece must give the same 25 numbers (a stale or lost block would change them).
#[test]
fn one_thread_two_threads_and_the_whole_signal_agree() {
    use trackprint_server::engine::{analyze_file_with, decode_file, Threads};
    use trackprint_server::features::accumulator::fingerprint_of;
    let golden = load("golden.json");
    let mut compared = 0;
    for (name, expected) in golden["files"].as_object().expect("files") {
        let path = golden_dir().join(name);
        if expected["ok"] != Value::Bool(true) {
            // a bad file fails the same way on two threads (the decoder's error, not "analysis stopped")
            let code = expected["code"].as_str().unwrap_or("");
            match analyze_file_with(&path, &Limits::default(), None, Threads::Two) {
                Err(e) if e.code.as_str() == code => {}
                other => panic!("{name} on two threads: expected {code}, got {other:?}"),
            }
            continue;
        }
        let mut samples = Vec::new();
        let facts = decode_file(&path, &Limits::default(), |block| {
            samples.extend_from_slice(block);
            Ok(())
        })
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        let whole = fingerprint_of(&samples, facts.sample_rate, facts.channels).unwrap_or_else(|e| panic!("{name}: {e}"));
        for threads in [Threads::One, Threads::Two] {
            let streamed = analyze_file_with(&path, &Limits::default(), None, threads).unwrap_or_else(|e| panic!("{name}: {e}"));
            for dim in DIMENSIONS {
                let (a, b) = (streamed.fingerprint.get(dim).unwrap(), whole.get(dim).unwrap());
                assert!(a == b || (a - b).abs() <= 1e-9 * a.abs().max(1.0), "{name} ({threads:?}): {dim} {a}, whole signal {b}");
            }
        }
        compared += 1;
    }
    assert!(compared >= 15, "only {compared} golden files decoded");
}

/// A 40-s WAV (long enough for two threads) cut at half its declared length: `truncated` with one
/// thread or two, never the second thread's "analysis stopped".
#[test]
fn a_long_cut_file_is_truncated_on_one_thread_or_two() {
    use trackprint_server::engine::{analyze_file_with, Threads, TWO_THREADS_FROM_S};
    let (rate, seconds) = (44_100u32, 40u32);
    assert!(seconds as f64 >= TWO_THREADS_FROM_S);
    let frames = rate * seconds;
    let data_len = frames * 4; // 16-bit stereo
    let mut wav = Vec::with_capacity(44 + data_len as usize);
    wav.extend_from_slice(b"RIFF");
    wav.extend_from_slice(&(36 + data_len).to_le_bytes());
    wav.extend_from_slice(b"WAVEfmt ");
    for field in [16u32.to_le_bytes().as_slice(), &1u16.to_le_bytes(), &2u16.to_le_bytes(), &rate.to_le_bytes(),
                  &(rate * 4).to_le_bytes(), &4u16.to_le_bytes(), &16u16.to_le_bytes()] {
        wav.extend_from_slice(field);
    }
    wav.extend_from_slice(b"data");
    wav.extend_from_slice(&data_len.to_le_bytes());
    for i in 0..frames {
        let x = ((i as f64 * 440.0 * std::f64::consts::TAU / rate as f64).sin() * 8000.0) as i16;
        wav.extend_from_slice(&x.to_le_bytes());
        wav.extend_from_slice(&x.to_le_bytes());
    }
    let dir = std::env::temp_dir().join(format!("trackprint-cut-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (whole, cut) = (dir.join("whole.wav"), dir.join("cut.wav"));
    std::fs::write(&whole, &wav).unwrap();
    std::fs::write(&cut, &wav[..wav.len() / 2]).unwrap();
    for threads in [Threads::One, Threads::Two] {
        assert!(analyze_file_with(&whole, &Limits::default(), None, threads).is_ok(), "{threads:?}");
        match analyze_file_with(&cut, &Limits::default(), None, threads) {
            Err(e) => assert_eq!(e.code.as_str(), "truncated", "{threads:?}: {e}"),
            Ok(_) => panic!("{threads:?}: a cut file was fingerprinted"),
        }
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
