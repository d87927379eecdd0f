//! ICMP echo over one raw socket (pnet; needs CAP_NET_RAW), shared by every ICMP probe.
//!
//! A dedicated thread owns the socket: it sends queued echo requests, matches replies by
//! identifier and sequence, and answers each waiting probe or times it out. IPv4 only.
//!
//! Why a raw socket and not an unprivileged ping socket (SOCK_DGRAM/IPPROTO_ICMP): the
//! package documents a drop-in that grants CAP_NET_RAW, which works on every host, whereas a
//! ping socket depends on net.ipv4.ping_group_range covering the unit's dynamic user (a host
//! setting pathdns cannot see or change). pnet is used for this socket and nothing else.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use pnet_packet::icmp::echo_reply::EchoReplyPacket;
use pnet_packet::icmp::echo_request::MutableEchoRequestPacket;
use pnet_packet::icmp::{IcmpPacket, IcmpTypes};
use pnet_packet::ip::IpNextHeaderProtocols;
use pnet_packet::Packet;
use pnet_transport::{
    icmp_packet_iter, transport_channel, TransportChannelType, TransportProtocol,
};
use tokio::sync::oneshot;

use super::ProbeOutcome;

struct Request {
    target: Ipv4Addr,
    deadline: Instant,
    reply: oneshot::Sender<ProbeOutcome>,
}

/// A handle to the ICMP thread.
#[derive(Clone)]
pub struct Pinger {
    requests: mpsc::Sender<Request>,
}

impl Pinger {
    /// Opens the raw socket and starts the thread; fails without CAP_NET_RAW.
    pub fn start() -> std::io::Result<Pinger> {
        let protocol =
            TransportChannelType::Layer4(TransportProtocol::Ipv4(IpNextHeaderProtocols::Icmp));
        let (sender, receiver) = transport_channel(4096, protocol)?;
        let (requests, queue) = mpsc::channel();
        std::thread::Builder::new()
            .name("pathdns-icmp".into())
            .spawn(move || serve(sender, receiver, queue))?;
        Ok(Pinger { requests })
    }

    pub async fn ping(&self, target: IpAddr, timeout: Duration) -> ProbeOutcome {
        let IpAddr::V4(target) = target else {
            return ProbeOutcome::fail("icmp probes support IPv4 targets only");
        };
        let (reply, answer) = oneshot::channel();
        let request = Request {
            target,
            deadline: Instant::now() + timeout,
            reply,
        };
        if self.requests.send(request).is_err() {
            return ProbeOutcome::fail("the ICMP thread has stopped");
        }
        answer
            .await
            .unwrap_or_else(|_| ProbeOutcome::fail("the ICMP thread has stopped"))
    }
}

struct Waiting {
    target: Ipv4Addr,
    sent: Instant,
    deadline: Instant,
    reply: oneshot::Sender<ProbeOutcome>,
}

fn serve(
    mut sender: pnet_transport::TransportSender,
    mut receiver: pnet_transport::TransportReceiver,
    queue: mpsc::Receiver<Request>,
) {
    let identifier = (std::process::id() & 0xffff) as u16;
    let mut sequence: u16 = 0;
    let mut waiting: HashMap<u16, Waiting> = HashMap::new();
    let mut replies = icmp_packet_iter(&mut receiver);
    loop {
        loop {
            match queue.try_recv() {
                Ok(request) => {
                    sequence = sequence.wrapping_add(1);
                    let mut buffer = [0u8; 16];
                    let Some(packet) = echo_request(&mut buffer, identifier, sequence) else {
                        continue;
                    };
                    let sent = Instant::now();
                    if let Err(err) = sender.send_to(packet, IpAddr::V4(request.target)) {
                        let _ = request.reply.send(ProbeOutcome::fail(format!(
                            "icmp {}: {}",
                            request.target,
                            super::io_detail(&err)
                        )));
                        continue;
                    }
                    waiting.insert(
                        sequence,
                        Waiting {
                            target: request.target,
                            sent,
                            deadline: request.deadline,
                            reply: request.reply,
                        },
                    );
                }
                Err(mpsc::TryRecvError::Empty) => break,
                // Every handle is gone: the agent is stopping.
                Err(mpsc::TryRecvError::Disconnected) => return,
            }
        }
        if let Ok(Some((packet, from))) = replies.next_with_timeout(Duration::from_millis(20)) {
            if let Some(seq) = our_reply(&packet, identifier) {
                if let Some(entry) = waiting.remove(&seq) {
                    if IpAddr::V4(entry.target) == from {
                        let _ = entry.reply.send(ProbeOutcome::pass(entry.sent, None));
                    } else {
                        waiting.insert(seq, entry);
                    }
                }
            }
        }
        let now = Instant::now();
        let expired: Vec<u16> = waiting
            .iter()
            .filter(|(_, entry)| entry.deadline <= now)
            .map(|(seq, _)| *seq)
            .collect();
        for seq in expired {
            if let Some(entry) = waiting.remove(&seq) {
                let _ = entry.reply.send(ProbeOutcome::fail(format!(
                    "icmp {}: no echo reply",
                    entry.target
                )));
            }
        }
    }
}

fn echo_request(
    buffer: &mut [u8],
    identifier: u16,
    sequence: u16,
) -> Option<MutableEchoRequestPacket<'_>> {
    let mut packet = MutableEchoRequestPacket::new(buffer)?;
    packet.set_icmp_type(IcmpTypes::EchoRequest);
    packet.set_identifier(identifier);
    packet.set_sequence_number(sequence);
    let checksum = pnet_packet::util::checksum(packet.packet(), 1);
    packet.set_checksum(checksum);
    Some(packet)
}

fn our_reply(packet: &IcmpPacket<'_>, identifier: u16) -> Option<u16> {
    if packet.get_icmp_type() != IcmpTypes::EchoReply {
        return None;
    }
    let reply = EchoReplyPacket::new(packet.packet())?;
    (reply.get_identifier() == identifier).then(|| reply.get_sequence_number())
}
