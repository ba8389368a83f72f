//! CONTROL `live-update`: the session as `xenstore-control live-update` drives it, the image
//! checks, and what the host is handed.

use super::*;
use crate::check_image;
use crate::wire;
use alloc::string::ToString;
use alloc::vec;

/// A minimal x86_64 executable ELF with one PT_NOTE segment holding `note_name`'s note.
fn elf(note_name: &[u8]) -> Vec<u8> {
    let mut e = vec![0u8; 64 + 56];
    e[..4].copy_from_slice(b"\x7fELF");
    e[4] = 2; // 64-bit
    e[5] = 1; // little-endian
    e[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    e[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    e[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
    e[54..56].copy_from_slice(&56u16.to_le_bytes()); // e_phentsize
    e[56..58].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
    let mut note = Vec::new();
    note.extend_from_slice(&(note_name.len() as u32).to_le_bytes());
    note.extend_from_slice(&10u32.to_le_bytes());
    note.extend_from_slice(&6u32.to_le_bytes()); // XEN_ELFNOTE_GUEST_OS
    note.extend_from_slice(note_name);
    note.resize(note.len().div_ceil(4) * 4, 0);
    note.extend_from_slice(b"ferrostore\0\0");
    let off = e.len() as u64;
    e[64..68].copy_from_slice(&4u32.to_le_bytes()); // PT_NOTE
    e[64 + 8..64 + 16].copy_from_slice(&off.to_le_bytes());
    e[64 + 32..64 + 40].copy_from_slice(&(note.len() as u64).to_le_bytes());
    e.extend_from_slice(&note);
    // Payload bytes with NULs in them, as a real kernel has.
    e.extend_from_slice(&[0, 1, 0, 2, 0, 0, 3]);
    e
}

fn lu(h: &mut H, c: ConnId, args: &[&str]) -> Result<Vec<u8>, String> {
    let mut all = vec!["live-update"];
    all.extend_from_slice(args);
    h.args(c, ty::CONTROL, &all)
}

fn chunk(h: &mut H, c: ConnId, len: usize, data: &[u8]) -> Result<Vec<u8>, String> {
    let mut p = z(&[b"live-update", b"-d", len.to_string().as_bytes()]);
    p.extend_from_slice(data);
    h.call(c, ty::CONTROL, 0, &p)
}

fn text(s: &str) -> Result<Vec<u8>, String> {
    let mut v = s.as_bytes().to_vec();
    v.push(0);
    Ok(v)
}

/// Sends `image` as xenstore-control does: `-b`, then chunks of at most 2048 bytes, each
/// followed by a NUL it does not count.
fn send_image(h: &mut H, c: ConnId, image: &[u8]) {
    assert_eq!(lu(h, c, &["-b", &image.len().to_string()]), text("OK"));
    for part in image.chunks(2048) {
        let mut sent = part.to_vec();
        sent.push(0);
        assert_eq!(chunk(h, c, part.len(), &sent), text("OK"));
    }
}

/// Sends `live-update -s ARGS` and returns what came back at once (nothing, when the host
/// accepted the switch).
fn start(h: &mut H, c: ConnId, args: &[&str]) -> Vec<Msg> {
    let mut all = vec!["live-update", "-s"];
    all.extend_from_slice(args);
    h.send(
        c,
        ty::CONTROL,
        0,
        &z(&all.iter().map(|a| a.as_bytes()).collect::<Vec<_>>()),
    )
}

#[test]
fn the_next_server_answers_the_switch_from_the_state_it_is_handed() {
    let mut h = H::new();
    let c = h.dom0();
    assert_eq!(h.write(c, "/kept", b"value"), ok());
    let mut image = elf(b"Xen\0");
    image.resize(5000, 0x90);
    send_image(&mut h, c, &image);
    assert_eq!(lu(&mut h, c, &["-c", "--event 5 -V"]), text("OK"));
    assert_eq!(
        start(&mut h, c, &["-t", "60"]),
        vec![],
        "answered after the switch"
    );
    let updates = h.p.updates.borrow().clone();
    let [(got, cmdline)] = updates.as_slice() else {
        panic!("one update expected, got {}", updates.len());
    };
    assert_eq!(got, &image);
    assert_eq!(cmdline.as_deref(), Some("--event 5 -V"));
    assert_eq!(
        h.e.live_update_pending(),
        Some((image.as_slice(), Some("--event 5 -V")))
    );
    // While the host gets ready, the store serves on, and no second update can begin.
    assert_eq!(h.write(c, "/during", b"switch"), ok());
    assert_eq!(
        lu(&mut h, c, &["-b", "10"]),
        text("live-update session already active.")
    );
    let rid = h.rid;
    let before = h.e.dump();
    let state = h.e.live_update_state();
    assert_eq!(h.e.dump(), before, "taking the state changes nothing");
    assert!(h.e.live_update_pending().is_some());
    let mut restored = Engine::restore(TestPlatform::default(), Config::default(), &state)
        .expect("the state restores");
    assert_eq!(
        restored.dump(),
        state,
        "the state is the engine's whole stream"
    );
    let mut out = Vec::new();
    restored.output_all(c, &mut out);
    let mut answer = Vec::new();
    wire::encode_msg(&mut answer, ty::CONTROL, rid - 2, 0, b"OK\0");
    assert_eq!(out, answer, "the next server answers -s with OK");
}

#[test]
fn a_switch_the_host_gives_up_is_answered_with_why_and_a_new_session_can_start() {
    let mut h = H::new();
    let c = h.dom0();
    send_image(&mut h, c, &elf(b"Xen\0"));
    assert_eq!(start(&mut h, c, &[]), vec![]);
    let rid = h.rid;
    h.e.live_update_fail("Live update failed: no memory for the new kernel.");
    let msgs = h.drain(c);
    assert_eq!(
        msgs,
        vec![Msg {
            ty: ty::CONTROL,
            req_id: rid,
            tx_id: 0,
            payload: b"Live update failed: no memory for the new kernel.\0".to_vec(),
        }]
    );
    assert_eq!(h.e.live_update_pending(), None);
    assert_eq!(lu(&mut h, c, &["-b", "10"]), text("OK"));
}

#[test]
fn open_transactions_travel_instead_of_making_it_wait() {
    let mut h = H::new();
    let c = h.dom0();
    let g = h.guest(7);
    let tx = h.tx_start(g);
    assert!(tx > 0);
    send_image(&mut h, c, &elf(b"Xen\0"));
    assert_eq!(start(&mut h, c, &[]), vec![], "no BUSY, no timeout needed");
    assert_eq!(
        lu(&mut h, c, &["-s", "-F", "-t", "0", "-v", "1"]),
        text("Not in live-update session.")
    );
}

#[test]
fn chunks_must_fit_and_say_their_length() {
    let mut h = H::new();
    let c = h.dom0();
    assert_eq!(lu(&mut h, c, &["-b", "10"]), text("OK"));
    assert_eq!(chunk(&mut h, c, 6, b"abcdef"), text("OK"));
    assert_eq!(chunk(&mut h, c, 5, b"ghijk"), text("Too much kernel data."));
    assert_eq!(
        chunk(&mut h, c, 3, b"gh"),
        text("Chunk length does not match its 2 data bytes.")
    );
    assert_eq!(lu(&mut h, c, &["-s"]), text("Kernel not complete."));
    assert_eq!(chunk(&mut h, c, 4, b"ghij"), text("OK"));
    assert_eq!(
        lu(&mut h, c, &["-s"]),
        text("Not a Xen PV x86_64 kernel: no ELF header.")
    );
    assert!(h.p.updates.borrow().is_empty());
}

#[test]
fn only_xen_pv_x86_64_kernels_are_accepted() {
    let good = elf(b"Xen\0");
    assert_eq!(check_image(&good), Ok(()));
    let mut other_note = elf(b"GNU\0");
    assert_eq!(check_image(&other_note), Err("no Xen ELF note"));
    other_note = good.clone();
    other_note[4] = 1;
    assert_eq!(
        check_image(&other_note),
        Err("not a 64-bit little-endian ELF")
    );
    let mut arm = good.clone();
    arm[18] = 183;
    assert_eq!(check_image(&arm), Err("not an x86_64 image"));
    let mut shared = good.clone();
    shared[16] = 3;
    assert_eq!(check_image(&shared), Err("not an executable"));
    // Truncations and out-of-range offsets anywhere never panic, and are refused.
    for n in 0..good.len() - 7 {
        assert!(check_image(&good[..n]).is_err(), "truncated at {n}");
    }
    let mut far = good.clone();
    far[64 + 8..64 + 16].copy_from_slice(&u64::MAX.to_le_bytes());
    assert_eq!(check_image(&far), Err("a note segment is out of range"));
    let mut headers_far = good.clone();
    headers_far[32..40].copy_from_slice(&u64::MAX.to_le_bytes());
    assert_eq!(
        check_image(&headers_far),
        Err("program headers out of range")
    );
}

#[test]
fn the_session_belongs_to_the_connection_that_opened_it() {
    let mut h = H::new();
    let c = h.dom0();
    let other = h.dom0();
    assert_eq!(lu(&mut h, c, &["-b", "100"]), text("OK"));
    assert_eq!(
        lu(&mut h, other, &["-b", "100"]),
        text("live-update session already active.")
    );
    assert_eq!(
        chunk(&mut h, other, 1, b"x"),
        text("Not in live-update session.")
    );
    assert_eq!(
        lu(&mut h, other, &["-c", "x"]),
        text("Not in live-update session.")
    );
    assert_eq!(
        lu(&mut h, other, &["-s"]),
        text("Not in live-update session.")
    );
    // Any privileged connection may abort it, as in C.
    assert_eq!(lu(&mut h, other, &["-a"]), text("OK"));
    assert_eq!(
        lu(&mut h, c, &["-a"]),
        text("No live-update session active.")
    );
}

#[test]
fn sizes_options_and_callers_are_checked() {
    let mut h = H::with(Config {
        live_update_max: 4096,
        ..Config::default()
    });
    let c = h.dom0();
    assert_eq!(
        lu(&mut h, c, &["-b", "0"]),
        text("Kernel of 0 bytes refused: at most 4096 bytes.")
    );
    assert_eq!(
        lu(&mut h, c, &["-b", "4097"]),
        text("Kernel of 4097 bytes refused: at most 4096 bytes.")
    );
    assert_eq!(lu(&mut h, c, &["-b", "big"]), text("Invalid kernel size."));
    assert_eq!(lu(&mut h, c, &[]), Err("EINVAL".into()));
    assert_eq!(lu(&mut h, c, &["-x"]), Err("EINVAL".into()));
    assert_eq!(lu(&mut h, c, &["-b"]), Err("EINVAL".into()));
    assert_eq!(lu(&mut h, c, &["-a", "now"]), Err("EINVAL".into()));
    assert_eq!(lu(&mut h, c, &["-s", "-t"]), Err("EINVAL".into()));
    assert_eq!(lu(&mut h, c, &["-s", "-q"]), Err("EINVAL".into()));
    assert_eq!(lu(&mut h, c, &["-b", "4096"]), text("OK"));
    assert_eq!(
        lu(&mut h, c, &["-s", "-v", "3"]),
        text("Migration stream version not supported.")
    );
    let g = h.guest(9);
    assert_eq!(lu(&mut h, g, &["-a"]), Err("EACCES".into()));
}
