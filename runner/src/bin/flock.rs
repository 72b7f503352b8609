//! `flock`: deep ensembles from the command line (see [`flock_runner::app::cli`]).

fn main() -> std::process::ExitCode {
    restore_default_sigpipe();
    flock_runner::app::cli::main()
}

/// Rust programs ignore SIGPIPE, so a write to a closed pipe (`flock predict … | head`) fails
/// and `println!` panics; like every Unix tool, `flock` should simply end when its reader has
/// gone. Restores the default action (terminate quietly).
#[cfg(unix)]
fn restore_default_sigpipe() {
    // POSIX: SIGPIPE is 13 and SIG_DFL is 0 on Linux and the BSDs (macOS included).
    const SIGPIPE: i32 = 13;
    const SIG_DFL: usize = 0;
    unsafe extern "C" {
        fn signal(signum: i32, handler: usize) -> usize;
    }
    // SAFETY: `signal` from the C library the standard library links; setting SIGPIPE's action
    // to SIG_DFL at the start of `main`, before any thread is spawned, has no other effect.
    unsafe {
        signal(SIGPIPE, SIG_DFL);
    }
}

#[cfg(not(unix))]
fn restore_default_sigpipe() {}
