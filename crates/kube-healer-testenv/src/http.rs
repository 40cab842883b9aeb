//! A minimal HTTP/1.1 GET to an address on 127.0.0.1, for the operator's probes and metrics
//! (no HTTP client library needed).

use std::io::{Read, Write};
use std::time::Duration;

use crate::error::{Error, Result, io};

/// GET `path` from `addr` (host:port on 127.0.0.1): the status code and the body.
pub fn get(addr: &str, path: &str) -> Result<(u16, String)> {
    let mut stream = std::net::TcpStream::connect(addr).map_err(io(format!("connecting to {addr}")))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(io("setting a read timeout"))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .map_err(io(format!("writing to {addr}")))?;
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .map_err(io(format!("reading from {addr}")))?;
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| Error::Other(format!("no HTTP status line from {addr}{path}")))?;
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Ok((status, body))
}
