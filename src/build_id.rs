//! The identity of the running binary, compared by every rank at start-up.
//!
//! Ranks must run the very same build: type fingerprints and remote-function
//! ids are only meaningful within one. The linker's build id (the ELF note
//! `NT_GNU_BUILD_ID`, which Debian's and most distributions' toolchains emit
//! by default) says exactly that, and reading it costs a few small reads of
//! the executable's headers, the same at any size and on any file system.
//! Only a binary without one (or not ELF) is hashed whole, as a fallback.
//! What is compared, and what a mismatch does, is left to the controller.

use std::fs::File;
use std::hash::Hasher;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::codec::StableHasher;

/// `PT_NOTE`: a program header whose segment holds notes.
const PT_NOTE: u32 = 4;
/// `NT_GNU_BUILD_ID`: the type of the build-id note (name `"GNU"`).
const NT_GNU_BUILD_ID: u32 = 3;
/// Notes larger than this are not build ids; they are skipped unread.
const MAX_NOTES: u64 = 64 << 10;

/// A 64-bit identity of the running executable: its build id hashed, or a
/// hash of the whole file when it has none; 0 when it cannot be read.
pub(crate) fn identity() -> u64 {
    let Ok(exe) = std::env::current_exe() else {
        return 0;
    };
    match read_build_id(&exe) {
        Some(id) => hash(b"build-id", &id),
        None => std::fs::read(&exe).map_or(0, |bytes| hash(b"file", &bytes)),
    }
}

/// The identity every rank of a job must share: the executable's
/// [`identity`] and the hash of its remote-function registry. Rank 0
/// compares every engine's with its own at start-up.
pub(crate) fn job_identity() -> (u64, u64) {
    (identity(), crate::registry::registry().hash())
}

fn hash(kind: &[u8], bytes: &[u8]) -> u64 {
    let mut h = StableHasher::default();
    h.write(kind);
    // 8 bytes at a time: fast enough for the whole-file fallback too.
    for chunk in bytes.chunks(8) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        h.write_u64(u64::from_le_bytes(word));
    }
    h.finish()
}

