//! The `in_list` import (ABI 1.4): a rule asks whether a value is on one of the server's
//! `[[lists]]` (`ingest::enrich` loads and reloads them). Name and value are bounds-checked
//! like every guest pointer; the answer never allocates in the guest.

use wasmtime::{Caller, Linker};

use super::{HostState, memory_and_state, range};
use crate::ingest::enrich::MAX_VALUE_BYTES;

/// Longest list name read (names are at most 64 bytes).
const MAX_NAME_BYTES: i32 = 64;

/// Links `in_list(name_ptr, name_len, value_ptr, value_len) -> i32`: 1 on the list, 0 not
/// on it, -1 no list of that name (or no lists in this host).
pub(super) fn link_lists(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    linker.func_wrap(
        "vigil",
        "in_list",
        |mut caller: Caller<'_, HostState>, name_ptr: i32, name_len: i32, value_ptr: i32, value_len: i32| {
            let (data, host) = memory_and_state(&mut caller)?;
            let name = &data[range(data.len(), name_ptr, name_len.min(MAX_NAME_BYTES + 1))?];
            let value = &data[range(data.len(), value_ptr, value_len)?];
            let (Some(lists), Ok(name)) = (&host.lists, std::str::from_utf8(name)) else { return Ok(-1) };
            // A value longer than any entry, or not UTF-8, is on no list (but the list exists).
            let value = std::str::from_utf8(value).ok().filter(|v| v.len() <= MAX_VALUE_BYTES);
            Ok(match (lists.in_list(name, value.unwrap_or_default()), value) {
                (None, _) => -1,
                (Some(true), Some(_)) => 1,
                (Some(_), _) => 0,
            })
        },
    )?;
    Ok(())
}
