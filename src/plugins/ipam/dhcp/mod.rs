//! The `dhcp` IPAM plugin: ADD / DEL / CHECK / GC / STATUS are forwarded
//! over a unix socket to `dhcp daemon`, which runs the DHCP client inside
//! the pod's network namespace and returns address, gateway, routes and DNS.
//!
//! IPAM config: `{"type": "dhcp", "daemonSocketPath": "/run/cni/dhcp.sock",
//! "timeout": "10s"}` (timeout also as a number of seconds or "500ms").

pub mod client;
pub mod daemon;
pub mod lease;
pub mod link;
pub mod rpc;

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::cni::skeleton::{self, Plugin, Request};
use crate::cni::{codes, CniError, CniResult};
use lease::Attachment;

/// CNI 1.1: "the plugin is not available" (STATUS).
mod local_codes {
    pub const PLUGIN_NOT_AVAILABLE: u32 = 50;
}

/// How long an ADD waits for a server unless `ipam.timeout` says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Parses "10s", "500ms", "1.5" (seconds) or a JSON number of seconds.
pub fn parse_timeout(v: &Value) -> Option<Duration> {
    let secs = match v {
        Value::Number(n) => n.as_f64()?,
        Value::String(s) => {
            let s = s.trim();
            if let Some(ms) = s.strip_suffix("ms") {
                ms.trim().parse::<f64>().ok()? / 1000.0
            } else {
                s.strip_suffix('s').unwrap_or(s).trim().parse().ok()?
            }
        }
        _ => return None,
    };
    (secs.is_finite() && secs > 0.0).then(|| Duration::from_secs_f64(secs))
}

/// The plugin half.
pub struct DhcpPlugin;

struct Conf {
    socket: PathBuf,
    timeout: Duration,
}

fn conf(req: &Request) -> Result<Conf, CniError> {
    let ipam = req.field("ipam").cloned().unwrap_or(Value::Null);
    let socket = ipam
        .get("daemonSocketPath")
        .and_then(Value::as_str)
        .unwrap_or(rpc::DEFAULT_SOCKET)
        .into();
    let timeout = match ipam.get("timeout") {
        None => DEFAULT_TIMEOUT,
        Some(v) => parse_timeout(v).ok_or_else(|| {
            CniError::new(
                codes::INVALID_CONFIG,
                format!(
                    "network \"{}\": ipam.timeout {v} is not a duration (\"10s\", \"500ms\" or seconds)",
                    req.name
                ),
            )
        })?,
    };
    Ok(Conf { socket, timeout })
}

fn attachment(req: &Request) -> Attachment {
    Attachment {
        container_id: req.container_id.clone(),
        network: req.name.clone(),
        ifname: req.ifname.clone(),
        netns: req.netns.clone(),
    }
}

fn call(req: &Request, op: rpc::Op) -> Result<Option<CniResult>, CniError> {
    let c = conf(req)?;
    let r = rpc::Request {
        op,
        attachment: attachment(req),
        timeout_ms: c.timeout.as_millis() as u64,
        valid: if op == rpc::Op::Gc {
            req.valid_attachments()
        } else {
            Vec::new()
        },
    };
    rpc::call(&c.socket, &r, c.timeout + Duration::from_secs(5))
}

impl Plugin for DhcpPlugin {
    fn add(&self, req: &Request) -> Result<CniResult, CniError> {
        call(req, rpc::Op::Add)?.ok_or_else(|| {
            CniError::new(
                codes::INTERNAL,
                "the DHCP daemon answered ADD without a result",
            )
        })
    }

    fn del(&self, req: &Request) -> Result<(), CniError> {
        match call(req, rpc::Op::Del) {
            Ok(_) => Ok(()),
            Err(e) => {
                // Nothing to release when no lease was ever saved: DEL
                // succeeds even with the daemon gone (e.g. after a failed ADD).
                let key = attachment(req).key();
                let store = lease::Store::new(lease::DEFAULT_LEASE_DIR);
                if store.load(&key).is_none() && !store.dir().join(format!("{key}.json")).exists() {
                    Ok(())
                } else {
                    Err(e)
                }
            }
        }
    }

