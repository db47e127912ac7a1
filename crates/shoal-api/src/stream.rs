//! Streaming response bodies: Docker's multiplexed log frames (stdcopy), NDJSON streams, raw bytes.

use std::convert::Infallible;

use crate::types::ApiError;
use axum::body::Body;
use axum::response::Response;
use bytes::{BufMut, Bytes, BytesMut};
use chrono::{DateTime, SecondsFormat, Utc};
use futures::stream::{BoxStream, Stream, StreamExt};
use http::{HeaderValue, StatusCode, header};
use serde::Serialize;

/// Content type of a multiplexed (stdcopy) stream, API ≥ 1.42.
pub const MULTIPLEXED: &str = "application/vnd.docker.multiplexed-stream";
/// Content type of a raw (TTY) stream.
pub const RAW_STREAM: &str = "application/vnd.docker.raw-stream";

/// Which stdcopy channel a frame goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StdStream {
    Stdin = 0,
    Stdout = 1,
    Stderr = 2,
    /// An error after the stream started; the CLI stops with "error from daemon in stream".
    SystemErr = 3,
}

/// One log line as a backend produces it; the server decides how it is framed.
#[derive(Debug, Clone)]
pub struct LogLine {
    pub stream: StdStream,
    pub timestamp: DateTime<Utc>,
    /// Attributes shown with `details=1`, e.g. `com.docker.swarm.task.id`. Sorted on output.
    pub attrs: Vec<(String, String)>,
    /// The line's bytes, normally including its trailing newline.
    pub line: Bytes,
}

/// A stream of log lines; an `Err` ends the stream with a systemerr frame.
pub type LogStream = BoxStream<'static, Result<LogLine, ApiError>>;

/// What the client asked to see in each payload.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogFormat {
    pub timestamps: bool,
    pub details: bool,
}

/// The 8-byte stdcopy header plus payload.
pub fn encode_frame(stream: StdStream, payload: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(8 + payload.len());
    b.put_u8(stream as u8);
    b.put_slice(&[0, 0, 0]);
    // Payloads are single lines; a line over 4 GiB cannot be produced by our log readers.
    b.put_u32(u32::try_from(payload.len()).unwrap_or(u32::MAX));
    b.put_slice(&payload[..payload.len().min(u32::MAX as usize)]);
    b.freeze()
}

/// RFC 3339 with exactly nine fractional digits, as moby's log writer prints it.
pub fn log_timestamp(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Nanos, true)
}

/// Go's url.QueryEscape, used for the details `k=v` pairs so they contain no spaces.
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The payload of one frame: `[timestamp ' '][details ' ']line`.
pub fn format_log_payload(line: &LogLine, fmt: LogFormat) -> Vec<u8> {
    let mut out = Vec::with_capacity(line.line.len() + 64);
    if fmt.timestamps {
        out.extend_from_slice(log_timestamp(&line.timestamp).as_bytes());
        out.push(b' ');
    }
    if fmt.details {
        let mut attrs: Vec<&(String, String)> = line.attrs.iter().collect();
        attrs.sort();
        let joined: Vec<String> = attrs
            .iter()
            .map(|(k, v)| format!("{}={}", query_escape(k), query_escape(v)))
            .collect();
        out.extend_from_slice(joined.join(",").as_bytes());
        out.push(b' ');
    }
    out.extend_from_slice(&line.line);
    out
}

/// Turns log lines into stdcopy frames; an error becomes a final stream-3 frame.
pub fn multiplexed_frames(
    lines: LogStream,
    fmt: LogFormat,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    futures::stream::unfold((lines, false), move |(mut lines, done)| async move {
        if done {
            return None;
        }
        match lines.next().await {
            None => None,
            Some(Ok(line)) => {
                let frame = encode_frame(line.stream, &format_log_payload(&line, fmt));
                Some((Ok(frame), (lines, false)))
            }
            Some(Err(e)) => {
                let frame = encode_frame(StdStream::SystemErr, e.message.as_bytes());
                Some((Ok(frame), (lines, true)))
            }
        }
    })
}

