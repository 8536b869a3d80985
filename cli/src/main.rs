//! `bosun`: the command line. All logic is in the library.

use clap::Parser;

#[tokio::main]
async fn main() {
    let cli = bosun_cli::Cli::parse();
    if let Err(f) = bosun_cli::run(cli).await {
        eprintln!("error: {:#}", f.error);
        std::process::exit(f.code);
    }
}
