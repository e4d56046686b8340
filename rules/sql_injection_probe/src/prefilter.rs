//! The prefilter of [`crate::patterns::find`]: whether a text could match at all.
//!
//! Every pattern needs, after percent-decoding, a quote, `=`, `;`, `(`, or one of the words
//! `union`, `waitfor`, `xp_cmdshell`, `information_schema`; a `%` (something to decode) or
//! any non-ASCII byte (Unicode lowercasing) sends the text to the full scan too. So a text
//! this says no to is a text `find` says no to, and most text is never tokenized.
//!
//! The bytes are classified 16 at a time (wasm `simd128` in the guest, a plain loop
//! natively) into a mask of candidates: a hint byte, a `"` or `\` where they matter, or
//! the first byte of one of the letter pairs `ni`, `nf`, `tf`, `xp` (any case), one of which
//! every hint word holds (`union`, `information_schema`, `waitfor`, `xp_cmdshell`). Only
//! candidates are looked at one by one; plain text costs a few instructions per 16 bytes.

/// A hint word, and the offset in it of its anchor pair (the pair the block masks find).
const WORDS: [(&[u8], usize); 4] = [(b"union", 1), (b"information_schema", 1), (b"waitfor", 3), (b"xp_cmdshell", 0)];

/// Bytes that are hints on their own (besides any byte >= 0x80, and `"` outside JSON).
const HINTS: [u8; 6] = [b'\'', b'`', b'=', b';', b'(', b'%'];

/// Whether `b` (a text, or the raw JSON of a value when `json`) needs the full scan.
/// In JSON, structural quotes are skipped; an escaped quote (`\"`) or any `\u` escape
/// (which may hide a quote or a letter) counts as a hint.
pub(crate) fn needs_scan_bytes(b: &[u8], json: bool) -> bool {
    #[cfg(target_arch = "wasm32")]
    {
        // SAFETY: simd128 is standard WebAssembly (2.0) and enabled in the host's wasmtime
        // (its default); a runtime without it refuses the whole module when it is loaded,
        // it never runs the function.
        #[allow(unsafe_code)]
        unsafe {
            simd::needs_scan_bytes(b, json)
        }
    }
    #[cfg(not(target_arch = "wasm32"))]
    scan_blocks(b, json, |w| portable_candidates(w, json))
}

/// The walk shared by both block classifiers: `candidates(w)` has bit `k` set when byte
/// `k` of the 17-byte window `w` (16 bytes and the next one, zero past the end) may matter.
#[inline(always)]
fn scan_blocks(b: &[u8], json: bool, candidates: impl Fn(&[u8; 17]) -> u16) -> bool {
    let mut i = 0;
    // In JSON, the byte after a backslash is escaped: not looked at (below this index).
    let mut skip_to = 0;
    while i < b.len() {
        let mut mask = match b.get(i..i + 17) {
            Some(w) => candidates(w.try_into().expect("17 bytes")),
            None => {
                let mut w = [0u8; 17];
                w[..b.len() - i].copy_from_slice(&b[i..]);
                candidates(&w)
            }
        };
        while mask != 0 {
            let p = i + mask.trailing_zeros() as usize;
            mask &= mask - 1;
            if p < skip_to {
                continue;
            }
            match b[p] {
                b'\\' if json => match b.get(p + 1) {
                    Some(b'"' | b'u') => return true,
                    _ => skip_to = p + 2,
                },
                b'\\' => {}
                c if c >= 0x80 || c == b'"' || HINTS.contains(&c) => return true,
                _ => {
                    let word_at = |(w, off): &(&[u8], usize)| {
                        // A word starting on an escaped byte is not read as a word.
                        p >= off + skip_to
                            && b.get(p - off..p - off + w.len()).is_some_and(|s| s.eq_ignore_ascii_case(w))
                    };
                    if WORDS.iter().any(word_at) {
                        return true;
                    }
                }
            }
        }
        i += 16;
    }
    false
}

/// Whether the pair `(c, next)` starts an anchor pair of [`WORDS`].
#[inline(always)]
fn anchor(c: u8, next: u8) -> bool {
    matches!((c | 0x20, next | 0x20), (b'n', b'i' | b'f') | (b't', b'f') | (b'x', b'p'))
}

/// The candidate mask of a window, one byte at a time (native builds, and the reference
/// for the SIMD classifier).
#[cfg_attr(target_arch = "wasm32", allow(dead_code))]
fn portable_candidates(w: &[u8; 17], json: bool) -> u16 {
    let mut mask = 0u16;
    for k in 0..16 {
        let c = w[k];
        let hit =
            c >= 0x80 || HINTS.contains(&c) || (c == b'"' && !json) || (c == b'\\' && json) || anchor(c, w[k + 1]);
        if hit {
            mask |= 1 << k;
        }
    }
    mask
}

#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code)]
mod simd {
    use core::arch::wasm32::*;

    /// [`super::needs_scan_bytes`] with the simd128 block classifier.
    #[target_feature(enable = "simd128")]
    pub(super) unsafe fn needs_scan_bytes(b: &[u8], json: bool) -> bool {
        // In JSON a `"` is structural (not a candidate: an escaped one is found through its
        // backslash) and a `\` starts an escape; in plain text a `"` is a hint and a `\` is
        // nothing. The byte compared in place of the one that does not matter is a hint
        // already in the set (`'`), so it adds nothing.
        let (quote, backslash) = if json { (b'\'', b'\\') } else { (b'"', b'\'') };
        let (quote, backslash) = (u8x16_splat(quote), u8x16_splat(backslash));
        super::scan_blocks(b, json, |w| unsafe { candidates(w, quote, backslash) })
    }

