//! A minimal HTTP/1.x server exchange for one connection: read one request (bounded), answer
//! it, close. Used by the demo's page and the stub's metrics endpoint. Pure, host-tested.

use alloc::format;
use alloc::vec::Vec;

/// The largest request head read; a longer one is answered 431 and the connection closed.
pub const MAX_REQUEST: usize = 2048;

/// A request line, as far as the handlers care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request<'a> {
    pub method: &'a str,
    pub path: &'a str,
}

/// What a handler answers.
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

impl Response {
    /// A plain-text answer.
    pub fn text(status: u16, body: &str) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.as_bytes().to_vec(),
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        431 => "Request Header Fields Too Large",
        _ => "Error",
    }
}

/// Parses a complete request head (ending in an empty line): `None` while incomplete,
/// `Some(Err(()))` when malformed.
pub fn parse(head: &[u8]) -> Option<Result<Request<'_>, ()>> {
    let end = head
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .or_else(|| head.windows(2).position(|w| w == b"\n\n"))?;
    let Some(head) = head.get(..end) else {
        return Some(Err(()));
    };
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let Ok(line) = core::str::from_utf8(line) else {
        return Some(Err(()));
    };
    let mut words = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(path), Some(version), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Some(Err(()));
    };
    if method.is_empty() || !path.starts_with('/') || !version.starts_with("HTTP/1.") {
        return Some(Err(()));
    }
    Some(Ok(Request { method, path }))
}

/// The bytes of `r` as an HTTP/1.1 answer that closes the connection.
pub fn encode(r: &Response) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        r.status,
        reason(r.status),
        r.content_type,
        r.body.len()
    )
    .into_bytes();
    out.extend_from_slice(&r.body);
    out
}

/// One connection's exchange: request bytes in, answer bytes out.
#[derive(Default)]
pub struct Exchange {
    head: Vec<u8>,
    answer: Option<Vec<u8>>,
    sent: usize,
}

impl Exchange {
    /// Takes request bytes; once the head is complete (or too long, or malformed) the answer
    /// is made with `handler`. Returns how many of `data` were taken.
    pub fn feed(&mut self, data: &[u8], handler: impl FnOnce(Request<'_>) -> Response) -> usize {
        if self.answer.is_some() {
            return data.len();
        }
        let room = MAX_REQUEST - self.head.len();
        let take = data.len().min(room);
        self.head
            .extend_from_slice(data.get(..take).unwrap_or_default());
        match parse(&self.head) {
            Some(Ok(req)) => self.answer = Some(encode(&handler(req))),
            Some(Err(())) => self.answer = Some(encode(&Response::text(400, "bad request\n"))),
            None if self.head.len() >= MAX_REQUEST => {
                self.answer = Some(encode(&Response::text(431, "request too large\n")))
            }
            None => {}
        }
        take
    }

    /// The answer's bytes not sent yet (empty before the answer is made).
    pub fn pending(&self) -> &[u8] {
        self.answer
            .as_deref()
            .and_then(|a| a.get(self.sent..))
            .unwrap_or_default()
    }

    /// Records `n` more answer bytes sent.
    pub fn sent(&mut self, n: usize) {
        self.sent += n;
    }

    /// The whole answer has been sent.
    pub fn done(&self) -> bool {
        self.answer.is_some() && self.pending().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page(r: Request<'_>) -> Response {
        match (r.method, r.path) {
            ("GET", "/") => Response::text(200, "hello\n"),
            ("GET", _) => Response::text(404, "not found\n"),
            _ => Response::text(405, "GET only\n"),
        }
    }

    fn exchange(chunks: &[&[u8]]) -> Vec<u8> {
        let mut x = Exchange::default();
        for c in chunks {
            x.feed(c, page);
        }
        let out = x.pending().to_vec();
        x.sent(out.len());
        assert!(out.is_empty() || x.done());
        out
    }

    #[test]
    fn a_request_split_anywhere_gets_one_answer() {
        let want = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 6\r\nConnection: close\r\n\r\nhello\n";
        assert_eq!(exchange(&[b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"]), want);
        assert_eq!(exchange(&[b"GET / HT", b"TP/1.0\r\n", b"\r\n"]), want);
        assert_eq!(exchange(&[b"GET / HTTP/1.1\n\n"]), want, "bare newlines");
        assert_eq!(exchange(&[b"GET / HTTP/1.1\r\n"]), b"", "incomplete");
    }

    #[test]
    fn status_lines_for_other_paths_methods_and_garbage() {
        let status = |req: &[u8]| {
            let out = exchange(&[req]);
            String::from_utf8(out[..12].to_vec()).unwrap()
        };
        assert_eq!(status(b"GET /nope HTTP/1.1\r\n\r\n"), "HTTP/1.1 404");
        assert_eq!(status(b"POST / HTTP/1.1\r\n\r\n"), "HTTP/1.1 405");
        assert_eq!(status(b"GET\r\n\r\n"), "HTTP/1.1 400");
        assert_eq!(status(b"GET / HTTP/1.1 x\r\n\r\n"), "HTTP/1.1 400");
        assert_eq!(status(b"GET nope HTTP/1.1\r\n\r\n"), "HTTP/1.1 400");
        assert_eq!(status(b"\xff\xfe / HTTP/1.1\r\n\r\n"), "HTTP/1.1 400");
        assert_eq!(status(&[b'a'; MAX_REQUEST + 10]), "HTTP/1.1 431");
    }

    #[test]
    fn input_after_the_request_and_partial_sends() {
        let mut x = Exchange::default();
        assert_eq!(x.feed(b"GET / HTTP/1.1\r\n\r\nGET /x", page), 24);
        assert_eq!(x.feed(&[0; 5000], page), 5000, "drained, ignored");
        let n = x.pending().len();
        x.sent(10);
        assert_eq!(x.pending().len(), n - 10);
        assert!(!x.done());
        x.sent(n - 10);
        assert!(x.done());
    }

    use alloc::string::String;
}
