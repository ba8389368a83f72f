//! The next kernel's ELF as live update loads it: its PT_LOAD segments, entry point and the
//! hypercall page its Xen notes name. Pure, host-tested; every offset is checked.

use alloc::vec::Vec;

/// Lowest VA a segment may start at (pfn 0 stays unused, as at boot).
pub const IMAGE_START: u64 = 0x1000;
/// Highest VA (exclusive) a segment may end at: the image must fit the bootstrap region.
pub const IMAGE_LIMIT: u64 = 64 << 20;
/// `XEN_ELFNOTE_HYPERCALL_PAGE`.
const NOTE_HYPERCALL_PAGE: u32 = 2;
/// At most this many program headers are looked at.
const MAX_PHDRS: usize = 64;

/// One PT_LOAD segment: `filesz` bytes from `offset` of the file at `vaddr`, then zeros up to
/// `memsz`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Segment {
    pub vaddr: u64,
    pub offset: usize,
    pub filesz: usize,
    pub memsz: u64,
}

/// What live update needs of a kernel image.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kernel {
    pub entry: u64,
    pub segments: Vec<Segment>,
    /// VA of the page Xen fills with hypercall stubs (`XEN_ELFNOTE_HYPERCALL_PAGE`).
    pub hypercall_page: u64,
    /// First VA after every segment.
    pub end: u64,
}

fn bytes<const N: usize>(elf: &[u8], off: usize) -> Result<[u8; N], &'static str> {
    let end = off.checked_add(N).ok_or("offset overflows")?;
    let b = elf.get(off..end).ok_or("a header lies outside the file")?;
    let mut out = [0u8; N];
    out.copy_from_slice(b);
    Ok(out)
}

fn u16_at(elf: &[u8], off: usize) -> Result<u16, &'static str> {
    bytes::<2>(elf, off).map(u16::from_le_bytes)
}

fn u32_at(elf: &[u8], off: usize) -> Result<u32, &'static str> {
    bytes::<4>(elf, off).map(u32::from_le_bytes)
}

fn u64_at(elf: &[u8], off: usize) -> Result<u64, &'static str> {
    bytes::<8>(elf, off).map(u64::from_le_bytes)
}

fn usize_at(elf: &[u8], off: usize) -> Result<usize, &'static str> {
    usize::try_from(u64_at(elf, off)?).map_err(|_| "an offset is too large")
}

/// Parses `elf`: a 64-bit little-endian x86_64 executable whose segments lie in
/// `IMAGE_START..IMAGE_LIMIT`, inside the file, with the entry in one of them and a
/// hypercall-page note naming a page of the image.
pub fn parse(elf: &[u8]) -> Result<Kernel, &'static str> {
    if elf.get(..4) != Some(b"\x7fELF".as_slice()) || elf.get(4..6) != Some([2u8, 1].as_slice()) {
        return Err("not a 64-bit little-endian ELF");
    }
    if u16_at(elf, 16)? != 2 || u16_at(elf, 18)? != 62 {
        return Err("not an x86_64 executable");
    }
    let entry = u64_at(elf, 24)?;
    let phoff = usize_at(elf, 32)?;
    let phentsize = usize::from(u16_at(elf, 54)?);
    let phnum = usize::from(u16_at(elf, 56)?);
    if phentsize < 56 || phnum > MAX_PHDRS {
        return Err("unexpected program headers");
    }
    let mut segments = Vec::new();
    let mut hypercall_page = None;
    for i in 0..phnum {
        let ph = phentsize
            .checked_mul(i)
            .and_then(|o| o.checked_add(phoff))
            .ok_or("program header offset overflows")?;
        let kind = u32_at(elf, ph)?;
        let offset = usize_at(elf, ph + 8)?;
        let vaddr = u64_at(elf, ph + 16)?;
        let filesz = usize_at(elf, ph + 32)?;
        let memsz = u64_at(elf, ph + 40)?;
        let file_end = offset.checked_add(filesz).ok_or("segment overflows")?;
        if file_end > elf.len() {
            return Err("a segment lies outside the file");
        }
        match kind {
            1 => {
                let end = vaddr.checked_add(memsz).ok_or("segment overflows")?;
                if vaddr < IMAGE_START || end > IMAGE_LIMIT || (filesz as u64) > memsz {
                    return Err("a segment lies outside the image area");
                }
                segments.push(Segment {
                    vaddr,
                    offset,
                    filesz,
                    memsz,
                });
            }
            4 => {
                if let Some(page) = hypercall_note(elf.get(offset..file_end).unwrap_or_default()) {
                    hypercall_page = Some(page);
                }
            }
            _ => {}
        }
    }
    let end = segments
        .iter()
        .map(|s| s.vaddr + s.memsz)
        .max()
        .ok_or("no loadable segment")?;
    let inside = |va: u64| {
        segments
            .iter()
            .any(|s| (s.vaddr..s.vaddr + s.memsz).contains(&va))
    };
    if !inside(entry) {
        return Err("the entry point is outside the image");
    }
    let hypercall_page = hypercall_page.ok_or("no hypercall-page note")?;
    if hypercall_page % 4096 != 0 || !inside(hypercall_page) || hypercall_page + 4096 > end {
        return Err("the hypercall page is not a page of the image");
    }
    Ok(Kernel {
        entry,
        segments,
        hypercall_page,
        end,
    })
}

