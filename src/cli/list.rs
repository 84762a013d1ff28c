//! `rkt list` and `rkt status`.

use clap::Args;
use serde_json::{json, Value};

use super::Global;
use crate::error::{Error, FlagError};
use crate::networking::dns::PodDns;
use crate::pod::{time, Pod, PodState};

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Full UUIDs and image IDs, absolute times.
    #[arg(long)]
    pub full: bool,
    /// No header line.
    #[arg(long = "no-legend")]
    pub no_legend: bool,
    /// Output format: tabbed (default) or json.
    #[arg(long, default_value = "tabbed")]
    pub format: String,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Output format: tabbed (default) or json.
    #[arg(long, default_value = "tabbed")]
    pub format: String,
    pub uuid: Option<String>,
    #[command(flatten)]
    pub pod: super::PodRef,
}

#[derive(Debug, Args)]
pub struct CatManifestArgs {
    /// Indent the JSON.
    #[arg(long = "pretty-print", default_value_t = true, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true", require_equals = true)]
    pub pretty_print: bool,
    pub uuid: Option<String>,
    #[command(flatten)]
    pub pod: super::PodRef,
}

/// `rkt cat-manifest`: the pod's manifest as it was written at creation.
pub fn cat_manifest(g: &Global, a: CatManifestArgs) -> Result<i32, Error> {
    let uuid = a.pod.uuid(a.uuid)?;
    let pod = g.store().find(&uuid)?;
    let m = pod
        .manifest()
        .map_err(Error::state("read the manifest of", pod.path("pod.json")))?;
    let text = if a.pretty_print {
        serde_json::to_string_pretty(&m)?
    } else {
        serde_json::to_string(&m)?
    };
    println!("{text}");
    Ok(0)
}

fn ago(secs: u64) -> String {
    let d = time::now().saturating_sub(secs);
    let (n, unit) = match d {
        0..=59 => (d, "second"),
        60..=3599 => (d / 60, "minute"),
        3600..=86_399 => (d / 3600, "hour"),
        _ => (d / 86_400, "day"),
    };
    format!("{n} {unit}{} ago", if n == 1 { "" } else { "s" })
}

/// A pod's JSON as `list --format=json` and `status --format=json` print it.
fn pod_json(pod: &Pod) -> Value {
    let m = pod.manifest().unwrap_or_default();
    let nets: Vec<Value> = pod
        .nets()
        .iter()
        .map(|r| {
            let res = r.parsed_result().unwrap_or_default();
            let ip = res.first_ipv4();
            json!({
                "netName": r.name,
                "netConf": r.source,
                "ifName": r.ifname,
                "args": r.args,
                "ip": ip.map(|i| i.address.addr().to_string()).unwrap_or_default(),
                "mask": ip.map(|i| i.address.netmask().to_string()).unwrap_or_default(),
                "hostIP": ip.and_then(|i| i.gateway).map(|g| g.to_string()).unwrap_or_default(),
                "ips": res.ips.iter().map(|i| i.address.to_string()).collect::<Vec<_>>(),
                "dns": res.dns,
            })
        })
        .collect();
    let mut v = json!({
        "name": pod.uuid,
        "state": pod.state().as_str(),
        "networks": nets,
        "app_names": [m.app.name],
        "image_name": m.image.name,
        "image_id": m.image.id,
        "created_at": m.created,
    });
    if let Some(s) = pod.started() {
        v["started_at"] = json!(s);
    }
    if let Some(pid) = pod.pid() {
        v["pid"] = json!(pid);
    }
    if let Some(code) = pod.exit_code() {
        v["app_exit_codes"] = json!({ m.app.name.clone(): code });
    }
    if let Some(sec) = &m.security {
        v["insecure_options"] = json!(sec.insecure_options);
        v["caps"] = json!(sec.caps);
        if !sec.sysctls.is_empty() {
            v["sysctls"] = json!(sec.sysctls);
        }
    }
    if let Some(d) = pod_dns(pod) {
        v["dns"] = json!(d);
    }
    if !m.ports.is_empty() {
        v["ports"] = json!(ports(&m));
    }
    if !m.limits.is_empty() {
        v["limits"] = json!(m.limits);
    }
    if pod.path("oom-killed").exists() {
        v["oom_killed"] = json!(true);
    }
    v
}

/// The pod's forwarded ports, `0.0.0.0:8080->80/tcp` style.
fn ports(m: &crate::pod::manifest::Manifest) -> Vec<String> {
    m.ports.iter().map(|p| p.display()).collect()
}

