//! The HTTP endpoints under `/<token>/acMetadata/v1/` (rkt's and appc's
//! layout) and who may call them: the pod the token belongs to, from its
//! address on the network whose host address the request reached.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;

use serde_json::{json, Value};
use tracing::debug;

use super::http::{parse_form, Request, Response};
use super::registry::{Entry, Registry};
use super::signing::Key;

/// The appc spec version the manifests claim.
const AC_VERSION: &str = "0.8.11";

/// What every request handler shares.
#[derive(Debug)]
pub struct State {
    pub registry: Registry,
    pub key: Key,
}

/// Answers `req`, received from `peer` on the host address `local`.
pub fn handle(state: &State, req: &Request, peer: IpAddr, local: IpAddr) -> Response {
    match authorize(state, &req.path, peer, local) {
        Ok((entry, rest)) => route(state, &entry, req, rest),
        Err(r) => r,
    }
}

/// Whose request `path` is, from the request line alone (the body is not
/// read for a request refused here): the pod's registration and the path
/// under `acMetadata/v1/`, or the refusal to send.
pub fn authorize<'p>(
    state: &State,
    path: &'p str,
    peer: IpAddr,
    local: IpAddr,
) -> Result<(Arc<Entry>, &'p str), Response> {
    let Some((token, rest)) = path.strip_prefix('/').and_then(|p| p.split_once('/')) else {
        return Err(Response::error(404, "expected /<token>/acMetadata/v1/..."));
    };
    let Some(rest) = rest.strip_prefix("acMetadata/v1/") else {
        return Err(Response::error(404, "expected /<token>/acMetadata/v1/..."));
    };
    let Some(entry) = state.registry.lookup(token) else {
        debug!(%peer, "403: unknown token");
        return Err(Response::error(403, "unknown or expired token"));
    };
    if !entry.owns(peer, local) {
        debug!(%peer, pod = %entry.pod.uuid, "403: token used from another address");
        return Err(Response::error(403, "this token belongs to another pod"));
    }
    Ok((entry, rest))
}

fn annotations_json(a: &BTreeMap<String, String>) -> Value {
    Value::Array(
        a.iter()
            .map(|(k, v)| json!({"name": k, "value": v}))
            .collect(),
    )
}

fn env_json(env: &[String]) -> Value {
    Value::Array(
        env.iter()
            .map(|e| {
                let (k, v) = e.split_once('=').unwrap_or((e, ""));
                json!({"name": k, "value": v})
            })
            .collect(),
    )
}

fn app_json(e: &Entry) -> Value {
    json!({
        "exec": e.pod.exec,
        "workingDirectory": e.pod.working_dir,
        "environment": env_json(&e.pod.env),
    })
}

fn pod_manifest(e: &Entry) -> Value {
    json!({
        "acKind": "PodManifest",
        "acVersion": AC_VERSION,
        "uuid": e.pod.uuid,
        "apps": [{
            "name": e.pod.app_name,
            "image": {"name": e.pod.image_name, "id": e.pod.image_id},
            "app": app_json(e),
            "annotations": [],
        }],
        "annotations": annotations_json(&e.pod.annotations),
        "networks": e.pod.networks.iter().map(|n| json!({
            "name": n.name,
            "ifname": n.ifname,
            "ip": n.ip.to_string(),
            "gateway": n.gateway.map(|g| g.to_string()),
        })).collect::<Vec<_>>(),
    })
}

fn image_manifest(e: &Entry) -> Value {
    json!({
        "acKind": "ImageManifest",
        "acVersion": AC_VERSION,
        "name": e.pod.image_name,
        "app": app_json(e),
        "annotations": [],
    })
}

fn list_names<'a>(names: impl Iterator<Item = &'a String>) -> Response {
    let body: String = names.map(|n| format!("{n}\n")).collect();
    Response::raw(body)
}

