//! Admission of incoming connections to their handshake: a bound on how many may be in it at
//! once, in all and from one remote address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use super::lock;

/// Counts the incoming connections in their handshake, in all and per remote IP address,
/// and refuses one past either bound. A flood of idle connections from one address uses up
/// that address's share only; other addresses keep theirs until the total is reached.
#[derive(Debug)]
pub(crate) struct HandshakeGate {
    max_total: usize,
    max_per_address: usize,
    pending: Mutex<Pending>,
}

#[derive(Debug, Default)]
struct Pending {
    total: usize,
    per_address: HashMap<IpAddr, usize>,
}

/// Which bound refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Full {
    /// Too many handshakes from this connection's address.
    Address,
    /// Too many handshakes in all.
    Total,
}

/// A connection's place in its handshake; given back on drop.
#[derive(Debug)]
pub(crate) struct GatePass {
    gate: Arc<HandshakeGate>,
    ip: IpAddr,
}

impl HandshakeGate {
    pub(crate) fn new(max_total: usize, max_per_address: usize) -> Arc<HandshakeGate> {
        Arc::new(HandshakeGate { max_total, max_per_address, pending: Mutex::default() })
    }

    /// A place for a connection from `ip` (an IPv4-mapped IPv6 address counts as its IPv4
    /// address), or which bound is reached.
    pub(crate) fn enter(self: &Arc<HandshakeGate>, ip: IpAddr) -> Result<GatePass, Full> {
        let ip = ip.to_canonical();
        let mut pending = lock(&self.pending);
        let from_ip = pending.per_address.get(&ip).copied().unwrap_or(0);
        if from_ip >= self.max_per_address {
            return Err(Full::Address);
        }
        if pending.total >= self.max_total {
            return Err(Full::Total);
        }
        pending.total += 1;
        pending.per_address.insert(ip, from_ip + 1);
        Ok(GatePass { gate: self.clone(), ip })
    }
}

impl Drop for GatePass {
    fn drop(&mut self) {
        let mut pending = lock(&self.gate.pending);
        pending.total -= 1;
        if let Some(count) = pending.per_address.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                pending.per_address.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    #[test]
    fn one_address_cannot_take_every_place() {
        let gate = HandshakeGate::new(5, 2);
        let flood: Vec<_> = (0..2).map(|_| gate.enter(ip(2)).unwrap()).collect();
        assert_eq!(gate.enter(ip(2)).unwrap_err(), Full::Address);
        let other: Vec<_> = (0..2).map(|_| gate.enter(ip(1)).unwrap()).collect();
        let third = gate.enter(ip(3)).unwrap();
        assert_eq!(gate.enter(ip(4)).unwrap_err(), Full::Total, "five in all");
        drop(flood);
        assert!(gate.enter(ip(2)).is_ok(), "places are given back");
        drop((other, third));
        assert_eq!(lock(&gate.pending).total, 0);
        assert!(lock(&gate.pending).per_address.is_empty(), "no address is remembered");
    }

    #[test]
    fn a_mapped_ipv4_address_is_that_address() {
        let gate = HandshakeGate::new(5, 1);
        let _held = gate.enter(ip(9)).unwrap();
        let mapped = IpAddr::from(std::net::Ipv4Addr::new(127, 0, 0, 9).to_ipv6_mapped());
        assert_eq!(gate.enter(mapped).unwrap_err(), Full::Address);
    }
}
