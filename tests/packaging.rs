//! Issue 16 (first part): `rkt version` names the runtime's version, the
//! CNI versions it speaks and each bundled plugin it would run; the man
//! pages and shell completions are generated from the command line's own
//! definitions: every page renders with `man -l`, and the bash completion
//! completes `rkt run --n` to `--net`.

mod common;

use common::Host;

#[test]
fn version_names_the_runtime_the_spec_and_the_plugins() {
    let host = Host::new().start();
    let v = host.rkt(&["version"]).ok();
    let lines = v.lines();
    assert_eq!(
        lines[0],
        format!("rkt Version: {}", env!("CARGO_PKG_VERSION"))
    );
    assert!(
        lines[1].starts_with("CNI spec versions: ") && lines[1].contains("1.1.0"),
        "{}",
        v.stdout
    );
    for plugin in [
        "ptp",
        "bridge",
        "macvlan",
        "loopback",
        "portmap",
        "host-local",
        "dhcp",
    ] {
        let line = lines
            .iter()
            .find(|l| l.starts_with(&format!("plugin {plugin}: ")))
            .unwrap_or_else(|| panic!("no line for {plugin}: {}", v.stdout));
        assert!(line.ends_with("1.1.0)"), "{line}");
    }
    // A plugin path without them says so.
    let none = host
        .rkt(&["--net-plugin-path=/nonexistent", "version"])
        .ok();
    assert!(
        none.stdout
            .contains("plugin ptp: not found on the plugin path"),
        "{}",
        none.stdout
    );
    let short = host.rkt(&["--version"]).ok();
    assert_eq!(
        short.stdout.trim(),
        format!("rkt {}", env!("CARGO_PKG_VERSION"))
    );
    host.finish();
}

#[test]
fn man_pages_render_and_bash_completes() {
    let host = Host::new().start();
    host.rkt(&["man", "/tmp/man"]).ok();
    let pages = host.ls("/tmp/man");
    for want in [
        "rkt.1",
        "rkt-run.1",
        "rkt-prepare.1",
        "rkt-image.1",
        "rkt-gc.1",
    ] {
        assert!(pages.iter().any(|p| p == want), "{want} in {pages:?}");
    }
    for page in &pages {
        let out = host.exec(&["man", "-l", &format!("/tmp/man/{page}")]).ok();
        assert!(out.stdout.contains("NAME"), "{page}: {}", out.stdout);
    }
    let run = host.exec(&["man", "-l", "/tmp/man/rkt-run.1"]).ok();
    assert!(
        run.stdout.contains("--publish") && run.stdout.contains("--volume"),
        "{}",
        run.stdout
    );
    let script = host.rkt(&["completion", "bash"]).ok().stdout;
    host.write("/tmp/rkt.bash", &script);
    let completed = host
        .exec(&[
            "bash",
            "-c",
            "source /tmp/rkt.bash; COMP_WORDS=(rkt run --n); COMP_CWORD=2; COMP_LINE='rkt run --n'; COMP_POINT=${#COMP_LINE}; _rkt rkt --n run; printf '%s\\n' \"${COMPREPLY[@]}\"",
        ])
        .ok();
    assert!(completed.lines().contains(&"--net"), "{}", completed.stdout);
    for shell in ["zsh", "fish"] {
        let s = host.rkt(&["completion", shell]).ok();
        assert!(s.stdout.contains("--net"), "{shell}");
    }
    host.finish();
}
