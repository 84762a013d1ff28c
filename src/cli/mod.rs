//! The command line: global flags and one module per subcommand.

mod docs;
mod enter;
mod gc;
mod image;
mod list;
mod metadata;
mod run;
mod stop;
mod version;

use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::error::{Error, FlagError};
use crate::networking;
use crate::pod::{Pod, Store};

#[derive(Debug, Parser)]
#[command(
    name = "rkt",
    version,
    about = "A pod runtime with CNI networking, in the style of CoreOS rkt"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Pod state directory.
    #[arg(long, global = true, default_value = "/var/lib/rkt")]
    pub dir: PathBuf,
    /// Local configuration directory; networks are read from its net.d/.
    #[arg(long = "local-config", global = true, default_value = "/etc/rkt")]
    pub local_config: PathBuf,
    /// Print debug output, with the timing of each phase.
    #[arg(long, global = true)]
    pub debug: bool,
    /// Colon-separated plugin directories [default: PREFIX/lib/rkt/plugins/net
    /// for rkt in PREFIX/bin (else beside rkt), /usr/lib/rkt/plugins/net,
    /// /opt/cni/bin, /usr/lib/cni].
    #[arg(long = "net-plugin-path", global = true)]
    pub net_plugin_path: Option<String>,
    /// How long a CNI plugin may take before it is killed and the pod rolled back.
    #[arg(long = "net-plugin-timeout", global = true, default_value = "60s")]
    pub net_plugin_timeout: String,
    /// The most uncompressed bytes one image's layers may unpack to (K, M,
    /// G, T: binary multiples; a bare number is bytes).
    #[arg(long = "max-image-size", global = true, default_value = crate::image::DEFAULT_MAX_SIZE)]
    pub max_image_size: String,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run an image in a new pod, in the foreground.
    Run(Box<run::RunArgs>),
    /// List pods.
    List(list::ListArgs),
    /// Show the status of a pod.
    Status(list::StatusArgs),
    /// Check a pod's flags and image and make it, without running it;
    /// prints its UUID.
    Prepare(Box<run::RunArgs>),
    /// Run a pod made by `rkt prepare`, on the networks given now.
    RunPrepared(run::RunPreparedArgs),
    /// Print a pod's manifest (pod.json).
    CatManifest(list::CatManifestArgs),
    /// Run a command inside a running pod.
    Enter(enter::EnterArgs),
    /// Stop running pods.
    Stop(stop::StopArgs),
    /// Remove exited pods.
    Rm(stop::RmArgs),
    /// Tear down pods whose runtime died and remove exited pods.
    Gc(gc::GcArgs),
    /// The image store: list, rm, gc.
    Image(image::ImageArgs),
    /// The runtime's version, the CNI versions it speaks, its plugins'.
    Version,
    /// A shell completion script (bash, zsh, fish) on stdout.
    Completion(docs::CompletionArgs),
    /// Write the man pages (rkt.1, rkt-<command>.1) to a directory.
    Man(docs::ManArgs),
    /// Serve pod metadata and identity to pods (AC_METADATA_URL).
    MetadataService(metadata::MetadataArgs),
}

