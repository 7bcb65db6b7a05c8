//! Typed calls of the facades this client speaks, as methods of
//! [`JujuClient`](super::JujuClient). Each module owns one facade.

pub mod application;
pub mod model_config;
pub mod model_manager;
pub mod secret_backends;
pub mod secrets;

use super::error::{ApiError, Error, Result};
use super::wire::{ErrorResults, StringResults};

/// Checks that a bulk answer has one result per item, as Juju promises.
fn expect_len<T>(
    facade: &'static str,
    method: &'static str,
    results: Vec<T>,
    wanted: usize,
) -> Result<Vec<T>> {
    if results.len() == wanted {
        Ok(results)
    } else {
        Err(Error::Protocol {
            facade,
            method,
            detail: format!("{} results for {wanted} items", results.len()),
        })
    }
}

/// One `Result` per item of an `ErrorResults` answer.
fn error_results(
    facade: &'static str,
    method: &'static str,
    answer: ErrorResults,
    wanted: usize,
) -> Result<Vec<std::result::Result<(), ApiError>>> {
    let results = expect_len(facade, method, answer.results, wanted)?;
    Ok(results
        .into_iter()
        .map(|r| match r.error {
            Some(e) if e.is_error() => Err(e.into()),
            _ => Ok(()),
        })
        .collect())
}

/// One `Result` per item of a `StringResults` answer.
fn string_results(
    facade: &'static str,
    method: &'static str,
    answer: StringResults,
    wanted: usize,
) -> Result<Vec<std::result::Result<String, ApiError>>> {
    let results = expect_len(facade, method, answer.results, wanted)?;
    Ok(results
        .into_iter()
        .map(|r| match r.error {
            Some(e) if e.is_error() => Err(e.into()),
            _ => Ok(r.result),
        })
        .collect())
}
