//! Challenge–response proofs: HMAC-SHA256 over the handshake's context.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::HandshakeError;
use crate::NodeId;

type HmacSha256 = Hmac<Sha256>;

/// Domain separation: the protocol and its version.
const LABEL: &[u8] = b"amber-v1";

/// Which end of the connection a proof is from. It is part of the MAC, so a peer cannot
/// answer our challenge by reflecting our own proof back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// The side that opened the TCP connection.
    Initiator,
    /// The side that accepted it.
    Acceptor,
}

impl Role {
    fn byte(self) -> u8 {
        match self {
            Role::Initiator => 1,
            Role::Acceptor => 2,
        }
    }
}

/// The nonces of both sides, in a fixed order.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Nonces {
    pub(crate) initiator: [u8; 32],
    pub(crate) acceptor: [u8; 32],
}

/// The MAC a node playing `role`, called `prover`, sends to `verifier`:
/// `HMAC-SHA256(secret, "amber-v1" || role || prover || verifier || initiator nonce ||
/// acceptor nonce)`, node ids as `u32` big-endian length + UTF-8, role as one byte (1 =
/// initiator, 2 = acceptor).
pub(crate) fn proof(
    secret: &[u8],
    role: Role,
    prover: &NodeId,
    verifier: &NodeId,
    nonces: &Nonces,
) -> [u8; 32] {
    keyed(secret, role, prover, verifier, nonces).finalize().into_bytes().into()
}

/// Whether `mac` is the proof `prover` must send in `role`; compared in constant time.
pub(crate) fn verify(
    secret: &[u8],
    role: Role,
    prover: &NodeId,
    verifier: &NodeId,
    nonces: &Nonces,
    mac: &[u8],
) -> bool {
    keyed(secret, role, prover, verifier, nonces).verify_slice(mac).is_ok()
}

/// 32 fresh random bytes.
pub(crate) fn nonce() -> Result<[u8; 32], HandshakeError> {
    let mut nonce = [0; 32];
    getrandom::fill(&mut nonce).map_err(|e| HandshakeError::Entropy(e.to_string()))?;
    Ok(nonce)
}

/// A random incarnation number for a starting transport.
pub(crate) fn incarnation() -> Result<u64, HandshakeError> {
    getrandom::u64().map_err(|e| HandshakeError::Entropy(e.to_string()))
}

fn keyed(
    secret: &[u8],
    role: Role,
    prover: &NodeId,
    verifier: &NodeId,
    nonces: &Nonces,
) -> HmacSha256 {
    // HMAC takes keys of any length (long ones are hashed), so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC accepts keys of any length");
    mac.update(LABEL);
    mac.update(&[role.byte()]);
    for id in [prover, verifier] {
        mac.update(&(id.as_str().len() as u32).to_be_bytes());
        mac.update(id.as_str().as_bytes());
    }
    mac.update(&nonces.initiator);
    mac.update(&nonces.acceptor);
    mac
}

#[cfg(test)]
mod tests {
    use super::*;

    const NONCES: Nonces = Nonces { initiator: [1; 32], acceptor: [2; 32] };

    fn ids() -> (NodeId, NodeId) {
        (NodeId::from("a"), NodeId::from("b"))
    }

    #[test]
    fn a_proof_verifies_with_the_same_context_only() {
        let (a, b) = ids();
        let mac = proof(b"secret", Role::Initiator, &a, &b, &NONCES);
        assert!(verify(b"secret", Role::Initiator, &a, &b, &NONCES, &mac));
        assert!(!verify(b"other", Role::Initiator, &a, &b, &NONCES, &mac), "secret");
        assert!(!verify(b"secret", Role::Acceptor, &a, &b, &NONCES, &mac), "role");
        assert!(!verify(b"secret", Role::Initiator, &b, &a, &NONCES, &mac), "ids");
        let swapped = Nonces { initiator: NONCES.acceptor, acceptor: NONCES.initiator };
        assert!(!verify(b"secret", Role::Initiator, &a, &b, &swapped, &mac), "nonces");
        assert!(!verify(b"secret", Role::Initiator, &a, &b, &NONCES, &mac[..31]), "length");
    }

    #[test]
    fn ids_are_length_prefixed() {
        let nonces = NONCES;
        let one = proof(b"k", Role::Acceptor, &"ab".into(), &"c".into(), &nonces);
        let two = proof(b"k", Role::Acceptor, &"a".into(), &"bc".into(), &nonces);
        assert_ne!(one, two);
    }

    #[test]
    fn matches_a_plain_hmac_of_the_documented_layout() {
        let (a, b) = ids();
        let mut msg = b"amber-v1\x01".to_vec();
        msg.extend_from_slice(&[0, 0, 0, 1, b'a', 0, 0, 0, 1, b'b']);
        msg.extend_from_slice(&[1; 32]);
        msg.extend_from_slice(&[2; 32]);
        let mut mac = HmacSha256::new_from_slice(b"secret").unwrap();
        mac.update(&msg);
        let expected: [u8; 32] = mac.finalize().into_bytes().into();
        assert_eq!(proof(b"secret", Role::Initiator, &a, &b, &NONCES), expected);
    }

    #[test]
    fn nonces_differ() {
        assert_ne!(nonce().unwrap(), nonce().unwrap());
    }
}