pub fn init_tracing(debug: bool) {
    let level = if debug { "debug" } else { "warn" };
    let filter = tracing_subscriber::EnvFilter::try_from_env("RKT_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Which pod a command is about: its UUID (or a prefix) on the command
/// line, or the file `rkt run --uuid-file-save` wrote.
#[derive(Debug, Args)]
pub struct PodRef {
    /// Read the pod's UUID from FILE (what `rkt run --uuid-file-save` wrote).
    #[arg(long = "uuid-file", value_name = "FILE")]
    pub uuid_file: Option<PathBuf>,
}

impl PodRef {
    /// The UUIDs given: `args` and the file's, at least one.
    pub fn uuids(&self, args: Vec<String>) -> Result<Vec<String>, Error> {
        let mut all = args;
        if let Some(path) = &self.uuid_file {
            let text = std::fs::read_to_string(path).map_err(|source| FlagError::UuidFile {
                path: path.clone(),
                source,
            })?;
            all.push(text.trim().to_string());
        }
        if all.is_empty() {
            return Err(FlagError::UuidSource.into());
        }
        Ok(all)
    }

    /// Exactly one UUID: `arg` or the file's.
    pub fn uuid(&self, arg: Option<String>) -> Result<String, Error> {
        if arg.is_some() && self.uuid_file.is_some() {
            return Err(FlagError::UuidSource.into());
        }
        Ok(self.uuids(arg.into_iter().collect())?.remove(0))
    }
}

/// The one line a failed command prints: the error and its causes, each
/// once. Typed errors already end with their cause's text (`cannot create
/// X: File exists`); a context added on top does not, so its cause follows.
pub fn report(e: &dyn std::error::Error) -> String {
    let mut line = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let text = c.to_string();
        if !line.ends_with(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cause = c.source();
    }
    line
}

pub fn dispatch(cli: Cli) -> Result<i32, Error> {
    let g = &cli.global;
    match cli.command {
        Command::Run(a) => run::run(g, *a),
        Command::Prepare(a) => run::prepare(g, *a),
        Command::RunPrepared(a) => run::run_prepared(g, a),
        Command::List(a) => list::list(g, a),
        Command::Status(a) => list::status(g, a),
        Command::CatManifest(a) => list::cat_manifest(g, a),
        Command::Enter(a) => enter::enter(g, a),
        Command::Stop(a) => stop::stop(g, a),
        Command::Rm(a) => stop::rm(g, a),
        Command::Gc(a) => gc::gc(g, a),
        Command::Image(a) => image::image(g, a),
        Command::Version => version::version(g),
        Command::Completion(a) => docs::completion(a),
        Command::Man(a) => docs::man(a),
        Command::MetadataService(a) => metadata::metadata_service(g, a),
    }
}

impl Global {
    pub fn store(&self) -> Store {
        Store::new(&self.dir)
    }

    pub fn plugin_path(&self) -> Vec<PathBuf> {
        if let Some(p) = &self.net_plugin_path {
            return std::env::split_paths(p)
                .filter(|p| !p.as_os_str().is_empty())
                .collect();
        }
        let mut out = Vec::new();
        if let Some(dir) = std::env::current_exe()
            .ok()
            .and_then(|e| e.parent().map(Path::to_path_buf))
        {
            // Installed under a prefix (the package's layout), PREFIX/bin/rkt
            // finds PREFIX/lib/rkt/plugins/net and never looks for plugins
            // among PREFIX/bin's programs; a build tree has them beside rkt.
            let installed = dir
                .parent()
                .map(|prefix| prefix.join("lib/rkt/plugins/net"))
                .filter(|d| d.is_dir());
            out.push(installed.unwrap_or(dir));
        }
        for d in ["/usr/lib/rkt/plugins/net", "/opt/cni/bin", "/usr/lib/cni"] {
            let d = PathBuf::from(d);
            if !out.contains(&d) {
                out.push(d);
            }
        }
        out
    }

    pub fn max_image_size(&self) -> Result<u64, FlagError> {
        crate::image::parse_size(&self.max_image_size).map_err(|source| FlagError::MaxImageSize {
            value: self.max_image_size.clone(),
            source,
        })
    }

    pub fn plugin_timeout(&self) -> Result<Duration, FlagError> {
        let value = || self.net_plugin_timeout.clone();
        let t = crate::pod::time::parse_duration(&self.net_plugin_timeout).map_err(|source| {
            FlagError::PluginTimeout {
                value: value(),
                source,
            }
        })?;
        if t.is_zero() {
            return Err(FlagError::ZeroTimeout(value()));
        }
        Ok(t)
    }

    /// Releases what a pod holds on the host: its networks (with this
    /// invocation's plugin settings) and its cgroups.
    pub fn release_pod(&self, pod: &Pod, force: bool) -> networking::Released {
        let timeout = self.plugin_timeout().unwrap_or(Duration::from_secs(60));
        let path = self.plugin_path();
        let plugins = networking::Plugins {
            path: &path,
            timeout,
        };
        let released = networking::release(pod, plugins, force);
        if let Ok(list) = std::fs::read_to_string(pod.path("cgroups")) {
            let left = crate::stage1::cgroup::PodCgroups::from_list(&list).remove();
            if left.is_empty() {
                let _ = std::fs::remove_file(pod.path("cgroups"));
            }
            for d in left {
                eprintln!(
                    "rkt: pod {}: warning: cgroup {} is still in use; `rkt gc` retries",
                    pod.uuid,
                    d.display()
                );
            }
        }
        released
    }
}
