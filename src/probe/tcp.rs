//! TCP connect: the cheapest proof that the path and the target's port are there.

use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use super::{io_detail, ProbeOutcome};

pub async fn connect(addr: IpAddr, port: u16) -> ProbeOutcome {
    let started = Instant::now();
    match tokio::net::TcpStream::connect(SocketAddr::new(addr, port)).await {
        Ok(_) => ProbeOutcome::pass(started, None),
        Err(err) => ProbeOutcome::fail(format!("tcp {addr}:{port}: {}", io_detail(&err))),
    }
}
