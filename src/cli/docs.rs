//! Shell completions and man pages, generated from the command line's own
//! definitions (clap), so they never drift from it: `rkt completion
//! bash|zsh|fish` prints a completion script; `rkt man DIR` writes
//! `rkt.1` and one `rkt-<subcommand>.1` per subcommand.

use std::path::{Path, PathBuf};

use clap::{Args, CommandFactory};

use super::Cli;
use crate::error::Error;

#[derive(Debug, Args)]
pub struct CompletionArgs {
    /// bash, zsh or fish.
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Where to write the pages.
    pub dir: PathBuf,
}

pub fn completion(a: CompletionArgs) -> Result<i32, Error> {
    clap_complete::generate(a.shell, &mut Cli::command(), "rkt", &mut std::io::stdout());
    Ok(0)
}

fn write_page(cmd: clap::Command, path: &Path) -> Result<(), Error> {
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd)
        .render(&mut out)
        .map_err(Error::state("render the man page", path))?;
    std::fs::write(path, out).map_err(Error::state("write", path))
}

pub fn man(a: ManArgs) -> Result<i32, Error> {
    std::fs::create_dir_all(&a.dir).map_err(Error::state("create", &a.dir))?;
    let cmd = Cli::command();
    write_page(cmd.clone(), &a.dir.join("rkt.1"))?;
    for sub in cmd.get_subcommands() {
        let name = format!("rkt-{}", sub.get_name());
        write_page(
            sub.clone().name(name.clone()),
            &a.dir.join(format!("{name}.1")),
        )?;
    }
    Ok(0)
}
