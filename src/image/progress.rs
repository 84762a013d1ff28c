//! Import progress on a terminal: while an image's layers are unpacked,
//! one line on stderr (rewritten at most every 100 ms) says which layer
//! and how many bytes were read so far (cached layers read nothing, but a
//! blob read to check its digest counts). Nothing is printed when stderr
//! is not a terminal.

use std::cell::{Cell, RefCell};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

const EVERY: Duration = Duration::from_millis(100);

#[derive(Debug)]
pub struct Progress {
    image: String,
    step: RefCell<String>,
    last: Cell<Option<Instant>>,
    shown: Cell<bool>,
}

impl Progress {
    /// A reporter for `image` when stderr is a terminal.
    pub fn on_terminal(image: &str) -> Option<Progress> {
        std::io::stderr().is_terminal().then(|| Progress {
            image: image.to_string(),
            step: RefCell::new(String::new()),
            last: Cell::new(None),
            shown: Cell::new(false),
        })
    }

    /// What is being unpacked now (`layer 2 of 5 (...)`).
    pub fn step(&self, what: &str) {
        *self.step.borrow_mut() = what.to_string();
        self.last.set(None);
    }

    /// `bytes` unpacked so far (all layers).
    pub fn bytes(&self, bytes: u64) {
        if self.last.get().is_some_and(|t| t.elapsed() < EVERY) {
            return;
        }
        self.last.set(Some(Instant::now()));
        self.shown.set(true);
        let mut err = std::io::stderr().lock();
        let _ = write!(
            err,
            "\r\x1b[Kimporting {}: {}, {:.1} MiB",
            self.image,
            self.step.borrow(),
            bytes as f64 / (1 << 20) as f64
        );
        let _ = err.flush();
    }
}

impl Drop for Progress {
    /// Ends the line once the import is over.
    fn drop(&mut self) {
        if self.shown.get() {
            eprintln!();
        }
    }
}
