//! CPU priorities of a plume process, for the tests of long plugin calls.
//!
//! plume runs a long plugin call at idle priority when it may give the
//! thread its priority back (root, `CAP_SYS_NICE`, or an `RLIMIT_NICE` of
//! 20), and keeps normal priority otherwise. The tests check both: a server
//! started through [`without_priority_rights`] has the right really taken
//! away, not pretended away.

use std::os::unix::process::CommandExt;
use std::process::Command;

use super::Server;

/// The log line of a plume that may not restore a thread's priority.
pub const KEEPS_NORMAL_PRIORITY: &str = "long plugin calls keep normal CPU priority";

/// Whether `server` demotes long calls. A test of demotion fails where the
/// server may not, unless `PLUME_TEST_SKIP_PRIORITY=1` says to skip it (run
/// the suite as root, or give the binary `CAP_SYS_NICE`, to run it).
pub fn demotes_or_skip(server: &Server) -> bool {
    if !server.log().contains(KEEPS_NORMAL_PRIORITY) {
        return true;
    }
    assert!(
        std::env::var("PLUME_TEST_SKIP_PRIORITY").is_ok_and(|v| v == "1"),
        "plume may not restore a thread's priority here (it needs CAP_SYS_NICE or RLIMIT_NICE of 20), so its \
         long-call demotion is untested; set PLUME_TEST_SKIP_PRIORITY=1 to skip this test"
    );
    eprintln!("skipped (PLUME_TEST_SKIP_PRIORITY=1): plume may not restore a thread's priority here");
    false
}

/// Start `command` without the right to raise a thread's priority back:
/// `CAP_SYS_NICE` leaves the capability bounding set (so an exec as root
/// does not grant it either) and `RLIMIT_NICE` is 0.
pub fn without_priority_rights(command: &mut Command) {
    // SAFETY: between fork and exec the closure makes two system calls
    // and allocates nothing.
    unsafe {
        command.pre_exec(|| {
            const CAP_SYS_NICE: libc::c_ulong = 23;
            // Fails without CAP_SETPCAP, where the process has no
            // CAP_SYS_NICE to give up either.
            libc::prctl(libc::PR_CAPBSET_DROP, CAP_SYS_NICE, 0, 0, 0);
            let none = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            if libc::setrlimit(libc::RLIMIT_NICE, &none) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Whether process `pid` holds `CAP_SYS_NICE` (bit 23 of `CapEff` in
/// `/proc/PID/status`).
pub fn has_cap_sys_nice(pid: u32) -> bool {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("the process's status");
    let effective = status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .expect("a CapEff line");
    effective & (1 << 23) != 0
}

/// The threads of process `pid` scheduled under `SCHED_IDLE` (policy 5,
/// the 41st field of `/proc/PID/task/TID/stat`).
pub fn idle_threads(pid: u32) -> usize {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("stat")).ok())
        .filter(|stat| {
            // Fields after the command name, which is in parentheses, start at field 3.
            let rest = &stat[stat.rfind(')').map_or(0, |at| at + 1)..];
            rest.split_whitespace().nth(41 - 3) == Some("5")
        })
        .count()
}
