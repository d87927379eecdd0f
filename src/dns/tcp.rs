//! The TCP loop (RFC 7766): capped connections, idle timeout, pipelined queries answered
//! as they complete, so a slow forwarded name never holds up an owned one behind it.
//!
//! One task per connection reads whatever the client has sent (often many pipelined
//! queries in one read), answers every complete query it can answer at once into one write
//! buffer, and writes that buffer with one system call. Queries that need an upstream run on
//! their own tasks and come back through a channel, in whatever order they complete.
//!
//! Owns: the accept loop (over `max_tcp_connections` a connection is closed at once; accept
//! errors back off through [`crate::accept`]) and each connection's bounds: at most
//! `max_queries_per_connection` of its queries wait on upstreams, at most one read of
//! queries and 64 KiB of answers are buffered, and nothing more is read while answers
//! cannot be written (backpressure); a client that reads no answer, or sends nothing with
//! nothing in flight, for `tcp_idle_timeout` is disconnected. Must not: wait on an upstream
//! in the connection's task, or log per query above debug level.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};

use super::handler::{Handler, Step, Transport};
use super::Slots;
use crate::accept::AcceptErrors;

/// Room made for each read (a larger message arrives over several reads).
const READ_CHUNK: usize = 16 << 10;
/// Answers buffered before they are written, even if more queries of the same read could
/// be answered at once: bounds a connection's memory when its answers are larger than its
/// queries.
const WRITE_CHUNK: usize = 64 << 10;

/// An upstream answer for a connection (empty when the query got none), and when its query
/// arrived.
type Answered = (Vec<u8>, Instant);

pub async fn serve(listener: TcpListener, handler: Arc<Handler>, slots: Slots) {
    let mut errors = AcceptErrors::new("dns");
    loop {
        let (stream, client) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(err) => {
                errors.failed(&err).await;
                continue;
            }
        };
        errors.accepted();
        let Ok(slot) = slots.tcp.clone().try_acquire_owned() else {
            // Closed at once rather than left waiting: the client tries elsewhere or again.
            handler.stats().tcp_rejected();
            tracing::debug!(%client, "tcp connection limit reached; closing");
            drop(stream);
            continue;
        };
        let connection = Connection {
            handler: handler.clone(),
            upstream_slots: slots.upstream.clone(),
            client,
            idle_timeout: slots.tcp_idle_timeout,
            max_in_flight: slots.queries_per_connection,
        };
        tokio::spawn(async move {
            connection.run(stream).await;
            drop(slot);
        });
    }
}

struct Connection {
    handler: Arc<Handler>,
    upstream_slots: Arc<Semaphore>,
    client: SocketAddr,
    idle_timeout: Duration,
    /// This connection's queries waiting on upstreams at once.
    max_in_flight: usize,
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

/// Why answering the buffered queries stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answering {
    /// Every complete query is answered or on its way upstream.
    Done,
    /// The write buffer is full: write it, then go on.
    WriteFirst,
    /// The connection's queries in flight are at the cap: wait for their answers.
    AtCap,
}

