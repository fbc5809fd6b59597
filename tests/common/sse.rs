//! A client of `GET /evaluation/{id}/stream` as a browser's EventSource
//! reads it: HTTP/1.1, chunked or not, events split on blank lines,
//! comments and `retry` skipped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;

/// One event: its name, its id if it has one, its data as JSON.
#[derive(Debug, Clone)]
pub struct Event {
    pub event: String,
    pub id: Option<String>,
    pub data: Value,
}

pub struct Stream {
    reader: BufReader<TcpStream>,
    chunked: bool,
    /// What is left of the current chunk.
    left: usize,
    pending: String,
}

/// The status a stream's request gets, read from the answer's first line;
/// the connection is closed then, whatever follows.
pub fn status(addr: &str, path: &str) -> u16 {
    let mut tcp = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    tcp.set_read_timeout(Some(Duration::from_secs(30))).expect("setting a read timeout");
    tcp.write_all(format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n\r\n").as_bytes()).expect("sending the request");
    let mut line = String::new();
    BufReader::new(tcp).read_line(&mut line).expect("reading the status line");
    line.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or_else(|| panic!("no status: {line:?}"))
}

impl Stream {
    /// Opens the stream of `path` on `addr` with `headers`; panics unless it
    /// is a 200 event stream.
    pub fn open(addr: &str, path: &str, headers: &[(&str, &str)]) -> Stream {
        let mut tcp = TcpStream::connect(addr).unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
        tcp.set_read_timeout(Some(Duration::from_secs(60))).expect("setting a read timeout");
        let mut head = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n");
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        tcp.write_all(head.as_bytes()).expect("sending the request");
        let mut reader = BufReader::new(tcp);
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("reading the answer's head");
            if line == "\r\n" || line.is_empty() {
                break;
            }
            lines.push(line.trim_end().to_ascii_lowercase());
        }
        assert!(lines.first().is_some_and(|l| l.contains(" 200 ")), "{path} on {addr}: {lines:?}");
        assert!(lines.iter().any(|l| l == "content-type: text/event-stream"), "{lines:?}");
        let chunked = lines.iter().any(|l| l == "transfer-encoding: chunked");
        Stream { reader, chunked, left: 0, pending: String::new() }
    }

    /// More of the body, as text; none at its end.
    fn more(&mut self) -> Option<String> {
        if self.chunked && self.left == 0 {
            let mut size = String::new();
            self.reader.read_line(&mut size).ok()?;
            if size.trim().is_empty() {
                size.clear();
                self.reader.read_line(&mut size).ok()?;
            }
            self.left = usize::from_str_radix(size.trim(), 16).ok()?;
            if self.left == 0 {
                return None;
            }
        }
        let mut buf = vec![0u8; if self.chunked { self.left.min(64 * 1024) } else { 64 * 1024 }];
        let n = self.reader.read(&mut buf).ok().filter(|n| *n > 0)?;
        if self.chunked {
            self.left -= n;
        }
        Some(String::from_utf8_lossy(&buf[..n]).into_owned())
    }

    /// The next event; none once the stream has ended.
    pub fn next_event(&mut self) -> Option<Event> {
        loop {
            if let Some(end) = self.pending.find("\n\n") {
                let block: String = self.pending.drain(..end + 2).collect();
                if let (Some(event), id, Some(data)) = evalmesh::cli::parse_event(&block) {
                    return Some(Event { event, id, data });
                }
                assert!(!block.contains("\ndata: "), "data is not JSON: {block}");
                continue;
            }
            let text = self.more()?;
            self.pending.push_str(&text);
        }
    }

    /// Every event up to and including `done`.
    pub fn until_done(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        while let Some(e) = self.next_event() {
            let done = e.event == "done";
            events.push(e);
            if done {
                return events;
            }
        }
        panic!("the stream ended without done: {events:?}");
    }
}
