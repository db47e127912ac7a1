//! What every `… prune` command shares: the confirmation prompt, then `POST /<kind>/prune`
//! with the filters; the caller prints the daemon's report its own way.

use serde_json::{Value, json};
use shoal_api::client::with_query;
use shoal_api::{Client, Filters, Method};

use super::CliError;

/// Asks on the terminal; anything but y/yes is a no.
pub fn confirm(warning: &str) -> bool {
    use std::io::{BufRead, Write};
    eprint!("{warning}\nAre you sure you want to continue? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    let _ = std::io::stdin().lock().read_line(&mut answer);
    matches!(answer.trim().to_lowercase().as_str(), "y" | "yes")
}

/// `None` when the user declined (nothing was sent).
pub async fn prune(
    c: &Client,
    path: &str,
    force: bool,
    warning: &str,
    filters: &Filters,
) -> Result<Option<Value>, CliError> {
    if !force && !confirm(warning) {
        return Ok(None);
    }
    let q = if filters.is_empty() {
        vec![]
    } else {
        vec![("filters", filters.to_json())]
    };
    let v = c
        .send_json(Method::POST, &with_query(path, &q), &json!(null))
        .await?;
    Ok(Some(v))
}
