//! The light HTTP/1.1 client: what the `single`, `reads` and `wallet` scenarios drive
//! Coffer with unless `--client reqwest` is given. It owns the server's address and
//! `Host`, requests built once with fixed-width slots for the parts that vary, one
//! keep-alive connection per worker with its one read buffer, and the response reader.
//!
//! The harness shares two cores with the server, so the client must cost as little as
//! it can: a request is a pre-built byte buffer whose UUID slots are overwritten in
//! place (no formatting of a whole request, no header map), it goes out with one
//! `write` on a `TCP_NODELAY` socket, and the reader finds the status line, the headers
//! it needs (`Content-Length`, `Transfer-Encoding`, `Connection`) and the body in a
//! buffer the connection keeps. The body is handed back as a borrowed slice for the
//! caller to parse only what its checks need.
//!
//! Coffer (axum on hyper) answers these routes with `Content-Length` (its bodies are
//! whole buffers), but `Transfer-Encoding: chunked` is decoded too, and a body that runs
//! until the connection closes is read as such: the reader does not depend on that.
//! A connection the server closed (`Connection: close`, or end of stream) is opened
//! again for the next request; a request whose answer never came is an error for the
//! caller to count.

use std::{
    future::{Future, poll_fn},
    net::SocketAddr,
    ops::Range,
    pin::{Pin, pin},
    task::Poll,
    time::Duration,
};

use anyhow::{Context, bail, ensure};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    time::{Instant, Sleep},
};
use uuid::Uuid;

/// Runs `work` to completion on a thread of its own, with a single-threaded runtime:
/// the light client's workers all live there. One thread wakes for a whole batch of
/// ready connections, where the harness's multi-threaded runtime often wakes a second
/// worker thread too (a futex and a context switch more); and the client can never take
/// more than one of the machine's cores from the server.
pub async fn on_own_thread<T, F>(work: impl FnOnce() -> F + Send + 'static) -> anyhow::Result<T>
where
    F: Future<Output = anyhow::Result<T>>,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        runtime.block_on(work())
    })
    .await?
}

/// Bytes of a hyphenated UUID: the width of every slot.
pub const UUID_TEXT_LEN: usize = 36;
/// Most bytes a response's status line and headers may take before the answer is
/// refused: Coffer's are about 200; a proxy's may be longer, not this long.
pub const RESPONSE_HEAD_BYTES_MAX: usize = 16 * 1024;
/// Most bytes a response body may take: these routes answer with one account, one
/// transfer or one problem (well under 1 kB); more means something is wrong.
pub const RESPONSE_BODY_BYTES_MAX: usize = 1024 * 1024;
/// Free room the read buffer has before every read, so one read takes a whole answer.
const READ_ROOM_BYTES: usize = 4 * 1024;
/// What slots hold until they are first set (valid UUID text, so a request sent with an
/// unset slot is refused by the server rather than malformed on the wire).
const UNSET_SLOT: &[u8; UUID_TEXT_LEN] = b"00000000-0000-0000-0000-000000000000";

/// Where the server listens, as the light client reaches it.
#[derive(Clone, Debug)]
pub struct Endpoint {
    address: SocketAddr,
    /// The `Host` header: the URL's host and port.
    authority: String,
    /// The URL's path, if any, put before every request's path (no trailing `/`).
    path_prefix: String,
}

