//! The wire protocol's decoder under arbitrary bytes (it must never panic
//! and never take memory out of proportion to the input): 10^6 random
//! and mutated messages, each decoded as a controller → engine `Request`
//! and as an engine → controller `Reply`.
//!
//! Inputs: valid messages (a corpus found by decoding: every variant tag
//! followed by zeros, grown by keeping every mutant that decodes), mutated
//! by bit flips, truncation, splicing two messages, rewriting a byte as a
//! huge length prefix (bincode's 3-, 5- and 9-byte varints), growing a
//! length by one with a byte inserted after it, incrementing a byte and
//! inserting runs of zeros (a list grown by an element with empty fields),
//! inserting and deleting bytes, plus pure random bytes. A deterministic xorshift
//! generator drives everything, so a failure repeats.
//!
//! For each decode: no panic; an error is always `Error::Protocol`; a
//! success re-encodes to bytes that decode to themselves; and the memory
//! it takes is bounded by the input (a counting global allocator, per
//! thread, `tests/common/allocations.rs`: the largest single allocation
//! and the peak of live bytes, each at most [`BYTES_PER_INPUT_BYTE`] per
//! input byte plus [`SLACK`]). The
//! entry point is `rankview::__private::fuzz_decode` (the protocol types
//! are crate-private).

use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};

use rankview::__private::fuzz_decode;
use rankview::Error;

#[path = "common/allocations.rs"]
mod allocations;

use allocations::measure;

/// Messages decoded (each as a Request and as a Reply).
const MESSAGES: usize = 1_000_000;

/// Memory a decode may take per byte of input: a decoded element takes at
/// least one input byte and at most a few dozen bytes of memory (a
/// `(String, Typed)` pair is 80), and a growing `Vec` may hold twice its
/// length.
const BYTES_PER_INPUT_BYTE: usize = 256;

/// Memory any decode may take whatever its input: the error message and
/// small fixed buffers.
const SLACK: usize = 4096;

