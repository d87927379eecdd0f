//! The TCP loop (RFC 7766): capped connections, idle timeout, pipelined queries answered
//! as they complete, so a slow forwarded name never holds up an owned one behind it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};

use super::handler::{Handler, Step, Transport};
use super::stats::Source;
use crate::wire::{self, parse_query, Parsed, Rcode};

/// Responses queued for one connection's writer before readers wait.
const WRITE_QUEUE: usize = 64;

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
        let (handler, upstream_slots) = (handler.clone(), upstream_slots.clone());
        tokio::spawn(async move {
            connection(stream, client, handler, upstream_slots, idle_timeout).await;
            drop(slot);
        });
    }
}

async fn connection(
    stream: TcpStream,
    client: SocketAddr,
    handler: Arc<Handler>,
    upstream_slots: Arc<Semaphore>,
    idle_timeout: Duration,
) {
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    // Each response with the time its query was received, for the latency histogram.
    let (responses, mut queue) = mpsc::channel::<(Vec<u8>, Instant)>(WRITE_QUEUE);
    let writer_handler = handler.clone();
    let write_loop = tokio::spawn(async move {
        while let Some((response, received)) = queue.recv().await {
            let frame_len = (response.len() as u16).to_be_bytes();
            if writer.write_all(&frame_len).await.is_err()
                || writer.write_all(&response).await.is_err()
            {
                break;
            }
            writer_handler.stats().responded(received);
        }
    });
    let mut packet = Vec::new();
    loop {
        let mut frame_len = [0u8; 2];
        match tokio::time::timeout(idle_timeout, reader.read_exact(&mut frame_len)).await {
            Ok(Ok(_)) => {}
            _ => break,
        }
        packet.resize(u16::from_be_bytes(frame_len) as usize, 0);
        match tokio::time::timeout(idle_timeout, reader.read_exact(&mut packet)).await {
            Ok(Ok(_)) => {}
            _ => break,
        }
        let received = Instant::now();
        let mut out = Vec::new();
        match handler.respond_now(&packet, client.ip(), Transport::Tcp, &mut out) {
            Step::Reply => {
                if responses.send((out, received)).await.is_err() {
                    break;
                }
            }
            Step::Silent => {}
            Step::Upstream => match upstream_slots.clone().try_acquire_owned() {
                Ok(slot) => {
                    let (handler, responses, query) =
                        (handler.clone(), responses.clone(), packet.clone());
                    tokio::spawn(async move {
                        handler
                            .respond_upstream(&query, Transport::Tcp, &mut out)
                            .await;
                        if !out.is_empty() {
                            let _ = responses.send((out, received)).await;
                        }
                        drop(slot);
                    });
                }
                Err(_) => {
                    if let Parsed::Query(parsed) = parse_query(&packet) {
                        wire::write_error(&parsed, Rcode::ServFail, false, &mut out);
                        let stats = handler.stats();
                        stats.answered_with(Source::Forwarded, parsed.qtype, &out);
                        if responses.send((out, received)).await.is_err() {
                            break;
                        }
                    }
                }
            },
        }
    }
    // Let answers still in flight reach the client before the writer closes.
    drop(responses);
    let _ = write_loop.await;
}
