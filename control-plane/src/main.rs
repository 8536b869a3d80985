//! `bosun-control-plane`: the binary. All logic is in the library.

use clap::Parser;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cfg = bosun_control_plane::Config::parse();
    if let Some(cmd) = &cfg.command {
        return bosun_control_plane::run_command(&cfg, cmd).await;
    }
    bosun_process::init_logging(&cfg.log_format, cfg.log_level.as_deref(), "info");
    bosun_control_plane::run(cfg).await
}