/// The hypercall-page VA of a PT_NOTE segment's "Xen" notes, if one names it.
fn hypercall_note(notes: &[u8]) -> Option<u64> {
    let mut off = 0usize;
    while off + 12 <= notes.len() {
        let namesz = u32_at(notes, off).ok()? as usize;
        let descsz = u32_at(notes, off + 4).ok()? as usize;
        let kind = u32_at(notes, off + 8).ok()?;
        let name_at = off + 12;
        let desc_at = name_at.checked_add(namesz.checked_add(3)? & !3)?;
        let next = desc_at.checked_add(descsz.checked_add(3)? & !3)?;
        let name = notes.get(name_at..name_at + namesz)?;
        if name == b"Xen\0" && kind == NOTE_HYPERCALL_PAGE && descsz == 8 {
            return u64_at(notes, desc_at).ok();
        }
        off = next;
    }
    None
}

/// The file bytes of the image at `va..va+len`, if one segment holds them all in the file.
pub fn bytes_at<'a>(elf: &'a [u8], k: &Kernel, va: u64, len: usize) -> Option<&'a [u8]> {
    let s = k
        .segments
        .iter()
        .find(|s| va >= s.vaddr && va + len as u64 <= s.vaddr + s.filesz as u64)?;
    let off = s.offset + usize::try_from(va - s.vaddr).ok()?;
    elf.get(off..off + len)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use alloc::vec;

    /// An ELF with one PT_LOAD (`code` at 0x1000, `memsz` bytes) and a PT_NOTE with the Xen
    /// hypercall-page note naming `hcall`.
    pub(crate) fn elf(code: &[u8], memsz: u64, entry: u64, hcall: u64) -> Vec<u8> {
        let mut e = vec![0u8; 64 + 2 * 56];
        e[..4].copy_from_slice(b"\x7fELF");
        e[4] = 2;
        e[5] = 1;
        e[16..18].copy_from_slice(&2u16.to_le_bytes());
        e[18..20].copy_from_slice(&62u16.to_le_bytes());
        e[24..32].copy_from_slice(&entry.to_le_bytes());
        e[32..40].copy_from_slice(&64u64.to_le_bytes());
        e[54..56].copy_from_slice(&56u16.to_le_bytes());
        e[56..58].copy_from_slice(&2u16.to_le_bytes());
        let mut note = Vec::new();
        note.extend_from_slice(&4u32.to_le_bytes());
        note.extend_from_slice(&10u32.to_le_bytes());
        note.extend_from_slice(&6u32.to_le_bytes());
        note.extend_from_slice(b"Xen\0ferrostore\0\0");
        note.extend_from_slice(&4u32.to_le_bytes());
        note.extend_from_slice(&8u32.to_le_bytes());
        note.extend_from_slice(&2u32.to_le_bytes());
        note.extend_from_slice(b"Xen\0");
        note.extend_from_slice(&hcall.to_le_bytes());
        let note_off = e.len() as u64;
        e.extend_from_slice(&note);
        let code_off = e.len() as u64;
        e.extend_from_slice(code);
        let ph = |e: &mut Vec<u8>, i: usize, kind: u32, off: u64, va: u64, fsz: u64, msz: u64| {
            let p = 64 + i * 56;
            e[p..p + 4].copy_from_slice(&kind.to_le_bytes());
            e[p + 8..p + 16].copy_from_slice(&off.to_le_bytes());
            e[p + 16..p + 24].copy_from_slice(&va.to_le_bytes());
            e[p + 32..p + 40].copy_from_slice(&fsz.to_le_bytes());
            e[p + 40..p + 48].copy_from_slice(&msz.to_le_bytes());
        };
        ph(&mut e, 0, 4, note_off, 0, note.len() as u64, 0);
        ph(&mut e, 1, 1, code_off, 0x1000, code.len() as u64, memsz);
        e
    }

    #[test]
    fn finds_segments_entry_and_hypercall_page() {
        let e = elf(b"\x90\x90\xc3", 0x3000, 0x1001, 0x2000);
        let k = parse(&e).unwrap();
        assert_eq!(k.entry, 0x1001);
        assert_eq!(k.hypercall_page, 0x2000);
        assert_eq!(k.end, 0x4000);
        assert_eq!(k.segments.len(), 1);
        assert_eq!(bytes_at(&e, &k, 0x1001, 2), Some(&b"\x90\xc3"[..]));
        assert_eq!(bytes_at(&e, &k, 0x1002, 2), None, "past the file bytes");
    }

    #[test]
    fn refuses_what_cannot_be_loaded() {
        let good = elf(b"\x90", 0x3000, 0x1000, 0x2000);
        assert!(parse(&good).is_ok());
        assert_eq!(parse(&good[..100]), Err("a header lies outside the file"));
        assert_eq!(
            parse(&elf(b"\x90", 0x3000, 0x9000, 0x2000)),
            Err("the entry point is outside the image")
        );
        assert_eq!(
            parse(&elf(b"\x90", 0x3000, 0x1000, 0x2800)),
            Err("the hypercall page is not a page of the image")
        );
        assert_eq!(
            parse(&elf(b"\x90", IMAGE_LIMIT, 0x1000, 0x2000)),
            Err("a segment lies outside the image area")
        );
        let mut no_note = good.clone();
        no_note[64..68].copy_from_slice(&0u32.to_le_bytes());
        assert_eq!(parse(&no_note), Err("no hypercall-page note"));
        let mut past_end = good.clone();
        let p = 64 + 56 + 32;
        past_end[p..p + 8].copy_from_slice(&u64::MAX.to_le_bytes());
        assert_eq!(parse(&past_end), Err("segment overflows"));
        assert_eq!(parse(b"MZ"), Err("not a 64-bit little-endian ELF"));
    }
}
