//! The cluster benchmark's Redis: a real `redis-server` process on a free
//! loopback port, in a directory of its own, that saves nothing to disk
//! (`--save '' --appendonly no`), started and stopped by the run; and one
//! plain connection that reads its statistics (`INFO`).
//!
//! The statistics connection speaks RESP itself rather than through a
//! client library, so that it knows the exact bytes of every `INFO` it
//! sends and receives: Redis counts them in its own traffic, and the cost
//! of a broadcast is measured net of them.

use std::collections::BTreeMap;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

/// How long Redis may take to answer its first PING.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// How long Redis gets to exit after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// How long one statistics round trip may take.
const REPLY_TIMEOUT: Duration = Duration::from_secs(5);

/// Free ports tried before giving up: a port found free may be taken by
/// someone else before Redis binds it.
const PORT_ATTEMPTS: usize = 3;

/// A `redis-server` process, stopped (and its directory removed) when
/// dropped.
pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    dir: PathBuf,
}

impl RedisServer {
    /// Starts `binary` on a free loopback port and waits until it answers.
    pub fn start(binary: &Path) -> anyhow::Result<RedisServer> {
        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            match RedisServer::start_once(binary) {
                Ok(server) => return Ok(server),
                Err(error) => last_error = Some(error),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("redis-server did not start")))
    }

    fn start_once(binary: &Path) -> anyhow::Result<RedisServer> {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let dir = std::env::temp_dir().join(format!(
            "plume-load-redis-{}-{port}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create Redis's directory {}", dir.display()))?;
        let child = Command::new(binary)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&dir)
            .arg("--logfile")
            .arg(dir.join("redis.log"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|error| match error.kind() {
                io::ErrorKind::NotFound => anyhow::anyhow!(
                    "{} is not installed: the cluster benchmark starts its own Redis (Debian: apt-get install redis-server), or give its path with --redis-server",
                    binary.display()
                ),
                _ => anyhow::anyhow!("cannot start {}: {error}", binary.display()),
            })?;
        let mut server = RedisServer {
            child: Some(child),
            port,
            dir,
        };
        let started = Instant::now();
        while started.elapsed() < START_TIMEOUT {
            if server.answers() {
                return Ok(server);
            }
            if let Some(child) = server.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                anyhow::bail!(
                    "redis-server exited ({status}) before it answered on port {port}; its log:\n{}",
                    server.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        anyhow::bail!(
            "redis-server did not answer on port {port} within {START_TIMEOUT:?}; its log:\n{}",
            server.log_tail()
        )
    }

    /// Whether it answers a PING with PONG.
    fn answers(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut stream) = std::net::TcpStream::connect(self.addr()) else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
        let mut pong = [0u8; 7];
        stream.write_all(b"*1\r\n$4\r\nPING\r\n").is_ok()
            && stream.read_exact(&mut pong).is_ok()
            && &pong == b"+PONG\r\n"
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The URL plume is given (`PLUME_REDIS_URL`).
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// Stops it: SIGTERM, then SIGKILL if it has not exited in time.
    pub fn stop(mut self) -> anyhow::Result<()> {
        self.terminate()
    }

    fn terminate(&mut self) -> anyhow::Result<()> {
        if let Some(mut child) = self.child.take() {
            if child.try_wait()?.is_none() {
                let pid = libc::pid_t::try_from(child.id()).context("a process id out of range")?;
                // SAFETY: kill has no memory preconditions; the pid is our own child's.
                unsafe { libc::kill(pid, libc::SIGTERM) };
                let deadline = Instant::now() + STOP_TIMEOUT;
                while child.try_wait()?.is_none() {
                    if Instant::now() >= deadline {
                        child.kill()?;
                        child.wait()?;
                        break;
                    }
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
            let _ = std::fs::remove_dir_all(&self.dir);
        }
        Ok(())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.terminate();
    }
}

/// One command's statistics so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CommandStat {
    pub calls: u64,
    /// Time Redis spent running it, in microseconds: Redis does nothing
    /// else meanwhile.
    pub usec: u64,
}

/// What `INFO stats commandstats cpu` said, and what asking cost.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Info {
    /// Each command's statistics, by name (`cmdstat_<name>:calls=N,usec=M`),
    /// the commands scripts ran included (a script's own time includes
    /// theirs).
    pub commands: BTreeMap<String, CommandStat>,
    pub net_input_bytes: u64,
    pub net_output_bytes: u64,
    /// User and system CPU time Redis has used, in seconds.
    pub cpu_s: f64,
    /// The bytes of the `INFO` request, and of its reply: Redis counts them
    /// in its traffic as any other.
    pub request_bytes: u64,
    pub reply_bytes: u64,
}

/// Reads Redis's `INFO` text.
pub fn parse_info(text: &str) -> Info {
    let mut info = Info::default();
    for line in text.lines() {
        let Some((key, value)) = line.trim_end().split_once(':') else {
            continue;
        };
        if let Some(command) = key.strip_prefix("cmdstat_") {
            let field = |name: &str| -> u64 {
                value
                    .split(',')
                    .find_map(|field| field.strip_prefix(name)?.strip_prefix('='))
                    .and_then(|number| number.parse().ok())
                    .unwrap_or(0)
            };
            let stat = CommandStat {
                calls: field("calls"),
                usec: field("usec"),
            };
            info.commands.insert(command.to_owned(), stat);
            continue;
        }
        match key {
            "total_net_input_bytes" => info.net_input_bytes = value.parse().unwrap_or(0),
            "total_net_output_bytes" => info.net_output_bytes = value.parse().unwrap_or(0),
            "used_cpu_sys" | "used_cpu_user" => info.cpu_s += value.parse().unwrap_or(0.0),
            _ => {}
        }
    }
    info
}

/// A connection that reads Redis's statistics.
pub struct StatsConnection {
    stream: BufReader<TcpStream>,
}

/// The request, in RESP: the sections the cost of a broadcast is read from.
const INFO_REQUEST: &[u8] =
    b"*4\r\n$4\r\nINFO\r\n$5\r\nstats\r\n$12\r\ncommandstats\r\n$3\r\ncpu\r\n";

impl StatsConnection {
    pub async fn connect(addr: SocketAddr) -> anyhow::Result<StatsConnection> {
        let stream = tokio::time::timeout(REPLY_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| anyhow::anyhow!("connecting to Redis at {addr} timed out"))?
            .with_context(|| format!("cannot connect to Redis at {addr}"))?;
        Ok(StatsConnection {
            stream: BufReader::new(stream),
        })
    }

    /// `INFO stats commandstats cpu`.
    pub async fn info(&mut self) -> anyhow::Result<Info> {
        let exchange = async {
            self.stream.get_mut().write_all(INFO_REQUEST).await?;
            let mut header = String::new();
            self.stream.read_line(&mut header).await?;
            let length: usize = header
                .strip_prefix('$')
                .and_then(|length| length.trim_end().parse().ok())
                .ok_or_else(|| {
                    io::Error::other(format!("Redis answered INFO with {:?}", header.trim_end()))
                })?;
            let mut body = vec![0u8; length + 2];
            self.stream.read_exact(&mut body).await?;
            body.truncate(length);
            io::Result::Ok((header.len() + length + 2, body))
        };
        let (reply_bytes, body) = tokio::time::timeout(REPLY_TIMEOUT, exchange)
            .await
            .map_err(|_| anyhow::anyhow!("Redis did not answer INFO within {REPLY_TIMEOUT:?}"))?
            .context("reading Redis's statistics")?;
        let mut info = parse_info(&String::from_utf8_lossy(&body));
        info.request_bytes = INFO_REQUEST.len() as u64;
        info.reply_bytes = reply_bytes as u64;
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_gives_calls_traffic_and_cpu() {
        let text = "# Stats\r\ntotal_connections_received:5\r\ntotal_commands_processed:1234\r\n\
                    total_net_input_bytes:98765\r\ntotal_net_output_bytes:43210\r\n\r\n\
                    # Commandstats\r\n\
                    cmdstat_publish:calls=1000,usec=2000,usec_per_call=2.00,rejected_calls=0,failed_calls=0\r\n\
                    cmdstat_info:calls=3,usec=90,usec_per_call=30.00,rejected_calls=0,failed_calls=0\r\n\r\n\
                    # CPU\r\nused_cpu_sys:1.250000\r\nused_cpu_user:0.750000\r\nused_cpu_sys_children:9.0\r\n";
        let info = parse_info(text);
        assert_eq!(
            info.commands.get("publish"),
            Some(&CommandStat {
                calls: 1000,
                usec: 2000
            })
        );
        assert_eq!(info.commands.get("info").map(|stat| stat.calls), Some(3));
        assert_eq!(info.commands.len(), 2);
        assert_eq!(info.net_input_bytes, 98_765);
        assert_eq!(info.net_output_bytes, 43_210);
        assert!((info.cpu_s - 2.0).abs() < 1e-9, "{info:?}");
    }
}
