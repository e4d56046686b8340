//! Reading an export file line by line in constant memory ([`verify_reader`] for one log,
//! [`verify_export`] for any export, a cluster's sections included).

use super::sections::SectionVerifier;
use super::{ExportReport, MAX_LINE_BYTES, OfflineReport, OfflineVerifier};
use crate::ledger::keys::Verifier;

/// One piece of an export file as [`read_lines`] hands it over.
enum Piece<'a> {
    /// A line, without its newline.
    Line(&'a [u8]),
    /// A line longer than [`MAX_LINE_BYTES`] (skipped).
    Overlong,
}

/// Reads `reader` line by line in constant memory; `each` gets every piece and answers the
/// events checked so far, `progress` the bytes read and that count now and then.
fn read_lines(
    reader: impl std::io::Read,
    mut each: impl FnMut(Piece<'_>) -> u64,
    mut progress: impl FnMut(u64, u64),
) -> std::io::Result<()> {
    use std::io::{BufRead, Read};
    let mut reader = std::io::BufReader::with_capacity(1 << 20, reader);
    let mut line = Vec::with_capacity(4096);
    let (mut read, mut lines, mut verified) = (0u64, 0u64, 0u64);
    loop {
        line.clear();
        let n = (&mut reader).take(MAX_LINE_BYTES as u64 + 1).read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        read += n as u64;
        lines += 1;
        if line.len() > MAX_LINE_BYTES {
            verified = each(Piece::Overlong);
            // Skip the rest of the line.
            loop {
                line.clear();
                let m = (&mut reader).take(1 << 20).read_until(b'\n', &mut line)?;
                read += m as u64;
                if m == 0 || line.last() == Some(&b'\n') {
                    break;
                }
            }
            continue;
        }
        verified = each(Piece::Line(line.strip_suffix(b"\n").unwrap_or(&line)));
        if lines.is_multiple_of(65_536) {
            progress(read, verified);
        }
    }
    progress(read, verified);
    Ok(())
}

/// Verifies an export of one log (a single node's, an archive part) read from `reader`;
/// `progress` is called with the bytes read so far.
pub fn verify_reader(
    reader: impl std::io::Read,
    keys: Verifier,
    progress: impl FnMut(u64, u64),
) -> std::io::Result<OfflineReport> {
    let mut verifier = OfflineVerifier::new(keys);
    read_lines(
        reader,
        |piece| {
            match piece {
                Piece::Line(bytes) => verifier.feed(bytes),
                Piece::Overlong => verifier.feed_overlong(),
            }
            verifier.verified()
        },
        progress,
    )?;
    Ok(verifier.finish())
}

/// Verifies any export read from `reader`: a single node's (one section: the
/// [`OfflineReport`] exactly as [`verify_reader`] gives it) or a cluster's (a section per
/// partition, each checked as its own chain: [`PartitionedReport`]).
pub fn verify_export(
    reader: impl std::io::Read,
    keys: Verifier,
    progress: impl FnMut(u64, u64),
) -> std::io::Result<ExportReport> {
    let mut sections = SectionVerifier::new(keys);
    read_lines(
        reader,
        |piece| {
            match piece {
                Piece::Line(bytes) => sections.feed(bytes),
                Piece::Overlong => sections.feed_overlong(),
            }
            sections.verified()
        },
        progress,
    )?;
    Ok(sections.finish())
}
