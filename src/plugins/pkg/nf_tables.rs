//! Adding and deleting set and map elements of an nftables table over
//! nf_tables netlink, in one batch (one transaction: all or nothing),
//! without running `nft`, whose start alone costs about 6 ms here and
//! which reads an interval set's elements before adding to it (a cost
//! growing with the set). Tables, chains and whole rebuilds still go
//! through [`super::nft`].

use nix::errno::Errno;

use super::nfnetlink::{
    attr, error_code, message, messages, nested, NlError, Socket, NLMSG_ERROR, NLM_F_ACK,
    NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST,
};

const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 0x10;
const NFNL_MSG_BATCH_END: u16 = 0x11;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_DELSETELEM: u16 = 14;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_DATA: u16 = 2;
const NFTA_SET_ELEM_KEY_END: u16 = 10;
const NFTA_DATA_VALUE: u16 = 1;
/// `NFPROTO_INET`.
pub const INET: u8 = 1;

/// One element, as the kernel stores it: each field of a concatenation
/// in its own 32-bit registers (see [`Fields`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Elem {
    pub set: String,
    pub key: Vec<u8>,
    /// The end of an interval (concatenated interval sets).
    pub key_end: Option<Vec<u8>>,
    /// A map's value.
    pub data: Option<Vec<u8>>,
}

/// Builds a concatenation: each field padded to a multiple of 4 bytes.
#[derive(Debug, Default)]
pub struct Fields(Vec<u8>);

impl Fields {
    pub fn new() -> Self {
        Fields(Vec::new())
    }

    pub fn bytes(mut self, b: &[u8]) -> Self {
        self.0.extend_from_slice(b);
        while !self.0.len().is_multiple_of(4) {
            self.0.push(0);
        }
        self
    }

    pub fn done(self) -> Vec<u8> {
        self.0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ElemError {
    #[error("nf_tables: {0}")]
    Netlink(#[from] NlError),
    /// The kernel refused the batch (nothing of it was applied).
    #[error("nf_tables refused the change to table {table}: {errno}")]
    Refused { table: String, errno: Errno },
}

impl ElemError {
    /// The errno the kernel refused the batch with.
    pub fn errno(&self) -> Option<Errno> {
        match self {
            ElemError::Refused { errno, .. } => Some(*errno),
            ElemError::Netlink(e) => Some(e.source),
        }
    }
}

fn elements_msg(
    kind: u16,
    flags: u16,
    seq: u32,
    table: &str,
    set: &str,
    elems: &[&Elem],
) -> Vec<u8> {
    let mut a = Vec::new();
    attr(
        &mut a,
        NFTA_SET_ELEM_LIST_TABLE,
        format!("{table}\0").as_bytes(),
    );
    attr(
        &mut a,
        NFTA_SET_ELEM_LIST_SET,
        format!("{set}\0").as_bytes(),
    );
    nested(&mut a, NFTA_SET_ELEM_LIST_ELEMENTS, |list| {
        for e in elems {
            nested(list, NFTA_LIST_ELEM, |el| {
                nested(el, NFTA_SET_ELEM_KEY, |k| attr(k, NFTA_DATA_VALUE, &e.key));
                if let Some(end) = &e.key_end {
                    nested(el, NFTA_SET_ELEM_KEY_END, |k| attr(k, NFTA_DATA_VALUE, end));
                }
                if let Some(d) = &e.data {
                    if kind == (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWSETELEM {
                        nested(el, NFTA_SET_ELEM_DATA, |k| attr(k, NFTA_DATA_VALUE, d));
                    }
                }
            });
        }
    });
    message(kind, flags, seq, INET, 0, &a)
}

/// Deletes `dels` then adds `adds` (an add of a key that exists fails:
/// `EEXIST`), in table `table` of family inet, as one transaction.
pub fn apply(table: &str, dels: &[Elem], adds: &[Elem]) -> Result<(), ElemError> {
    let sock = Socket::open()?;
    let mut batch = message(
        NFNL_MSG_BATCH_BEGIN,
        NLM_F_REQUEST,
        0,
        0,
        NFNL_SUBSYS_NFTABLES,
        &[],
    );
    let mut seq = 0u32;
    let mut expected = Vec::new();
    for (verb, flags, elems) in [
        (NFT_MSG_DELSETELEM, NLM_F_REQUEST | NLM_F_ACK, dels),
        (
            NFT_MSG_NEWSETELEM,
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
            adds,
        ),
    ] {
        // One message per set, in the order the sets first appear.
        let mut sets: Vec<&str> = Vec::new();
        for e in elems {
            if !sets.contains(&e.set.as_str()) {
                sets.push(&e.set);
            }
        }
        for set in sets {
            seq += 1;
            let of_set: Vec<&Elem> = elems.iter().filter(|e| e.set == set).collect();
            let kind = (NFNL_SUBSYS_NFTABLES << 8) | verb;
            batch.extend(elements_msg(kind, flags, seq, table, set, &of_set));
            expected.push(seq);
        }
    }
    if expected.is_empty() {
        return Ok(());
    }
    batch.extend(message(
        NFNL_MSG_BATCH_END,
        NLM_F_REQUEST,
        seq + 1,
        0,
        NFNL_SUBSYS_NFTABLES,
        &[],
    ));
    sock.send("send a batch", &batch)?;
    // Every message is acknowledged; a refused one fails the whole batch.
    let mut buf = vec![0u8; 1 << 16];
    while !expected.is_empty() {
        let n = sock.recv("read the kernel's answer", &mut buf)?;
        for (kind, seq, body) in messages(&buf[..n]) {
            if kind != NLMSG_ERROR {
                continue;
            }
            if let Some(errno) = error_code(body) {
                return Err(ElemError::Refused {
                    table: table.to_string(),
                    errno,
                });
            }
            expected.retain(|s| *s != seq);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_are_padded_to_registers() {
        let key = Fields::new()
            .bytes(&[6])
            .bytes(&8080u16.to_be_bytes())
            .done();
        assert_eq!(key, [6, 0, 0, 0, 0x1f, 0x90, 0, 0]);
        let v6 = Fields::new()
            .bytes(&[0xfd; 16])
            .bytes(&80u16.to_be_bytes())
            .done();
        assert_eq!(v6.len(), 20);
    }
}