/// Answers an authorized request; `rest` is its path under `acMetadata/v1/`.
pub fn route(state: &State, e: &Entry, req: &Request, rest: &str) -> Response {
    let get = req.method == "GET";
    let post = req.method == "POST";
    let no_annotations = BTreeMap::new();
    let found = if let Some(name) = rest
        .strip_prefix("pod/annotations/")
        .filter(|n| !n.is_empty())
    {
        // Annotation names may hold '/': the rest of the path is the name.
        get.then(|| annotation(&e.pod.annotations, name))
    } else if let Some(app_rest) = rest.strip_prefix("apps/") {
        let (app, tail) = app_rest.split_once('/').unwrap_or((app_rest, ""));
        if app != e.pod.app_name {
            return Response::error(404, &format!("no app named {app:?} in this pod"));
        }
        match tail {
            "annotations" | "annotations/" => get.then(|| list_names(no_annotations.keys())),
            "image/id" => get.then(|| Response::raw(e.pod.image_id.clone())),
            "image/manifest" => get.then(|| Response::json(&image_manifest(e))),
            t => match t.strip_prefix("annotations/") {
                Some(name) => get.then(|| annotation(&no_annotations, name)),
                None => return Response::error(404, "no such endpoint"),
            },
        }
    } else {
        match rest {
            "pod/uuid" => get.then(|| Response::raw(e.pod.uuid.clone())),
            "pod/annotations" | "pod/annotations/" => {
                get.then(|| list_names(e.pod.annotations.keys()))
            }
            "pod/manifest" => get.then(|| Response::json(&pod_manifest(e))),
            "pod/hmac/sign" => post.then(|| sign(state, e, &req.body)),
            "pod/hmac/verify" => post.then(|| verify(state, &req.body)),
            _ => return Response::error(404, "no such endpoint"),
        }
    };
    found.unwrap_or_else(|| Response::error(405, "wrong method for this endpoint"))
}

fn annotation(a: &BTreeMap<String, String>, name: &str) -> Response {
    match a.get(name) {
        Some(v) => Response::raw(v.clone()),
        None => Response::error(404, &format!("no annotation named {name:?}")),
    }
}

/// Form fields by name; 400 when the body is not a form or a field is missing.
fn fields(body: &[u8], names: &[&str]) -> Result<Vec<Vec<u8>>, Response> {
    let form = parse_form(body)
        .ok_or_else(|| Response::error(400, "body is not application/x-www-form-urlencoded"))?;
    names
        .iter()
        .map(|n| {
            form.iter()
                .find(|(k, _)| k == n)
                .map(|(_, v)| v.clone())
                .ok_or_else(|| Response::error(400, &format!("missing form field {n:?}")))
        })
        .collect()
}

fn sign(state: &State, e: &Entry, body: &[u8]) -> Response {
    match fields(body, &["content"]) {
        Ok(f) => Response::raw(state.key.sign(&e.pod.uuid, &f[0])),
        Err(r) => r,
    }
}

fn verify(state: &State, body: &[u8]) -> Response {
    let f = match fields(body, &["uid", "content", "signature"]) {
        Ok(f) => f,
        Err(r) => return r,
    };
    let Ok(uid) = String::from_utf8(f[0].clone()) else {
        return Response::error(400, "uid is not a pod UUID");
    };
    // Base64 has no spaces: a '+' sent unescaped arrives as a space.
    let sig = String::from_utf8_lossy(&f[2]).replace(' ', "+");
    if state.key.verify(uid.trim(), &f[1], &sig) {
        Response::text(200, "verified")
    } else {
        Response::error(403, "signature does not match this content and pod")
    }
}

#[cfg(test)]
mod tests {
    use super::super::registry::{NetAddr, PodInfo};
    use super::super::signing::KEY_LEN;
    use super::*;

    const A: &str = "172.17.0.2";
    const B: &str = "172.17.0.3";
    const GW: &str = "172.17.0.1";

    fn setup() -> (State, String, String) {
        let state = State {
            registry: Registry::in_memory(),
            key: Key::from_bytes([1; KEY_LEN]),
        };
        let me = std::process::id() as i32;
        let mut tokens = Vec::new();
        for (uuid, ip) in [("uuid-a", A), ("uuid-b", B)] {
            let pod = PodInfo {
                uuid: uuid.into(),
                app_name: "busybox".into(),
                image_name: "busybox".into(),
                image_id: "sha256:abc".into(),
                annotations: [
                    ("team".to_string(), "net".to_string()),
                    ("example.com/role".to_string(), "db".to_string()),
                ]
                .into(),
                networks: vec![NetAddr {
                    name: "default-restricted".into(),
                    ifname: "eth0".into(),
                    ip: ip.parse().unwrap(),
                    gateway: Some(GW.parse().unwrap()),
                }],
                ..Default::default()
            };
            tokens.push(state.registry.register(pod, me).unwrap());
        }
        let b = tokens.pop().unwrap();
        (state, tokens.pop().unwrap(), b)
    }

    fn req(state: &State, method: &str, path: &str, body: &str, from: &str) -> Response {
        let r = Request {
            method: method.into(),
            path: path.into(),
            body: body.as_bytes().to_vec(),
        };
        handle(state, &r, from.parse().unwrap(), GW.parse().unwrap())
    }

