//! Gossip datagrams, authenticated with the cluster's shared secret.
//!
//! On the wire: the 4 bytes `AMBG`, a version byte (1), a 32-byte tag, then foca's packet.
//! The tag is `HMAC-SHA256(key, "amber-gossip-v1" || packet)`, keyed not by the secret itself
//! but by `key = HMAC-SHA256(secret, "amber gossip key v1")`, so that no gossip tag is ever
//! a MAC the handshake could be asked for. A datagram whose tag does not verify is dropped
//! before foca reads a byte of it. Tags authenticate; they neither encrypt nor stop an
//! eavesdropper from replaying a datagram (what a replay can say is stale to SWIM: old
//! incarnations lose to newer ones).

use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The first bytes of every gossip datagram.
const MAGIC: &[u8; 4] = b"AMBG";
/// The format's version.
const VERSION: u8 = 1;
/// Magic, version, tag.
pub(crate) const OVERHEAD: usize = MAGIC.len() + 1 + TAG_LEN;
const TAG_LEN: usize = 32;
/// Domain separation of the tags.
const LABEL: &[u8] = b"amber-gossip-v1";
/// Domain separation of the key derived from the secret.
const KEY_LABEL: &[u8] = b"amber gossip key v1";

/// Why a datagram was dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum GossipError {
    /// Shorter than the header.
    #[error("a gossip datagram of {0} bytes is shorter than its header")]
    Short(usize),
    /// Not an amber gossip datagram.
    #[error("not an amber gossip datagram")]
    NotAmber,
    /// Another version of the format.
    #[error("gossip format version {0}, this node speaks {VERSION}")]
    Version(u8),
    /// The tag does not verify: another secret, or altered on the way.
    #[error("gossip datagram failed authentication")]
    Auth,
    /// Authenticated, but foca could not read it (or refused it).
    #[error("unreadable gossip: {0}")]
    Membership(String),
}

/// The key gossip tags are made with, derived from the cluster's secret.
#[derive(Clone)]
pub(crate) struct GossipKey([u8; 32]);

impl std::fmt::Debug for GossipKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("GossipKey(..)")
    }
}

impl GossipKey {
    /// The gossip key of the cluster whose shared secret is `secret`.
    pub(crate) fn derive(secret: &[u8]) -> GossipKey {
        let mut mac = HmacSha256::new_from_slice(secret).expect("HMAC takes keys of any length");
        mac.update(KEY_LABEL);
        GossipKey(mac.finalize().into_bytes().into())
    }

    fn mac(&self, packet: &[u8]) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.0).expect("HMAC takes keys of any length");
        mac.update(LABEL);
        mac.update(packet);
        mac
    }

    /// `packet` framed and tagged for the wire.
    pub(crate) fn seal(&self, packet: &[u8]) -> Vec<u8> {
        let tag = self.mac(packet).finalize().into_bytes();
        let mut datagram = Vec::with_capacity(OVERHEAD + packet.len());
        datagram.extend_from_slice(MAGIC);
        datagram.push(VERSION);
        datagram.extend_from_slice(&tag);
        datagram.extend_from_slice(packet);
        datagram
    }

    /// The packet inside `datagram`, if its tag verifies (compared in constant time).
    pub(crate) fn open<'a>(&self, datagram: &'a [u8]) -> Result<&'a [u8], GossipError> {
        if datagram.len() < OVERHEAD {
            return Err(GossipError::Short(datagram.len()));
        }
        let (magic, rest) = datagram.split_at(MAGIC.len());
        if magic != MAGIC {
            return Err(GossipError::NotAmber);
        }
        let (version, rest) = rest.split_at(1);
        if version[0] != VERSION {
            return Err(GossipError::Version(version[0]));
        }
        let (tag, packet) = rest.split_at(TAG_LEN);
        self.mac(packet).verify_slice(tag).map_err(|_| GossipError::Auth)?;
        Ok(packet)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_packet_opens_with_the_same_secret_only() {
        let key = GossipKey::derive(b"the cluster secret, long enough");
        let datagram = key.seal(b"swim");
        assert_eq!(key.open(&datagram), Ok(&b"swim"[..]));
        let other = GossipKey::derive(b"another cluster's secret, long too");
        assert_eq!(other.open(&datagram), Err(GossipError::Auth));
    }

    #[test]
    fn altered_or_foreign_datagrams_are_refused_without_panicking() {
        let key = GossipKey::derive(b"the cluster secret, long enough");
        let datagram = key.seal(b"swim");
        for i in 0..datagram.len() {
            let mut altered = datagram.clone();
            altered[i] ^= 0x40;
            assert!(key.open(&altered).is_err(), "byte {i} altered");
        }
        assert_eq!(key.open(&datagram[..OVERHEAD - 1]), Err(GossipError::Short(OVERHEAD - 1)));
        assert_eq!(key.open(&[0; 64]), Err(GossipError::NotAmber));
        let mut future = datagram.clone();
        future[4] = 9;
        assert_eq!(key.open(&future), Err(GossipError::Version(9)));
        // Truncated: the tag no longer matches.
        assert_eq!(key.open(&datagram[..datagram.len() - 1]), Err(GossipError::Auth));
    }
}
