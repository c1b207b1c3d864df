//! The processes being measured: the tool's own CPU time, and the server's
//! CPU time and memory read from /proc.
//!
//! The tool and the server share the machine's cores, so a figure without
//! both CPU times beside it cannot say whether the server or the load
//! generator was the limit.

use std::io;
use std::time::{Duration, Instant};

use serde::Serialize;

/// Raises the soft limit on open files to the hard limit, since every
/// socket is a file; returns the limit now in force.
pub fn raise_open_files_limit() -> io::Result<u64> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if limit.rlim_cur < limit.rlim_max {
        limit.rlim_cur = limit.rlim_max;
        // SAFETY: setrlimit only reads the struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(limit.rlim_cur)
}

/// User and system CPU time a process has used.
#[derive(Debug, Clone, Copy, Default)]
pub struct CpuTime {
    pub user: Duration,
    pub system: Duration,
}

impl CpuTime {
    fn since(self, earlier: CpuTime) -> CpuTime {
        CpuTime {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }
}

/// This process's CPU time so far.
pub fn own_cpu() -> io::Result<CpuTime> {
    // SAFETY: an all-zero rusage is valid, and getrusage only writes it.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1_000);
    Ok(CpuTime {
        user: time(usage.ru_utime),
        system: time(usage.ru_stime),
    })
}

/// Another process's CPU time so far, from `/proc/PID/stat`.
pub fn process_cpu(pid: u32) -> io::Result<CpuTime> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat(&stat, clock_ticks())
        .ok_or_else(|| io::Error::other(format!("/proc/{pid}/stat has no CPU times")))
}

/// utime and stime are fields 14 and 15; the command name (field 2) may
/// hold spaces and parentheses, so fields are counted after its last `)`.
fn parse_stat(stat: &str, ticks_per_second: u64) -> Option<CpuTime> {
    let after_name = &stat[stat.rfind(')')? + 1..];
    let mut fields = after_name.split_whitespace().skip(11);
    let ticks = |field: Option<&str>| -> Option<Duration> {
        let ticks: u64 = field?.parse().ok()?;
        Some(Duration::from_secs_f64(
            ticks as f64 / ticks_per_second as f64,
        ))
    };
    Some(CpuTime {
        user: ticks(fields.next())?,
        system: ticks(fields.next())?,
    })
}

fn clock_ticks() -> u64 {
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 { ticks as u64 } else { 100 }
}

/// A process's resident memory, `VmRSS` in `/proc/PID/status`, in bytes.
pub fn rss_bytes(pid: u32) -> io::Result<u64> {
    status_bytes(pid, "VmRSS:")
}

/// The most resident memory process `pid` has had since it started
/// (`VmHWM`, its high-water mark), in bytes.
pub fn peak_rss_bytes(pid: u32) -> io::Result<u64> {
    status_bytes(pid, "VmHWM:")
}

fn status_bytes(pid: u32, field: &str) -> io::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    parse_status_kib(&status, field)
        .ok_or_else(|| io::Error::other(format!("/proc/{pid}/status has no {field} line")))
}

fn parse_status_kib(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|line| line.starts_with(field))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// CPU time the whole machine has spent busy (not idle, not waiting on
/// I/O), summed over its cores, from the first line of `/proc/stat`.
pub fn machine_busy() -> io::Result<Duration> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    parse_machine_busy(&stat, clock_ticks())
        .ok_or_else(|| io::Error::other("/proc/stat has no cpu line"))
}

/// `cpu  user nice system idle iowait irq softirq steal ...`, in ticks.
fn parse_machine_busy(stat: &str, ticks_per_second: u64) -> Option<Duration> {
    let line = stat.lines().find(|line| line.starts_with("cpu "))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    let &[user, nice, system, _idle, _iowait, irq, softirq, steal] = ticks.as_slice() else {
        return None;
    };
    let busy = user + nice + system + irq + softirq + steal;
    Some(Duration::from_secs_f64(
        busy as f64 / ticks_per_second as f64,
    ))
}

/// Measures the CPU both processes use over one window of wall time, and
/// what the rest of the machine used meanwhile: a run beside someone
/// else's compile is not a measurement, and `others_cores` says so.
///
/// The server may be several processes (the nodes of a cluster and its
/// Redis): their CPU times are summed, as the cost of serving the run.
pub struct CpuMeter {
    started: Instant,
    tool: CpuTime,
    servers: Vec<(u32, CpuTime)>,
    machine: Duration,
}