    /// Bit `k`: byte `k` of the window is >= 0x80, a hint byte, `quote` or `backslash`,
    /// or the first byte of an anchor pair.
    #[target_feature(enable = "simd128")]
    unsafe fn candidates(w: &[u8; 17], quote: v128, backslash: v128) -> u16 {
        // SAFETY: both 16-byte loads are inside the 17-byte window (wasm loads need no
        // alignment).
        let (v, next) = unsafe { (v128_load(w.as_ptr().cast()), v128_load(w.as_ptr().add(1).cast())) };
        let eq = |x: v128, c: u8| u8x16_eq(x, u8x16_splat(c));
        let hints = v128_or(
            v128_or(v128_or(eq(v, b'\''), eq(v, b'`')), v128_or(eq(v, b'='), eq(v, b';'))),
            v128_or(v128_or(eq(v, b'('), eq(v, b'%')), v128_or(u8x16_eq(v, quote), u8x16_eq(v, backslash))),
        );
        let case = u8x16_splat(0x20);
        let (l, ln) = (v128_or(v, case), v128_or(next, case));
        let f1 = eq(ln, b'f');
        let pairs = v128_or(
            v128_and(eq(l, b'n'), v128_or(eq(ln, b'i'), f1)),
            v128_or(v128_and(eq(l, b't'), f1), v128_and(eq(l, b'x'), eq(ln, b'p'))),
        );
        // The high bit of each byte: non-ASCII bytes.
        (i8x16_bitmask(v128_or(hints, pairs)) | i8x16_bitmask(v)) as u16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The byte-at-a-time prefilter this module replaced: the reference.
    fn reference(b: &[u8], json: bool) -> bool {
        const WORDS: [&[u8]; 4] = [b"union", b"waitfor", b"xp_cmdshell", b"information_schema"];
        let mut i = 0;
        while i < b.len() {
            let c = b[i];
            if c >= 0x80 || HINTS.contains(&c) || (c == b'"' && !json) {
                return true;
            }
            if c == b'\\' && json {
                match b.get(i + 1) {
                    Some(b'"' | b'u') => return true,
                    _ => i += 1,
                }
            } else if matches!(c | 0x20, b'u' | b'w' | b'x' | b'i') {
                let rest = &b[i..];
                if WORDS.iter().any(|w| rest.len() >= w.len() && rest[..w.len()].eq_ignore_ascii_case(w)) {
                    return true;
                }
            }
            i += 1;
        }
        false
    }

    /// Texts of `len` bytes from an alphabet of hint pieces, anchor letters and plain bytes.
    fn corpus(seed: u64, n: usize) -> Vec<Vec<u8>> {
        let pieces: [&[u8]; 30] = [
            b"a",
            b"b",
            b"/",
            b" ",
            b"n",
            b"N",
            b"i",
            b"f",
            b"t",
            b"x",
            b"P",
            b"u",
            b"w",
            b"_",
            b"'",
            b"\"",
            b"\\",
            b"\\\\",
            b"\\u",
            b"\\n",
            b"=",
            b";",
            b"(",
            b"%",
            b"`",
            "é".as_bytes(),
            b"UnIoN",
            b"waitFOR",
            b"xp_cmdshell",
            b"information_SCHEMA",
        ];
        let mut x = seed;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        (0..n)
            .map(|_| {
                let len = (next() % 48) as usize;
                let mut text = Vec::new();
                while text.len() < len {
                    // Mostly plain bytes, so texts without any candidate are common too.
                    let r = next();
                    let piece = if r % 3 == 0 {
                        pieces[(r / 3 % 30) as usize]
                    } else {
                        &b"abcdefghklmoqrsvyz0123456789/-."[(r / 3 % 31) as usize..][..1]
                    };
                    text.extend_from_slice(piece);
                }
                text
            })
            .collect()
    }

    #[test]
    fn blocks_agree_with_the_byte_at_a_time_reference() {
        let (mut yes, mut no) = (0, 0);
        for text in corpus(0x9e37_79b9_7f4a_7c15, 60_000) {
            for json in [false, true] {
                let want = reference(&text, json);
                assert_eq!(needs_scan_bytes(&text, json), want, "{:?} json={json}", String::from_utf8_lossy(&text));
                if want { yes += 1 } else { no += 1 }
            }
        }
        assert!(yes > 1000 && no > 1000, "the corpus exercises both answers: {yes} / {no}");
    }

    #[test]
    fn words_across_block_edges_are_found() {
        for (word, _) in WORDS {
            for pad in 0..40 {
                let mut text = vec![b'a'; pad];
                text.extend_from_slice(word);
                text.extend_from_slice(b"zz");
                assert!(needs_scan_bytes(&text, false), "{pad} {:?}", String::from_utf8_lossy(&text));
                text.truncate(pad + word.len() - 1);
                assert!(!needs_scan_bytes(&text, false), "a cut word is no hint");
            }
        }
    }
}