    fn check(&self, req: &Request) -> Result<(), CniError> {
        call(req, rpc::Op::Check).map(|_| ())
    }

    fn gc(&self, req: &Request) -> Result<(), CniError> {
        call(req, rpc::Op::Gc).map(|_| ())
    }

    /// Ready when the daemon answers; otherwise code 50 (not available).
    fn status(&self, req: &Request) -> Result<(), CniError> {
        call(req, rpc::Op::Status)
            .map(|_| ())
            .map_err(|e| CniError::new(local_codes::PLUGIN_NOT_AVAILABLE, e.msg))
    }
}

const USAGE: &str = "usage: dhcp daemon [--socket-path=PATH] [--pidfile=PATH] [--lease-dir=DIR]\n\
    (without arguments: the CNI IPAM plugin, driven by CNI_* variables)";

/// Why the daemon's command line is refused; each shows the usage.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
enum UsageError {
    #[error("{USAGE}")]
    Help,
    #[error("{0} needs a value\n{USAGE}")]
    NoValue(String),
    #[error("unknown argument {0}\n{USAGE}")]
    Unknown(String),
}

fn daemon_options(args: &[String]) -> Result<daemon::Options, UsageError> {
    let mut opts = daemon::Options {
        socket_path: rpc::DEFAULT_SOCKET.into(),
        pidfile: None,
        lease_dir: lease::DEFAULT_LEASE_DIR.into(),
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) => (f, Some(v.to_string())),
            None => (a.as_str(), None),
        };
        if flag == "-h" || flag == "--help" {
            return Err(UsageError::Help);
        }
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| UsageError::NoValue(flag.to_string()))
        };
        match flag {
            // The single-dash spellings are the reference daemon's.
            "--socket-path" | "-socketpath" => opts.socket_path = value()?.into(),
            "--pidfile" | "-pidfile" => opts.pidfile = Some(value()?.into()),
            "--lease-dir" => opts.lease_dir = value()?.into(),
            _ => return Err(UsageError::Unknown(a.to_string())),
        }
    }
    Ok(opts)
}

/// Entry point of the `dhcp` binary: `dhcp daemon ...` or the plugin.
pub fn main() -> ! {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) != Some("daemon") {
        skeleton::main(&DhcpPlugin)
    }
    let opts = match daemon_options(&args[1..]) {
        Ok(o) => o,
        Err(msg) => {
            eprintln!("{msg}");
            std::process::exit(2)
        }
    };
    use std::io::IsTerminal;
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
    match daemon::run(opts) {
        Ok(()) => std::process::exit(0),
        Err(e) => {
            eprintln!("dhcp daemon: {e}");
            std::process::exit(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn timeouts() {
        assert_eq!(parse_timeout(&json!("2s")), Some(Duration::from_secs(2)));
        assert_eq!(
            parse_timeout(&json!("500ms")),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            parse_timeout(&json!(1.5)),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_timeout(&json!("soon")), None);
        assert_eq!(parse_timeout(&json!(0)), None);
    }

    #[test]
    fn daemon_flags() {
        let o = daemon_options(&[
            "--socket-path=/tmp/x.sock".into(),
            "--pidfile".into(),
            "/tmp/p".into(),
        ])
        .unwrap();
        assert_eq!(o.socket_path, PathBuf::from("/tmp/x.sock"));
        assert_eq!(o.pidfile, Some(PathBuf::from("/tmp/p")));
        assert!(daemon_options(&["--bogus".into()]).is_err());
        let o = daemon_options(&["-socketpath".into(), "/tmp/y.sock".into()]).unwrap();
        assert_eq!(o.socket_path, PathBuf::from("/tmp/y.sock"));
    }
}