fn pod_dns(pod: &Pod) -> Option<PodDns> {
    pod.read_json("dns.json").ok()
}

fn print_table(rows: &[Vec<String>]) {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for r in rows {
        let mut line = String::new();
        for (c, cell) in r.iter().enumerate() {
            if c + 1 == r.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<w$}\t", w = widths[c]));
            }
        }
        println!("{}", line.trim_end());
    }
}

pub fn list(g: &Global, a: ListArgs) -> Result<i32, Error> {
    let pods = g.store().all();
    match a.format.as_str() {
        "json" => {
            let all: Vec<Value> = pods.iter().map(pod_json).collect();
            println!("{}", serde_json::to_string(&all)?);
            return Ok(0);
        }
        "tabbed" => {}
        f => return Err(FlagError::Format(f.into()).into()),
    }
    let mut rows = Vec::new();
    if !a.no_legend {
        let mut h = vec!["UUID", "APP", "IMAGE NAME"];
        if a.full {
            h.push("IMAGE ID");
        }
        h.extend(["STATE", "CREATED", "STARTED", "NETWORKS"]);
        if a.full {
            h.push("PORTS");
        }
        rows.push(h.into_iter().map(String::from).collect());
    }
    for pod in &pods {
        let m = pod.manifest().unwrap_or_default();
        let when = |t: Option<u64>| match t {
            None => "-".to_string(),
            Some(t) if a.full => time::rfc3339(t),
            Some(t) => ago(t),
        };
        let mut row = vec![
            if a.full {
                pod.uuid.clone()
            } else {
                pod.uuid.chars().take(8).collect()
            },
            m.app.name.clone(),
            m.image.name.clone(),
        ];
        if a.full {
            row.push(m.image.id.clone());
        }
        row.push(pod.state().as_str().to_string());
        row.push(when(Some(m.created)));
        row.push(when(pod.started()));
        row.push(
            pod.nets()
                .iter()
                .map(|r| r.listing())
                .collect::<Vec<_>>()
                .join(", "),
        );
        if a.full {
            let p = ports(&m);
            row.push(if p.is_empty() {
                "-".into()
            } else {
                p.join(", ")
            });
        }
        rows.push(row);
    }
    print_table(&rows);
    Ok(0)
}

pub fn status(g: &Global, a: StatusArgs) -> Result<i32, Error> {
    let uuid = a.pod.uuid(a.uuid)?;
    let pod = g.store().find(&uuid)?;
    match a.format.as_str() {
        "json" => {
            println!("{}", serde_json::to_string(&pod_json(&pod))?);
            return Ok(0);
        }
        "tabbed" => {}
        f => return Err(FlagError::Format(f.into()).into()),
    }
    let m = pod.manifest().unwrap_or_default();
    let state = pod.state();
    println!("state={}", state.as_str());
    println!("created={}", time::rfc3339(m.created));
    println!(
        "started={}",
        pod.started().map(time::rfc3339).unwrap_or_default()
    );
    println!(
        "networks={}",
        pod.nets()
            .iter()
            .map(|r| r.listing())
            .collect::<Vec<_>>()
            .join(",")
    );
    if !m.ports.is_empty() {
        println!("ports={}", ports(&m).join(","));
    }
    for l in &m.limits {
        println!("{l}");
    }
    if pod.path("oom-killed").exists() {
        println!("oom-killed=true");
    }
    if state == PodState::Running {
        println!("pid={}", pod.pid().unwrap_or(-1));
    } else {
        println!("pid=-1");
    }
    println!(
        "exited={}",
        matches!(state, PodState::Exited | PodState::Abandoned)
    );
    if let Some(code) = pod.exit_code() {
        println!("app-{}={code}", m.app.name);
    }
    if let Some(sec) = &m.security {
        let off = if sec.insecure_options.is_empty() {
            "none".to_string()
        } else {
            sec.insecure_options.join(",")
        };
        println!("insecure-options={off}");
        if !sec.sysctls.is_empty() {
            println!("sysctls={}", sec.sysctls.join(","));
        }
    }
    if let Some(d) = pod_dns(&pod) {
        println!("dns-source={}", d.source);
        println!("dns-nameservers={}", d.dns.nameservers.join(","));
        println!("dns-search={}", d.dns.search.join(","));
        println!("dns-options={}", d.dns.options.join(","));
        println!("dns-domain={}", d.dns.domain);
    }
    Ok(0)
}
