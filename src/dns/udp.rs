//! The UDP loop: receive, answer inline when possible, hand the rest to a bounded set of
//! upstream tasks.

use std::sync::Arc;

use tokio::net::UdpSocket;
use tokio::sync::Semaphore;

use super::handler::{Handler, Step, Transport};
use super::stats::Source;
use crate::wire::{self, parse_query, Parsed, Rcode};

/// Largest datagram we read; anything longer is cut and then fails to parse.
const RECV_BUFFER: usize = 4096;

pub async fn serve(socket: Arc<UdpSocket>, handler: Arc<Handler>, upstream_slots: Arc<Semaphore>) {
    let mut packet = vec![0u8; RECV_BUFFER];
    let mut out = Vec::with_capacity(wire::MAX_UDP_PAYLOAD as usize);
    loop {
        let (len, client) = match socket.recv_from(&mut packet).await {
            Ok(received) => received,
            Err(err) => {
                // ICMP errors from earlier sends surface here on Linux; they are not ours
                // to act on.
                tracing::debug!(error = %err, "udp receive failed");
                continue;
            }
        };
        if super::FAULT_FREEZE.load(std::sync::atomic::Ordering::Relaxed) {
            continue;
        }
        let received = std::time::Instant::now();
        let query = &packet[..len];
        match handler.respond_now(query, client.ip(), Transport::Udp, &mut out) {
            Step::Reply => {
                send(&socket, &out, client).await;
                handler.stats().responded(received);
            }
            Step::Silent => {}
            Step::Upstream => match upstream_slots.clone().try_acquire_owned() {
                Ok(slot) => {
                    let (socket, handler, query) =
                        (socket.clone(), handler.clone(), query.to_vec());
                    tokio::spawn(async move {
                        let mut out = Vec::new();
                        handler
                            .respond_upstream(&query, Transport::Udp, &mut out)
                            .await;
                        if !out.is_empty() {
                            send(&socket, &out, client).await;
                            handler.stats().responded(received);
                        }
                        drop(slot);
                    });
                }
                Err(_) => {
                    // Saturated: a fast SERVFAIL beats a silent drop the client waits on.
                    if let Parsed::Query(parsed) = parse_query(query) {
                        wire::write_error(&parsed, Rcode::ServFail, false, &mut out);
                        send(&socket, &out, client).await;
                        let stats = handler.stats();
                        stats.answered_with(Source::Forwarded, parsed.qtype, &out);
                        stats.responded(received);
                    }
                }
            },
        }
    }
}

async fn send(socket: &UdpSocket, response: &[u8], client: std::net::SocketAddr) {
    if let Err(err) = socket.send_to(response, client).await {
        tracing::debug!(error = %err, %client, "udp send failed");
    }
}
