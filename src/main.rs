//! The `rkt` command line.

use clap::Parser;

fn main() {
    let cli = rkt::cli::Cli::parse();
    rkt::cli::init_tracing(cli.global.debug);
    match rkt::cli::dispatch(cli) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("rkt: {}", rkt::cli::report(&e));
            std::process::exit(254);
        }
    }
}
