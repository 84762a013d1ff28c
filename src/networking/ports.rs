//! Port forwarding on the runtime side: `--port=NAME:[HOSTIP:]HOSTPORT`
//! (rkt's form: a port the image declares, `8080/tcp` in `ExposedPorts`
//! named `8080-tcp`) and `--publish=[HOSTIP:]HOSTPORT:PODPORT[/PROTO]`
//! (Podman's `-p`), checked before anything exists and passed to the
//! networks' plugins as the `portMappings` capability.

use std::net::IpAddr;

use serde_json::Value;

use super::netd::{self, Attach};
use crate::cni::port_mapping::{PortMapping, Proto, CAPABILITY};
use crate::cni::NetConf;

/// A refused `--port` or `--publish`: one line naming the flag.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    #[error("{flag}={value}: not {form}")]
    Syntax {
        flag: &'static str,
        value: String,
        form: &'static str,
    },
    #[error("{flag}={value}: \"{port}\" is not a port from 1 to 65535")]
    Number {
        flag: &'static str,
        value: String,
        port: String,
    },
    #[error("--publish={value}: protocol \"{proto}\" is not tcp, udp or sctp")]
    Proto { value: String, proto: String },
    #[error("--port={value}: the image declares no port named \"{name}\" (it declares {declared}); use --publish=HOSTPORT:PODPORT for a port it does not declare")]
    Undeclared {
        value: String,
        name: String,
        declared: String,
    },
    #[error("{flag}={value}: {ip} is not an address of this host (see `ip address`); leave HOSTIP out to forward on every address")]
    NotLocal {
        flag: &'static str,
        value: String,
        ip: IpAddr,
    },
    #[error(
        "host port {port} is forwarded twice ({first} and {second}); give each host port once"
    )]
    Twice {
        port: String,
        first: String,
        second: String,
    },
    #[error("{mapping}: host port {port} is already forwarded by running pod {pod} ({theirs}); stop that pod or choose another host port")]
    Taken {
        mapping: String,
        port: String,
        pod: String,
        theirs: String,
    },
    #[error("--port/--publish with --net=host: the app binds the host's ports itself; leave the flags out")]
    HostNetwork,
    #[error("--port/--publish with --net=none: the pod has no network to forward to")]
    NoNetwork,
    #[error("--port/--publish: none of the pod's networks ({0}) forwards ports; add {{\"type\": \"portmap\", \"capabilities\": {{\"portMappings\": true}}}} after the main plugin in a network's conflist (the built-in default network has it; default-restricted never forwards)")]
    CannotForward(String),
}

/// A port the image declares: `8080/tcp` is named `8080-tcp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    pub name: String,
    pub port: u16,
    pub proto: Proto,
}

/// The image's `ExposedPorts` keys as named ports (malformed keys are
/// left out: nothing can name them).
pub fn declared(exposed: &[String]) -> Vec<Declared> {
    let mut out: Vec<Declared> = exposed
        .iter()
        .filter_map(|k| {
            let (port, proto) = k.split_once('/').unwrap_or((k, "tcp"));
            let port: u16 = port.parse().ok().filter(|p| *p > 0)?;
            let proto = Proto::parse(proto)?;
            Some(Declared {
                name: format!("{port}-{}", proto.name()),
                port,
                proto,
            })
        })
        .collect();
    out.sort_by(|a, b| (a.port, a.proto.name()).cmp(&(b.port, b.proto.name())));
    out.dedup();
    out
}

fn number(flag: &'static str, value: &str, port: &str) -> Result<u16, PortError> {
    port.parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| PortError::Number {
            flag,
            value: value.to_string(),
            port: port.to_string(),
        })
}

/// `[HOSTIP:]HOSTPORT` (an IPv6 HOSTIP in brackets): the address and port.
fn host_part(
    flag: &'static str,
    value: &str,
    form: &'static str,
    s: &str,
) -> Result<(Option<IpAddr>, u16), PortError> {
    let syntax = || PortError::Syntax {
        flag,
        value: value.to_string(),
        form,
    };
    let (ip, port) = match s.rsplit_once(':') {
        None => (None, s),
        Some((ip, port)) => {
            let ip = ip
                .strip_prefix('[')
                .and_then(|i| i.strip_suffix(']'))
                .unwrap_or(ip);
            (Some(ip.parse::<IpAddr>().map_err(|_| syntax())?), port)
        }
    };
    Ok((ip, number(flag, value, port)?))
}

const PORT_FORM: &str = "NAME:[HOSTIP:]HOSTPORT (NAME as the image declares it, e.g. 8080-tcp)";
const PUBLISH_FORM: &str = "[HOSTIP:]HOSTPORT:PODPORT[/tcp|/udp|/sctp]";

