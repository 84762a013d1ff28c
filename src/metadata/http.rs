//! A minimal HTTP/1.x server side: read one bounded request, write one
//! response, close. Enough for `wget`, `curl` and every HTTP client library;
//! no keep-alive, no chunked bodies (POSTs carry a Content-Length). The head
//! and the body are read apart, so a request can be refused before its body
//! is waited for.

use std::io::{Read, Write};

/// Largest request head (request line + headers).
pub const MAX_HEAD: usize = 8 * 1024;
/// Largest request body.
pub const MAX_BODY: usize = 64 * 1024;

/// One request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The path, without the query string.
    pub path: String,
    pub body: Vec<u8>,
}

/// One response: status and a short body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Response {
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        let mut body = body.into();
        if !body.ends_with('\n') && !body.is_empty() {
            body.push('\n');
        }
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into_bytes(),
        }
    }

    /// A value returned as is (no newline added: the app reads it exactly).
    pub fn raw(body: impl Into<Vec<u8>>) -> Self {
        Response {
            status: 200,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
        }
    }

    pub fn json(value: &serde_json::Value) -> Self {
        let mut body = serde_json::to_vec_pretty(value).unwrap_or_default();
        body.push(b'\n');
        Response {
            status: 200,
            content_type: "application/json",
            body,
        }
    }

    /// An error with a short message naming the status.
    pub fn error(status: u16, msg: &str) -> Self {
        Self::text(status, format!("{status} {}: {msg}", reason(status)))
    }

    /// The response on the wire, head and body in one buffer (one write).
    pub fn to_bytes(&self) -> Vec<u8> {
        let head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            self.status,
            reason(self.status),
            self.content_type,
            self.body.len()
        );
        let mut out = Vec::with_capacity(head.len() + self.body.len());
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(&self.body);
        out
    }

    pub fn write_to(&self, w: &mut impl Write) -> std::io::Result<()> {
        w.write_all(&self.to_bytes())?;
        w.flush()
    }
}

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Error",
    }
}

/// Why a request could not be read: the response to send, if any.
#[derive(Debug)]
pub enum ReadError {
    /// Answer with this error status and message.
    Reply(u16, &'static str),
    /// The request did not arrive whole in time: answer 408 if the socket
    /// takes it at once, and close.
    TooSlow,
    /// The peer went away, or sent nothing in time: just close.
    Gone,
}

fn io_err(e: std::io::Error, got_any: bool) -> ReadError {
    use std::io::ErrorKind::*;
    match e.kind() {
        WouldBlock | TimedOut if got_any => ReadError::TooSlow,
        _ => ReadError::Gone,
    }
}

/// A request line and the headers that matter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub method: String,
    /// The path, without the query string.
    pub path: String,
    pub content_length: usize,
}

/// Reads one request from `r` (which bounds the time it may take).
pub fn read_request(r: &mut impl Read) -> Result<Request, ReadError> {
    let (head, got) = read_head(r)?;
    let body = read_body(r, &head, got)?;
    Ok(Request {
        method: head.method,
        path: head.path,
        body,
    })
}

/// Reads and checks a request's head; returns it with the bytes of the
/// body read along with it.
pub fn read_head(r: &mut impl Read) -> Result<(Head, Vec<u8>), ReadError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i;
        }
        if buf.len() > MAX_HEAD {
            return Err(ReadError::Reply(431, "request head too large"));
        }
        let n = r.read(&mut chunk).map_err(|e| io_err(e, !buf.is_empty()))?;
        if n == 0 {
            return Err(if buf.is_empty() {
                ReadError::Gone
            } else {
                ReadError::Reply(400, "incomplete request")
            });
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    if head_end > MAX_HEAD {
        return Err(ReadError::Reply(431, "request head too large"));
    }
    let body = buf.split_off(head_end + 4);
    let head = std::str::from_utf8(&buf[..head_end])
        .map_err(|_| ReadError::Reply(400, "request head is not UTF-8"))?;
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(ReadError::Reply(400, "malformed request line"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(ReadError::Reply(400, "only HTTP/1.x is served"));
    }
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(ReadError::Reply(400, "malformed method"));
    }
    let mut content_length: Option<usize> = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(ReadError::Reply(400, "malformed header line"));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            let n: usize = value
                .parse()
                .map_err(|_| ReadError::Reply(400, "bad Content-Length"))?;
            if content_length.is_some_and(|c| c != n) {
                return Err(ReadError::Reply(400, "conflicting Content-Length headers"));
            }
            content_length = Some(n);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(ReadError::Reply(
                501,
                "Transfer-Encoding is not supported; send a Content-Length",
            ));
        }
    }
    let content_length = content_length.unwrap_or(0);
    if content_length > MAX_BODY {
        return Err(ReadError::Reply(413, "request body too large"));
    }
    let path = target
        .split(['?', '#'])
        .next()
        .unwrap_or_default()
        .to_string();
    Ok((
        Head {
            method: method.to_string(),
            path,
            content_length,
        },
        body,
    ))
}

