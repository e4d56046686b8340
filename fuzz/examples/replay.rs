//! Replays saved inputs (files, or every file under directories) through the fuzz checks
//! without libFuzzer, on any toolchain: for regression corpora and crash files.
//! Run with (in fuzz/): cargo run --release --example replay -- ingest corpus/ingest artifacts/ingest regressions/ingest

use std::path::{Path, PathBuf};

fn files(path: &Path, out: &mut Vec<PathBuf>) {
    match std::fs::read_dir(path) {
        Ok(entries) => {
            for entry in entries.flatten() {
                files(&entry.path(), out);
            }
        }
        Err(_) if path.is_file() => out.push(path.to_path_buf()),
        Err(_) => {}
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let target = args.next().unwrap_or_default();
    let check: fn(&[u8]) = match target.as_str() {
        "ingest" => vigil_fuzz::ingest,
        "verify_reader" => vigil_fuzz::verify_reader,
        _ => {
            eprintln!("usage: replay ingest|verify_reader PATH..");
            std::process::exit(2);
        }
    };
    let mut inputs = Vec::new();
    for arg in args {
        files(Path::new(&arg), &mut inputs);
    }
    for path in &inputs {
        match std::fs::read(path) {
            Ok(data) => check(&data),
            Err(e) => eprintln!("skipping {}: {e}", path.display()),
        }
    }
    println!("replayed {} inputs through {target}", inputs.len());
}