/// `--port=NAME:[HOSTIP:]HOSTPORT`.
pub fn parse_port(value: &str, declared: &[Declared]) -> Result<PortMapping, PortError> {
    let syntax = || PortError::Syntax {
        flag: "--port",
        value: value.to_string(),
        form: PORT_FORM,
    };
    let (name, host) = value.split_once(':').ok_or_else(syntax)?;
    let Some(d) = declared.iter().find(|d| d.name == name) else {
        return Err(PortError::Undeclared {
            value: value.to_string(),
            name: name.to_string(),
            declared: if declared.is_empty() {
                "none".to_string()
            } else {
                declared
                    .iter()
                    .map(|d| d.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        });
    };
    let (host_ip, host_port) = host_part("--port", value, PORT_FORM, host)?;
    Ok(PortMapping {
        host_port,
        container_port: d.port,
        proto: d.proto,
        host_ip,
    })
}

/// `--publish=[HOSTIP:]HOSTPORT:PODPORT[/PROTO]`.
pub fn parse_publish(value: &str) -> Result<PortMapping, PortError> {
    let (rest, proto) = match value.rsplit_once('/') {
        Some((rest, p)) => (
            rest,
            Proto::parse(p).ok_or_else(|| PortError::Proto {
                value: value.to_string(),
                proto: p.to_string(),
            })?,
        ),
        None => (value, Proto::Tcp),
    };
    let (host, pod) = rest.rsplit_once(':').ok_or_else(|| PortError::Syntax {
        flag: "--publish",
        value: value.to_string(),
        form: PUBLISH_FORM,
    })?;
    let container_port = number("--publish", value, pod)?;
    let (host_ip, host_port) = host_part("--publish", value, PUBLISH_FORM, host)?;
    Ok(PortMapping {
        host_port,
        container_port,
        proto,
        host_ip,
    })
}

/// Whether a network's chain has a plugin that takes the capability.
pub fn forwards(conf: &NetConf) -> bool {
    conf.name != netd::DEFAULT_RESTRICTED
        && conf
            .plugins
            .iter()
            .any(|p| p.pointer(&format!("/capabilities/{CAPABILITY}")) == Some(&Value::Bool(true)))
}

/// The flags' mappings, checked: each host port once, a HOSTIP of this
/// host (`local` tells), a network that can forward, and no overlap with
/// what `running` pods (UUID, mappings) forward.
pub fn plan(
    port: &[String],
    publish: &[String],
    declared: &[Declared],
    selection: &netd::Selection,
    nets: &[Attach],
    local: impl Fn(IpAddr) -> bool,
    running: impl Iterator<Item = (String, Vec<PortMapping>)>,
) -> Result<Vec<PortMapping>, PortError> {
    let mut out: Vec<PortMapping> = Vec::new();
    let parsed = port
        .iter()
        .map(|v| ("--port", v, parse_port(v, declared)))
        .chain(publish.iter().map(|v| ("--publish", v, parse_publish(v))));
    for (flag, value, m) in parsed {
        let m = m?;
        if let Some(ip) = m.host_ip.filter(|ip| !ip.is_unspecified()) {
            if !local(ip) {
                return Err(PortError::NotLocal {
                    flag,
                    value: value.clone(),
                    ip,
                });
            }
        }
        if let Some(first) = out.iter().find(|o| o.overlaps(&m)) {
            return Err(PortError::Twice {
                port: format!("{}/{}", m.host_port, m.proto.name()),
                first: first.display(),
                second: m.display(),
            });
        }
        out.push(m);
    }
    if out.is_empty() {
        return Ok(out);
    }
    match selection {
        netd::Selection::Host => return Err(PortError::HostNetwork),
        netd::Selection::None => return Err(PortError::NoNetwork),
        netd::Selection::Networks(_) => {}
    }
    if !nets.iter().any(|(c, _)| forwards(c)) {
        let names: Vec<&str> = nets.iter().map(|(c, _)| c.name.as_str()).collect();
        return Err(PortError::CannotForward(names.join(", ")));
    }
    for (pod, theirs) in running {
        for m in &out {
            if let Some(t) = theirs.iter().find(|t| t.overlaps(m)) {
                return Err(PortError::Taken {
                    mapping: m.display(),
                    port: format!("{}/{}", m.host_port, m.proto.name()),
                    pod,
                    theirs: t.display(),
                });
            }
        }
    }
    Ok(out)
}

/// The built-in networks carry `portmap` for pods that forward ports; a
/// pod that forwards none does without it (one plugin run less at ADD and
/// at DEL). Users' networks run as written.
pub fn without_idle_portmap(nets: &mut [Attach]) {
    for (conf, _) in nets.iter_mut() {
        if conf.source.starts_with(netd::BUILTIN_SOURCE) {
            conf.plugins
                .retain(|p| p.get("type").and_then(Value::as_str) != Some("portmap"));
        }
    }
}

/// The `runtimeConfig` entry for the mappings.
pub fn runtime_config(mappings: &[PortMapping]) -> Value {
    Value::Array(mappings.iter().map(PortMapping::to_value).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decl() -> Vec<Declared> {
        declared(&[
            "80/tcp".into(),
            "53/udp".into(),
            "bad".into(),
            "9000".into(),
        ])
    }

    #[test]
    fn declared_ports_are_named_as_rkt_named_them() {
        let names: Vec<String> = decl().into_iter().map(|d| d.name).collect();
        assert_eq!(names, ["53-udp", "80-tcp", "9000-tcp"]);
    }

    #[test]
    fn port_and_publish_forms() {
        let p = parse_port("80-tcp:8080", &decl()).unwrap();
        assert_eq!(p.display(), "0.0.0.0:8080->80/tcp");
        let p = parse_port("53-udp:127.0.0.1:5353", &decl()).unwrap();
        assert_eq!(p.display(), "127.0.0.1:5353->53/udp");
        let p = parse_port("80-tcp:[::1]:8080", &decl()).unwrap();
        assert_eq!(p.display(), "[::1]:8080->80/tcp");
        assert_eq!(
            parse_publish("8080:80").unwrap().display(),
            "0.0.0.0:8080->80/tcp"
        );
        assert_eq!(
            parse_publish("10.0.0.1:5353:53/udp").unwrap().display(),
            "10.0.0.1:5353->53/udp"
        );
        assert_eq!(
            parse_publish("[fd00::1]:8080:80/TCP").unwrap().display(),
            "[fd00::1]:8080->80/tcp"
        );
        for (bad, want) in [
            (
                parse_port("http:8080", &decl()),
                "declares no port named \"http\" (it declares 53-udp, 80-tcp, 9000-tcp)",
            ),
            (parse_port("http:8080", &[]), "(it declares none)"),
            (parse_port("80-tcp", &decl()), "not NAME:[HOSTIP:]HOSTPORT"),
            (parse_port("80-tcp:0", &decl()), "\"0\" is not a port"),
            (
                parse_port("80-tcp:nohost:80", &decl()),
                "not NAME:[HOSTIP:]HOSTPORT",
            ),
            (parse_publish("80"), "not [HOSTIP:]HOSTPORT:PODPORT"),
            (parse_publish("8080:70000"), "\"70000\" is not a port"),
            (parse_publish("8080:80/icmp"), "protocol \"icmp\""),
            (parse_publish("8080-8090:80"), "\"8080-8090\" is not a port"),
        ] {
            let e = bad.unwrap_err().to_string();
            assert!(e.contains(want), "{e} should contain {want}");
        }
    }

    fn net(json: &str) -> Attach {
        (
            NetConf::parse(json.as_bytes(), "n.conflist", true).unwrap(),
            vec![],
        )
    }

    #[test]
    fn plans_are_checked() {
        let sel = netd::Selection::Networks(vec![]);
        let pm = net(
            r#"{"cniVersion":"1.0.0","name":"web","plugins":[{"type":"ptp"},{"type":"portmap","capabilities":{"portMappings":true}}]}"#,
        );
        let plain = net(r#"{"cniVersion":"1.0.0","name":"plain","plugins":[{"type":"ptp"}]}"#);
        let ok = |_: IpAddr| true;
        let none = std::iter::empty;
        let p = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        let got = plan(
            &p(&["80-tcp:8080"]),
            &p(&["9090:90/udp"]),
            &decl(),
            &sel,
            std::slice::from_ref(&pm),
            ok,
            none(),
        )
        .unwrap();
        assert_eq!(got.len(), 2);
        let err = |r: Result<Vec<PortMapping>, PortError>| r.unwrap_err().to_string();
        let e = err(plan(
            &[],
            &p(&["8080:80", "10.0.0.1:8080:81"]),
            &[],
            &sel,
            std::slice::from_ref(&pm),
            ok,
            none(),
        ));
        assert!(e.contains("host port 8080/tcp is forwarded twice"), "{e}");
        let e = err(plan(
            &[],
            &p(&["8080:80"]),
            &[],
            &sel,
            std::slice::from_ref(&plain),
            ok,
            none(),
        ));
        assert!(
            e.contains("none of the pod's networks (plain) forwards ports"),
            "{e}"
        );
        let e = err(plan(
            &[],
            &p(&["10.9.9.9:8080:80"]),
            &[],
            &sel,
            std::slice::from_ref(&pm),
            |_| false,
            none(),
        ));
        assert!(e.contains("10.9.9.9 is not an address of this host"), "{e}");
        let e = err(plan(
            &[],
            &p(&["8080:80"]),
            &[],
            &netd::Selection::Host,
            &[],
            ok,
            none(),
        ));
        assert!(e.contains("--net=host"), "{e}");
        let theirs = vec![("u-1".to_string(), vec![parse_publish("8080:81").unwrap()])];
        let e = err(plan(
            &[],
            &p(&["127.0.0.1:8080:80"]),
            &[],
            &sel,
            std::slice::from_ref(&pm),
            ok,
            theirs.into_iter(),
        ));
        assert!(
            e.contains("already forwarded by running pod u-1 (0.0.0.0:8080->81/tcp)"),
            "{e}"
        );
        // No flags: nothing checked, nothing forwarded.
        assert!(plan(&[], &[], &[], &sel, &[plain], ok, none())
            .unwrap()
            .is_empty());
    }
}
