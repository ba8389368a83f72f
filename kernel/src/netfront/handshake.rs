//! The netfront side of the xenbus handshake, over any [`Store`]: find the backend, read its
//! MAC, publish our rings (`tx-ring-ref`, `rx-ring-ref`, `event-channel`, `request-rx-copy`,
//! `feature-rx-notify`, `feature-no-csum-offload`, `feature-sg` 0, `feature-gso-tcpv4` 0)
//! and switch to Connected; on the way out,
//! Closing then Closed. Whatever the store holds is checked: a malformed value is an error
//! naming its node, never a panic. Pure logic, host-tested.

use alloc::format;
use alloc::string::String;
use alloc::vec::Vec;

/// `enum xenbus_state` values used here.
pub mod state {
    pub const INITIALISING: u32 = 1;
    pub const INIT_WAIT: u32 = 2;
    pub const INITIALISED: u32 = 3;
    pub const CONNECTED: u32 = 4;
    pub const CLOSING: u32 = 5;
    pub const CLOSED: u32 = 6;
}

/// Where the handshake reads and writes: the guest's xenstore client or the stub's own engine.
pub trait Store {
    /// The value of `path`, or why not (`ENOENT` when absent).
    fn read(&mut self, path: &str) -> Result<Vec<u8>, String>;
    /// Writes `value` to `path`.
    fn write(&mut self, path: &str, value: &str) -> Result<(), String>;
}

/// The backend of one vif, as the store describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backend {
    /// Its xenstore directory (`/local/domain/0/backend/vif/<dom>/<n>`).
    pub path: String,
    pub domid: u16,
    pub mac: [u8; 6],
}

/// What the frontend publishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rings {
    pub tx_ref: u32,
    pub rx_ref: u32,
    pub port: u32,
}

fn text(store: &mut dyn Store, path: &str) -> Result<String, String> {
    let v = store
        .read(path)
        .map_err(|e| format!("reading {path}: {e}"))?;
    String::from_utf8(v).map_err(|_| format!("{path} is not text"))
}

/// Parses `aa:bb:cc:dd:ee:ff`, a unicast address (a multicast one cannot be a NIC's own).
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = s.trim_end_matches('\0').split(':');
    for b in mac.iter_mut() {
        let p = parts.next()?;
        if p.len() != 2 {
            return None;
        }
        *b = u8::from_str_radix(p, 16).ok()?;
    }
    (parts.next().is_none() && mac[0] & 1 == 0).then_some(mac)
}

/// Reads the backend of the frontend directory `front` (`device/vif/<n>`): its path and
/// domain, and the MAC from the backend's `mac` node (the frontend's own as a fallback).
pub fn find_backend(store: &mut dyn Store, front: &str) -> Result<Backend, String> {
    let path = text(store, &format!("{front}/backend"))?;
    let id = text(store, &format!("{front}/backend-id"))?;
    let domid = id
        .parse::<u16>()
        .map_err(|_| format!("{front}/backend-id is not a domain id: {id:?}"))?;
    let mac_text =
        text(store, &format!("{path}/mac")).or_else(|_| text(store, &format!("{front}/mac")))?;
    let mac =
        parse_mac(&mac_text).ok_or_else(|| format!("{path}/mac is not a MAC: {mac_text:?}"))?;
    Ok(Backend { path, domid, mac })
}

/// The xenbus state in `dir/state`; a missing node reads as Closed (the device went away).
pub fn read_state(store: &mut dyn Store, dir: &str) -> Result<u32, String> {
    let path = format!("{dir}/state");
    match store.read(&path) {
        Ok(v) => core::str::from_utf8(&v)
            .ok()
            .and_then(|s| s.parse::<u32>().ok())
            .ok_or_else(|| format!("{path} is not a xenbus state")),
        Err(e) if e.contains("ENOENT") => Ok(state::CLOSED),
        Err(e) => Err(format!("reading {path}: {e}")),
    }
}

/// Writes our rings and features to `front`, then `state` = Connected.
pub fn publish(store: &mut dyn Store, front: &str, rings: Rings) -> Result<(), String> {
    let nodes = [
        ("tx-ring-ref", format!("{}", rings.tx_ref)),
        ("rx-ring-ref", format!("{}", rings.rx_ref)),
        ("event-channel", format!("{}", rings.port)),
        ("request-rx-copy", String::from("1")),
        ("feature-rx-notify", String::from("1")),
        ("feature-no-csum-offload", String::from("1")),
        ("feature-sg", String::from("0")),
        ("feature-gso-tcpv4", String::from("0")),
        ("state", format!("{}", state::CONNECTED)),
    ];
    for (name, value) in nodes {
        let path = format!("{front}/{name}");
        store
            .write(&path, &value)
            .map_err(|e| format!("writing {path}: {e}"))?;
    }
    Ok(())
}

