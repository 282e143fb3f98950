//! The server side of `million`: Rollcall node processes on one Redis, and the plain HTTP/1.1
//! and Redis reads the coordinator makes of them.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::MillionArgs;

/// Node processes, killed (SIGKILL) and reaped when dropped so a failed run leaves none behind.
pub struct Nodes {
    /// Each node's address.
    pub addrs: Vec<SocketAddr>,
    children: Vec<Option<Child>>,
}

impl Nodes {
    /// Starts `count` nodes on consecutive ports from `--base-port`, all on `--redis-url` under
    /// `prefix`, and waits until each accepts connections.
    ///
    /// # Errors
    /// A node that exits or does not listen within 30 s (its log is in `--work-dir`).
    pub fn start(args: &MillionArgs, count: usize, prefix: &str) -> anyhow::Result<Nodes> {
        let (bin, base_port, redis_url) = (&args.rollcall, args.base_port, &args.redis_url);
        let cluster: &[&str] = if args.redis_cluster {
            &["--redis-cluster"]
        } else {
            &[]
        };
        let (node_timeout, extra, work_dir) = (
            args.node_timeout,
            &args.rollcall_args,
            args.work_dir.as_path(),
        );
        std::fs::create_dir_all(work_dir)?;
        let mut nodes = Nodes {
            addrs: Vec::new(),
            children: Vec::new(),
        };
        for k in 0..count {
            let port = u16::try_from(usize::from(base_port) + k)
                .map_err(|_| anyhow::anyhow!("--base-port {base_port} + {count} nodes > 65535"))?;
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let log = std::fs::File::create(work_dir.join(format!("node-{k}.log")))?;
            let child = Command::new(bin)
                .arg("--bind")
                .arg(addr.to_string())
                .args(["--database-url", "none", "--redis-url", redis_url])
                .args(cluster)
                // The sample reads 1,000 rooms per round from one address (127.0.0.1): over the
                // default 100 REST requests/s per address on a node when nodes are few.
                .args(["--http-requests-per-second", "1000000"])
                .args([
                    "--redis-prefix",
                    prefix,
                    "--node-id",
                    &format!("{prefix}-{k}"),
                ])
                .arg("--node-timeout")
                .arg(format!("{}ms", node_timeout.as_millis()))
                .args(extra.split_whitespace())
                .current_dir(work_dir)
                .env("RUST_LOG", "warn")
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .map_err(|e| anyhow::anyhow!("cannot start {}: {e}", bin.display()))?;
            nodes.addrs.push(addr);
            nodes.children.push(Some(child));
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        for (k, addr) in nodes.addrs.clone().into_iter().enumerate() {
            loop {
                if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                    break;
                }
                if let Some(Some(c)) = nodes.children.get_mut(k)
                    && let Some(status) = c.try_wait()?
                {
                    anyhow::bail!(
                        "node {k} exited before listening ({status}); see {}",
                        work_dir.join(format!("node-{k}.log")).display()
                    );
                }
                anyhow::ensure!(
                    Instant::now() < deadline,
                    "node {k} not listening on {addr}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        Ok(nodes)
    }

    /// Pids of the nodes still running.
    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().flatten().map(Child::id).collect()
    }

    /// Indices of the nodes still running.
    pub fn alive(&self) -> Vec<usize> {
        (0..self.children.len())
            .filter(|&k| self.children[k].is_some())
            .collect()
    }

    /// `kill -9` of node `k`, reaped at once.
    pub fn kill(&mut self, k: usize) -> anyhow::Result<()> {
        let mut c = self.children[k]
            .take()
            .ok_or_else(|| anyhow::anyhow!("node {k} is not running"))?;
        c.kill()?;
        c.wait()?;
        Ok(())
    }
}

impl Drop for Nodes {
    fn drop(&mut self) {
        for c in self.children.iter_mut().filter_map(Option::take) {
            let mut c = c;
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// `GET path` over HTTP/1.1 with `Connection: close`: the status and the body.
///
/// # Errors
/// No connection, a timeout, or a response that is not HTTP/1.1 with a `Content-Length` body.
pub fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf)?;
    let text = String::from_utf8(buf)?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow::anyhow!("GET {path} on {addr}: no header end"))?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("GET {path} on {addr}: bad status line"))?;
    anyhow::ensure!(
        !head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "GET {path} on {addr}: chunked body not supported"
    );
    Ok((status, body.to_string()))
}

/// The Redis servers of a run: one server, or every master of a Redis Cluster (`--redis-url`
/// lists them, comma-separated, with `--redis-cluster`). Memory, CPU and commands are sums.
#[derive(Debug, Clone, Default)]
pub struct Shards {
    /// Each server's URL.
    pub urls: Vec<String>,
    /// Each server's pid (from `INFO`, so the servers must run on this machine).
    pub pids: Vec<u32>,
    /// A Redis Cluster.
    pub cluster: bool,
}

impl Shards {
    /// Finds each server's pid.
    ///
    /// # Errors
    /// A server that does not answer `INFO`.
    pub fn find(list: &str, cluster: bool) -> anyhow::Result<Shards> {
        let urls: Vec<String> = list
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .map(str::to_string)
            .collect();
        anyhow::ensure!(!urls.is_empty(), "--redis-url names no server");
        anyhow::ensure!(
            cluster || urls.len() == 1,
            "--redis-url lists {} servers: add --redis-cluster, or name one",
            urls.len()
        );
        let mut pids = Vec::new();
        for u in &urls {
            let pid = redis_info(u)
                .and_then(|i| info_field(&i, "process_id"))
                .ok_or_else(|| anyhow::anyhow!("no Redis answers at {u}"))?;
            pids.push(pid as u32);
        }
        Ok(Shards {
            urls,
            pids,
            cluster,
        })
    }

