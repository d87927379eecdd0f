//! The TCP loop (RFC 7766): capped connections, idle timeout, pipelined queries answered
//! as they complete, so a slow forwarded name never holds up an owned one behind it.
//!
//! One task per connection reads whatever the client has sent (often many pipelined
//! queries in one read), answers every complete query it can answer at once into one write
//! buffer, and writes that buffer with one system call. Queries that need an upstream run on
//! their own tasks and come back through a channel, in whatever order they complete.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};

use super::handler::{Handler, Step, Transport};
use super::stats::Source;
use crate::wire::{self, parse_query, Parsed, Rcode};

/// Upstream answers queued for one connection before their tasks wait.
const UPSTREAM_QUEUE: usize = 64;
/// Room made for each read (a larger message arrives over several reads).
const READ_CHUNK: usize = 16 << 10;

pub async fn serve(
    listener: TcpListener,
    handler: Arc<Handler>,
    upstream_slots: Arc<Semaphore>,
    connection_slots: Arc<Semaphore>,
    idle_timeout: Duration,
) {
    loop {
        let (stream, client) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                // EMFILE and friends: back off instead of spinning a core on retries.
                tracing::warn!(error = %err, "tcp accept failed; pausing accepts for 100 ms");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = connection_slots.clone().try_acquire_owned() else {
            tracing::debug!(%client, "tcp connection limit reached; closing");
            drop(stream);
            continue;
        };
        let connection = Connection {
            handler: handler.clone(),
            upstream_slots: upstream_slots.clone(),
            client,
        };
        tokio::spawn(async move {
            connection.run(stream, idle_timeout).await;
            drop(slot);
        });
    }
}

struct Connection {
    handler: Arc<Handler>,
    upstream_slots: Arc<Semaphore>,
    client: SocketAddr,
}

/// Answers waiting to be written, each framed, and when their queries arrived.
#[derive(Default)]
struct Pending {
    bytes: Vec<u8>,
    /// Arrival time of the answers in `bytes` (one entry per read batch), with their count.
    received: Vec<(Instant, u64)>,
}

impl Pending {
    fn push_frame(&mut self, response: &[u8], received: Instant) {
        // A response never exceeds the frame limit (the TCP limit is 65,535 bytes).
        let len = u16::try_from(response.len()).unwrap_or(u16::MAX);
        self.bytes.extend_from_slice(&len.to_be_bytes());
        self.bytes
            .extend_from_slice(&response[..usize::from(len).min(response.len())]);
        match self.received.last_mut() {
            Some((at, count)) if *at == received => *count += 1,
            _ => self.received.push((received, 1)),
        }
    }

    async fn flush(&mut self, stream: &mut TcpStream, handler: &Handler) -> std::io::Result<()> {
        if self.bytes.is_empty() {
            return Ok(());
        }
        stream.write_all(&self.bytes).await?;
        self.bytes.clear();
        if !self.received.is_empty() {
            let now = Instant::now();
            for (received, count) in self.received.drain(..) {
                handler
                    .stats()
                    .observe_many(now.saturating_duration_since(received), count);
            }
        }
        Ok(())
    }
}

impl Connection {
    async fn run(self, mut stream: TcpStream, idle_timeout: Duration) {
        let _ = stream.set_nodelay(true);
        let (answers, mut upstream_answers) = mpsc::channel::<(Vec<u8>, Instant)>(UPSTREAM_QUEUE);
        // Dropped when the client stops sending, so the channel closes once the last
        // upstream query in flight has answered.
        let mut answers = Some(answers);
        let mut input: Vec<u8> = Vec::with_capacity(READ_CHUNK);
        let mut pending = Pending::default();
        let mut out = Vec::new();
        let mut reading = true;
        loop {
            if reading {
                let Some(sender) = answers.as_ref() else {
                    break;
                };
                let mut stop = false;
                tokio::select! {
                    biased;
                    Some((response, received)) = upstream_answers.recv() => {
                        pending.push_frame(&response, received);
                        while let Ok((response, received)) = upstream_answers.try_recv() {
                            pending.push_frame(&response, received);
                        }
                    }
                    read = tokio::time::timeout(idle_timeout, read_more(&mut stream, &mut input)) => {
                        match read {
                            Ok(Ok(n)) if n > 0 => {
                                let received = Instant::now();
                                self.answer_frames(&mut input, &mut pending, &mut out, sender, received);
                            }
                            // EOF, error or idle: stop reading, let answers in flight out.
                            _ => stop = true,
                        }
                    }
                }
                if stop {
                    reading = false;
                    answers = None;
                }
            } else {
                match upstream_answers.recv().await {
                    Some((response, received)) => pending.push_frame(&response, received),
                    None => {
                        let _ = pending.flush(&mut stream, &self.handler).await;
                        break;
                    }
                }
            }
            if pending.flush(&mut stream, &self.handler).await.is_err() {
                break;
            }
        }
    }

    /// Answers every complete frame in `input` and keeps the incomplete rest.
    fn answer_frames(
        &self,
        input: &mut Vec<u8>,
        pending: &mut Pending,
        out: &mut Vec<u8>,
        answers: &mpsc::Sender<(Vec<u8>, Instant)>,
        received: Instant,
    ) {
        let mut at = 0;
        while let Some(header) = input.get(at..at + 2) {
            let len = usize::from(u16::from_be_bytes([header[0], header[1]]));
            let Some(packet) = input.get(at + 2..at + 2 + len) else {
                break;
            };
            at += 2 + len;
            match self
                .handler
                .respond_now(packet, self.client.ip(), Transport::Tcp, out)
            {
                Step::Reply => pending.push_frame(out, received),
                Step::Silent => {}
                Step::Upstream => self.upstream(packet, answers, pending, out, received),
            }
        }
        input.drain(..at);
    }

    fn upstream(
        &self,
        packet: &[u8],
        answers: &mpsc::Sender<(Vec<u8>, Instant)>,
        pending: &mut Pending,
        out: &mut Vec<u8>,
        received: Instant,
    ) {
        match self.upstream_slots.clone().try_acquire_owned() {
            Ok(slot) => {
                let (handler, answers, query) =
                    (self.handler.clone(), answers.clone(), packet.to_vec());
                tokio::spawn(async move {
                    let mut out = Vec::new();
                    handler
                        .respond_upstream(&query, Transport::Tcp, &mut out)
                        .await;
                    if !out.is_empty() {
                        let _ = answers.send((out, received)).await;
                    }
                    drop(slot);
                });
            }
            Err(_) => {
                if let Parsed::Query(parsed) = parse_query(packet) {
                    wire::write_error(&parsed, Rcode::ServFail, false, out);
                    let stats = self.handler.stats();
                    stats.answered_with(Source::Forwarded, parsed.qtype, out);
                    pending.push_frame(out, received);
                }
            }
        }
    }
}

/// Reads what the client has sent onto the end of `input`: at least one byte, or 0 at EOF.
async fn read_more(stream: &mut TcpStream, input: &mut Vec<u8>) -> std::io::Result<usize> {
    input.reserve(READ_CHUNK);
    stream.read_buf(input).await
}
