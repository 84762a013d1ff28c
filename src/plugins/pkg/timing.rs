//! Step timings of a plugin call (`RKT_PLUGIN_TIMINGS`), for the benchmarks.

/// Step timings of one plugin call, printed on stderr at the end when
/// `RKT_PLUGIN_TIMINGS` is set (stdout carries the result).
pub struct StepTimer {
    start: std::time::Instant,
    last: std::time::Instant,
    steps: Vec<(&'static str, std::time::Duration)>,
    on: bool,
}

impl StepTimer {
    pub fn new() -> Self {
        let now = std::time::Instant::now();
        StepTimer {
            start: now,
            last: now,
            steps: Vec::new(),
            on: std::env::var_os("RKT_PLUGIN_TIMINGS").is_some(),
        }
    }

    /// Records the time since the previous mark under `step`.
    pub fn mark(&mut self, step: &'static str) {
        if self.on {
            let now = std::time::Instant::now();
            self.steps.push((step, now - self.last));
            self.last = now;
        }
    }
}

impl Default for StepTimer {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for StepTimer {
    fn drop(&mut self) {
        if self.on {
            let steps: Vec<String> = self
                .steps
                .iter()
                .map(|(s, d)| format!("{s}={:.3}ms", d.as_secs_f64() * 1e3))
                .collect();
            eprintln!(
                "timings: {} total={:.3}ms",
                steps.join(" "),
                self.start.elapsed().as_secs_f64() * 1e3
            );
        }
    }
}