    fn body(r: &Response) -> String {
        String::from_utf8(r.body.clone()).unwrap()
    }

    #[test]
    fn endpoints() {
        let (s, a, _) = setup();
        let p = |rest: &str| format!("/{a}/acMetadata/v1/{rest}");
        let r = req(&s, "GET", &p("pod/uuid"), "", A);
        assert_eq!((r.status, body(&r)), (200, "uuid-a".into()));
        assert_eq!(
            body(&req(&s, "GET", &p("pod/annotations"), "", A)),
            "example.com/role\nteam\n"
        );
        assert_eq!(
            body(&req(
                &s,
                "GET",
                &p("pod/annotations/example.com/role"),
                "",
                A
            )),
            "db"
        );
        assert_eq!(
            body(&req(&s, "GET", &p("pod/annotations/team"), "", A)),
            "net"
        );
        assert_eq!(
            req(&s, "GET", &p("pod/annotations/nope"), "", A).status,
            404
        );
        let m: Value =
            serde_json::from_slice(&req(&s, "GET", &p("pod/manifest"), "", A).body).unwrap();
        assert_eq!(m["networks"][0]["ip"], A);
        assert_eq!(m["apps"][0]["name"], "busybox");
        assert_eq!(
            body(&req(&s, "GET", &p("apps/busybox/image/id"), "", A)),
            "sha256:abc"
        );
        assert_eq!(
            req(&s, "GET", &p("apps/busybox/image/manifest"), "", A).status,
            200
        );
        assert_eq!(
            req(&s, "GET", &p("apps/busybox/annotations"), "", A).status,
            200
        );
        assert_eq!(req(&s, "GET", &p("apps/other/image/id"), "", A).status, 404);
        assert_eq!(req(&s, "GET", &p("pod/nothing"), "", A).status, 404);
        assert_eq!(req(&s, "POST", &p("pod/uuid"), "", A).status, 405);
        assert_eq!(req(&s, "GET", "/nothing", "", A).status, 404);
    }

    #[test]
    fn who_may_ask() {
        let (s, a, b) = setup();
        let p = |t: &str| format!("/{t}/acMetadata/v1/pod/uuid");
        assert_eq!(req(&s, "GET", &p(&a), "", B).status, 403);
        assert_eq!(req(&s, "GET", &p(&b), "", B).status, 200);
        assert_eq!(req(&s, "GET", &p(&"0".repeat(64)), "", A).status, 403);
        // Right address, wrong host address (another network).
        let r = Request {
            method: "GET".into(),
            path: p(&a),
            body: vec![],
        };
        let other = handle(&s, &r, A.parse().unwrap(), "172.16.28.1".parse().unwrap());
        assert_eq!(other.status, 403);
        assert!(s.registry.unregister(&a));
        assert_eq!(req(&s, "GET", &p(&a), "", A).status, 403);
    }

    #[test]
    fn sign_and_verify() {
        let (s, a, b) = setup();
        let sign = req(
            &s,
            "POST",
            &format!("/{a}/acMetadata/v1/pod/hmac/sign"),
            "content=hello+world",
            A,
        );
        assert_eq!(sign.status, 200);
        let sig = body(&sign);
        let enc = sig
            .replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D");
        let v = format!("/{b}/acMetadata/v1/pod/hmac/verify");
        let ok = req(
            &s,
            "POST",
            &v,
            &format!("uid=uuid-a&content=hello+world&signature={enc}"),
            B,
        );
        assert_eq!(ok.status, 200);
        // An unescaped signature still verifies ('+' arrives as a space).
        let raw = req(
            &s,
            "POST",
            &v,
            &format!("uid=uuid-a&content=hello+world&signature={sig}"),
            B,
        );
        assert_eq!(raw.status, 200);
        let bad = req(
            &s,
            "POST",
            &v,
            &format!("uid=uuid-a&content=hello+World&signature={enc}"),
            B,
        );
        assert_eq!(bad.status, 403);
        let wrong = req(
            &s,
            "POST",
            &v,
            &format!("uid=uuid-b&content=hello+world&signature={enc}"),
            B,
        );
        assert_eq!(wrong.status, 403);
        assert_eq!(req(&s, "POST", &v, "uid=uuid-a", B).status, 400);
        assert_eq!(req(&s, "POST", &v, "%zz", B).status, 400);
        let no_content = req(
            &s,
            "POST",
            &format!("/{a}/acMetadata/v1/pod/hmac/sign"),
            "x=1",
            A,
        );
        assert_eq!(no_content.status, 400);
    }
}
