//! A small synchronous facade over the `rtnetlink` crate, for the plugins:
//! one [`Netlink`] handle talks to one network namespace (its socket is
//! opened inside that namespace), and every call blocks on a per-handle
//! current-thread tokio runtime. Submodules are named for what they do.

pub mod addr;
pub mod link;
pub mod route;
pub mod sysctl;

use std::future::Future;
use std::path::Path;

pub use crate::netns::Netns;

/// What a netlink call failed at, and why.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error(transparent)]
    Netns(#[from] crate::netns::NetnsError),
    #[error("cannot {what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("cannot {what}: {source}")]
    Request {
        what: String,
        source: Box<rtnetlink::Error>,
    },
    #[error("no link {link} in {netns}")]
    NoLink { link: String, netns: String },
    #[error("invalid route {route}: {source}")]
    InvalidRoute {
        route: String,
        /// rtnetlink's builder error (a type it does not export).
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl NetlinkError {
    /// The errno of a failed request (positive), if the kernel sent one.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetlinkError::Request { source, .. } => match source.as_ref() {
                rtnetlink::Error::NetlinkError(msg) => msg.code.map(|c| -c.get()),
                _ => None,
            },
            NetlinkError::Io { source, .. } => source.raw_os_error(),
            NetlinkError::Netns(e) => e.io().raw_os_error(),
            _ => None,
        }
    }

    /// The object already exists (EEXIST).
    pub fn is_exists(&self) -> bool {
        self.errno() == Some(libc::EEXIST)
    }

    /// The object (link, address, route, netns) does not exist.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self.errno(),
            Some(libc::ENODEV) | Some(libc::ENOENT) | Some(libc::ESRCH) | Some(libc::EADDRNOTAVAIL)
        )
    }
}

pub type Result<T> = std::result::Result<T, NetlinkError>;

/// `r`, with "it does not exist" counted as done: for removals that must
/// be idempotent.
pub fn missing_ok(r: Result<()>) -> Result<()> {
    match r {
        Err(e) if e.is_not_found() => Ok(()),
        other => other,
    }
}

/// A netlink connection bound to one network namespace.
pub struct Netlink {
    rt: tokio::runtime::Runtime,
    handle: rtnetlink::Handle,
    /// A name for the namespace in error messages ("host" or the netns path).
    ns_name: String,
}

impl Netlink {
    /// A connection in the namespace this thread is in.
    pub fn current() -> Result<Self> {
        Self::connect("host".into())
    }

    /// A connection whose socket lives in the namespace at `path`: the
    /// socket is opened while this thread is briefly switched into it.
    pub fn in_netns(ns: &Netns) -> Result<Self> {
        ns.run(|| Self::connect(ns.path().display().to_string()))?
    }

    /// Opens the namespace at `path` and connects inside it.
    pub fn at(path: &Path) -> Result<Self> {
        Self::in_netns(&Netns::open(path)?)
    }

    fn connect(ns_name: String) -> Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(|source| NetlinkError::Io {
                what: "start the netlink runtime".into(),
                source,
            })?;
        let handle = {
            let _guard = rt.enter();
            let (conn, handle, _) =
                rtnetlink::new_connection().map_err(|source| NetlinkError::Io {
                    what: format!("open a netlink socket in {ns_name}"),
                    source,
                })?;
            rt.spawn(conn);
            handle
        };
        Ok(Netlink {
            rt,
            handle,
            ns_name,
        })
    }

    /// The namespace's name in messages.
    pub fn ns_name(&self) -> &str {
        &self.ns_name
    }

    pub(crate) fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    pub(crate) fn handle(&self) -> &rtnetlink::Handle {
        &self.handle
    }

    /// Wraps an rtnetlink error with what was being done, in which netns.
    pub(crate) fn fail(
        &self,
        what: impl std::fmt::Display,
    ) -> impl FnOnce(rtnetlink::Error) -> NetlinkError + '_ {
        let what = format!("{what} in {}", self.ns_name);
        move |source| NetlinkError::Request {
            what,
            source: Box::new(source),
        }
    }
}
