//! A local SMTP sink: accepts connections on a loopback port, speaks the commands a client
//! sends (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT), records each accepted message, and
//! fails on demand (transient 451 on data, 550 for one mailbox, a slow data reply).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// One accepted message.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) from: String,
    pub(crate) to: Vec<String>,
    pub(crate) data: String,
}

impl Received {
    /// The message with quoted-printable soft breaks joined and `=XX` decoded (the parts'
    /// text as written).
    pub(crate) fn decoded(&self) -> String {
        let joined = self.data.replace("=\n", "");
        let bytes = joined.as_bytes();
        let mut out = Vec::with_capacity(bytes.len());
        let mut i = 0;
        while i < bytes.len() {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match (bytes[i], hex) {
                (b'=', Some(b)) => {
                    out.push(b);
                    i += 3;
                }
                (b, _) => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }

    /// The first header `name`'s value.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        let prefix = format!("{name}: ");
        self.data
            .lines()
            .take_while(|l| !l.is_empty())
            .find_map(|l| l.strip_prefix(prefix.as_str()))
    }
}

/// What the sink does wrong.
#[derive(Debug, Clone)]
pub(crate) enum Fault {
    None,
    /// 451 to the next N messages' data.
    TransientData(u32),
    /// 550 to RCPT for this address.
    UnknownMailbox(String),
    /// Waits this long before answering data.
    SlowData(Duration),
    /// Waits this long before greeting a new connection.
    SlowGreeting(Duration),
    /// Answers every message's data with this reply.
    RejectData(String),
}

#[derive(Debug, Default)]
struct State {
    messages: Vec<Received>,
    fault: Option<Fault>,
    data_attempts: u32,
    rcpt_attempts: u32,
}

/// The running sink.
pub(crate) struct Sink {
    port: u16,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl Sink {
    pub(crate) async fn start() -> Sink {
        Sink::start_on(0).await
    }

    pub(crate) async fn start_on(port: u16) -> Sink {
        let listener = TcpListener::bind(("127.0.0.1", port)).await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let state = Arc::new(Mutex::new(State::default()));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let state = shared.clone();
                tokio::spawn(async move {
                    let _ = session(socket, state).await;
                });
            }
        });
        Sink { port, state, task }
    }

    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    pub(crate) fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    pub(crate) fn fail(&self, fault: Fault) {
        self.state.lock().expect("lock").fault = Some(fault);
    }

    pub(crate) fn messages(&self) -> Vec<Received> {
        self.state.lock().expect("lock").messages.clone()
    }

    pub(crate) fn data_attempts(&self) -> u32 {
        self.state.lock().expect("lock").data_attempts
    }

    pub(crate) fn rcpt_attempts(&self) -> u32 {
        self.state.lock().expect("lock").rcpt_attempts
    }

    /// Stops listening (the port is free again).
    pub(crate) async fn stop(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

async fn session(socket: tokio::net::TcpStream, state: Arc<Mutex<State>>) -> std::io::Result<()> {
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read).lines();
    let greeting_delay = match state.lock().expect("lock").fault {
        Some(Fault::SlowGreeting(d)) => Some(d),
        _ => None,
    };
    if let Some(d) = greeting_delay {
        tokio::time::sleep(d).await;
    }
    write.write_all(b"220 sink ESMTP\r\n").await?;
    let mut from = String::new();
    let mut to = Vec::new();
    while let Some(line) = lines.next_line().await? {
        let upper = line.to_ascii_uppercase();
        let reply: String = if upper.starts_with("EHLO") {
            "250-sink\r\n250-8BITMIME\r\n250 SMTPUTF8".into()
        } else if upper.starts_with("HELO") || upper.starts_with("NOOP") {
            "250 OK".into()
        } else if upper.starts_with("RSET") {
            from.clear();
            to.clear();
            "250 OK".into()
        } else if upper.starts_with("MAIL FROM:") {
            from = address(&line["MAIL FROM:".len()..]);
            "250 OK".into()
        } else if upper.starts_with("RCPT TO:") {
            let rcpt = address(&line["RCPT TO:".len()..]);
            let mut s = state.lock().expect("lock");
            s.rcpt_attempts += 1;
            match &s.fault {
                Some(Fault::UnknownMailbox(a)) if rcpt == format!("<{a}>") => {
                    "550 5.1.1 no such mailbox".into()
                }
                _ => {
                    to.push(rcpt);
                    "250 OK".into()
                }
            }
        } else if upper.starts_with("DATA") {
            write.write_all(b"354 go ahead\r\n").await?;
            let mut data = String::new();
            while let Some(l) = lines.next_line().await? {
                if l == "." {
                    break;
                }
                data.push_str(l.strip_prefix('.').unwrap_or(&l));
                data.push('\n');
            }
            let slow = {
                let s = state.lock().expect("lock");
                match s.fault {
                    Some(Fault::SlowData(d)) => Some(d),
                    _ => None,
                }
            };
            if let Some(d) = slow {
                tokio::time::sleep(d).await;
            }
            let mut s = state.lock().expect("lock");
            s.data_attempts += 1;
            let reply = match &mut s.fault {
                Some(Fault::TransientData(n)) if *n > 0 => {
                    *n -= 1;
                    "451 4.3.0 try again later".to_owned()
                }
                Some(Fault::RejectData(reply)) => reply.clone(),
                _ => {
                    s.messages.push(Received {
                        from: from.clone(),
                        to: to.clone(),
                        data,
                    });
                    "250 2.0.0 queued".to_owned()
                }
            };
            from.clear();
            to.clear();
            reply
        } else if upper.starts_with("QUIT") {
            write.write_all(b"221 bye\r\n").await?;
            return Ok(());
        } else {
            "502 command not implemented".into()
        };
        write.write_all(reply.as_bytes()).await?;
        write.write_all(b"\r\n").await?;
    }
    Ok(())
}

/// The address part of `<a@b> PARAMS` as written (`<a@b>`).
fn address(rest: &str) -> String {
    rest.trim().split(' ').next().unwrap_or("").to_owned()
}
