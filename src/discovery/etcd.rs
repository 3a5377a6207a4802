//! A small etcd v3 client over etcd's JSON gateway (`/v3/...`, HTTP/1.1): the calls
//! `--announce` and `nook watch` need (lease grant, keepalive and revoke; put, range;
//! watch), on std's TcpStream. Keys and values are base64 in the gateway's JSON, int64s
//! are strings. See ARCHITECTURE.md ("Service discovery") for why not a gRPC client.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde_json::{json, Value};

#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    #[error("etcd endpoint {0:?}: not http://HOST:PORT")]
    BadEndpoint(String),
    #[error("etcd at {endpoint}: {why}")]
    Unreachable { endpoint: String, why: String },
    #[error("etcd at {endpoint}: {call}: {why}")]
    Refused {
        endpoint: String,
        call: &'static str,
        why: String,
    },
}

/// One `http://host:port` endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
}

impl Endpoint {
    pub fn parse(s: &str) -> Result<Endpoint, EtcdError> {
        let bad = || EtcdError::BadEndpoint(s.to_string());
        let rest = s.trim().strip_prefix("http://").ok_or_else(bad)?;
        let rest = rest.trim_end_matches('/');
        let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
        let port: u16 = port.parse().map_err(|_| bad())?;
        if host.is_empty() || host.contains('/') || port == 0 {
            return Err(bad());
        }
        Ok(Endpoint {
            host: host.trim_matches(['[', ']']).to_string(),
            port,
        })
    }

    fn url(&self) -> String {
        format!("http://{}:{}", self.host, self.port)
    }
}

/// A comma-separated endpoint list (`--announce`, `nook watch`).
pub fn endpoints(list: &str) -> Result<Vec<Endpoint>, EtcdError> {
    let eps: Vec<Endpoint> = list
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(Endpoint::parse)
        .collect::<Result<_, _>>()?;
    if eps.is_empty() {
        return Err(EtcdError::BadEndpoint(list.to_string()));
    }
    Ok(eps)
}

pub struct Client {
    endpoints: Vec<Endpoint>,
    timeout: Duration,
}

/// A key and its value, decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kv {
    pub key: String,
    pub value: String,
}

/// One change a watch reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Put(Kv),
    Delete(String),
}

pub fn b64(s: &str) -> String {
    B64.encode(s.as_bytes())
}