impl CpuMeter {
    /// Starts measuring this process and `servers` (none: the tool only).
    pub fn start(servers: &[u32]) -> io::Result<CpuMeter> {
        let servers = servers
            .iter()
            .map(|&pid| Ok((pid, process_cpu(pid).map_err(|e| server_gone(pid, e))?)))
            .collect::<io::Result<Vec<_>>>()?;
        Ok(CpuMeter {
            started: Instant::now(),
            tool: own_cpu()?,
            servers,
            machine: machine_busy()?,
        })
    }

    pub fn stop(&self) -> io::Result<CpuReport> {
        let window = self.started.elapsed();
        let tool = own_cpu()?.since(self.tool);
        let mut server: Option<CpuTime> = None;
        for &(pid, before) in &self.servers {
            let used = process_cpu(pid)
                .map_err(|e| server_gone(pid, e))?
                .since(before);
            let sum = server.get_or_insert_default();
            sum.user += used.user;
            sum.system += used.system;
        }
        let machine = machine_busy()?.saturating_sub(self.machine);
        let per_second = |busy: Duration| busy.as_secs_f64() / window.as_secs_f64().max(1e-9);
        let usage = |cpu: CpuTime| CpuUse {
            user_s: cpu.user.as_secs_f64(),
            system_s: cpu.system.as_secs_f64(),
            cores: per_second(cpu.user + cpu.system),
        };
        let measured =
            tool.user + tool.system + server.map_or(Duration::ZERO, |cpu| cpu.user + cpu.system);
        Ok(CpuReport {
            window_s: window.as_secs_f64(),
            tool: usage(tool),
            server: server.map(usage),
            machine_cores: per_second(machine),
            others_cores: per_second(machine.saturating_sub(measured)),
        })
    }
}

fn server_gone(pid: u32, error: io::Error) -> io::Error {
    io::Error::new(
        error.kind(),
        format!(
            "cannot read the server's CPU time from /proc/{pid}/stat ({error}); is the server still running?"
        ),
    )
}

/// CPU used over a window, by the tool and (when known) the server, summed
/// over its processes.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CpuReport {
    pub window_s: f64,
    pub tool: CpuUse,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub server: Option<CpuUse>,
    /// The whole machine's busy cores over the window.
    pub machine_cores: f64,
    /// Busy cores not accounted for by the tool or the server: other load.
    pub others_cores: f64,
}

/// CPU time over a window; `cores` is CPU seconds per wall second.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CpuUse {
    pub user_s: f64,
    pub system_s: f64,
    pub cores: f64,
}

impl std::fmt::Display for CpuReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CPU over {:.1} s: tool {:.2} cores",
            self.window_s, self.tool.cores
        )?;
        if let Some(server) = self.server {
            write!(f, ", server {:.2} cores", server.cores)?;
        }
        write!(f, ", other processes {:.2} cores", self.others_cores)?;
        if self.others_cores > 0.2 {
            f.write_str(" (the machine was not quiet: figures are unreliable)")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let stat = "4242 (we(i)rd name) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0";
        let cpu = parse_stat(stat, 100).expect("parses");
        assert_eq!(cpu.user, Duration::from_millis(2500));
        assert_eq!(cpu.system, Duration::from_millis(500));
    }

    #[test]
    fn machine_busy_time_leaves_out_idle_and_iowait() {
        let stat = "cpu  100 10 50 1000 40 5 5 0 0 0\ncpu0 50 5 25 500 20 2 3 0 0 0\n";
        assert_eq!(
            parse_machine_busy(stat, 100),
            Some(Duration::from_millis(1700))
        );
        assert_eq!(parse_machine_busy("intr 1 2\n", 100), None);
    }

    #[test]
    fn rss_is_read_in_bytes() {
        let status = "Name:\tplume\nVmHWM:\t   23456 kB\nVmRSS:\t   12345 kB\nThreads: 3\n";
        assert_eq!(parse_status_kib(status, "VmRSS:"), Some(12345 * 1024));
        assert_eq!(parse_status_kib(status, "VmHWM:"), Some(23456 * 1024));
        assert_eq!(parse_status_kib("Name:\tplume\n", "VmRSS:"), None);
    }

    #[test]
    fn this_process_is_measurable() {
        let pid = std::process::id();
        assert!(rss_bytes(pid).expect("rss") > 0);
        assert!(peak_rss_bytes(pid).expect("peak") > 0);
        // Compared within one reading: other tests' threads allocate
        // between two reads, so a later VmRSS may pass an earlier VmHWM.
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
        let rss = parse_status_kib(&status, "VmRSS:").expect("VmRSS");
        let peak = parse_status_kib(&status, "VmHWM:").expect("VmHWM");
        assert!(peak >= rss, "VmHWM {peak} < VmRSS {rss}");
        assert!(process_cpu(pid).is_ok());
        assert!(own_cpu().is_ok());
    }
}
