//! `rkt run`'s side of the metadata service: `--annotation` parsing, and
//! registering the pod (with the addresses its networks gave it) to put
//! `AC_METADATA_URL` in the app's environment.

use std::collections::BTreeMap;
use std::path::Path;

use super::registry::{NetAddr, PodInfo};
use super::{client, SOCKET};
use crate::pod::manifest::{Manifest, NetRecord};

/// The networks whose host address serves the metadata, in preference order.
const MDS_NETWORKS: [&str; 2] = ["default", "default-restricted"];

/// A `--annotation` flag that cannot be taken.
#[derive(Debug, thiserror::Error)]
pub enum AnnotationError {
    #[error("--annotation={0}: expected KEY=VALUE")]
    NoValue(String),
    #[error("--annotation={0}: the key must be letters, digits, '-', '_', '.' or '/'")]
    BadKey(String),
}

/// Parses `--annotation=K=V` flags; a later K replaces an earlier one.
pub fn parse_annotations(flags: &[String]) -> Result<BTreeMap<String, String>, AnnotationError> {
    let mut out = BTreeMap::new();
    for f in flags {
        let Some((k, v)) = f.split_once('=') else {
            return Err(AnnotationError::NoValue(f.clone()));
        };
        let valid = !k.is_empty()
            && k.len() <= 253
            && k.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'));
        if !valid {
            return Err(AnnotationError::BadKey(f.clone()));
        }
        out.insert(k.to_string(), v.to_string());
    }
    Ok(out)
}

/// The pod's addresses, from its networks' CNI results.
fn addresses(records: &[NetRecord]) -> Vec<NetAddr> {
    records
        .iter()
        .filter_map(|r| {
            let result = r.parsed_result()?;
            Some(
                result
                    .ips
                    .iter()
                    .map(|ip| NetAddr {
                        name: r.name.clone(),
                        ifname: r.ifname.clone(),
                        ip: ip.address.addr(),
                        gateway: ip.gateway,
                    })
                    .collect::<Vec<_>>(),
            )
        })
        .flatten()
        .collect()
}

/// Registers the pod when a metadata service runs and the pod is on
/// `default` or `default-restricted`: returns (token, AC_METADATA_URL).
pub fn register(m: &Manifest, records: &[NetRecord]) -> Option<(String, String)> {
    let networks = addresses(records);
    let host = MDS_NETWORKS.iter().find_map(|want| {
        networks
            .iter()
            .find(|n| n.name == *want && n.ip.is_ipv4())
            .and_then(|n| n.gateway)
    })?;
    let pod = PodInfo {
        uuid: m.uuid.clone(),
        app_name: m.app.name.clone(),
        image_name: m.image.name.clone(),
        image_id: m.image.id.clone(),
        exec: m.app.exec.clone(),
        env: m.app.env.clone(),
        working_dir: m.app.working_dir.clone(),
        annotations: m.annotations.clone(),
        networks,
    };
    let (token, port) = client::register(Path::new(SOCKET), &pod)?;
    let url = format!("http://{host}:{port}/{token}");
    Some((token, url))
}

/// Unregisters the pod at teardown.
pub fn unregister(token: &str) {
    client::unregister(Path::new(SOCKET), token);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn annotations() {
        let a = parse_annotations(&["team=net".into(), "x/y=a=b".into()]).unwrap();
        assert_eq!(a["team"], "net");
        assert_eq!(a["x/y"], "a=b");
        assert!(parse_annotations(&["novalue".into()]).is_err());
        assert!(parse_annotations(&["=v".into()]).is_err());
        assert!(parse_annotations(&["a b=v".into()]).is_err());
    }
}
