//! `hookline health`: asks a running router's `/healthz` (or `/readyz`) and exits 0 when it
//! answers 2xx. The container image's HEALTHCHECK uses it, so the image needs no curl.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use crate::config::Config;

/// Arguments of `hookline health`.
#[derive(Debug, clap::Args)]
pub struct HealthArgs {
    /// Configuration file whose `admin.listen` is asked (default: ./hookline.toml when it
    /// exists; HOOKLINE_ADMIN__LISTEN overrides as for `run`).
    #[arg(long, short, env = "HOOKLINE_CONFIG")]
    pub config: Option<PathBuf>,
    /// The admin API's base URL instead, e.g. http://127.0.0.1:9464.
    #[arg(long, conflicts_with = "config")]
    pub url: Option<String>,
    /// Ask `/readyz` (partitions assigned) instead of `/healthz` (the process answers).
    #[arg(long)]
    pub ready: bool,
    /// How long to wait for the answer.
    #[arg(long, default_value = "3s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// Where to reach an admin API that listens on `listen`: a wildcard address is asked on
/// loopback.
pub fn base_url(listen: SocketAddr) -> String {
    let ip = match listen.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}", SocketAddr::new(ip, listen.port()))
}

/// Asks once; prints why when the answer is not 2xx.
pub async fn run(args: HealthArgs) -> anyhow::Result<ExitCode> {
    let base = match args.url {
        Some(url) => url.trim_end_matches('/').to_string(),
        None => match Config::load(args.config.as_deref()) {
            Ok(settings) => base_url(settings.admin_listen),
            Err(e) => {
                eprintln!("hookline: {e}");
                return Ok(ExitCode::from(2));
            }
        },
    };
    let url = format!("{base}/{}", if args.ready { "readyz" } else { "healthz" });
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(args.timeout)
        .build()?;
    match client.get(&url).send().await {
        Ok(response) if response.status().is_success() => Ok(ExitCode::SUCCESS),
        Ok(response) => {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            eprintln!("hookline: {url}: {status} {body}");
            Ok(ExitCode::FAILURE)
        }
        Err(e) => {
            eprintln!("hookline: {url}: {}", crate::deliver::client::chain(&e));
            Ok(ExitCode::FAILURE)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_listen_addresses_are_asked_on_loopback() {
        assert_eq!(
            base_url("0.0.0.0:9464".parse().unwrap()),
            "http://127.0.0.1:9464"
        );
        assert_eq!(base_url("[::]:9464".parse().unwrap()), "http://[::1]:9464");
        assert_eq!(
            base_url("10.1.2.3:80".parse().unwrap()),
            "http://10.1.2.3:80"
        );
    }
}
