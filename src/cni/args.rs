//! CNI_ARGS: `K=V;K2=V2`, as given per network with `--net=name:K=V;K2=V2`.

/// Set to `1` by the runtime on DEL when it deletes the pod's network
/// namespace right after: plugins may then leave the pod's links to the
/// kernel, which reaps them with the namespace in the background instead of
/// a synchronous 20-40 ms delete. A plugin that ignores it is still correct.
pub const NETNS_TEARDOWN: &str = "RKT_NETNS_TEARDOWN";

/// Parses `K=V;K2=V2` into pairs. Keys and values must be non-empty and free
/// of `=` and `;`, and no key may be given twice (which value a plugin
/// would take is not defined).
/// Why CNI_ARGS are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArgsError {
    #[error("\"{0}\" is not KEY=VALUE")]
    NotKeyValue(String),
    #[error("key \"{0}\" is given twice; give it once")]
    Twice(String),
}

pub fn parse(s: &str) -> Result<Vec<(String, String)>, ArgsError> {
    let mut out: Vec<(String, String)> = Vec::new();
    for part in s.split(';').filter(|p| !p.is_empty()) {
        let (k, v) = part
            .split_once('=')
            .ok_or_else(|| ArgsError::NotKeyValue(part.to_string()))?;
        if k.is_empty() || v.is_empty() || v.contains('=') {
            return Err(ArgsError::NotKeyValue(part.to_string()));
        }
        if out.iter().any(|(seen, _)| seen == k) {
            return Err(ArgsError::Twice(k.to_string()));
        }
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

/// A plugin's check of CNI_ARGS as a runtime passed it: the same key twice
/// is an error naming it. Other runtimes' pairs are taken as they come
/// (an empty value, a pair without `=`), as the reference plugins take them.
pub fn check_unique(s: &str) -> Result<(), ArgsError> {
    let keys = s
        .split(';')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').map_or(p, |(k, _)| k));
    let mut seen: Vec<&str> = Vec::new();
    for k in keys {
        if seen.contains(&k) {
            return Err(ArgsError::Twice(k.to_string()));
        }
        seen.push(k);
    }
    Ok(())
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

    #[test]
    fn a_key_given_twice_is_an_error_naming_it() {
        let e = parse("IP=10.1.0.5;FOO=bar;IP=10.1.0.6")
            .unwrap_err()
            .to_string();
        assert!(e.contains("key \"IP\" is given twice"), "{e}");
        assert!(check_unique("IgnoreUnknown=1;IP=1.2.3.4;IP=1.2.3.5")
            .unwrap_err()
            .to_string()
            .contains("\"IP\""));
        // Case matters, as in the reference plugins' field lookup.
        assert!(parse("ip=1;IP=2").is_ok());
        // Other runtimes' forms pass the plugin-side check.
        check_unique("IgnoreUnknown=1;K8S_POD_NAME=;FLAG;IP=1.2.3.4").unwrap();
        assert!(check_unique("FLAG;FLAG").is_err());
    }
}