    /// Summed RSS (KiB) and CPU seconds of the servers.
    pub fn usage(&self) -> (u64, f64) {
        crate::probe::usage_of(&self.pids)
    }

    /// Commands processed by each server so far.
    pub fn commands_by_server(&self) -> Vec<u64> {
        self.urls
            .iter()
            .map(|u| crate::probe::redis_commands(u).unwrap_or(0))
            .collect()
    }

    /// Commands processed by all servers so far.
    pub fn commands(&self) -> f64 {
        self.commands_by_server().iter().sum::<u64>() as f64
    }

    /// Deletes every key of `prefix` on every server (SCAN + UNLINK in a server-side script;
    /// on a cluster node the script is allowed keys of several of its own slots).
    pub fn cleanup(&self, prefix: &str) {
        let body = "local c='0' repeat local r=redis.call('SCAN',c,'MATCH',ARGV[1],'COUNT',10000) \
                    c=r[1] for _,k in ipairs(r[2]) do redis.call('UNLINK',k) end until c=='0' \
                    return 1";
        let script = if self.cluster {
            format!("#!lua flags=allow-cross-slot-keys\n{body}")
        } else {
            body.to_string()
        };
        let pattern = format!("{prefix}:*");
        for u in &self.urls {
            let _ = redis_call(u, &["EVAL", &script, "0", &pattern]);
        }
    }
}

/// The value of an unlabelled Prometheus gauge or counter in `/metrics` text.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        let (n, v) = l.split_once(' ')?;
        (n == name).then(|| v.trim().parse().ok())?
    })
}

/// The `INFO` reply of the Redis at `url` (`redis://host:port`), by an inline command.
pub fn redis_info(url: &str) -> Option<String> {
    redis_inline(url, "INFO")
}

/// A field of an `INFO` reply.
pub fn info_field(info: &str, name: &str) -> Option<f64> {
    info.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        (k == name).then(|| v.trim().parse().ok())?
    })
}

/// Runs one inline Redis command and returns the raw reply (bulk string body or status).
pub fn redis_inline(url: &str, cmd: &str) -> Option<String> {
    redis_send(url, format!("{cmd}\r\n").as_bytes())
}

/// Runs one Redis command given as arguments (any bytes, newlines included) and returns the
/// raw reply (bulk string body or status).
pub fn redis_call(url: &str, args: &[&str]) -> Option<String> {
    let mut req = format!("*{}\r\n", args.len());
    for a in args {
        req.push_str(&format!("${}\r\n{a}\r\n", a.len()));
    }
    redis_send(url, req.as_bytes())
}

fn redis_send(url: &str, request: &[u8]) -> Option<String> {
    let hostport = url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap_or("127.0.0.1:6379");
    let mut s = TcpStream::connect(hostport).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(request).ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = std::str::from_utf8(&buf).ok()?;
        if let Some(rest) = text.strip_prefix('$') {
            let (len, body) = rest.split_once("\r\n")?;
            let len: usize = len.parse().ok()?;
            if body.len() >= len {
                return Some(body[..len].to_string());
            }
        } else if text.ends_with("\r\n") {
            return Some(text.trim_end().to_string());
        }
        if buf.len() > 16 << 20 {
            return None;
        }
    }
}

/// `Slab:` of /proc/meminfo in KiB (the kernel's socket, inode and epoll objects live there).
pub fn slab_kib() -> u64 {
    std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("Slab:"))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_and_info_fields_parse() {
        let m = "# HELP rollcall_connections x\n# TYPE rollcall_connections gauge\nrollcall_connections 42\nrollcall_connections_total 7\n";
        assert_eq!(metric(m, "rollcall_connections"), Some(42.0));
        assert_eq!(metric(m, "rollcall_missing"), None);
        let info = "# Memory\r\nused_memory:100\r\nused_memory_rss:2048\r\n";
        assert_eq!(info_field(info, "used_memory_rss"), Some(2048.0));
        assert!(slab_kib() > 0);
    }
}
