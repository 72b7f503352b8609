//! `cargo xtask`: project automation (benchmarks). Not built yet.
fn main() {
    eprintln!("cargo xtask: no tasks yet");
    std::process::exit(2);
}
