//! What the load test reads from Linux about its own process: CPU time (the whole
//! process, and per thread group by thread name), resident memory, the kernel's UDP
//! counters. Parsers take the file's text, so they are tested without /proc.

use nix::sys::resource::{getrusage, UsageWho};
use nix::sys::time::TimeVal;
use std::fs;
use std::time::Instant;

/// The engine's runtime threads (named like tsps serve's I/O runtime).
pub const IO_THREADS: &str = "tsps-io";
/// The load generator's runtime threads.
pub const GEN_THREADS: &str = "gen";

/// CPU seconds (user + system) of the process and of its thread groups at one instant.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Cpu {
    pub process: f64,
    /// The process's system (kernel) time, part of `process`.
    pub process_system: f64,
    /// Threads named [`IO_THREADS`]: the bridge or the echo.
    pub io: f64,
    /// Threads named [`GEN_THREADS`]: the clients.
    pub gen: f64,
}

impl Cpu {
    pub fn minus(self, earlier: Cpu) -> Cpu {
        Cpu {
            process: self.process - earlier.process,
            process_system: self.process_system - earlier.process_system,
            io: self.io - earlier.io,
            gen: self.gen - earlier.gen,
        }
    }
}

/// One reading of everything a window compares.
#[derive(Clone, Copy, Debug)]
pub struct Snapshot {
    pub at: Instant,
    pub cpu: Cpu,
    pub memory: Memory,
    /// Allocations made so far.
    pub allocations: u64,
    pub udp: UdpCounters,
}

pub fn snapshot() -> Snapshot {
    Snapshot {
        at: Instant::now(),
        cpu: cpu(),
        memory: memory(),
        allocations: crate::alloc::heap().1,
        udp: udp_counters(),
    }
}

/// The process's memory: resident (what the OS sees) and live on the heap (what the
/// program holds; see `alloc.rs`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Memory {
    pub rss_kb: u64,
    pub heap_bytes: i64,
}

pub fn memory() -> Memory {
    Memory {
        rss_kb: rss_kb(),
        heap_bytes: crate::alloc::heap().0,
    }
}

/// Precise to the microsecond (process, getrusage) and the nanosecond (threads,
/// schedstat), not to the 10-ms clock tick of /proc/.../stat: a level of 10 conferences
/// uses a few ms of CPU per second.
pub fn cpu() -> Cpu {
    let seconds = |t: TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    let (process, process_system) = getrusage(UsageWho::RUSAGE_SELF).map_or((0.0, 0.0), |u| {
        let system = seconds(u.system_time());
        (seconds(u.user_time()) + system, system)
    });
    let mut cpu = Cpu {
        process,
        process_system,
        ..Cpu::default()
    };
    // Threads that exited are missing here (their time stays in the process total):
    // both runtimes keep their worker threads for the whole run.
    if let Ok(dir) = fs::read_dir("/proc/self/task") {
        for entry in dir.flatten() {
            let (Ok(name), Ok(schedstat)) = (
                fs::read_to_string(entry.path().join("comm")),
                fs::read_to_string(entry.path().join("schedstat")),
            ) else {
                continue;
            };
            let Some(ns) = schedstat_ns(&schedstat) else {
                continue;
            };
            let seconds = ns as f64 / 1e9;
            if name.starts_with(IO_THREADS) {
                cpu.io += seconds;
            } else if name.starts_with(GEN_THREADS) {
                cpu.gen += seconds;
            }
        }
    }
    cpu
}

/// The time on CPU (ns) of a `/proc/.../schedstat` line: the first of its three fields.
/// With the kernel's IRQ time accounting off (as on the machine of the results), softirq
/// work done in a thread's context, such as delivering its loopback packets, counts too.
pub fn schedstat_ns(schedstat: &str) -> Option<u64> {
    schedstat.split_whitespace().next()?.parse().ok()
}

pub fn rss_kb() -> u64 {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| status_kb(&s, "VmRSS:"))
        .unwrap_or(0)
}

/// A `Key:   1234 kB` line of `/proc/.../status`.
pub fn status_kb(status: &str, key: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Machine-wide UDP counters (`/proc/net/snmp`) and the kernel's UDP buffer memory
/// (`/proc/net/sockstat`, pages): other programs on the machine add to them too.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UdpCounters {
    pub receive_buffer_errors: u64,
    pub send_buffer_errors: u64,
    pub memory_pages: u64,
}

pub fn udp_counters() -> UdpCounters {
    let mut c = fs::read_to_string("/proc/net/snmp")
        .ok()
        .and_then(|s| snmp_udp(&s))
        .unwrap_or_default();
    c.memory_pages = fs::read_to_string("/proc/net/sockstat")
        .ok()
        .and_then(|s| sockstat_udp_mem(&s))
        .unwrap_or(0);
    c
}

/// RcvbufErrors and SndbufErrors from the two `Udp:` lines of `/proc/net/snmp`
/// (a header line of names, then a line of values).
pub fn snmp_udp(snmp: &str) -> Option<UdpCounters> {
    let mut udp = snmp.lines().filter(|l| l.starts_with("Udp:"));
    let names: Vec<&str> = udp.next()?.split_whitespace().collect();
    let values: Vec<&str> = udp.next()?.split_whitespace().collect();
    let get = |name: &str| -> Option<u64> {
        let i = names.iter().position(|n| *n == name)?;
        values.get(i)?.parse().ok()
    };
    Some(UdpCounters {
        receive_buffer_errors: get("RcvbufErrors")?,
        send_buffer_errors: get("SndbufErrors")?,
        memory_pages: 0,
    })
}

/// `mem` of the `UDP:` line of `/proc/net/sockstat` (pages in socket buffers).
pub fn sockstat_udp_mem(sockstat: &str) -> Option<u64> {
    let line = sockstat.lines().find(|l| l.starts_with("UDP:"))?;
    let fields: Vec<&str> = line.split_whitespace().collect();
    let i = fields.iter().position(|f| *f == "mem")?;
    fields.get(i + 1)?.parse().ok()
}

/// The 1-minute load average (other programs on the shared machine).
pub fn loadavg_1m() -> f64 {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedstat_lines() {
        assert_eq!(schedstat_ns("61717970 17437390 278\n"), Some(61717970));
        assert_eq!(schedstat_ns(""), None);
    }

    #[test]
    fn status_snmp_and_sockstat() {
        let status = "Name:\tmedia-load\nVmHWM:\t  9000 kB\nVmRSS:\t  8192 kB\n";
        assert_eq!(status_kb(status, "VmRSS:"), Some(8192));
        assert_eq!(status_kb(status, "VmSwap:"), None);

        let snmp = "Tcp: RtoAlgorithm RtoMin\nTcp: 1 200\n\
                    Udp: InDatagrams NoPorts InErrors OutDatagrams RcvbufErrors SndbufErrors InCsumErrors IgnoredMulti MemErrors\n\
                    Udp: 100 2 30 400 25 5 0 0 0\n\
                    UdpLite: InDatagrams NoPorts\nUdpLite: 0 0\n";
        assert_eq!(
            snmp_udp(snmp),
            Some(UdpCounters {
                receive_buffer_errors: 25,
                send_buffer_errors: 5,
                memory_pages: 0
            })
        );
        let sockstat = "sockets: used 300\nTCP: inuse 5 orphan 0 tw 0 alloc 9 mem 1\n\
                        UDP: inuse 2400 mem 77\nUDPLITE: inuse 0\n";
        assert_eq!(sockstat_udp_mem(sockstat), Some(77));
    }
}
