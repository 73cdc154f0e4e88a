//! What `/proc/<pid>` says about a process: CPU time used and resident memory. The harness
//! measures the router from outside, as an operator's monitoring would, rather than trusting
//! figures the process reports about itself. (Two fields of two files: no crate needed.)

use std::io;

/// Resident memory of a process.
#[derive(Clone, Copy, Debug, Default, PartialEq, serde::Serialize)]
pub struct Memory {
    /// `VmRSS`: resident now, in bytes.
    pub rss_bytes: u64,
    /// `VmHWM`: the peak resident size so far, in bytes.
    pub peak_rss_bytes: u64,
}

impl Memory {
    /// The peak in MiB.
    pub fn peak_mib(&self) -> f64 {
        self.peak_rss_bytes as f64 / (1024.0 * 1024.0)
    }
}

/// User plus system CPU seconds `pid` has used so far.
pub fn cpu_seconds(pid: u32) -> io::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let ticks = parse_stat_ticks(&stat)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unexpected /proc/<pid>/stat"))?;
    Ok(ticks as f64 / clock_ticks_per_second())
}

/// Resident and peak resident memory of `pid`.
pub fn memory(pid: u32) -> io::Result<Memory> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_status_memory(&status)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no VmRSS/VmHWM in status"))
}

/// utime + stime, in clock ticks, from the text of `/proc/<pid>/stat`.
fn parse_stat_ticks(stat: &str) -> Option<u64> {
    // The command name (field 2) is in parentheses and may hold spaces and parentheses itself:
    // the fields that follow start after the last ')'. utime and stime are fields 14 and 15.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(14 - 3);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(utime + stime)
}

fn parse_status_memory(status: &str) -> Option<Memory> {
    let kib = |key: &str| -> Option<u64> {
        let line = status.lines().find(|l| l.starts_with(key))?;
        line[key.len()..].split_whitespace().next()?.parse().ok()
    };
    Some(Memory {
        rss_bytes: kib("VmRSS:")? * 1024,
        peak_rss_bytes: kib("VmHWM:")? * 1024,
    })
}

fn clock_ticks_per_second() -> f64 {
    // SAFETY: sysconf only reads a configuration value.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_after_a_name_with_spaces_and_parentheses() {
        let stat = "4242 (tokio (rt) w) S 1 4242 4242 0 -1 4194560 1526 0 0 0 250 37 0 0 20 0 5 0";
        assert_eq!(parse_stat_ticks(stat), Some(287));
    }

    #[test]
    fn status_memory_in_bytes() {
        let status = "Name:\thookline\nVmHWM:\t   98304 kB\nVmRSS:\t   65536 kB\nThreads:\t9\n";
        let m = parse_status_memory(status).unwrap();
        assert_eq!(m.peak_rss_bytes, 96 * 1024 * 1024);
        assert_eq!(m.rss_bytes, 64 * 1024 * 1024);
        assert_eq!(m.peak_mib(), 96.0);
    }

    #[test]
    fn reads_this_process() {
        // Spin until the kernel has charged this process a tick (or give up after 10 s).
        let spin = std::time::Instant::now();
        while cpu_seconds(std::process::id()).unwrap() == 0.0 {
            assert!(spin.elapsed() < std::time::Duration::from_secs(10));
            std::hint::black_box(spin.elapsed());
        }
        assert!(memory(std::process::id()).unwrap().peak_rss_bytes > 0);
    }
}