fn u16_at(bytes: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_le_bytes(bytes.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(bytes: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(bytes.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}

fn read_at(file: &mut File, offset: u64, len: u64) -> Option<Vec<u8>> {
    let mut bytes = vec![0u8; usize::try_from(len).ok()?];
    file.seek(SeekFrom::Start(offset)).ok()?;
    file.read_exact(&mut bytes).ok()?;
    Some(bytes)
}

/// The build id of the 64-bit little-endian ELF file at `path`, if it has
/// one. Reads only the ELF header, the program headers and the note segments.
pub(crate) fn read_build_id(path: &Path) -> Option<Vec<u8>> {
    let mut file = File::open(path).ok()?;
    let header = read_at(&mut file, 0, 64)?;
    // Magic, 64-bit class, little-endian data.
    if header[..4] != *b"\x7fELF" || header[4] != 2 || header[5] != 1 {
        return None;
    }
    let phoff = u64_at(&header, 32)?;
    let phentsize = u64::from(u16_at(&header, 54)?);
    let phnum = u64::from(u16_at(&header, 56)?);
    if phentsize < 56 || phnum == 0 || phnum > 4096 {
        return None;
    }
    let table = read_at(&mut file, phoff, phentsize * phnum)?;
    for entry in table.chunks_exact(usize::try_from(phentsize).ok()?) {
        if u32_at(entry, 0)? != PT_NOTE {
            continue;
        }
        let (offset, size) = (u64_at(entry, 8)?, u64_at(entry, 32)?);
        if size > MAX_NOTES {
            continue;
        }
        let notes = read_at(&mut file, offset, size)?;
        if let Some(id) = find_build_id(&notes) {
            return Some(id);
        }
    }
    None
}

/// The descriptor of the `GNU` build-id note among `notes`, if any.
fn find_build_id(notes: &[u8]) -> Option<Vec<u8>> {
    let align = |n: usize| n.checked_add(3).map(|n| n & !3);
    let mut at = 0usize;
    while at + 12 <= notes.len() {
        let namesz = usize::try_from(u32_at(notes, at)?).ok()?;
        let descsz = usize::try_from(u32_at(notes, at + 4)?).ok()?;
        let kind = u32_at(notes, at + 8)?;
        let name_at = at + 12;
        let desc_at = name_at.checked_add(align(namesz)?)?;
        let end = desc_at.checked_add(align(descsz)?)?;
        let name = notes.get(name_at..name_at.checked_add(namesz)?)?;
        if kind == NT_GNU_BUILD_ID && name == b"GNU\0" {
            return Some(notes.get(desc_at..desc_at.checked_add(descsz)?)?.to_vec());
        }
        at = end;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A note: sizes, type, name and descriptor, each padded to 4 bytes.
    fn note(name: &[u8], kind: u32, desc: &[u8]) -> Vec<u8> {
        let mut bytes = Vec::new();
        bytes.extend((name.len() as u32).to_le_bytes());
        bytes.extend((desc.len() as u32).to_le_bytes());
        bytes.extend(kind.to_le_bytes());
        for part in [name, desc] {
            bytes.extend(part);
            bytes.resize(bytes.len().next_multiple_of(4), 0);
        }
        bytes
    }

    /// A minimal ELF file: header, one PT_NOTE program header, the notes.
    fn elf(notes: &[u8]) -> Vec<u8> {
        let mut file = vec![0u8; 64 + 56];
        file[..6].copy_from_slice(b"\x7fELF\x02\x01");
        file[32..40].copy_from_slice(&64u64.to_le_bytes());
        file[54..56].copy_from_slice(&56u16.to_le_bytes());
        file[56..58].copy_from_slice(&1u16.to_le_bytes());
        let ph = 64;
        file[ph..ph + 4].copy_from_slice(&PT_NOTE.to_le_bytes());
        file[ph + 8..ph + 16].copy_from_slice(&120u64.to_le_bytes());
        file[ph + 32..ph + 40].copy_from_slice(&(notes.len() as u64).to_le_bytes());
        file.extend(notes);
        file
    }

    fn written(bytes: &[u8]) -> tempfile::NamedTempFile {
        let mut file = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut file, bytes).unwrap();
        file
    }

    #[test]
    fn the_build_id_note_is_found_after_other_notes() {
        let mut notes = note(b"GNU\0", 1, &[0, 0, 0, 0, 3, 2, 0, 0]);
        notes.extend(note(
            b"GNU\0",
            NT_GNU_BUILD_ID,
            &[0xde, 0xad, 0xbe, 0xef, 1],
        ));
        let file = written(&elf(&notes));
        assert_eq!(
            read_build_id(file.path()),
            Some(vec![0xde, 0xad, 0xbe, 0xef, 1])
        );
    }

    #[test]
    fn files_without_a_build_id_or_not_elf_have_none() {
        let file = written(&elf(&note(b"Go\0\0", NT_GNU_BUILD_ID, &[1, 2, 3])));
        assert_eq!(read_build_id(file.path()), None);
        let file = written(b"#!/bin/sh\necho not elf\n");
        assert_eq!(read_build_id(file.path()), None);
        // Truncated notes and headers are no build id, not a panic.
        let mut cut = elf(&note(b"GNU\0", NT_GNU_BUILD_ID, &[9; 20]));
        cut.truncate(cut.len() - 10);
        assert_eq!(read_build_id(written(&cut).path()), None);
        assert_eq!(read_build_id(written(&cut[..40]).path()), None);
    }

    #[test]
    fn this_test_binary_has_a_build_id() {
        // Debian's toolchain links with --build-id; rankview relies on it
        // for a cheap start-up check (and falls back to hashing otherwise).
        let exe = std::env::current_exe().unwrap();
        let id = read_build_id(&exe).expect("the linker wrote no build id");
        assert!(id.len() >= 8);
        assert_ne!(identity(), 0);
    }
}