// ---------------------------------------------------------------- inputs

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n > 0`).
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

/// Bytes that often matter to bincode: small values, the varint markers
/// (251: u16 follows, 252: u32, 253: u64, 254: u128) and extremes.
const INTERESTING: [u8; 10] = [0, 1, 2, 0x7f, 0x80, 250, 251, 252, 253, 0xff];

/// A valid message of the corpus, mutated in one of several ways.
fn mutate(rng: &mut Rng, corpus: &[Vec<u8>]) -> Vec<u8> {
    let mut bytes = corpus[rng.below(corpus.len())].clone();
    let rounds = 1 + rng.below(4);
    for _ in 0..rounds {
        match rng.below(10) {
            // Bit flips.
            0 => {
                for _ in 0..1 + rng.below(4) {
                    if !bytes.is_empty() {
                        let i = rng.below(bytes.len());
                        bytes[i] ^= 1 << rng.below(8);
                    }
                }
            }
            // Truncation.
            1 => {
                let cut = rng.below(bytes.len() + 1);
                bytes.truncate(cut);
            }
            // Splicing: a prefix of this one and a suffix of another.
            2 => {
                let other = &corpus[rng.below(corpus.len())];
                let cut = rng.below(bytes.len() + 1);
                let from = rng.below(other.len() + 1);
                bytes.truncate(cut);
                bytes.extend_from_slice(&other[from..]);
            }
            // A length prefix (or any varint) rewritten to a huge value.
            3 => {
                let at = rng.below(bytes.len() + 1);
                let huge: Vec<u8> = match rng.below(3) {
                    0 => [251, 0xff, 0xff].to_vec(),
                    1 => {
                        let mut v = vec![252];
                        v.extend_from_slice(&(rng.next() as u32 | 1 << 31).to_le_bytes());
                        v
                    }
                    _ => {
                        let mut v = vec![253];
                        v.extend_from_slice(&(rng.next() | 1 << 40).to_le_bytes());
                        v
                    }
                };
                let end = (at + 1).min(bytes.len());
                bytes.splice(at..end, huge);
            }
            // A length grown by one and a byte inserted after it (a string,
            // byte string or list one longer, when the byte was its length).
            7 if !bytes.is_empty() => {
                let at = rng.below(bytes.len());
                if bytes[at] < 250 {
                    bytes[at] += 1;
                    let i = at + 1 + rng.below(bytes.len() - at);
                    bytes.insert(i, b'a' + rng.below(26) as u8);
                }
            }
            // A run of zeros inserted (a new element with empty fields,
            // after a grown length), or a byte incremented (a length grown).
            8 => {
                let i = rng.below(bytes.len() + 1);
                let run = 1 + rng.below(12);
                bytes.splice(i..i, vec![0; run]);
            }
            9 if !bytes.is_empty() => {
                let i = rng.below(bytes.len());
                bytes[i] = bytes[i].saturating_add(1).min(250);
            }
            // An interesting byte written, inserted or a byte deleted.
            4 if !bytes.is_empty() => {
                let i = rng.below(bytes.len());
                bytes[i] = INTERESTING[rng.below(INTERESTING.len())];
            }
            5 => {
                let i = rng.below(bytes.len() + 1);
                bytes.insert(i, INTERESTING[rng.below(INTERESTING.len())]);
            }
            _ if !bytes.is_empty() => {
                let i = rng.below(bytes.len());
                bytes.remove(i);
            }
            _ => bytes.push(rng.next() as u8),
        }
    }
    bytes
}

/// What decoding one input as one message kind did.
enum Decoded {
    Valid(Vec<u8>),
    Invalid,
}

/// Decodes `bytes` as a Reply (`reply`) or a Request and checks every rule
/// of the module doc; panics with the input on a violation.
fn check(bytes: &[u8], reply: bool) -> Decoded {
    let kind = if reply { "Reply" } else { "Request" };
    let (outcome, usage) = measure(|| catch_unwind(AssertUnwindSafe(|| fuzz_decode(bytes, reply))));
    let limit = bytes.len() * BYTES_PER_INPUT_BYTE + SLACK;
    assert!(
        usage.largest <= limit && usage.peak <= limit,
        "decoding {} bytes as a {kind} allocated {} bytes at once, {} at the peak (limit \
         {limit}): {bytes:02x?}",
        bytes.len(),
        usage.largest,
        usage.peak
    );
    match outcome {
        Err(_) => panic!("decoding as a {kind} panicked: {bytes:02x?}"),
        Ok(Err(Error::Protocol(_))) => Decoded::Invalid,
        Ok(Err(other)) => {
            panic!("decoding as a {kind} gave {other:?}, not a Protocol error: {bytes:02x?}")
        }
        Ok(Ok(encoded)) => {
            match fuzz_decode(&encoded, reply) {
                Ok(again) if again == encoded => {}
                other => panic!(
                    "a {kind} decoded from {bytes:02x?} re-encodes to {encoded:02x?}, which \
                     decodes to {other:?}"
                ),
            }
            Decoded::Valid(encoded)
        }
    }
}

/// The starting corpus for one kind: every variant tag followed by zeros
/// (all-zero fields: empty strings and lists, zero numbers), at every
/// length up to 64, kept when it decodes.
fn zero_messages(reply: bool) -> Vec<Vec<u8>> {
    let mut found = HashSet::new();
    for tag in 0..32u8 {
        for len in 0..64 {
            let mut bytes = vec![tag];
            bytes.resize(len + 1, 0);
            if let Decoded::Valid(encoded) = check(&bytes, reply) {
                found.insert(encoded);
            }
        }
    }
    let mut corpus: Vec<Vec<u8>> = found.into_iter().collect();
    corpus.sort();
    corpus
}

#[test]
fn a_million_random_and_mutated_messages() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut requests = zero_messages(false);
    let mut replies = zero_messages(true);
    let request_tags: HashSet<u8> = requests.iter().map(|m| m[0]).collect();
    let reply_tags: HashSet<u8> = replies.iter().map(|m| m[0]).collect();
    // Every Request variant (Apply .. Shutdown) and Reply variant (Hello ..
    // Goodbye) has an all-zero form.
    assert!(
        request_tags.len() >= 8,
        "Request tags found: {request_tags:?}"
    );
    assert!(reply_tags.len() >= 4, "Reply tags found: {reply_tags:?}");

    const CORPUS_LIMIT: usize = 4096;
    let (mut valid, mut invalid) = (0usize, 0usize);
    // Only messages not seen before join the corpus: the one-byte messages
    // (Exit, Quiet, Goodbye) decode validly from countless inputs and
    // would otherwise crowd out everything longer.
    let mut seen: HashSet<Vec<u8>> = requests.iter().chain(&replies).cloned().collect();
    let seeds_longest = requests
        .iter()
        .chain(&replies)
        .map(Vec::len)
        .max()
        .unwrap_or(0);
    let mut record = |decoded: Decoded, corpus: &mut Vec<Vec<u8>>, rng: &mut Rng| match decoded {
        Decoded::Valid(encoded) => {
            valid += 1;
            if !seen.insert(encoded.clone()) {
                return;
            }
            if corpus.len() < CORPUS_LIMIT {
                corpus.push(encoded);
            } else {
                let slot = rng.below(CORPUS_LIMIT);
                corpus[slot] = encoded;
            }
        }
        Decoded::Invalid => invalid += 1,
    };
    for i in 0..MESSAGES {
        let input = match i % 8 {
            // Pure random bytes, short and long.
            0 => {
                let len = if rng.below(8) == 0 {
                    rng.below(4096)
                } else {
                    rng.below(64)
                };
                rng.bytes(len)
            }
            1..=3 => mutate(&mut rng, &requests),
            _ => mutate(&mut rng, &replies),
        };
        let as_request = check(&input, false);
        record(as_request, &mut requests, &mut rng);
        let as_reply = check(&input, true);
        record(as_reply, &mut replies, &mut rng);
    }
    // The mutants both fail and succeed: the decoder's errors and its
    // successes are both exercised.
    assert!(valid > 10_000, "{valid} valid decodes");
    assert!(invalid > 500_000, "{invalid} invalid decodes");
    let longest = requests.iter().chain(&replies).map(Vec::len).max();
    let mut lens: Vec<usize> = requests.iter().chain(&replies).map(Vec::len).collect();
    lens.sort();
    eprintln!(
        "valid {valid} invalid {invalid} corpus {} median {} p90 {} max {longest:?} seeds {seeds_longest}",
        lens.len(),
        lens[lens.len() / 2],
        lens[lens.len() * 9 / 10]
    );
    // Mutants grow into valid messages twice as long as the longest seed.
    assert!(
        longest >= Some(2 * seeds_longest),
        "the corpus never grew: {longest:?} bytes, seeds up to {seeds_longest}"
    );
}

/// The bound itself is real: a message claiming a list of 2^40 names, or a
/// name of 1 MiB or 2^40 bytes, allocates nothing near it, and a valid
/// message's decode stays within the bound.
#[test]
fn the_allocation_bound_holds_for_hostile_prefixes() {
    // Pull { task: 1, names: <2^40 entries> } (variant 2).
    let mut bytes = vec![2u8, 1, 253];
    bytes.extend_from_slice(&(1u64 << 40).to_le_bytes());
    assert!(matches!(check(&bytes, false), Decoded::Invalid));
    // Pull { task: 1, names: [<a string of 1 MiB>] }, then of 2^40 bytes:
    // the length prefixes of strings, not only of lists.
    let mut bytes = vec![2u8, 1, 1, 252];
    bytes.extend_from_slice(&(1u32 << 20).to_le_bytes());
    assert!(matches!(check(&bytes, false), Decoded::Invalid));
    let mut bytes = vec![2u8, 1, 1, 253];
    bytes.extend_from_slice(&(1u64 << 40).to_le_bytes());
    assert!(matches!(check(&bytes, false), Decoded::Invalid));
    // A Map (variant 5) whose items claim 2^31 byte strings.
    let mut bytes = vec![5u8, 1, 1, 252];
    bytes.extend_from_slice(&(1u32 << 31).to_le_bytes());
    assert!(matches!(check(&bytes, false), Decoded::Invalid));
}