impl Endpoint {
    /// Resolves `base_url` (`http://host:port[/prefix]`) once; the light client speaks
    /// plain HTTP only.
    pub async fn resolve(base_url: &str) -> anyhow::Result<Self> {
        let Some(rest) = base_url.strip_prefix("http://") else {
            bail!("the light client speaks plain http:// only, not {base_url}: use --client reqwest");
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        ensure!(!authority.is_empty(), "no host in {base_url}");
        let path = path.trim_end_matches('/');
        let path_prefix = if path.is_empty() { String::new() } else { format!("/{path}") };
        // `host:port`, or `host` alone (port 80); an IPv6 literal is `[…]` either way.
        let has_port = authority.rsplit_once(':').is_some_and(|(_, port)| !port.contains(']'));
        let lookup = if has_port { authority.to_owned() } else { format!("{authority}:80") };
        let address = tokio::net::lookup_host(&lookup)
            .await
            .with_context(|| format!("resolving {lookup}"))?
            .next()
            .with_context(|| format!("{lookup} resolves to no address"))?;
        Ok(Self { address, authority: authority.to_owned(), path_prefix })
    }
}

/// A piece of a request as it is built: fixed text, or a UUID slot set per request.
#[derive(Clone, Copy, Debug)]
pub enum Part<'a> {
    Text(&'a str),
    Uuid,
}

fn parts_len(parts: &[Part<'_>]) -> usize {
    parts
        .iter()
        .map(|part| match part {
            Part::Text(text) => text.len(),
            Part::Uuid => UUID_TEXT_LEN,
        })
        .sum()
}

/// A whole HTTP/1.1 request as bytes, built once, with the offsets of its UUID slots in
/// the order they were given (request line, then headers, then body).
#[derive(Clone, Debug, Default)]
pub struct Request {
    bytes: Vec<u8>,
    slots: Vec<usize>,
}

impl Request {
    /// `METHOD prefix+path HTTP/1.1`, `Host`, then `headers` in order, then — with a
    /// JSON body — `Content-Type: application/json` and its `Content-Length`. A body's
    /// length is fixed at build time: every slot is [`UUID_TEXT_LEN`] bytes wide.
    pub fn new(
        endpoint: &Endpoint,
        method: &str,
        path: &[Part<'_>],
        headers: &[(&str, &[Part<'_>])],
        json_body: Option<&[Part<'_>]>,
    ) -> Self {
        let mut request = Self::default();
        request.text(method);
        request.text(" ");
        request.text(&endpoint.path_prefix);
        request.parts(path);
        request.text(" HTTP/1.1\r\nHost: ");
        request.text(&endpoint.authority);
        request.text("\r\n");
        for (name, value) in headers {
            request.text(name);
            request.text(": ");
            request.parts(value);
            request.text("\r\n");
        }
        if let Some(body) = json_body {
            request.text("Content-Type: application/json\r\nContent-Length: ");
            request.text(&parts_len(body).to_string());
            request.text("\r\n\r\n");
            request.parts(body);
        } else {
            request.text("\r\n");
        }
        request
    }

    fn text(&mut self, text: &str) {
        self.bytes.extend_from_slice(text.as_bytes());
    }

    fn parts(&mut self, parts: &[Part<'_>]) {
        for part in parts {
            match part {
                Part::Text(text) => self.text(text),
                Part::Uuid => {
                    self.slots.push(self.bytes.len());
                    self.bytes.extend_from_slice(UNSET_SLOT);
                }
            }
        }
    }

    /// Writes `id` as a hyphenated lower-case UUID into slot `slot`.
    pub fn set_uuid(&mut self, slot: usize, id: u128) {
        let at = self.slots[slot];
        Uuid::from_u128(id).hyphenated().encode_lower(&mut self.bytes[at..at + UUID_TEXT_LEN]);
    }

    /// Becomes a copy of `template`, reusing this request's buffers.
    pub fn copy_from(&mut self, template: &Request) {
        self.bytes.clear();
        self.bytes.extend_from_slice(&template.bytes);
        self.slots.clear();
        self.slots.extend_from_slice(&template.slots);
    }

    /// The request as it goes on the wire.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// An answer: its status and its body, borrowed from the connection's buffer.
#[derive(Debug)]
pub struct Response<'a> {
    pub status: u16,
    pub body: &'a [u8],
}

impl Response<'_> {
    /// `HTTP {status}: {the body's start}`, for an error message.
    pub fn describe(&self) -> String {
        let shown = &self.body[..self.body.len().min(300)];
        format!("HTTP {}: {}", self.status, String::from_utf8_lossy(shown))
    }
}

/// How a response's body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    /// No body (204, 304).
    Empty,
    /// `Content-Length` bytes.
    Length(usize),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the server closes the connection.
    UntilClose,
}

/// A parsed status line and headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Head {
    status: u16,
    /// Bytes of the status line and headers, the blank line included.
    len: usize,
    framing: Framing,
    /// The server will close the connection after this answer.
    close: bool,
}

/// Where the body of the last answer is.
#[derive(Clone, Debug)]
enum Body {
    Buffered(Range<usize>),
    Decoded,
}

/// One keep-alive connection and its buffers, used for one request at a time. The
/// connection is opened on the first request and again after the server closed it.
#[derive(Debug)]
pub struct Connection {
    address: SocketAddr,
    stream: Option<TcpStream>,
    /// What was read from the server; the last answer's bytes until the next request.
    buffer: Vec<u8>,
    /// Bytes of `buffer` the last answer took.
    consumed: usize,
    /// A chunked body, decoded.
    decoded: Vec<u8>,
    /// The last answer said the server closes the connection.
    close_next: bool,
    opened_once: bool,
    /// Connections opened again after the first (the server closed one, or a request
    /// failed and its connection was dropped).
    pub reconnects: u64,
    timeout: Duration,
    /// The current request's deadline: one timer per connection, moved later before
    /// every request. Moving a registered tokio timer later is one atomic update, where
    /// a fresh `tokio::time::timeout` per request takes the timer wheel's lock twice.
    deadline: Option<Pin<Box<Sleep>>>,
}

impl Connection {
    /// A connection to `endpoint` (opened on the first request); a request not answered
    /// within `timeout` fails and its connection is dropped.
    pub fn new(endpoint: &Endpoint, timeout: Duration) -> Self {
        Self {
            address: endpoint.address,
            stream: None,
            buffer: Vec::with_capacity(READ_ROOM_BYTES),
            consumed: 0,
            decoded: Vec::new(),
            close_next: false,
            opened_once: false,
            reconnects: 0,
            timeout,
            deadline: None,
        }
    }

    /// Sends `request` and reads its answer. On an error (connecting, sending, reading,
    /// a malformed answer, the timeout) the connection is dropped; the next request
    /// opens a new one.
    pub async fn send(&mut self, request: &[u8]) -> anyhow::Result<Response<'_>> {
        let deadline = Instant::now() + self.timeout;
        let mut timer = match self.deadline.take() {
            Some(mut timer) => {
                timer.as_mut().reset(deadline);
                timer
            }
            None => Box::pin(tokio::time::sleep_until(deadline)),
        };
        let outcome = {
            let mut trip = pin!(self.round_trip(request));
            poll_fn(|context| match trip.as_mut().poll(context) {
                Poll::Ready(answer) => Poll::Ready(Some(answer)),
                Poll::Pending => timer.as_mut().poll(context).map(|()| None),
            })
            .await
        };
        self.deadline = Some(timer);
        let answer = match outcome {
            Some(Ok(answer)) => answer,
            Some(Err(error)) => {
                self.drop_stream();
                return Err(error);
            }
            None => {
                self.drop_stream();
                bail!("no answer within {} ms", self.timeout.as_millis());
            }
        };
        let body = match answer.1 {
            Body::Buffered(range) => &self.buffer[range],
            Body::Decoded => &self.decoded[..],
        };
        Ok(Response { status: answer.0, body })
    }

    fn drop_stream(&mut self) {
        self.stream = None;
        self.buffer.clear();
        self.consumed = 0;
    }

    async fn round_trip(&mut self, request: &[u8]) -> anyhow::Result<(u16, Body)> {
        // One request in flight: the last answer's bytes are all there is to drop.
        // Anything after them was never asked for, so that connection is not trusted.
        let unasked = self.buffer.len() > self.consumed;
        self.buffer.clear();
        self.consumed = 0;
        if self.close_next || unasked {
            self.stream = None;
            self.close_next = false;
        }
        if self.stream.is_none() {
            let stream = TcpStream::connect(self.address)
                .await
                .with_context(|| format!("connecting to {}", self.address))?;
            stream.set_nodelay(true)?;
            self.reconnects += u64::from(self.opened_once);
            self.opened_once = true;
            self.stream = Some(stream);
        }
        let stream = self.stream.as_mut().expect("opened above");
        stream.write_all(request).await.context("sending the request")?;
        let head = loop {
            if let Some(head) = parse_head(&self.buffer)? {
                break head;
            }
            ensure!(
                self.buffer.len() <= RESPONSE_HEAD_BYTES_MAX,
                "response headers longer than {RESPONSE_HEAD_BYTES_MAX} bytes"
            );
            if read_more(stream, &mut self.buffer).await? == 0 {
                bail!("the server closed the connection before answering");
            }
        };
        self.close_next = head.close;
        let body = match head.framing {
            Framing::Empty => {
                self.consumed = head.len;
                Body::Buffered(head.len..head.len)
            }
            Framing::Length(length) => {
                ensure!(length <= RESPONSE_BODY_BYTES_MAX, "a body of {length} bytes");
                let end = head.len + length;
                while self.buffer.len() < end {
                    if read_more(stream, &mut self.buffer).await? == 0 {
                        bail!("the server closed the connection in the middle of a body");
                    }
                }
                self.consumed = end;
                Body::Buffered(head.len..end)
            }
            Framing::Chunked => loop {
                if let Some(used) = decode_chunked(&self.buffer[head.len..], &mut self.decoded)? {
                    self.consumed = head.len + used;
                    break Body::Decoded;
                }
                // The framing (sizes, extensions, trailers) may not make the body on the
                // wire much longer than the body itself.
                ensure!(
                    self.buffer.len() - head.len <= 2 * RESPONSE_BODY_BYTES_MAX,
                    "a chunked body longer than {RESPONSE_BODY_BYTES_MAX} bytes"
                );
                if read_more(stream, &mut self.buffer).await? == 0 {
                    bail!("the server closed the connection in the middle of a chunked body");
                }
            },
            Framing::UntilClose => {
                while read_more(stream, &mut self.buffer).await? > 0 {
                    ensure!(
                        self.buffer.len() - head.len <= RESPONSE_BODY_BYTES_MAX,
                        "a body longer than {RESPONSE_BODY_BYTES_MAX} bytes"
                    );
                }
                self.close_next = true;
                self.consumed = self.buffer.len();
                Body::Buffered(head.len..self.buffer.len())
            }
        };
        Ok((head.status, body))
    }
}

/// Reads what the socket has into `buffer`'s free room (growing it first if it is
/// short); 0 is the end of the stream.
async fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> anyhow::Result<usize> {
    if buffer.capacity() - buffer.len() < READ_ROOM_BYTES {
        buffer.reserve(READ_ROOM_BYTES);
    }
    stream.read_buf(buffer).await.context("reading the answer")
}

/// Where `needle` first occurs in `haystack` at or after `from`.
fn find(haystack: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    haystack.get(from..)?.windows(needle.len()).position(|window| window == needle).map(|at| from + at)
}

/// The status line and headers at the start of `buffer`, or `None` when they have not
/// all arrived yet.
fn parse_head(buffer: &[u8]) -> anyhow::Result<Option<Head>> {
    let Some(end) = find(buffer, 0, b"\r\n\r\n") else {
        return Ok(None);
    };
    let mut lines =
        buffer[..end].split(|byte| *byte == b'\n').map(|line| line.strip_suffix(b"\r").unwrap_or(line));
    let status_line = lines.next().unwrap_or_default();
    // `HTTP/1.x NNN reason`.
    let (version, status) = match status_line {
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', minor, b' ', a, b, c, rest @ ..]
            if a.is_ascii_digit()
                && b.is_ascii_digit()
                && c.is_ascii_digit()
                && rest.first().is_none_or(|space| *space == b' ') =>
        {
            (*minor, u16::from(a - b'0') * 100 + u16::from(b - b'0') * 10 + u16::from(c - b'0'))
        }
        _ => bail!(
            "not an HTTP/1.x status line: {:?}",
            String::from_utf8_lossy(&status_line[..status_line.len().min(80)])
        ),
    };
    ensure!(!(100..200).contains(&status), "an interim {status} answer, which no request here asks for");
    let (mut length, mut chunked, mut close, mut keep_alive) = (None, false, false, false);
    for line in lines {
        let Some(colon) = line.iter().position(|byte| *byte == b':') else {
            bail!("a header line without a colon: {:?}", String::from_utf8_lossy(line));
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if name.eq_ignore_ascii_case(b"content-length") {
            let parsed = std::str::from_utf8(value)
                .ok()
                .filter(|text| !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit()))
                .and_then(|text| text.parse::<usize>().ok())
                .with_context(|| format!("Content-Length {:?}", String::from_utf8_lossy(value)))?;
            ensure!(length.is_none_or(|seen| seen == parsed), "two different Content-Length headers");
            length = Some(parsed);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            let last = value.rsplit(|byte| *byte == b',').next().unwrap_or_default().trim_ascii();
            ensure!(
                last.eq_ignore_ascii_case(b"chunked"),
                "Transfer-Encoding {:?} is not chunked",
                String::from_utf8_lossy(value)
            );
            chunked = true;
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in value.split(|byte| *byte == b',').map(<[u8]>::trim_ascii) {
                close |= token.eq_ignore_ascii_case(b"close");
                keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
            }
        }
    }
    // HTTP/1.0 closes unless it says keep-alive; 1.1 keeps alive unless it says close.
    close |= version == b'0' && !keep_alive;
    let framing = if status == 204 || status == 304 {
        Framing::Empty
    } else if chunked {
        // Chunked wins over a Content-Length (RFC 9112 §6.3).
        Framing::Chunked
    } else {
        length.map_or(Framing::UntilClose, Framing::Length)
    };
    Ok(Some(Head { status, len: end + 4, framing, close }))
}

/// Decodes the chunked body at the start of `data` into `out` (replacing what it held);
/// returns the bytes the body took, trailers included, or `None` when it has not all
/// arrived yet.
fn decode_chunked(data: &[u8], out: &mut Vec<u8>) -> anyhow::Result<Option<usize>> {
    out.clear();
    let mut at = 0;
    loop {
        let Some(line_end) = find(data, at, b"\r\n") else {
            return Ok(None);
        };
        // `size[;extensions]`, the size in hex.
        let size_text =
            data[at..line_end].split(|byte| *byte == b';').next().unwrap_or_default().trim_ascii();
        let size = std::str::from_utf8(size_text)
            .ok()
            .filter(|text| (1..=8).contains(&text.len()))
            .and_then(|text| usize::from_str_radix(text, 16).ok())
            .with_context(|| format!("chunk size {:?}", String::from_utf8_lossy(size_text)))?;
        at = line_end + 2;
        if size == 0 {
            // Trailer lines, if any, then the blank line.
            loop {
                let Some(line_end) = find(data, at, b"\r\n") else {
                    return Ok(None);
                };
                if line_end == at {
                    return Ok(Some(at + 2));
                }
                at = line_end + 2;
            }
        }
        ensure!(
            out.len() + size <= RESPONSE_BODY_BYTES_MAX,
            "a body longer than {RESPONSE_BODY_BYTES_MAX} bytes"
        );
        if data.len() < at + size + 2 {
            return Ok(None);
        }
        ensure!(&data[at + size..at + size + 2] == b"\r\n", "a chunk not followed by CRLF");
        out.extend_from_slice(&data[at..at + size]);
        at += size + 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint() -> Endpoint {
        Endpoint {
            address: "127.0.0.1:8080".parse().unwrap(),
            authority: "127.0.0.1:8080".into(),
            path_prefix: String::new(),
        }
    }

    #[test]
    fn requests_are_built_once_and_their_slots_patched() {
        let body = [Part::Text(r#"{"id":""#), Part::Uuid, Part::Text(r#""}"#)];
        let mut request = Request::new(
            &endpoint(),
            "POST",
            &[Part::Text("/v1/things/"), Part::Uuid],
            &[("Authorization", &[Part::Text("Bearer k")]), ("Idempotency-Key", &[Part::Uuid])],
            Some(&body),
        );
        request.set_uuid(0, 1);
        request.set_uuid(1, 2);
        request.set_uuid(2, u128::MAX);
        let text = std::str::from_utf8(request.as_bytes()).unwrap();
        assert_eq!(
            text,
            "POST /v1/things/00000000-0000-0000-0000-000000000001 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\
             Authorization: Bearer k\r\nIdempotency-Key: 00000000-0000-0000-0000-000000000002\r\n\
             Content-Type: application/json\r\nContent-Length: 45\r\n\r\n\
             {\"id\":\"ffffffff-ffff-ffff-ffff-ffffffffffff\"}"
        );
        assert_eq!(text.split("\r\n\r\n").nth(1).unwrap().len(), 45);
        let mut copy = Request::default();
        copy.copy_from(&request);
        copy.set_uuid(1, 3);
        assert!(
            std::str::from_utf8(copy.as_bytes())
                .unwrap()
                .contains("Key: 00000000-0000-0000-0000-000000000003")
        );
        let get = Request::new(&endpoint(), "GET", &[Part::Text("/metrics")], &[], None);
        assert_eq!(get.as_bytes(), b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n");
    }

    #[test]
    fn heads_are_parsed_once_complete() {
        let answer = b"HTTP/1.1 201 Created\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(parse_head(&answer[..20]).unwrap(), None);
        let head = parse_head(answer).unwrap().unwrap();
        assert_eq!(
            head,
            Head { status: 201, len: answer.len() - 2, framing: Framing::Length(2), close: false }
        );
        let head = parse_head(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!((head.framing, head.close), (Framing::Chunked, true));
        let head = parse_head(b"HTTP/1.1 204 No Content\r\n\r\n").unwrap().unwrap();
        assert_eq!(head.framing, Framing::Empty);
        let head = parse_head(b"HTTP/1.0 200 OK\r\n\r\n").unwrap().unwrap();
        assert_eq!((head.framing, head.close), (Framing::UntilClose, true));
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n").is_err());
        assert!(parse_head(b"SSH-2.0-x\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 100 Continue\r\n\r\n").is_err());
    }

    #[test]
    fn chunked_bodies_are_decoded_once_complete() {
        let mut out = Vec::new();
        let body = b"4\r\n{\"a\"\r\n3;ext=1\r\n:1}\r\n0\r\nTrailer: x\r\n\r\nNEXT";
        for cut in 0..body.len() - 4 {
            assert_eq!(decode_chunked(&body[..cut], &mut out).unwrap(), None, "cut at {cut}");
        }
        assert_eq!(decode_chunked(body, &mut out).unwrap(), Some(body.len() - 4));
        assert_eq!(out, b"{\"a\":1}");
        assert_eq!(decode_chunked(b"0\r\n\r\n", &mut out).unwrap(), Some(5));
        assert!(out.is_empty());
        assert!(decode_chunked(b"zz\r\n", &mut out).is_err());
        assert!(decode_chunked(b"2\r\nabc\r\n", &mut out).is_err());
    }

    /// A server that answers the first request with a chunked body and `Connection:
    /// close`, then (on a new connection) one with `Content-Length`, then closes without
    /// answering.
    #[tokio::test]
    async fn a_connection_reads_both_framings_and_reopens_after_close() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let answers: [&[u8]; 2] = [
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\nab\r\n0\r\n\r\n",
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nnot",
            ];
            for answer in answers {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut request = vec![0; 1024];
                let read = socket.read(&mut request).await.unwrap();
                assert!(request[..read].ends_with(b"\r\n\r\n"));
                socket.write_all(answer).await.unwrap();
                if answer.starts_with(b"HTTP/1.1 404") {
                    // Keep-alive: the next request arrives on this connection; close unanswered.
                    let _ = socket.read(&mut request).await.unwrap();
                }
            }
        });
        let endpoint = Endpoint::resolve(&format!("http://{address}")).await.unwrap();
        let request = Request::new(&endpoint, "GET", &[Part::Text("/")], &[], None);
        let mut connection = Connection::new(&endpoint, Duration::from_secs(5));
        let first = connection.send(request.as_bytes()).await.unwrap();
        assert_eq!((first.status, first.body), (200, &b"ab"[..]));
        let second = connection.send(request.as_bytes()).await.unwrap();
        assert_eq!((second.status, second.body), (404, &b"not"[..]));
        assert_eq!(second.describe(), "HTTP 404: not");
        assert_eq!(connection.reconnects, 1, "reopened after Connection: close");
        let third = connection.send(request.as_bytes()).await;
        assert!(third.is_err(), "closed without an answer: {third:?}");
        server.await.unwrap();
    }

    /// A server that reads the request and never answers: the request fails after the
    /// timeout, and the next one goes out on a new connection.
    #[tokio::test]
    async fn an_unanswered_request_times_out_and_the_next_reconnects() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let mut sockets = Vec::new();
            for _ in 0..2 {
                let (mut socket, _) = listener.accept().await.unwrap();
                let mut request = vec![0; 1024];
                let _ = socket.read(&mut request).await.unwrap();
                sockets.push(socket);
            }
            sockets
        });
        let endpoint = Endpoint::resolve(&format!("http://{address}/prefix/")).await.unwrap();
        let request = Request::new(&endpoint, "GET", &[Part::Text("/slow")], &[], None);
        assert!(request.as_bytes().starts_with(b"GET /prefix/slow HTTP/1.1\r\n"));
        let mut connection = Connection::new(&endpoint, Duration::from_millis(100));
        for attempt in 0..2 {
            let error = connection.send(request.as_bytes()).await.unwrap_err();
            assert!(error.to_string().contains("no answer within 100 ms"), "{error:#}");
            assert_eq!(connection.reconnects, attempt, "a timed-out connection is not reused");
        }
        assert_eq!(server.await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn only_plain_http_urls_are_taken() {
        assert!(Endpoint::resolve("https://127.0.0.1:1").await.is_err());
        let endpoint = Endpoint::resolve("http://127.0.0.1:9").await.unwrap();
        assert_eq!((endpoint.authority.as_str(), endpoint.path_prefix.as_str()), ("127.0.0.1:9", ""));
    }
}