impl Connection {
    async fn run(self, mut stream: TcpStream) {
        let _ = stream.set_nodelay(true);
        // Room for every query in flight: an upstream task never waits to hand over.
        let (answers, mut upstream_answers) = mpsc::channel::<Answered>(self.max_in_flight);
        let mut input: Vec<u8> = Vec::with_capacity(READ_CHUNK);
        let mut pending = Pending::default();
        let mut out = Vec::new();
        let mut in_flight = 0usize;
        let mut reading = true;
        let mut received = Instant::now();
        let mut active = tokio::time::Instant::now();
        loop {
            let answering = self.answer_frames(
                &mut input,
                &mut pending,
                &mut out,
                &answers,
                &mut in_flight,
                received,
            );
            // A client that reads no answer for the idle timeout is gone, or means harm;
            // until then the connection reads nothing more (backpressure).
            if !pending.bytes.is_empty() {
                let flushed = pending.flush(&mut stream, &self.handler);
                if !matches!(
                    tokio::time::timeout(self.idle_timeout, flushed).await,
                    Ok(Ok(()))
                ) {
                    break;
                }
            }
            if answering == Answering::WriteFirst {
                continue;
            }
            if !reading && in_flight == 0 {
                break;
            }
            let read = reading && answering == Answering::Done && in_flight < self.max_in_flight;
            // Idle (RFC 7766 section 6.2.3): no query in flight and none arriving.
            let idle = read && in_flight == 0;
            tokio::select! {
                biased;
                Some(answer) = upstream_answers.recv(), if in_flight > 0 => {
                    let mut next = Some(answer);
                    while let Some((response, at)) = next {
                        in_flight -= 1;
                        if !response.is_empty() {
                            pending.push_frame(&response, at);
                        }
                        next = upstream_answers.try_recv().ok();
                    }
                    active = tokio::time::Instant::now();
                }
                result = read_more(&mut stream, &mut input), if read => match result {
                    Ok(n) if n > 0 => {
                        received = Instant::now();
                        active = tokio::time::Instant::now();
                    }
                    // EOF or error: stop reading, let answers in flight out.
                    _ => reading = false,
                },
                () = tokio::time::sleep_until(active + self.idle_timeout), if idle => {
                    reading = false;
                }
                else => break,
            }
        }
    }

    /// Answers the complete queries in `input`, keeping the rest, until the write buffer
    /// is full or the connection's queries in flight are at the cap.
    fn answer_frames(
        &self,
        input: &mut Vec<u8>,
        pending: &mut Pending,
        out: &mut Vec<u8>,
        answers: &mpsc::Sender<Answered>,
        in_flight: &mut usize,
        received: Instant,
    ) -> Answering {
        let mut at = 0;
        let mut answering = Answering::Done;
        while let Some(header) = input.get(at..at + 2) {
            let len = usize::from(u16::from_be_bytes([header[0], header[1]]));
            let Some(packet) = input.get(at + 2..at + 2 + len) else {
                break;
            };
            if pending.bytes.len() >= WRITE_CHUNK {
                answering = Answering::WriteFirst;
                break;
            }
            if *in_flight >= self.max_in_flight {
                answering = Answering::AtCap;
                break;
            }
            at += 2 + len;
            if super::frozen() {
                continue;
            }
            match self
                .handler
                .respond_now(packet, self.client.ip(), Transport::Tcp, out)
            {
                Step::Reply => pending.push_frame(out, received),
                Step::Silent => {}
                Step::Upstream => {
                    if self.upstream(packet, answers, received) {
                        *in_flight += 1;
                    } else if self.handler.respond_overloaded(packet, out) {
                        pending.push_frame(out, received);
                    }
                }
            }
        }
        input.drain(..at);
        answering
    }

    /// Sends `packet` upstream on a task of its own, if an upstream slot is free.
    fn upstream(&self, packet: &[u8], answers: &mpsc::Sender<Answered>, received: Instant) -> bool {
        let Ok(slot) = self.upstream_slots.clone().try_acquire_owned() else {
            return false;
        };
        let (handler, answers, query) = (self.handler.clone(), answers.clone(), packet.to_vec());
        tokio::spawn(async move {
            let mut response = Vec::new();
            handler
                .respond_upstream(&query, Transport::Tcp, &mut response)
                .await;
            // The slot bounds queries waiting on upstreams, not on a slow reader.
            drop(slot);
            // Never waits (the channel has room for every query in flight); an empty
            // response still tells the connection that the query is done.
            let _ = answers.send((response, received)).await;
        });
        true
    }
}

/// Reads what the client has sent onto the end of `input`: at least one byte, or 0 at EOF.
async fn read_more(stream: &mut TcpStream, input: &mut Vec<u8>) -> std::io::Result<usize> {
    input.reserve(READ_CHUNK);
    stream.read_buf(input).await
}
