//! A server the comparison starts itself: its process, the address it
//! printed once ready, and a clean stop.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;

/// How long a server may take to print its address (plume compiles its
/// plugins' WebAssembly at start-up, or loads them from its cache).
const START_TIMEOUT: Duration = Duration::from_secs(90);

/// How long a server gets to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Lines of a server's stderr kept for error messages.
const TAIL: usize = 40;

/// A running server process, stopped when dropped.
pub struct Server {
    name: String,
    child: Option<Child>,
    pub addr: SocketAddr,
    /// plume's admin listener (`/metrics`), once it printed its line.
    admin: Arc<Mutex<Option<SocketAddr>>>,
    stderr: Arc<Mutex<VecDeque<String>>>,
}

impl Server {
    /// Starts `command` and waits until it prints `listening on ADDR` (with
    /// or without `http://`) on stdout. Its output is drained from then on,
    /// so it never blocks on a full pipe.
    pub fn start(name: &str, mut command: Command) -> anyhow::Result<Server> {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {name} ({command:?})"))?;
        let stderr = Arc::new(Mutex::new(VecDeque::with_capacity(TAIL)));
        if let Some(pipe) = child.stderr.take() {
            let tail = stderr.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let mut tail = tail.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
                    if tail.len() == TAIL {
                        tail.pop_front();
                    }
                    tail.push_back(line);
                }
            });
        }
        let (found, address) = mpsc::channel();
        let admin = Arc::new(Mutex::new(None));
        if let Some(pipe) = child.stdout.take() {
            let admin = admin.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    if line.contains("admin listening on ") {
                        *admin.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) = listening_address(&line);
                    } else if let Some(addr) = listening_address(&line) {
                        let _ = found.send(addr);
                    }
                }
            });
        }
        let mut server = Server {
            name: name.to_owned(),
            child: Some(child),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin,
            stderr,
        };
        match address.recv_timeout(START_TIMEOUT) {
            Ok(addr) => {
                server.addr = addr;
                Ok(server)
            }
            Err(mpsc::RecvTimeoutError::Timeout) => Err(anyhow::anyhow!(
                "{name} printed no `listening on ADDR` line within {START_TIMEOUT:?}; its last output:\n{}",
                server.stop_and_tail()
            )),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(anyhow::anyhow!(
                "{name} exited before it was listening; its last output:\n{}",
                server.stop_and_tail()
            )),
        }
    }

    /// plume's admin listener (where `/metrics` is): printed right after
    /// its client address, so waited for a moment.
    pub fn admin_addr(&self) -> anyhow::Result<SocketAddr> {
        let until = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(addr) = *self.admin.lock().unwrap_or_else(|poisoned| poisoned.into_inner()) {
                return Ok(addr);
            }
            if std::time::Instant::now() >= until {
                anyhow::bail!("{} printed no `admin listening on ADDR` line", self.name);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// Stops the server: SIGTERM, then SIGKILL if it has not exited in time.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.terminate()
    }

    fn stop_and_tail(&mut self) -> String {
        let _ = self.terminate();
        // The stderr thread may still be reading the last lines.
        std::thread::sleep(Duration::from_millis(100));
        let tail = self
            .stderr
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        tail.iter().cloned().collect::<Vec<_>>().join("\n")
    }

    fn terminate(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if child.try_wait()?.is_none() {
            let pid = libc::pid_t::try_from(child.id()).context("a process id out of range")?;
            // SAFETY: kill has no memory preconditions; the pid is our own child's.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let deadline = Instant::now() + STOP_TIMEOUT;
            while child.try_wait()?.is_none() {
                if Instant::now() >= deadline {
                    eprintln!(
                        "plume-load: {} did not exit {STOP_TIMEOUT:?} after SIGTERM; killing it",
                        self.name
                    );
                    child.kill()?;
                    child.wait()?;
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.terminate();
    }
}

/// The address in a `... listening on [http://]ADDR ...` line.
fn listening_address(line: &str) -> Option<SocketAddr> {
    let rest = line.split("listening on ").nth(1)?;
    let rest = rest.strip_prefix("http://").unwrap_or(rest);
    rest.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_servers_ready_lines_give_the_address() {
        let plume =
            listening_address("plume: listening on http://127.0.0.1:4312 (demo app, 9 plugins)");
        assert_eq!(plume, Some(SocketAddr::from(([127, 0, 0, 1], 4312))));
        let echo = listening_address("echo: listening on 127.0.0.1:39001");
        assert_eq!(echo, Some(SocketAddr::from(([127, 0, 0, 1], 39001))));
        assert_eq!(listening_address("plume: compiling plugins"), None);
    }
}
