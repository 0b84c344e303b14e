//! `slothctl version`.

use crate::printer::emit;

pub fn run() -> anyhow::Result<()> {
    emit(&format!("slothctl version {}\n", env!("CARGO_PKG_VERSION")))?;
    Ok(())
}
