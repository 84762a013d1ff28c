//! Running `nft`: one atomic script per change on its stdin (`nft -f -`),
//! or a listing. No extra crate for a few small scripts; the plugins'
//! nftables state ([`super::firewall`], the `portmap` plugin) goes through
//! here.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

#[derive(Debug, thiserror::Error)]
pub enum NftError {
    #[error("nft failed ({status}): {stderr}")]
    Failed { status: String, stderr: String },
    #[error("cannot run nft: {0}; install nftables")]
    NoNft(std::io::Error),
}

/// The `nft` binary, where Debian and others install it.
pub fn bin() -> Option<&'static str> {
    ["/usr/sbin/nft", "/sbin/nft", "/usr/bin/nft"]
        .into_iter()
        .find(|p| Path::new(p).exists())
}

/// Runs `nft` with `args`, `input` on stdin; its stdout.
pub fn run(args: &[&str], input: &str) -> Result<String, NftError> {
    let mut child = Command::new(bin().unwrap_or("nft"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(NftError::NoNft)?;
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input.as_bytes());
    }
    let out = child.wait_with_output().map_err(NftError::NoNft)?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(NftError::Failed {
            status: out.status.to_string(),
            stderr: String::from_utf8_lossy(&out.stderr)
                .trim()
                .replace('\n', " "),
        })
    }
}

/// Applies `script` in one transaction (whole or not at all).
pub fn apply(script: &str) -> Result<(), NftError> {
    run(&["-f", "-"], script).map(drop)
}

/// The families of the tables named `table` in `nft -j list tables` output.
pub fn tables_named(json: &str, table: &str) -> Vec<String> {
    let v: serde_json::Value = serde_json::from_str(json).unwrap_or_default();
    let mut out: Vec<String> = v["nftables"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|o| o.get("table"))
                .filter(|t| t["name"] == table)
                .filter_map(|t| t["family"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_from_listing() {
        let j = r#"{"nftables": [{"metainfo": {}}, {"table": {"family": "inet", "name": "rkt-cni", "handle": 1}}, {"table": {"family": "ip", "name": "nat", "handle": 2}}, {"table": {"family": "bridge", "name": "rkt-cni", "handle": 3}}]}"#;
        assert_eq!(tables_named(j, "rkt-cni"), ["bridge", "inet"]);
        assert!(tables_named("", "rkt-cni").is_empty());
    }
}
