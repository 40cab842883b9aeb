//! Plain-text tables for people: columns padded to their widest cell, the last one left free.

use std::io::Write;

/// Writes `header` and `rows`, two spaces between columns, trailing spaces trimmed.
pub fn write<const N: usize>(
    out: &mut impl Write,
    header: [&str; N],
    rows: &[[String; N]],
) -> std::io::Result<()> {
    let width = |i: usize| {
        rows.iter()
            .map(|r| r[i].len())
            .chain([header[i].len()])
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..N).map(width).collect();
    let line = |cells: [&str; N]| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i + 1 < N {
                text.push_str(&format!("{cell:w$}  ", w = widths[i]));
            } else {
                text.push_str(cell);
            }
        }
        text.trim_end().to_string()
    };
    writeln!(out, "{}", line(header))?;
    for r in rows {
        writeln!(out, "{}", line(std::array::from_fn(|i| r[i].as_str())))?;
    }
    Ok(())
}
