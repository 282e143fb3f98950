//! Reading the servers from outside: RSS and CPU from /proc, Redis' command counter, the date.

use std::io::{Read, Write};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// RSS (KiB) and CPU seconds (user + system) of a process, from /proc; zeros if unreadable.
pub fn proc_usage(pid: u32) -> (u64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let rss = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat (utime, stime) are 11 and 12 after the command name.
    let ticks: u64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    (rss, ticks as f64 / 100.0)
}

/// Summed RSS (KiB) and CPU seconds of several processes.
pub fn usage_of(pids: &[u32]) -> (u64, f64) {
    pids.iter()
        .map(|p| proc_usage(*p))
        .fold((0, 0.0), |a, b| (a.0 + b.0, a.1 + b.1))
}

/// Redis' `total_commands_processed` (`INFO stats`), by a plain inline command.
pub fn redis_commands(url: &str) -> Option<u64> {
    let hostport = url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap_or("127.0.0.1:6379");
    let mut s = std::net::TcpStream::connect(hostport).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(b"INFO stats\r\n").ok()?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf);
        if let Some(v) = text
            .lines()
            .find_map(|l| l.strip_prefix("total_commands_processed:"))
            && text.contains("\r\n\r\n")
        {
            return v.trim().parse().ok();
        }
        if buf.len() > 1 << 20 {
            return None;
        }
    }
    None
}

/// Microseconds since the Unix epoch: the same clock in every process of this machine, so a
/// track stamped in one worker can be timed where another worker receives its diff.
pub fn wall_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as u64)
        .unwrap_or(0)
}

/// Today's date (UTC) as `YYYY-MM-DD`.
pub fn today() -> String {
    let days = (wall_micros() / 86_400_000_000) as i64;
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_is_readable() {
        let (rss, _cpu) = proc_usage(std::process::id());
        assert!(rss > 0);
        assert_eq!(today().len(), 10);
    }
}
