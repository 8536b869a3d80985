//! `bosun`: the command line. All logic is in the library.

use clap::Parser;

#[tokio::main]
async fn main() {
    let cli = bosun_cli::Cli::parse();
    if let Err(f) = bosun_cli::run(cli).await {
        let message = format!("{:#}", f.error);
        if !message.is_empty() {
            eprintln!("error: {message}");
        }
        std::process::exit(f.code);
    }
}
