//! A throwaway Redis Cluster for tests: three masters started with `redis-server
//! --cluster-enabled yes` on free ports and joined by `redis-cli --cluster create`, so keys and
//! sharded channels really spread over three shards.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{service_url, unique_name};

/// A 3-master Redis Cluster; its servers are killed and its folder removed on drop.
#[derive(Debug)]
pub struct RedisCluster {
    servers: Vec<Child>,
    /// Each master's port.
    pub ports: Vec<u16>,
    dir: PathBuf,
}

/// A free port whose cluster bus port (port + 10000) is free too.
fn free_cluster_port() -> u16 {
    loop {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        let port = l.local_addr().expect("its address").port();
        if port <= 55_000 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            return port;
        }
    }
}

/// Runs `redis-cli -p port args...` and returns its standard output.
pub fn cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli on PATH");
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// The ids of the clients in a `CLIENT LIST` reply whose `field` value satisfies `keep`.
pub fn client_ids_where(
    client_list: &str,
    field: &str,
    keep: impl Fn(&str) -> bool,
) -> Vec<String> {
    client_list
        .lines()
        .filter_map(|line| {
            let value = |name: &str| {
                line.split(' ')
                    .find_map(|f| f.strip_prefix(name)?.strip_prefix('='))
            };
            let (id, v) = (value("id")?, value(field)?);
            keep(v).then(|| id.to_string())
        })
        .collect()
}

impl RedisCluster {
    /// Starts three masters and joins them into one cluster. `None` (the test skips) when
    /// Redis tests are not enabled (`REDIS_URL` unset, see [`service_url`]); panics if the
    /// cluster cannot start.
    pub fn start() -> Option<RedisCluster> {
        service_url("REDIS_URL")?;
        let dir = std::env::temp_dir().join(unique_name("rollcall-redis-cluster"));
        let mut c = RedisCluster {
            servers: Vec::new(),
            ports: Vec::new(),
            dir,
        };
        for _ in 0..3 {
            let port = free_cluster_port();
            let d = c.dir.join(port.to_string());
            std::fs::create_dir_all(&d).expect("a temporary folder");
            let child = Command::new("redis-server")
                .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
                .args([
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    "nodes.conf",
                ])
                .args(["--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(&d)
                .stdout(Stdio::null())
                .spawn()
                .expect("redis-server on PATH");
            c.servers.push(child);
            c.ports.push(port);
        }
        for &port in &c.ports {
            let deadline = Instant::now() + Duration::from_secs(10);
            while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "redis-server {port} did not start"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let nodes: Vec<String> = c.ports.iter().map(|p| format!("127.0.0.1:{p}")).collect();
        let out = Command::new("redis-cli")
            .arg("--cluster")
            .arg("create")
            .args(&nodes)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli on PATH");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && text.contains("All 16384 slots covered"),
            "cluster create failed: {text}"
        );
        let deadline = Instant::now() + Duration::from_secs(20);
        while !c
            .ports
            .iter()
            .all(|&p| cli(p, &["CLUSTER", "INFO"]).contains("cluster_state:ok"))
        {
            assert!(Instant::now() < deadline, "the cluster never became ok");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(c)
    }

    /// Seed URLs for `--redis-url`: two of the three masters (the client finds the third).
    pub fn seeds(&self) -> String {
        format!(
            "redis://127.0.0.1:{},redis://127.0.0.1:{}",
            self.ports[0], self.ports[1]
        )
    }

    /// Every master's URL, comma-separated.
    pub fn urls(&self) -> String {
        let urls: Vec<String> = self
            .ports
            .iter()
            .map(|p| format!("redis://127.0.0.1:{p}"))
            .collect();
        urls.join(",")
    }

    /// Keys held by each master.
    pub fn key_counts(&self) -> Vec<u64> {
        self.ports
            .iter()
            .map(|&p| cli(p, &["DBSIZE"]).trim().parse().unwrap_or(0))
            .collect()
    }

    /// Drops every client connection on every master, data and sharded pub/sub alike (a
    /// RESP3 subscriber is a `normal` client to Redis); returns how many.
    pub fn kill_connections(&self) -> usize {
        self.ports
            .iter()
            .map(|&p| {
                cli(p, &["CLIENT", "KILL", "TYPE", "normal"])
                    .trim()
                    .parse::<usize>()
                    .unwrap_or(0)
            })
            .sum()
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        for s in &mut self.servers {
            let _ = s.kill();
            let _ = s.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
