//! The write queue: rows in memory up to a bound, older rows in an append-only spill file.
//!
//! Invariant: every row in the file is older than every row in memory. When memory is full,
//! all of it moves to the end of the file, so the order is file (oldest) then memory, and
//! nothing is ever dropped. Rows are read back from the file first; a fully read file is
//! deleted. The file is JSON lines and survives a restart: [`crate::Writer::start`] replays it.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use tokio::time::Instant;

use crate::error::SqlError;
use crate::row::Row;

/// Where a peeked run of rows came from, so it can be removed once written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ack {
    /// `n` rows from the front of memory, peeked after `spills` spills (if memory has
    /// been spilled since, those rows are now the first `n` unread rows of the file).
    Mem { n: usize, spills: u64 },
    /// `n` rows, `bytes` bytes, from the file's read offset.
    File { n: usize, bytes: u64 },
}

/// Memory plus file.
#[derive(Debug)]
pub(crate) struct Queue {
    mem: VecDeque<Row>,
    /// When each in-memory row was pushed (same order as `mem`).
    mem_at: VecDeque<Instant>,
    /// Bumped by every [`Queue::spill_memory`] that moved rows.
    spills: u64,
    cap: usize,
    path: PathBuf,
    read_off: u64,
    file_len: u64,
    file_rows: usize,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> SqlError + '_ {
    move |source| SqlError::Spill {
        path: path.to_path_buf(),
        source,
    }
}

