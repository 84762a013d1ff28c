//! CNI_ARGS: `K=V;K2=V2`, as given per network with `--net=name:K=V;K2=V2`.

/// Set to `1` by the runtime on DEL when it deletes the pod's network
/// namespace right after: plugins may then leave the pod's links to the
/// kernel, which reaps them with the namespace in the background instead of
/// a synchronous 20-40 ms delete. A plugin that ignores it is still correct.
pub const NETNS_TEARDOWN: &str = "RKT_NETNS_TEARDOWN";

/// Parses `K=V;K2=V2` into pairs. Keys and values must be non-empty and free
/// of `=` and `;`.
pub fn parse(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for part in s.split(';').filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| format!("\"{part}\" is not KEY=VALUE"))?;
        if k.is_empty() || v.is_empty() || v.contains('=') {
            return Err(format!("\"{part}\" is not KEY=VALUE"));
        }
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

/// Joins pairs back into CNI_ARGS form.
pub fn join(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(";")
}

/// The value of `key` in a CNI_ARGS string.
pub fn get<'a>(s: &'a str, key: &str) -> Option<&'a str> {
    s.split(';')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_rejects() {
        let p = parse("IP=10.1.0.5;FOO=bar").unwrap();
        assert_eq!(
            p,
            vec![
                ("IP".into(), "10.1.0.5".into()),
                ("FOO".into(), "bar".into())
            ]
        );
        assert_eq!(join(&p), "IP=10.1.0.5;FOO=bar");
        assert!(parse("IP").is_err());
        assert!(parse("=x").is_err());
        assert!(parse("a=b=c").is_err());
        assert_eq!(get("IgnoreUnknown=1;IP=1.2.3.4", "IP"), Some("1.2.3.4"));
    }
}
