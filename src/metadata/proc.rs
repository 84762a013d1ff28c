//! Is a pod's runtime (`rkt run`) still alive? A PID plus its start time
//! (from `/proc/<pid>/stat`) names one process for good, even after PID reuse.

use std::fs;

/// The start time (clock ticks since boot) of a live, non-zombie process.
pub fn start_time(pid: i32) -> Option<u64> {
    if pid <= 0 {
        return None;
    }
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    parse_stat(&stat)
}

/// Field 3 (state) and field 22 (starttime) of a stat line; the command
/// name (field 2) may hold spaces and parentheses, so fields are counted
/// from its last `)`.
fn parse_stat(stat: &str) -> Option<u64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    // Fields 4..=21 come before starttime: skip 18 of them.
    fields.nth(18)?.parse().ok()
}

/// Whether the process `pid` that started at `start` still runs.
pub fn alive(pid: i32, start: u64) -> bool {
    start_time(pid) == Some(start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_odd_names() {
        let line = "42 (a) b (c)) S 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 777 1000 10";
        assert_eq!(parse_stat(line), Some(777));
        let zombie = "42 (x) Z 1 42 42 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 777 1000 10";
        assert_eq!(parse_stat(zombie), None);
    }

    #[test]
    fn this_process_is_alive() {
        let pid = std::process::id() as i32;
        let start = start_time(pid).expect("own stat");
        assert!(alive(pid, start));
        assert!(!alive(pid, start + 1));
    }
}
