//! `bosun-agent`: the binary. All logic is in the library.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cfg = bosun_agent::Config::parse();
    bosun_process::init_logging(&cfg.log_format, cfg.log_level.as_deref(), "info");
    bosun_agent::run(cfg).await
}