/// Asks the backend of a vif we closed ourselves to prepare for a new connection: with our
/// state Closed and the backend Closed but still `online` (not being detached), our state
/// Initialising makes netback go back to InitWait. True when asked.
pub fn reconnect(store: &mut dyn Store, front: &str, backend: &str) -> Result<bool, String> {
    let ours = read_state(store, front)?;
    let theirs = read_state(store, backend)?;
    let online = store.read(&format!("{backend}/online"));
    if ours != state::CLOSED || theirs != state::CLOSED || online.as_deref() != Ok(b"1".as_slice())
    {
        return Ok(false);
    }
    set_state(store, front, state::INITIALISING).map(|()| true)
}

/// Sets our `state`.
pub fn set_state(store: &mut dyn Store, front: &str, s: u32) -> Result<(), String> {
    let path = format!("{front}/state");
    store
        .write(&path, &format!("{s}"))
        .map_err(|e| format!("writing {path}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use alloc::collections::BTreeMap;

    #[derive(Default)]
    struct Map(BTreeMap<String, Vec<u8>>);

    impl Store for Map {
        fn read(&mut self, path: &str) -> Result<Vec<u8>, String> {
            self.0
                .get(path)
                .cloned()
                .ok_or_else(|| String::from("ENOENT"))
        }
        fn write(&mut self, path: &str, value: &str) -> Result<(), String> {
            self.0.insert(path.into(), value.as_bytes().to_vec());
            Ok(())
        }
    }

    fn store() -> Map {
        let mut m = Map::default();
        let be = "/local/domain/0/backend/vif/3/0";
        m.write("device/vif/0/backend", be).unwrap();
        m.write("device/vif/0/backend-id", "0").unwrap();
        m.write(&format!("{be}/mac"), "00:16:3e:0a:0b:fc").unwrap();
        m.write(&format!("{be}/state"), "2").unwrap();
        m
    }

    #[test]
    fn the_backend_and_its_mac_are_found() {
        let mut m = store();
        let be = find_backend(&mut m, "device/vif/0").unwrap();
        assert_eq!(be.path, "/local/domain/0/backend/vif/3/0");
        assert_eq!((be.domid, be.mac), (0, [0, 0x16, 0x3e, 0x0a, 0x0b, 0xfc]));
        assert_eq!(read_state(&mut m, &be.path), Ok(state::INIT_WAIT));
        assert_eq!(read_state(&mut m, "device/vif/9"), Ok(state::CLOSED));
    }

    #[test]
    fn hostile_values_are_errors_naming_the_node() {
        for (node, value) in [
            ("device/vif/0/backend-id", "70000"),
            ("device/vif/0/backend-id", "zero"),
            ("/local/domain/0/backend/vif/3/0/mac", "00:16:3e:0a:0b"),
            (
                "/local/domain/0/backend/vif/3/0/mac",
                "00:16:3e:0a:0b:fc:00",
            ),
            ("/local/domain/0/backend/vif/3/0/mac", "00:16:3e:0a:0b:zz"),
            ("/local/domain/0/backend/vif/3/0/mac", "0:016:3e:0a:0b:fc"),
            ("/local/domain/0/backend/vif/3/0/mac", "01:16:3e:0a:0b:fc"),
        ] {
            let mut m = store();
            m.write(node, value).unwrap();
            let e = find_backend(&mut m, "device/vif/0").unwrap_err();
            assert!(e.contains(node.rsplit('/').next().unwrap()), "{e}");
        }
        let mut m = store();
        m.0.insert("device/vif/0/backend".into(), vec![0xff, 0xfe]);
        assert_eq!(
            find_backend(&mut m, "device/vif/0").unwrap_err(),
            "device/vif/0/backend is not text"
        );
        m.write("x/state", "connected").unwrap();
        assert_eq!(
            read_state(&mut m, "x"),
            Err("x/state is not a xenbus state".into())
        );
    }

    #[test]
    fn reconnect_only_a_closed_pair_still_online() {
        let be = "/local/domain/0/backend/vif/3/0";
        let mut m = store();
        m.write("device/vif/0/state", "6").unwrap();
        m.write(&format!("{be}/state"), "6").unwrap();
        m.write(&format!("{be}/online"), "0").unwrap();
        assert_eq!(
            reconnect(&mut m, "device/vif/0", be),
            Ok(false),
            "being detached"
        );
        m.write(&format!("{be}/online"), "1").unwrap();
        assert_eq!(reconnect(&mut m, "device/vif/0", be), Ok(true));
        assert_eq!(read_state(&mut m, "device/vif/0"), Ok(state::INITIALISING));
        assert_eq!(
            reconnect(&mut m, "device/vif/0", be),
            Ok(false),
            "asked already"
        );
    }

    #[test]
    fn publish_writes_rings_and_features_then_connected() {
        let mut m = Map::default();
        let rings = Rings {
            tx_ref: 9,
            rx_ref: 10,
            port: 5,
        };
        publish(&mut m, "device/vif/0", rings).unwrap();
        let get = |k: &str| String::from_utf8(m.0[&format!("device/vif/0/{k}")].clone()).unwrap();
        assert_eq!(get("tx-ring-ref"), "9");
        assert_eq!(get("rx-ring-ref"), "10");
        assert_eq!(get("event-channel"), "5");
        assert_eq!(get("request-rx-copy"), "1");
        assert_eq!(get("feature-rx-notify"), "1");
        assert_eq!(get("state"), "4");
    }
}