impl Queue {
    /// A queue keeping at most `cap` rows in memory; picks up an existing spill file.
    pub(crate) fn open(path: PathBuf, cap: usize) -> Result<Queue, SqlError> {
        let (file_len, file_rows) = match File::open(&path) {
            Ok(f) => {
                let len = f.metadata().map_err(io_err(&path))?.len();
                let mut rows = 0;
                for line in BufReader::new(f).lines() {
                    let line = line.map_err(io_err(&path))?;
                    serde_json::from_str::<Row>(&line).map_err(|e| SqlError::SpillCorrupt {
                        path: path.clone(),
                        reason: e.to_string(),
                    })?;
                    rows += 1;
                }
                (len, rows)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (0, 0),
            Err(e) => return Err(io_err(&path)(e)),
        };
        Ok(Queue {
            mem: VecDeque::new(),
            mem_at: VecDeque::new(),
            spills: 0,
            cap: cap.max(1),
            path,
            read_off: 0,
            file_len,
            file_rows,
        })
    }

    /// Rows waiting.
    pub(crate) fn len(&self) -> usize {
        self.mem.len() + self.file_rows
    }

    /// Nothing waiting.
    pub(crate) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Rows in the spill file.
    pub(crate) fn file_len(&self) -> usize {
        self.file_rows
    }

    /// When the oldest row held only in memory was pushed.
    pub(crate) fn oldest_mem_at(&self) -> Option<Instant> {
        self.mem_at.front().copied()
    }

    /// Appends a row; when memory is full, first moves memory to the file. Returns how many
    /// rows were spilled. If the file cannot be written, memory grows past its bound instead
    /// (and the error is returned for logging): a row is never dropped.
    pub(crate) fn push(&mut self, row: Row) -> Result<usize, SqlError> {
        let mut result = Ok(0);
        if self.mem.len() >= self.cap {
            result = self.spill_memory();
        }
        self.mem.push_back(row);
        self.mem_at.push_back(Instant::now());
        result
    }

    /// Moves every in-memory row to the end of the file.
    pub(crate) fn spill_memory(&mut self) -> Result<usize, SqlError> {
        if self.mem.is_empty() {
            return Ok(0);
        }
        let mut buf = Vec::with_capacity(self.mem.len() * 96);
        for r in &self.mem {
            serde_json::to_writer(&mut buf, r).expect("rows serialize to JSON");
            buf.push(b'\n');
        }
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(io_err(&self.path))?;
        f.write_all(&buf).map_err(io_err(&self.path))?;
        f.sync_data().map_err(io_err(&self.path))?;
        let n = self.mem.len();
        self.file_len += buf.len() as u64;
        self.file_rows += n;
        self.mem.clear();
        self.mem_at.clear();
        self.spills += 1;
        Ok(n)
    }

    /// The oldest `max` rows (file first), without removing them.
    pub(crate) fn peek(&self, max: usize) -> Result<(Vec<Row>, Ack), SqlError> {
        if self.file_rows == 0 {
            let n = self.mem.len().min(max);
            let rows = self.mem.iter().take(n).cloned().collect();
            return Ok((
                rows,
                Ack::Mem {
                    n,
                    spills: self.spills,
                },
            ));
        }
        let mut f = File::open(&self.path).map_err(io_err(&self.path))?;
        f.seek(SeekFrom::Start(self.read_off))
            .map_err(io_err(&self.path))?;
        let mut reader = BufReader::new(f);
        let mut rows = Vec::new();
        let mut bytes = 0u64;
        let mut line = String::new();
        while rows.len() < max {
            line.clear();
            let n = reader.read_line(&mut line).map_err(io_err(&self.path))?;
            if n == 0 {
                break;
            }
            bytes += n as u64;
            let row =
                serde_json::from_str(line.trim_end()).map_err(|e| SqlError::SpillCorrupt {
                    path: self.path.clone(),
                    reason: e.to_string(),
                })?;
            rows.push(row);
        }
        let n = rows.len();
        Ok((rows, Ack::File { n, bytes }))
    }

    /// Removes rows returned by [`Queue::peek`] once they are written.
    pub(crate) fn ack(&mut self, ack: Ack) -> Result<(), SqlError> {
        match ack {
            Ack::Mem { n, spills } if spills == self.spills => {
                self.mem.drain(..n);
                self.mem_at.drain(..n);
            }
            Ack::Mem { n, .. } => {
                // Spilled while being written: the file held nothing then, so the rows are
                // the first `n` unread ones of the file now.
                let (rows, ack) = self.peek(n)?;
                debug_assert_eq!(rows.len(), n);
                return self.ack(ack);
            }
            Ack::File { n, bytes } => {
                self.read_off += bytes;
                self.file_rows = self.file_rows.saturating_sub(n);
                if self.file_rows == 0 || self.read_off >= self.file_len {
                    self.file_rows = 0;
                    self.read_off = 0;
                    self.file_len = 0;
                    std::fs::remove_file(&self.path).map_err(io_err(&self.path))?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(i: i64) -> Row {
        Row::Status {
            key: format!("k{i}"),
            status: "online".into(),
            at: i,
        }
    }

    fn drain(q: &mut Queue) -> Vec<Row> {
        let mut all = Vec::new();
        while !q.is_empty() {
            let (rows, ack) = q.peek(3).unwrap();
            all.extend(rows);
            q.ack(ack).unwrap();
        }
        all
    }

    #[test]
    fn overflow_spills_to_the_file_and_order_is_kept() {
        let dir = std::env::temp_dir().join(format!("rollcall-spill-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("order.jsonl");
        let _ = std::fs::remove_file(&path);
        let mut q = Queue::open(path.clone(), 4).unwrap();
        for i in 0..10 {
            q.push(row(i)).unwrap();
        }
        assert_eq!(q.len(), 10);
        assert!(path.exists());
        let (first, ack) = q.peek(2).unwrap();
        q.ack(ack).unwrap();
        for i in 10..13 {
            q.push(row(i)).unwrap();
        }
        let mut all = first;
        all.extend(drain(&mut q));
        assert_eq!(all, (0..13).map(row).collect::<Vec<_>>());
        assert!(!path.exists(), "a fully read spill file is removed");
    }

    #[test]
    fn rows_spilled_while_being_written_are_acked_from_the_file() {
        let dir = std::env::temp_dir().join(format!("rollcall-spill-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("inflight.jsonl");
        let _ = std::fs::remove_file(&path);
        let mut q = Queue::open(path.clone(), 100).unwrap();
        for i in 0..5 {
            q.push(row(i)).unwrap();
        }
        let (inflight, ack) = q.peek(3).unwrap();
        assert_eq!(inflight, (0..3).map(row).collect::<Vec<_>>());
        q.spill_memory().unwrap();
        q.push(row(5)).unwrap();
        q.ack(ack).unwrap();
        assert_eq!(drain(&mut q), (3..6).map(row).collect::<Vec<_>>());
    }

    #[test]
    fn a_spill_file_survives_a_restart() {
        let dir = std::env::temp_dir().join(format!("rollcall-spill-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("restart.jsonl");
        let _ = std::fs::remove_file(&path);
        let mut q = Queue::open(path.clone(), 2).unwrap();
        for i in 0..5 {
            q.push(row(i)).unwrap();
        }
        q.spill_memory().unwrap();
        drop(q);
        let mut q = Queue::open(path, 2).unwrap();
        assert_eq!(drain(&mut q), (0..5).map(row).collect::<Vec<_>>());
    }
}
