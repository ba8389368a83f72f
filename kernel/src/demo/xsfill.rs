//! Memory-abuse mode (`cmdline = "xsfill"`, tests/boot/stub-memory-abuse.sh): the guest tries
//! to make the xenstore server hold as much as it can, first in ten open transactions, then
//! in its own area, with values of [`VALUE`] bytes, and reports the error that stopped it.
//! Then it keeps what it got until it is destroyed, so that several such guests press on the
//! server together.
//!
//! Markers (`<n>` a count, `<E>` a xenstore error name):
//! - `xsfill: 10 transactions took <n> values of 2000 bytes, then <E>`
//! - `xsfill: transactions aborted`
//! - `xsfill: wrote <n> values of 2000 bytes, then <E>`
//! - `xsfill: holding` — or `xsfill: FAILED: <what>` and the mode stops there.

use crate::start_info::StartInfo;
use crate::xenbus::{self, Tx};
use crate::{println, sched, time};
use alloc::format;
use alloc::string::String;
use alloc::vec;
use alloc::vec::Vec;

/// Bytes per value (a node record stays under the 2048-byte node-size quota).
const VALUE: usize = 2000;
/// Transactions kept open together (C xenstored's default quota).
const TRANSACTIONS: u32 = 10;
/// Values per directory: a directory's record holds its children's names, so a guest's
/// directory is bounded by the node-size quota too.
const PER_DIR: usize = 100;
/// More values than any quota lets through: the loop always ends with an error.
const LIMIT: usize = 100_000;

/// Runs the mode; returns only after a failure (holding otherwise never ends).
pub fn run(si: &StartInfo) {
    if let Err(e) = steps(si) {
        println!("xsfill: FAILED: {e}");
    }
}

fn steps(si: &StartInfo) -> Result<(), String> {
    xenbus::init(si).map_err(|e| format!("xenbus::init: {e}"))?;
    let mut txs = Vec::new();
    for _ in 0..TRANSACTIONS {
        txs.push(xenbus::transaction_start().map_err(|e| format!("transaction_start: {e}"))?);
    }
    let (n, why) = fill(&txs, "data/tx");
    println!("xsfill: {TRANSACTIONS} transactions took {n} values of {VALUE} bytes, then {why}");
    for tx in txs {
        xenbus::transaction_end(tx, false).map_err(|e| format!("transaction_end: {e}"))?;
    }
    println!("xsfill: transactions aborted");
    let (n, why) = fill(&[0], "data/fill");
    println!("xsfill: wrote {n} values of {VALUE} bytes, then {why}");
    println!("xsfill: holding");
    loop {
        sched::sleep_until(time::now_ns() + time::NS_PER_SEC);
    }
}

/// Writes values under `prefix`, taking the transactions in turn, until a write fails;
/// returns how many succeeded and the failure.
fn fill(txs: &[Tx], prefix: &str) -> (usize, String) {
    let value = vec![b'x'; VALUE];
    for i in 0..LIMIT {
        let tx = txs.get(i % txs.len().max(1)).copied().unwrap_or(0);
        let path = format!("{prefix}/{}/{}", i / PER_DIR, i % PER_DIR);
        if let Err(e) = xenbus::write(tx, &path, &value) {
            return (i, format!("{e}"));
        }
    }
    (LIMIT, String::from("no error"))
}
