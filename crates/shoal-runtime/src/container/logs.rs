//! Reading the monitor's log (`<container dir>/log`, one JSON object per line:
//! `{"t":"<RFC3339Nano>","s":"stdout|stderr","l":"<line>"}`) with since/until/tail/follow.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::PathBuf;
use std::pin::Pin;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use futures::Stream;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::error::{Error, Result};

#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    Stdout,
    Stderr,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LogRecord {
    pub stream: LogStream,
    pub time: DateTime<Utc>,
    /// The line without its newline.
    pub line: String,
}

impl LogRecord {
    /// The line as `docker logs` prints it (with `--timestamps`: RFC3339Nano and a space).
    pub fn format(&self, timestamps: bool) -> String {
        if timestamps {
            format!(
                "{} {}\n",
                self.time.to_rfc3339_opts(SecondsFormat::Nanos, true),
                self.line
            )
        } else {
            format!("{}\n", self.line)
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct LogOptions {
    pub follow: bool,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Only the last N records (before following).
    pub tail: Option<usize>,
    /// Both false means both.
    pub stdout: bool,
    pub stderr: bool,
}

#[derive(Deserialize)]
struct Raw {
    t: String,
    s: String,
    l: String,
}

/// Parses one log file line; None for a malformed line.
pub fn parse_record(line: &str) -> Option<LogRecord> {
    let raw: Raw = serde_json::from_str(line).ok()?;
    let time = DateTime::parse_from_rfc3339(&raw.t)
        .ok()?
        .with_timezone(&Utc);
    let stream = match raw.s.as_str() {
        "stdout" => LogStream::Stdout,
        "stderr" => LogStream::Stderr,
        _ => return None,
    };
    Some(LogRecord {
        stream,
        time,
        line: raw.l,
    })
}

fn wanted(opts: &LogOptions, r: &LogRecord) -> bool {
    let streams_ok = match (opts.stdout, opts.stderr) {
        (false, false) | (true, true) => true,
        (true, false) => r.stream == LogStream::Stdout,
        (false, true) => r.stream == LogStream::Stderr,
    };
    streams_ok && opts.since.is_none_or(|s| r.time >= s) && opts.until.is_none_or(|u| r.time <= u)
}

pub type LogStreamBox = Pin<Box<dyn Stream<Item = Result<LogRecord>> + Send>>;

/// Streams a log file. With `follow`, keeps reading appended records until `running()`
/// says the container stopped and the file is drained, or the stream is dropped.
pub fn stream_log(
    path: PathBuf,
    opts: LogOptions,
    running: Box<dyn Fn() -> bool + Send + Sync>,
) -> LogStreamBox {
    let (tx, rx) = mpsc::channel::<Result<LogRecord>>(256);
    tokio::task::spawn_blocking(move || {
        let send = |item| tx.blocking_send(item).is_ok();
        let file = match std::fs::File::open(&path) {
            Ok(f) => Some(f),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                send(Err(Error::io(format!("opening {}", path.display()), e)));
                return;
            }
        };
        let mut pos: u64 = 0;
        let mut partial = String::new();
        let mut initial: VecDeque<LogRecord> = VecDeque::new();
        let mut reader = file.map(BufReader::new);
        if let Some(r) = reader.as_mut() {
            let mut line = String::new();
            loop {
                line.clear();
                match r.read_line(&mut line) {
                    Ok(0) => break,
                    Ok(n) => {
                        if !line.ends_with('\n') {
                            partial = line.clone();
                            pos += n as u64;
                            break;
                        }
                        pos += n as u64;
                        if let Some(rec) = parse_record(line.trim_end_matches('\n'))
                            && wanted(&opts, &rec)
                        {
                            initial.push_back(rec);
                            if let Some(t) = opts.tail
                                && initial.len() > t
                            {
                                initial.pop_front();
                            }
                        }
                    }
                    Err(e) => {
                        send(Err(Error::io("reading log", e)));
                        return;
                    }
                }
            }
        }
        for rec in initial {
            if !send(Ok(rec)) {
                return;
            }
        }
        if !opts.follow {
            return;
        }
        // Follow: poll for appended data. Bounded by the container's life and the reader.
        let mut last_round = false;
        loop {
            if reader.is_none() {
                match std::fs::File::open(&path) {
                    Ok(f) => reader = Some(BufReader::new(f)),
                    Err(_) => {
                        if !running() {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(100));
                        continue;
                    }
                }
            }
            let Some(r) = reader.as_mut() else { return };
            if r.seek(SeekFrom::Start(pos)).is_err() {
                return;
            }
            let mut got = false;
            let mut line = String::new();
            loop {
                line.clear();
                match r.read_line(&mut line) {
                    Ok(0) => break,
                    Ok(n) => {
                        pos += n as u64;
                        partial.push_str(&line);
                        if !partial.ends_with('\n') {
                            continue;
                        }
                        got = true;
                        let full = std::mem::take(&mut partial);
                        if let Some(rec) = parse_record(full.trim_end_matches('\n'))
                            && wanted(&opts, &rec)
                            && !send(Ok(rec))
                        {
                            return;
                        }
                    }
                    Err(_) => break,
                }
            }
            if tx.is_closed() {
                return;
            }
            if last_round && !got {
                return;
            }
            // One more pass after the container stops: the monitor finishes writing the
            // log before it records the exit.
            last_round = !running();
            if !got {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    });
    Box::pin(futures::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    #[test]
    fn parses_records() {
        let r = parse_record(r#"{"t":"2026-01-02T03:04:05.123456789Z","s":"stderr","l":"x\ty"}"#)
            .unwrap();
        assert_eq!(r.stream, LogStream::Stderr);
        assert_eq!(r.line, "x\ty");
        assert_eq!(r.format(true), "2026-01-02T03:04:05.123456789Z x\ty\n");
        assert!(parse_record("garbage").is_none());
    }

    #[tokio::test]
    async fn tail_and_since() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("log");
        let mut text = String::new();
        for i in 0..10 {
            text.push_str(&format!(
                "{{\"t\":\"2026-01-01T00:00:{i:02}Z\",\"s\":\"stdout\",\"l\":\"{i}\"}}\n"
            ));
        }
        std::fs::write(&p, text).unwrap();
        let opts = LogOptions {
            tail: Some(3),
            ..Default::default()
        };
        let got: Vec<String> = stream_log(p.clone(), opts, Box::new(|| false))
            .map(|r| r.unwrap().line)
            .collect()
            .await;
        assert_eq!(got, vec!["7", "8", "9"]);
        let opts = LogOptions {
            since: Some("2026-01-01T00:00:05Z".parse().unwrap()),
            ..Default::default()
        };
        let got = stream_log(p, opts, Box::new(|| false)).count().await;
        assert_eq!(got, 5);
    }
}
