//! How objects are shown: tables (per-kind columns, kubectl ages) and the
//! machine-readable forms.

pub(crate) mod age;
pub(crate) mod columns;
pub(crate) mod cron_stack;
pub(crate) mod custom_columns;
pub(crate) mod jsonpath;
pub(crate) mod output;
pub(crate) mod table;

use std::io::Write;
use std::sync::Arc;

/// `-o`: how `get` prints.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// Aligned columns.
    #[default]
    Table,
    /// Aligned columns, with the kind's extra ones.
    Wide,
    Yaml,
    Json,
    /// `kind/name`, one a line.
    Name,
}

/// `get -o`: one of the [`Format`]s, or a template (kubectl's
/// `jsonpath=TEMPLATE` and `custom-columns=SPEC`).
#[derive(Clone, Debug)]
pub(crate) enum Output {
    Plain(Format),
    JsonPath(Arc<jsonpath::Template>),
    CustomColumns(Arc<custom_columns::Columns>),
}

impl Output {
    /// clap's parser for `-o`.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        if let Some(template) = text.strip_prefix("jsonpath=") {
            return Ok(Self::JsonPath(Arc::new(jsonpath::Template::parse(
                template,
            )?)));
        }
        if let Some(spec) = text.strip_prefix("custom-columns=") {
            return Ok(Self::CustomColumns(Arc::new(
                custom_columns::Columns::parse(spec)?,
            )));
        }
        <Format as clap::ValueEnum>::from_str(text, false)
            .map(Self::Plain)
            .map_err(|_| {
                format!(
                    "unknown output format {text:?}: use table, wide, yaml, json, name, \
                     jsonpath=TEMPLATE or custom-columns=SPEC"
                )
            })
    }

    /// The plain format, when it is one.
    pub(crate) fn format(&self) -> Option<Format> {
        match self {
            Self::Plain(format) => Some(*format),
            _ => None,
        }
    }
}

/// Writes `text` to stdout and flushes, so that readers through a pipe see
/// each line as soon as it is printed.
pub(crate) fn emit(text: &str) -> std::io::Result<()> {
    emit_bytes(text.as_bytes())
}

/// Writes raw bytes (a command's output, unmodified) to stdout and flushes.
pub(crate) fn emit_bytes(bytes: &[u8]) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()
}
