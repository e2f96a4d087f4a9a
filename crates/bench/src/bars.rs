//! Progress bars (indicatif, on stderr; hidden when stderr is not a terminal).

use indicatif::{ProgressBar, ProgressStyle};

/// A bar of `len` steps labelled `prefix`.
pub(crate) fn bar(len: u64, prefix: &str) -> ProgressBar {
    let style = ProgressStyle::with_template(
        "{prefix:>18.bold} [{bar:32.cyan/blue}] {human_pos:>9}/{human_len:<9} {per_sec:>12} {elapsed_precise} {msg}",
    )
    .map_or_else(|_| ProgressStyle::default_bar(), |style| style.progress_chars("=> "));
    ProgressBar::new(len).with_style(style).with_prefix(prefix.to_owned())
}
