//! The `portMappings` capability (CNI conventions): what a runtime passes
//! in `runtimeConfig.portMappings` and a port-forwarding plugin reads.
//! Each entry is `{"hostPort", "containerPort", "protocol", "hostIP"}`.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

/// The capability's name in `capabilities` and `runtimeConfig`.
pub const CAPABILITY: &str = "portMappings";

/// A transport protocol a mapping forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
    Sctp,
}

impl Proto {
    /// `tcp`, `udp` or `sctp`, in any case.
    pub fn parse(s: &str) -> Option<Proto> {
        match s.to_ascii_lowercase().as_str() {
            "tcp" => Some(Proto::Tcp),
            "udp" => Some(Proto::Udp),
            "sctp" => Some(Proto::Sctp),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
            Proto::Sctp => "sctp",
        }
    }
}

/// One port mapping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    #[serde(rename = "protocol")]
    pub proto: Proto,
    /// `None`: every local address of both families.
    #[serde(default, rename = "hostIP", skip_serializing_if = "Option::is_none")]
    pub host_ip: Option<IpAddr>,
}

impl PortMapping {
    /// One entry of `runtimeConfig.portMappings`, checked: ports 1-65535,
    /// protocol tcp, udp or sctp (default tcp), an optional host address
    /// (empty means none).
    pub fn from_value(v: &Value) -> Result<PortMapping, String> {
        let port = |key: &str| -> Result<u16, String> {
            match v.get(key).and_then(Value::as_u64) {
                Some(p @ 1..=65535) => Ok(p as u16),
                _ => Err(format!(
                    "\"{key}\" must be a port from 1 to 65535, not {}",
                    v.get(key).unwrap_or(&Value::Null)
                )),
            }
        };
        let proto = match v.get("protocol") {
            None | Some(Value::Null) => Proto::Tcp,
            Some(Value::String(s)) if s.is_empty() => Proto::Tcp,
            Some(Value::String(s)) => Proto::parse(s)
                .ok_or_else(|| format!("protocol \"{s}\" is not tcp, udp or sctp"))?,
            Some(other) => return Err(format!("protocol {other} is not a string")),
        };
        let host_ip = match v.get("hostIP") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) if s.is_empty() => None,
            Some(Value::String(s)) => Some(
                s.parse::<IpAddr>()
                    .map_err(|_| format!("hostIP \"{s}\" is not an IP address"))?,
            ),
            Some(other) => return Err(format!("hostIP {other} is not a string")),
        };
        Ok(PortMapping {
            host_port: port("hostPort")?,
            container_port: port("containerPort")?,
            proto,
            host_ip,
        })
    }

    /// The entry as a runtime passes it.
    pub fn to_value(&self) -> Value {
        let mut v = json!({
            "hostPort": self.host_port,
            "containerPort": self.container_port,
            "protocol": self.proto.name(),
        });
        if let Some(ip) = self.host_ip {
            v["hostIP"] = json!(ip.to_string());
        }
        v
    }

    /// Whether the mapping applies to IPv4 (`v4`) or IPv6 traffic.
    pub fn applies(&self, v4: bool) -> bool {
        self.host_ip.is_none_or(|ip| ip.is_ipv4() == v4)
    }

    /// Whether both would take the same packets: same protocol and host
    /// port, and host addresses that meet (a wildcard meets every address
    /// of its family).
    pub fn overlaps(&self, other: &PortMapping) -> bool {
        if self.proto != other.proto || self.host_port != other.host_port {
            return false;
        }
        match (self.host_ip, other.host_ip) {
            (None, _) | (_, None) => true,
            (Some(a), Some(b)) => {
                a.is_ipv4() == b.is_ipv4() && (a == b || a.is_unspecified() || b.is_unspecified())
            }
        }
    }

    /// `0.0.0.0:8080->80/tcp`, as `rkt list` and Podman show it.
    pub fn display(&self) -> String {
        let host = match self.host_ip {
            None => "0.0.0.0".to_string(),
            Some(IpAddr::V6(ip)) => format!("[{ip}]"),
            Some(ip) => ip.to_string(),
        };
        format!(
            "{host}:{}->{}/{}",
            self.host_port,
            self.container_port,
            self.proto.name()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_checked() {
        let ok = PortMapping::from_value(
            &json!({"hostPort": 8080, "containerPort": 80, "protocol": "UDP", "hostIP": "10.0.0.1"}),
        )
        .unwrap();
        assert_eq!(ok.proto, Proto::Udp);
        assert_eq!(ok.host_ip, Some("10.0.0.1".parse().unwrap()));
        assert_eq!(PortMapping::from_value(&ok.to_value()).unwrap(), ok);
        let plain =
            PortMapping::from_value(&json!({"hostPort": 1, "containerPort": 65535})).unwrap();
        assert_eq!((plain.proto, plain.host_ip), (Proto::Tcp, None));
        for (bad, want) in [
            (
                json!({"hostPort": 0, "containerPort": 80}),
                "\"hostPort\" must be a port",
            ),
            (
                json!({"hostPort": 70000, "containerPort": 80}),
                "\"hostPort\" must be a port",
            ),
            (json!({"hostPort": 80}), "\"containerPort\" must be a port"),
            (
                json!({"hostPort": 80, "containerPort": 80, "protocol": "icmp"}),
                "not tcp, udp or sctp",
            ),
            (
                json!({"hostPort": 80, "containerPort": 80, "hostIP": "nope"}),
                "not an IP address",
            ),
        ] {
            let e = PortMapping::from_value(&bad).unwrap_err();
            assert!(e.contains(want), "{e}");
        }
    }

    #[test]
    fn overlaps_and_display() {
        let m = |ip: Option<&str>, port: u16, proto: Proto| PortMapping {
            host_port: port,
            container_port: 80,
            proto,
            host_ip: ip.map(|i| i.parse().unwrap()),
        };
        assert!(m(None, 80, Proto::Tcp).overlaps(&m(Some("10.0.0.1"), 80, Proto::Tcp)));
        assert!(!m(None, 80, Proto::Tcp).overlaps(&m(None, 80, Proto::Udp)));
        assert!(!m(Some("10.0.0.1"), 80, Proto::Tcp).overlaps(&m(
            Some("10.0.0.2"),
            80,
            Proto::Tcp
        )));
        assert!(m(Some("0.0.0.0"), 80, Proto::Tcp).overlaps(&m(Some("10.0.0.2"), 80, Proto::Tcp)));
        assert!(!m(Some("::"), 80, Proto::Tcp).overlaps(&m(Some("10.0.0.2"), 80, Proto::Tcp)));
        assert_eq!(
            m(Some("::1"), 8080, Proto::Tcp).display(),
            "[::1]:8080->80/tcp"
        );
        assert_eq!(m(None, 8080, Proto::Udp).display(), "0.0.0.0:8080->80/udp");
    }
}
