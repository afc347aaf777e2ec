//! How the soak speaks to probegate: the webhook client over TLS, and plain HTTP GET for the
//! health and metrics listeners.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::support;

pub struct Client {
    connector: tokio_rustls::TlsConnector,
    addr: SocketAddr,
}

pub type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

/// An answer: status and body.
pub type Answer = (u16, Bytes);

impl Client {
    pub fn new(ca_pem: &str, addr: SocketAddr) -> Arc<Client> {
        Arc::new(Client {
            connector: support::connector(ca_pem),
            addr,
        })
    }

    pub async fn tls(&self) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
        let tcp = TcpStream::connect(self.addr).await?;
        tcp.set_nodelay(true)?;
        let name = rustls_pki_types::ServerName::IpAddress(self.addr.ip().into());
        self.connector.connect(name, tcp).await
    }

    pub async fn connect(&self) -> std::io::Result<Sender> {
        let tls = tokio::time::timeout(Duration::from_secs(10), self.tls())
            .await
            .map_err(|_| std::io::Error::other("connect timed out"))??;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(connection);
        Ok(sender)
    }

    /// The leaf a new connection is served.
    pub async fn served_leaf(&self) -> Option<Vec<u8>> {
        let tls = tokio::time::timeout(Duration::from_secs(4), self.tls())
            .await
            .ok()?
            .ok()?;
        Some(tls.get_ref().1.peer_certificates()?.first()?.to_vec())
    }

    /// One request on a kept-alive connection; `Err` when no answer came.
    pub async fn send(sender: &mut Sender, body: Vec<u8>) -> Result<Answer, String> {
        let request = hyper::Request::post("/mutate")
            .header("host", "localhost")
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let exchange = async {
            let response = sender
                .send_request(request)
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status().as_u16();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok((status, body))
        };
        // The API server's default webhook timeout.
        tokio::time::timeout(Duration::from_secs(10), exchange)
            .await
            .map_err(|_| "no answer within 10 s".to_owned())?
    }

    /// A body past the limit on a new connection: the status probegate answers. It may
    /// answer and close before the body is all written (as Go's client allows), so the
    /// answer is read while writing.
    pub async fn send_oversized(&self, body: &[u8]) -> Result<u16, String> {
        let tls = tokio::time::timeout(Duration::from_secs(10), self.tls())
            .await
            .map_err(|_| "connect timed out".to_owned())?
            .map_err(|e| e.to_string())?;
        let (mut read, mut write) = tokio::io::split(tls);
        let head = format!(
            "POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let writing = async {
            let _ = write.write_all(head.as_bytes()).await;
            let _ = write.write_all(body).await;
            let _ = write.flush().await;
            std::future::pending::<()>().await;
        };
        let reading = async {
            let mut answer = Vec::new();
            let mut buf = [0u8; 4096];
            while !answer.windows(4).any(|w| w == b"\r\n\r\n") {
                match read.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => answer.extend_from_slice(&buf[..n]),
                }
            }
            answer
        };
        let answer = tokio::time::timeout(Duration::from_secs(10), async {
            tokio::select! {
                answer = reading => answer,
                _ = writing => Vec::new(),
            }
        })
        .await
        .map_err(|_| "no answer within 10 s".to_owned())?;
        parse_status(String::from_utf8_lossy(&answer).into_owned())
            .map(|(status, _)| status)
            .ok_or_else(|| format!("no HTTP answer: {:?}", String::from_utf8_lossy(&answer)))
    }

    /// One request on a new connection, closed after.
    pub async fn send_once(&self, body: Vec<u8>) -> Result<Answer, String> {
        let mut sender = self.connect().await.map_err(|e| e.to_string())?;
        Client::send(&mut sender, body).await
    }
}

/// Plain HTTP GET on a new connection: status and body.
pub async fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    tokio::time::timeout(Duration::from_secs(5), http_get_once(addr, path))
        .await
        .ok()
        .flatten()
}

async fn http_get_once(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(addr).await.ok()?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .await
        .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).await.ok()?;
    parse_status(text)
}

pub fn http_get_blocking(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )
        .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    parse_status(text)
}

fn parse_status(text: String) -> Option<(u16, String)> {
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    Some((status, body))
}
