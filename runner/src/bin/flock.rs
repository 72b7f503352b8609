//! `flock`: deep ensembles from the command line (see [`flock_runner::app::cli`]).

fn main() -> std::process::ExitCode {
    flock_runner::app::cli::main()
}
