//! Fingerprint files from the command line (profiling and debugging aid):
//! `cargo run --release --example analyze -- FILE...`
use trackprint_server::engine::{analyze_file, Limits};

fn main() {
    for path in std::env::args().skip(1) {
        match analyze_file(std::path::Path::new(&path), &Limits::default(), None) {
            Ok(out) => println!("{path}: {:?} {:?}", out.timings, out.fingerprint.values()),
            Err(e) => println!("{e}"),
        }
    }
}