/// Raw (TTY) framing: payloads back to back, errors as a final line.
pub fn raw_frames(
    lines: LogStream,
    fmt: LogFormat,
) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + 'static {
    futures::stream::unfold((lines, false), move |(mut lines, done)| async move {
        if done {
            return None;
        }
        match lines.next().await {
            None => None,
            Some(Ok(line)) => Some((
                Ok(Bytes::from(format_log_payload(&line, fmt))),
                (lines, false),
            )),
            Some(Err(e)) => Some((
                Ok(Bytes::from(format!("Error: {}\n", e.message))),
                (lines, true),
            )),
        }
    })
}

/// A chunked 200 response of log frames.
pub fn logs_response(lines: LogStream, fmt: LogFormat, tty: bool) -> Response {
    if tty {
        streaming(RAW_STREAM, raw_frames(lines, fmt))
    } else {
        streaming(MULTIPLEXED, multiplexed_frames(lines, fmt))
    }
}

/// A chunked 200 response with the given content type. Each item is written (and flushed) as
/// its own chunk, so followers see lines as they come.
pub fn streaming<S>(content_type: &'static str, s: S) -> Response
where
    S: Stream<Item = Result<Bytes, Infallible>> + Send + 'static,
{
    let mut resp = Response::new(Body::from_stream(s));
    *resp.status_mut() = StatusCode::OK;
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

/// One NDJSON line.
pub fn ndjson_line<T: Serialize>(v: &T) -> Bytes {
    match serde_json::to_vec(v) {
        Ok(mut b) => {
            b.push(b'\n');
            Bytes::from(b)
        }
        Err(e) => Bytes::from(format!(
            "{}\n",
            serde_json::json!({ "error": format!("encoding: {e}") })
        )),
    }
}

/// Docker's JSON progress error message (`jsonmessage.JSONMessage` with `errorDetail`).
pub fn json_message_error(e: &ApiError) -> serde_json::Value {
    serde_json::json!({ "errorDetail": { "message": e.message }, "error": e.message })
}

/// A stream of JSON values (pull/push/load progress): NDJSON, errors as a final errorDetail message.
pub fn json_progress_response(
    items: BoxStream<'static, Result<serde_json::Value, ApiError>>,
) -> Response {
    let s = futures::stream::unfold((items, false), |(mut items, done)| async move {
        if done {
            return None;
        }
        match items.next().await {
            None => None,
            Some(Ok(v)) => Some((Ok(ndjson_line(&v)), (items, false))),
            Some(Err(e)) => Some((Ok(ndjson_line(&json_message_error(&e))), (items, true))),
        }
    });
    streaming(crate::error::JSON, s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_header() {
        let f = encode_frame(StdStream::Stderr, b"hi\n");
        assert_eq!(&f[..], b"\x02\x00\x00\x00\x00\x00\x00\x03hi\n");
    }

    #[test]
    fn payload_layout() {
        let t = DateTime::parse_from_rfc3339("2026-11-23T08:49:25.5Z")
            .unwrap()
            .with_timezone(&Utc);
        let l = LogLine {
            stream: StdStream::Stdout,
            timestamp: t,
            attrs: vec![
                ("com.docker.swarm.task.id".into(), "t1".into()),
                ("com.docker.swarm.node.id".into(), "n 1".into()),
            ],
            line: Bytes::from_static(b"line 0\n"),
        };
        let p = format_log_payload(
            &l,
            LogFormat {
                timestamps: true,
                details: true,
            },
        );
        assert_eq!(
            String::from_utf8(p).unwrap(),
            "2026-11-23T08:49:25.500000000Z com.docker.swarm.node.id=n+1,com.docker.swarm.task.id=t1 line 0\n"
        );
        let p = format_log_payload(&l, LogFormat::default());
        assert_eq!(p, b"line 0\n");
    }
}
