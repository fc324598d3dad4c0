//! The RFC 6962 Merkle tree over event hashes, kept as a compact frontier.
//!
//! Leaf `i` of the tree is the 32-byte hash of the event at position `i + 1`; leaf and node
//! hashing are tlog_tiles' RFC 6962 functions (`SHA-256(0x00 || leaf)`,
//! `SHA-256(0x01 || left || right)`). The frontier is the list of roots of the perfect
//! subtrees that make up a tree of `size` leaves (one per set bit of `size`, largest first):
//! appending costs amortised one node hash and the root needs at most 64, so checkpoints never
//! read the log. Inclusion and consistency proofs use tlog_tiles' proof functions over the
//! same hashes.

use crate::encoding::Hash32;
use sha2::{Digest, Sha256};
use tlog_tiles::{node_hash, record_hash, Hash};

/// The Merkle frontier of a tree of `size` leaves.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    size: u64,
    roots: Vec<Hash32>,
}

/// A frontier whose stored bytes are not a valid encoding.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("stored Merkle frontier is malformed")]
pub struct MalformedFrontier;

impl Frontier {
    /// The number of leaves.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Appends the leaf for one event hash.
    pub fn push(&mut self, event_hash: &Hash32) {
        let mut node = record_hash(event_hash);
        let mut size = self.size;
        // Each trailing 1 bit of the old size is a perfect subtree of the same height as the
        // carry; merge them like binary addition.
        while size & 1 == 1 {
            let left = self.roots.pop().expect("one root per set bit of size");
            node = node_hash(Hash(left), node);
            size >>= 1;
        }
        self.roots.push(node.0);
        self.size += 1;
    }

    /// The RFC 6962 Merkle tree hash (MTH) of the leaves so far.
    pub fn root(&self) -> Hash32 {
        let mut iter = self.roots.iter().rev();
        match iter.next() {
            // RFC 6962 §2.1: the hash of an empty tree is the hash of the empty string.
            None => Sha256::digest([]).into(),
            Some(last) => iter.fold(*last, |acc, left| node_hash(Hash(*left), Hash(acc)).0),
        }
    }

    /// Encodes the frontier for storage: `u64be(size) || roots (32 bytes each)`.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut bytes = Vec::with_capacity(8 + 32 * self.roots.len());
        bytes.extend_from_slice(&self.size.to_be_bytes());
        for root in &self.roots {
            bytes.extend_from_slice(root);
        }
        bytes
    }

    /// Decodes a stored frontier, checking that it has one root per set bit of its size.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, MalformedFrontier> {
        if bytes.len() < 8 || !(bytes.len() - 8).is_multiple_of(32) {
            return Err(MalformedFrontier);
        }
        let size = u64::from_be_bytes(bytes[..8].try_into().map_err(|_| MalformedFrontier)?);
        let roots: Vec<Hash32> = bytes[8..]
            .chunks_exact(32)
            .map(|chunk| chunk.try_into().map_err(|_| MalformedFrontier))
            .collect::<Result<_, _>>()?;
        if roots.len() != size.count_ones() as usize {
            return Err(MalformedFrontier);
        }
        Ok(Self { size, roots })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tlog_tiles::{stored_hashes, tree_hash, HashReader};

    /// A tlog_tiles hash store in memory: the reference implementation to compare against.
    struct Stored(Vec<Hash>);

    impl HashReader for Stored {
        fn read_hashes(&self, indexes: &[u64]) -> Result<Vec<Hash>, tlog_tiles::Error> {
            Ok(indexes.iter().map(|&i| self.0[i as usize]).collect())
        }
    }

    #[test]
    fn the_frontier_root_equals_the_reference_tree_hash_at_every_size() {
        let mut frontier = Frontier::default();
        let mut stored = Stored(Vec::new());
        for n in 0u64..300 {
            let leaf: Hash32 = Sha256::digest(n.to_be_bytes()).into();
            let new = stored_hashes(n, &leaf, &stored).expect("stored hashes");
            stored.0.extend(new);
            frontier.push(&leaf);
            let expected = tree_hash(n + 1, &stored).expect("tree hash");
            assert_eq!(frontier.root(), expected.0, "size {}", n + 1);
            let round_trip = Frontier::from_bytes(&frontier.to_bytes()).expect("decode");
            assert_eq!(round_trip, frontier);
        }
    }

    #[test]
    fn the_empty_tree_hashes_to_the_sha256_of_nothing() {
        assert_eq!(
            hex::encode(Frontier::default().root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn a_frontier_with_the_wrong_number_of_roots_is_refused() {
        let mut bytes = 3u64.to_be_bytes().to_vec();
        bytes.extend_from_slice(&[0; 32]);
        assert_eq!(Frontier::from_bytes(&bytes), Err(MalformedFrontier));
    }
}