/// Reads the rest of the body of `head`, `got` being what came with it.
pub fn read_body(r: &mut impl Read, head: &Head, mut got: Vec<u8>) -> Result<Vec<u8>, ReadError> {
    let len = head.content_length;
    got.truncate(len);
    let mut chunk = [0u8; 2048];
    while got.len() < len {
        let want = (len - got.len()).min(chunk.len());
        let n = r.read(&mut chunk[..want]).map_err(|e| io_err(e, true))?;
        if n == 0 {
            return Err(ReadError::Reply(400, "body shorter than Content-Length"));
        }
        got.extend_from_slice(&chunk[..n]);
    }
    Ok(got)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Decodes `%XX` escapes (and `+` as space when `plus` is set).
pub fn percent_decode(s: &str, plus: bool) -> Option<Vec<u8>> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' => {
                let hexpair = b.get(i + 1..i + 3)?;
                let s = std::str::from_utf8(hexpair).ok()?;
                out.push(u8::from_str_radix(s, 16).ok()?);
                i += 3;
            }
            b'+' if plus => {
                out.push(b' ');
                i += 1;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    Some(out)
}

/// Parses an `application/x-www-form-urlencoded` body into (name, value)
/// pairs; `None` when it is not one.
pub fn parse_form(body: &[u8]) -> Option<Vec<(String, Vec<u8>)>> {
    let s = std::str::from_utf8(body).ok()?;
    let s = s.trim_end_matches(['\r', '\n']);
    let mut out = Vec::new();
    for pair in s.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = String::from_utf8(percent_decode(k, true)?).ok()?;
        out.push((k, percent_decode(v, true)?));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(raw: &str) -> Result<Request, ReadError> {
        read_request(&mut raw.as_bytes())
    }

    #[test]
    fn reads_get_and_post() {
        let r = read("GET /t/acMetadata/v1/pod/uuid?x=1 HTTP/1.1\r\nHost: h\r\n\r\n").unwrap();
        assert_eq!(
            (r.method.as_str(), r.path.as_str()),
            ("GET", "/t/acMetadata/v1/pod/uuid")
        );
        let r = read("POST /p HTTP/1.0\r\nContent-Length: 5\r\n\r\nhello").unwrap();
        assert_eq!(r.body, b"hello");
    }

    #[test]
    fn rejects_bad_requests() {
        for (raw, status) in [
            ("GARBAGE\r\n\r\n", 400),
            ("GET / HTTP/2\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nContent-Length: x\r\n\r\n", 400),
            ("POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", 413),
            ("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", 501),
            ("POST / HTTP/1.1\r\nContent-Length: 9\r\n\r\nabc", 400),
            ("GET / HTTP/1.1\r\nHost", 400),
        ] {
            match read(raw) {
                Err(ReadError::Reply(s, _)) => assert_eq!(s, status, "{raw:?}"),
                other => panic!("{raw:?}: {other:?}"),
            }
        }
        let mut half = std::io::Read::chain("GET / HT".as_bytes(), "TP/1.1\r\n\r\n".as_bytes());
        assert!(read_request(&mut half).is_ok());
        let huge = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(MAX_HEAD));
        assert!(matches!(read(&huge), Err(ReadError::Reply(431, _))));
        assert!(matches!(read(""), Err(ReadError::Gone)));
    }

    /// Yields its bytes, then fails as a socket past its deadline does.
    struct Late(&'static [u8]);
    impl Read for Late {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.0.is_empty() {
                return Err(std::io::ErrorKind::TimedOut.into());
            }
            let n = self.0.len().min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    #[test]
    fn head_then_body() {
        let (head, got) =
            read_head(&mut "POST /p HTTP/1.1\r\nContent-Length: 5\r\n\r\nhel".as_bytes()).unwrap();
        assert_eq!((head.path.as_str(), head.content_length), ("/p", 5));
        assert_eq!(got, b"hel");
        let body = read_body(&mut "lo, and more".as_bytes(), &head, got).unwrap();
        assert_eq!(body, b"hello");
        // More than announced came with the head: only the body is kept.
        let (head, got) =
            read_head(&mut "POST /p HTTP/1.1\r\nContent-Length: 2\r\n\r\nabcd".as_bytes()).unwrap();
        assert_eq!(read_body(&mut "".as_bytes(), &head, got).unwrap(), b"ab");
    }

    #[test]
    fn late_requests() {
        // Nothing came before the deadline: just close.
        assert!(matches!(read_request(&mut Late(b"")), Err(ReadError::Gone)));
        // Part of the head, or of the body, came: too slow (408).
        assert!(matches!(
            read_request(&mut Late(b"GET / HT")),
            Err(ReadError::TooSlow)
        ));
        assert!(matches!(
            read_request(&mut Late(
                b"POST / HTTP/1.1\r\nContent-Length: 9\r\n\r\nabc"
            )),
            Err(ReadError::TooSlow)
        ));
    }

    #[test]
    fn responses_are_one_buffer() {
        let r = Response::error(503, "busy");
        let bytes = r.to_bytes();
        assert!(bytes.starts_with(b"HTTP/1.1 503 Service Unavailable\r\n"));
        assert!(bytes.ends_with(b"\r\n\r\n503 Service Unavailable: busy\n"));
        let mut out = Vec::new();
        r.write_to(&mut out).unwrap();
        assert_eq!(out, bytes);
    }

    #[test]
    fn parses_forms() {
        let f = parse_form(b"content=a+b%26c&uid=x&empty=").unwrap();
        assert_eq!(f[0], ("content".into(), b"a b&c".to_vec()));
        assert_eq!(f[1], ("uid".into(), b"x".to_vec()));
        assert_eq!(f[2], ("empty".into(), b"".to_vec()));
        assert!(parse_form(b"content=%zz").is_none());
        assert!(parse_form(b"content=%4").is_none());
    }
}
