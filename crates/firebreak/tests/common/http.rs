//! HTTP/1.1 on loopback, as much as the tests need: a `GET` and its answer.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// An HTTP answer.
pub struct Answer {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

/// `GET path` on `127.0.0.1:port`; panics if nothing answers, or not with
/// HTTP, within 10 s.
pub async fn get(port: u16, path: &str) -> Answer {
    let raw = exchange(port, path)
        .await
        .unwrap_or_else(|e| panic!("GET {path} on port {port}: {e}"));
    parse_answer(&raw).unwrap_or_else(|| panic!("not an HTTP answer: {:?}", String::from_utf8_lossy(&raw)))
}

/// `GET path` on `127.0.0.1:port`, or `None` if nothing answers, or not
/// with HTTP, within 10 s.
pub async fn try_get(port: u16, path: &str) -> Option<Answer> {
    parse_answer(&exchange(port, path).await.ok()?)
}

/// `GET path` on `addr`, or `None` if nothing answers, or not with HTTP,
/// within 10 s.
pub async fn try_get_at(addr: SocketAddr, path: &str) -> Option<Answer> {
    parse_answer(&exchange_at(addr, path).await.ok()?)
}

/// Sends `GET path` and reads the answer to its end.
async fn exchange(port: u16, path: &str) -> std::io::Result<Vec<u8>> {
    exchange_at(SocketAddr::from(([127, 0, 0, 1], port)), path).await
}

/// Sends `GET path` to `addr` and reads the answer to its end.
async fn exchange_at(addr: SocketAddr, path: &str) -> std::io::Result<Vec<u8>> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        Ok(raw)
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .unwrap_or_else(|_| Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out")))
}

/// An HTTP/1.1 answer's status, content type and body (chunked or not).
fn parse_answer(raw: &[u8]) -> Option<Answer> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    if headers
        .get("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        let mut decoded = Vec::new();
        let mut rest = &body[..];
        loop {
            let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
            let size_field = std::str::from_utf8(&rest[..line_end]).ok()?;
            let size = usize::from_str_radix(size_field.split(';').next()?.trim(), 16).ok()?;
            rest = &rest[line_end + 2..];
            if size == 0 {
                break;
            }
            decoded.extend_from_slice(rest.get(..size)?);
            rest = rest.get(size + 2..)?;
        }
        body = decoded;
    }
    Some(Answer {
        status,
        content_type: headers.get("content-type").cloned().unwrap_or_default(),
        body: String::from_utf8(body).ok()?,
    })
}