fn unb64(v: &Value) -> String {
    v.as_str()
        .and_then(|s| B64.decode(s).ok())
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// The key just past every key that starts with `prefix` (etcd's range_end).
pub fn prefix_end(prefix: &str) -> String {
    let mut b = prefix.as_bytes().to_vec();
    while let Some(last) = b.pop() {
        if last < 0xff {
            b.push(last + 1);
            return String::from_utf8_lossy(&b).into_owned();
        }
    }
    "\0".into()
}

fn int(v: &Value) -> i64 {
    match v {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

impl Client {
    pub fn new(endpoints: Vec<Endpoint>, timeout: Duration) -> Client {
        Client { endpoints, timeout }
    }

    /// POST a JSON body to each endpoint in turn until one answers; its first JSON
    /// message (streaming calls answer with a stream: the first is what we asked for).
    fn call(&self, call: &'static str, path: &str, body: &Value) -> Result<Value, EtcdError> {
        let mut last = None;
        for ep in &self.endpoints {
            match self.post(ep, path, body) {
                Ok((status, v)) if status == 200 && v.get("error").is_none() => return Ok(v),
                Ok((status, v)) => {
                    let why = v
                        .get("message")
                        .or_else(|| v.get("error"))
                        .and_then(Value::as_str)
                        .map(str::to_string)
                        .unwrap_or_else(|| format!("HTTP {status}: {v}"));
                    return Err(EtcdError::Refused {
                        endpoint: ep.url(),
                        call,
                        why,
                    });
                }
                Err(why) => {
                    last = Some(EtcdError::Unreachable {
                        endpoint: ep.url(),
                        why,
                    })
                }
            }
        }
        Err(last.expect("at least one endpoint"))
    }

    fn connect(&self, ep: &Endpoint) -> Result<TcpStream, String> {
        let addrs = (ep.host.as_str(), ep.port)
            .to_socket_addrs()
            .map_err(|e| format!("resolving {}: {e}", ep.host))?;
        let mut last = "no address".to_string();
        for a in addrs {
            match TcpStream::connect_timeout(&a, self.timeout) {
                Ok(s) => {
                    let _ = s.set_read_timeout(Some(self.timeout));
                    let _ = s.set_write_timeout(Some(self.timeout));
                    return Ok(s);
                }
                Err(e) => last = format!("connecting to {a}: {e}"),
            }
        }
        Err(last)
    }

    fn send(&self, ep: &Endpoint, path: &str, body: &Value) -> Result<TcpStream, String> {
        let mut s = self.connect(ep)?;
        let text = body.to_string();
        let req = format!(
            "POST {path} HTTP/1.1\r\nHost: {}:{}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
            ep.host,
            ep.port,
            text.len()
        );
        s.write_all(req.as_bytes())
            .map_err(|e| format!("sending {path}: {e}"))?;
        Ok(s)
    }

    fn post(&self, ep: &Endpoint, path: &str, body: &Value) -> Result<(u16, Value), String> {
        let s = self.send(ep, path, body)?;
        let mut r = Response::read_head(BufReader::new(s))?;
        let v = r.next_message()?.ok_or("an empty answer")?;
        Ok((r.status, v))
    }

    /// A lease of `ttl` seconds; its id.
    pub fn grant(&self, ttl: u64) -> Result<i64, EtcdError> {
        let v = self.call("granting a lease", "/v3/lease/grant", &json!({"TTL": ttl}))?;
        Ok(int(&v["ID"]))
    }

    /// Renew the lease; the TTL left (0: the lease is gone).
    pub fn keepalive(&self, lease: i64) -> Result<i64, EtcdError> {
        let v = self.call(
            "renewing the lease",
            "/v3/lease/keepalive",
            &json!({"ID": lease.to_string()}),
        )?;
        Ok(int(&v["result"]["TTL"]))
    }

    pub fn revoke(&self, lease: i64) -> Result<(), EtcdError> {
        self.call(
            "revoking the lease",
            "/v3/lease/revoke",
            &json!({"ID": lease.to_string()}),
        )
        .map(|_| ())
    }

    pub fn put(&self, key: &str, value: &str, lease: i64) -> Result<(), EtcdError> {
        let body = json!({"key": b64(key), "value": b64(value), "lease": lease.to_string()});
        self.call("putting the key", "/v3/kv/put", &body)
            .map(|_| ())
    }

    /// Every key under `prefix`, and the store's revision.
    pub fn range(&self, prefix: &str) -> Result<(Vec<Kv>, i64), EtcdError> {
        let body = json!({"key": b64(prefix), "range_end": b64(&prefix_end(prefix))});
        let v = self.call("reading the keys", "/v3/kv/range", &body)?;
        let kvs = v["kvs"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|kv| Kv {
                        key: unb64(&kv["key"]),
                        value: unb64(&kv["value"]),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok((kvs, int(&v["header"]["revision"])))
    }

    /// Watch every key under `prefix` from revision `from`: `each` gets every batch of
    /// changes until it returns false or the stream ends (Ok) or breaks (Err).
    pub fn watch(
        &self,
        prefix: &str,
        from: i64,
        mut each: impl FnMut(Vec<Event>) -> bool,
    ) -> Result<(), EtcdError> {
        let body = json!({"create_request": {
            "key": b64(prefix), "range_end": b64(&prefix_end(prefix)), "start_revision": from.to_string()
        }});
        let mut last = None;
        for ep in &self.endpoints {
            let unreachable = |why: String| EtcdError::Unreachable {
                endpoint: ep.url(),
                why,
            };
            let s = match self.send(ep, "/v3/watch", &body) {
                Ok(s) => s,
                Err(why) => {
                    last = Some(unreachable(why));
                    continue;
                }
            };
            // A watch is quiet until something changes: no read timeout on it.
            let _ = s.set_read_timeout(None);
            let mut r = Response::read_head(BufReader::new(s)).map_err(unreachable)?;
            loop {
                let Some(m) = r.next_message().map_err(unreachable)? else {
                    return Ok(());
                };
                if r.status != 200 || m.get("error").is_some() {
                    return Err(EtcdError::Refused {
                        endpoint: ep.url(),
                        call: "watching the keys",
                        why: m.to_string(),
                    });
                }
                let events = m["result"]["events"]
                    .as_array()
                    .map(|evs| {
                        evs.iter()
                            .map(|e| {
                                let key = unb64(&e["kv"]["key"]);
                                if e["type"] == "DELETE" {
                                    Event::Delete(key)
                                } else {
                                    Event::Put(Kv {
                                        key,
                                        value: unb64(&e["kv"]["value"]),
                                    })
                                }
                            })
                            .collect::<Vec<_>>()
                    })
                    .unwrap_or_default();
                if !events.is_empty() && !each(events) {
                    return Ok(());
                }
            }
        }
        Err(last.expect("at least one endpoint"))
    }
}

/// An HTTP/1.1 response read as a series of JSON messages (a plain body or a chunked
/// stream of them).
struct Response {
    status: u16,
    stream: serde_json::StreamDeserializer<'static, serde_json::de::IoRead<Body>, Value>,
}

/// The body's bytes, de-chunked when the response is chunked.
struct Body {
    r: BufReader<TcpStream>,
    chunked: bool,
    left: usize,
    done: bool,
}

impl Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.done {
            return Ok(0);
        }
        if !self.chunked {
            return self.r.read(buf);
        }
        if self.left == 0 {
            let mut line = String::new();
            // The CRLF that ends the previous chunk, then the next size line.
            while line.trim().is_empty() {
                line.clear();
                if self.r.read_line(&mut line)? == 0 {
                    self.done = true;
                    return Ok(0);
                }
            }
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
                .map_err(|_| std::io::Error::other(format!("bad chunk size {line:?}")))?;
            if size == 0 {
                self.done = true;
                return Ok(0);
            }
            self.left = size;
        }
        let n = buf.len().min(self.left);
        let got = self.r.read(&mut buf[..n])?;
        if got == 0 {
            self.done = true;
        }
        self.left -= got;
        Ok(got)
    }
}

impl Response {
    fn read_head(mut r: BufReader<TcpStream>) -> Result<Response, String> {
        let mut line = String::new();
        r.read_line(&mut line)
            .map_err(|e| format!("reading the answer: {e}"))?;
        let status: u16 = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("not an HTTP answer: {:?}", line.trim()))?;
        let mut chunked = false;
        loop {
            line.clear();
            r.read_line(&mut line)
                .map_err(|e| format!("reading the answer's headers: {e}"))?;
            let l = line.trim();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':') {
                if k.eq_ignore_ascii_case("transfer-encoding")
                    && v.trim().eq_ignore_ascii_case("chunked")
                {
                    chunked = true;
                }
            }
        }
        let body = Body {
            r,
            chunked,
            left: 0,
            done: false,
        };
        Ok(Response {
            status,
            stream: serde_json::Deserializer::from_reader(body).into_iter(),
        })
    }

    /// The next JSON message of the body, None at its end.
    fn next_message(&mut self) -> Result<Option<Value>, String> {
        match self.stream.next() {
            None => Ok(None),
            Some(Ok(v)) => Ok(Some(v)),
            Some(Err(e)) if e.is_eof() => Ok(None),
            Some(Err(e)) => Err(format!("reading the answer: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_parse_or_say_why() {
        assert_eq!(
            endpoints("http://127.0.0.1:2379,http://[::1]:2380/").unwrap(),
            vec![
                Endpoint {
                    host: "127.0.0.1".into(),
                    port: 2379
                },
                Endpoint {
                    host: "::1".into(),
                    port: 2380
                }
            ]
        );
        for bad in [
            "",
            "127.0.0.1:2379",
            "https://x:1",
            "http://x",
            "http://x:0",
            "http://:1",
        ] {
            assert!(endpoints(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn prefix_end_is_the_next_key() {
        assert_eq!(prefix_end("/a/"), "/a0");
        assert_eq!(prefix_end("ab"), "ac");
    }
}
