//! Aligned text tables, as kubectl prints them: columns separated by three
//! spaces, no trailing blanks.

/// Space between columns.
const GAP: usize = 3;

/// Column widths that only grow, so rows printed later (watch) line up with
/// those printed before as far as possible.
#[derive(Clone, Debug, Default)]
pub(crate) struct Layout {
    widths: Vec<usize>,
}

impl Layout {
    /// A layout wide enough for `headers` and every row.
    pub(crate) fn new(headers: &[String], rows: &[Vec<String>]) -> Self {
        let mut layout = Self::default();
        layout.fit(headers);
        for row in rows {
            layout.fit(row);
        }
        layout
    }

    /// Widens columns to fit `row`.
    pub(crate) fn fit(&mut self, row: &[String]) {
        if self.widths.len() < row.len() {
            self.widths.resize(row.len(), 0);
        }
        for (width, cell) in self.widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }

    /// One line (no newline): every cell but the last padded to its column.
    pub(crate) fn line(&self, row: &[String]) -> String {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            line.push_str(cell);
            if i + 1 < row.len() {
                let width = self.widths.get(i).copied().unwrap_or(0);
                let pad = width.saturating_sub(cell.chars().count()) + GAP;
                line.extend(std::iter::repeat_n(' ', pad));
            }
        }
        line
    }
}

/// A whole table, one line per row, each ending in a newline; the header
/// line first unless `headers` is None.
pub(crate) fn render(headers: Option<&[String]>, rows: &[Vec<String>]) -> String {
    let layout = Layout::new(headers.unwrap_or_default(), rows);
    let mut out = String::new();
    for row in headers.into_iter().chain(rows.iter().map(Vec::as_slice)) {
        out.push_str(&layout.line(row));
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(cells: &[&str]) -> Vec<String> {
        cells.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn columns_align_with_three_spaces_and_no_trailing_blanks() {
        let headers = strings(&["NAME", "PHASE", "AGE"]);
        let rows = vec![
            strings(&["a", "Succeeded", "5s"]),
            strings(&["longer-name", "Pending", "12m"]),
        ];
        let text = render(Some(&headers), &rows);
        assert_eq!(
            text,
            "NAME          PHASE       AGE\n\
             a             Succeeded   5s\n\
             longer-name   Pending     12m\n"
        );
        assert_eq!(render(None, &rows).lines().count(), 2);
    }

    #[test]
    fn layouts_grow_for_later_rows() {
        let headers = strings(&["NAME", "AGE"]);
        let mut layout = Layout::new(&headers, &[]);
        assert_eq!(layout.line(&strings(&["ab", "1s"])), "ab     1s");
        layout.fit(&strings(&["a-much-longer-one", "1s"]));
        assert_eq!(
            layout.line(&strings(&["ab", "1s"])),
            "ab                  1s"
        );
    }
}
