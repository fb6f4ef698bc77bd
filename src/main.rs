//! The `fleetmon` binary; everything is in the library (see `cli`).

fn main() -> std::process::ExitCode {
    fleetmon::cli::main()
}
