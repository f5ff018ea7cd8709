//! The features' own cost, decoding left out (profiling aid):
//! `cargo run --release --example features -- [--rounds N] FILE...`
//!
//! Decodes each file once into memory, then streams it through the
//! fingerprint accumulator N times (in the engine's block size) and prints the
//! median seconds per file and the total, with the audio's duration, so a change
//! to a feature can be timed without the decoders' noise.
use std::time::Instant;
use trackprint_server::engine::{decode_file, Limits, SAMPLES_PER_HANDOVER};
use trackprint_server::features::FingerprintAccumulator;

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let mut rounds = 5;
    if args.first().map(String::as_str) == Some("--rounds") {
        rounds = args.get(1).and_then(|n| n.parse().ok()).expect("--rounds N");
        args.drain(..2);
    }
    let (mut total, mut audio) = (0.0, 0.0);
    for path in &args {
        let mut samples = Vec::new();
        let facts = match decode_file(std::path::Path::new(path), &Limits::default(), |block| {
            samples.extend_from_slice(block);
            Ok(())
        }) {
            Ok(facts) => facts,
            Err(e) => {
                println!("{path}: {e}");
                continue;
            }
        };
        // the engine's hand-over size, in whole frames
        let block = SAMPLES_PER_HANDOVER / facts.channels * facts.channels;
        let mut times: Vec<f64> = (0..rounds)
            .map(|_| {
                let start = Instant::now();
                let mut acc = FingerprintAccumulator::new(facts.sample_rate, facts.channels).expect("accumulator");
                samples.chunks(block).for_each(|b| acc.add(b));
                std::hint::black_box(acc.finish().ok());
                start.elapsed().as_secs_f64()
            })
            .collect();
        times.sort_by(f64::total_cmp);
        let median = times[times.len() / 2];
        println!("{path}: {median:.4} s for {:.0} s of audio", facts.decoded_duration_s);
        total += median;
        audio += facts.decoded_duration_s;
    }
    println!("total: {total:.3} s for {audio:.0} s of audio ({:.0}x real time)", audio / total);
}
