//! Config wiring for JujuSecretGrants: the config options that receive the secret's URI,
//! as `juju config <application> <option>=<secret URI>` sets them once the grant is in
//! place (Juju's documentation of user secrets: granting "only gives the application
//! permission to use the secret", the URI goes into the application's config).
//!
//! The ownership record says which options the operator set, what each held before and
//! what it was set to; only those options are ever changed again. An option is set only
//! for an application that holds the grant, follows the URI when the secret changes, and
//! is restored (to its former secret URI, or unset) when it is no longer wired, unless a
//! person changed it since. An option a person set to another secret URI is a conflict
//! unless the spec says `overwrite`; an option holding anything but a secret URI is
//! never taken over, so no value other than a URI is ever written to the record.

use std::collections::{BTreeMap, BTreeSet};

use juju_client::{ConfigOption, ErrorCode, SecretUri};
use tracing::info;

use super::Context;
use super::juju_state::SharedFailure;
use super::outcome::Problem;
use super::ownership::Wired;
use crate::crd::condition::reason;
use crate::crd::grant::{ConfigOptionRef, ConfiguredOption};

/// What a wiring pass found and did.
#[derive(Debug, Default)]
pub struct Wiring {
    /// Options that hold the secret's URI because the operator set them.
    pub configured: Vec<ConfiguredOption>,
    /// Options left alone, with why (a person's value).
    pub conflicts: Vec<String>,
    /// Options whose application or option Juju does not know, with why.
    pub invalid: Vec<String>,
    /// Options set or restored in this pass, for the event.
    pub changed: Vec<String>,
}

type Configured = BTreeMap<String, BTreeMap<String, Wired>>;

/// Applications' charm config read in one pass (`None`: the application is gone).
type Configs = BTreeMap<String, Option<BTreeMap<String, ConfigOption>>>;

/// Every recorded option as (application, option, what was set).
fn recorded(configured: &Configured) -> Vec<(String, String, Wired)> {
    configured
        .iter()
        .flat_map(|(app, opts)| {
            opts.iter()
                .map(|(o, w)| (app.clone(), o.clone(), w.clone()))
        })
        .collect()
}

/// What the record says grant object `uid` wired.
fn configured_of(ctx: &Context, uid: &str) -> Configured {
    ctx.ownership
        .grant_entry(uid)
        .map(|g| g.configured)
        .unwrap_or_default()
}

/// The options of `wanted` whose application holds the grant: the ones that stay wired.
fn kept<'a>(
    wanted: &'a [ConfigOptionRef],
    granted: &BTreeSet<String>,
) -> BTreeSet<(&'a str, &'a str)> {
    wanted
        .iter()
        .filter(|w| granted.contains(&w.application))
        .map(|w| (w.application.as_str(), w.option.as_str()))
        .collect()
}

/// Records one option as the operator's.
fn set_wired(configured: &mut Configured, app: &str, option: &str, wired: Wired) {
    configured
        .entry(app.to_owned())
        .or_default()
        .insert(option.to_owned(), wired);
}

/// Drops one option from the recorded ones.
fn drop_option(configured: &mut Configured, app: &str, option: &str) {
    if let Some(opts) = configured.get_mut(app) {
        opts.remove(option);
        if opts.is_empty() {
            configured.remove(app);
        }
    }
}

/// Whether `value` is a secret URI with its scheme (besides "", the only values the
/// operator takes over or records; Juju too refuses a bare ID on a secret option).
fn is_secret_uri(value: &str) -> bool {
    value.starts_with("secret:") && SecretUri::parse(value).is_ok()
}

/// The value a person or the operator set on an option, as text.
fn user_text(option: &ConfigOption) -> Option<String> {
    option.user_value().map(|v| match v.as_str() {
        Some(s) => s.to_owned(),
        None => v.to_string(),
    })
}

/// Whether the operator may set an option that holds `now` to `desired`, and what to
/// record as its former value; `Err` says why not. An option the record lists is the
/// operator's while it holds what the operator put there (a person who changed it since
/// made it theirs again: the rules below apply). Otherwise, unless another grant object
/// wires the option, only an unset option, one already holding `desired`, or (with
/// `overwrite`) one holding another secret URI is taken over.
fn take_over(
    owned: Option<&Wired>,
    now: Option<&str>,
    desired: &str,
    overwrite: bool,
    wired_by_another: bool,
) -> Result<Option<String>, &'static str> {
    if let Some(wired) = owned.filter(|w| w.is_operators(now)) {
        // Pointed at the secret being followed before the operator took it over: the
        // option follows the secret when it is given back, too.
        if wired.prior.as_deref() == Some(wired.value.as_str()) {
            return Ok(Some(desired.to_owned()));
        }
        return Ok(wired.prior.clone());
    }
    if wired_by_another {
        return Err("is wired by another JujuSecretGrant; one grant wires an option at a time");
    }
    match now {
        None => Ok(None),
        // "" holds nothing: taken, and given back as "".
        Some(v) if v == desired || v.is_empty() => Ok(Some(v.to_owned())),
        Some(v) if overwrite && is_secret_uri(v) => Ok(Some(v.to_owned())),
        Some(v) if is_secret_uri(v) => {
            Err("holds another secret set by someone else; set overwrite: true to replace it")
        }
        Some(_) => Err("holds a value that is not a secret URI; the operator does not replace it"),
    }
}

/// What option `option` of `app` holds now, or why it cannot receive a secret URI (no
/// such option, or one of another type).
fn option_value(
    config: &BTreeMap<String, ConfigOption>,
    app: &str,
    option: &str,
) -> Result<Option<String>, String> {
    let Some(current) = config.get(option) else {
        return Err(format!("{app} has no config option {option:?}"));
    };
    if current.kind != "secret" && current.kind != "string" {
        return Err(format!(
            "{app}'s config option {option:?} is of type {}; a secret URI needs a secret (or string) option",
            current.kind
        ));
    }
    Ok(user_text(current))
}

/// What a wiring pass would change, from the same reads and rules as [`sync`].
#[derive(Debug, Default)]
pub struct WiringPreview {
    /// Options that would be set to the secret's URI, as `application/option`.
    pub set: Vec<String>,
    /// Options the operator set that would be given back (restored or unset).
    pub restore: Vec<String>,
    /// Options left alone, with why.
    pub conflicts: Vec<String>,
    /// Options Juju does not know or that cannot hold a URI, with why.
    pub invalid: Vec<String>,
}

/// What [`sync`] would do for grant object `uid` (`None` for one not created yet) once
/// the applications in `granted` hold the grant on `uri` (`None`: a secret not created
/// yet, so every wanted option would be set once it is). Reads only.
pub async fn preview(
    ctx: &Context,
    uid: Option<&str>,
    model: &str,
    uri: Option<&SecretUri>,
    wanted: &[ConfigOptionRef],
    granted: &BTreeSet<String>,
) -> Result<WiringPreview, Problem> {
    let configured = uid.map(|uid| configured_of(ctx, uid)).unwrap_or_default();
    let mut out = WiringPreview::default();
    let mut configs = Configs::new();
    let keep = kept(wanted, granted);
    for (app, option, wired) in recorded(&configured) {
        if keep.contains(&(app.as_str(), option.as_str())) {
            continue;
        }
        let Some(config) = config_of(ctx, model, &app, &mut configs).await? else {
            continue;
        };
        let now = config.get(&option).and_then(user_text);
        if wired.is_operators(now.as_deref()) && now.as_deref() != wired.prior.as_deref() {
            out.restore.push(format!("{app}/{option}"));
        }
    }
    for w in wanted.iter().filter(|w| granted.contains(&w.application)) {
        let (app, option) = (w.application.as_str(), w.option.as_str());
        let what = format!("{app}/{option}");
        let Some(config) = config_of(ctx, model, app, &mut configs).await? else {
            continue;
        };
        let now = match option_value(config, app, option) {
            Ok(now) => now,
            Err(invalid) => {
                out.invalid.push(invalid);
                continue;
            }
        };
        // A secret not created yet has no URI: no option can hold it already.
        let desired = uri.map(SecretUri::short);
        let owned = configured
            .get(app)
            .and_then(|o| o.get(option))
            .filter(|w| w.is_operators(now.as_deref()));
        let another = ctx
            .ownership
            .option_wired_by(model, app, option, uid.unwrap_or_default())
            .is_some();
        let target = desired.as_deref().unwrap_or("secret:");
        match take_over(owned, now.as_deref(), target, w.overwrite, another) {
            Err(why) => out.conflicts.push(format!("{what} {why}")),
            Ok(_) if desired.is_some() && now == desired => {}
            Ok(_) => out.set.push(what),
        }
    }
    Ok(out)
}

/// Reads an application's charm config; `None` when the application is gone.
async fn read(
    ctx: &Context,
    model: &str,
    app: &str,
) -> Result<Option<BTreeMap<String, ConfigOption>>, Problem> {
    match ctx.juju.application_config(model, app).await {
        Ok(c) => Ok(Some(c)),
        Err(e) if e.code() == Some(&ErrorCode::NotFound) => Ok(None),
        Err(e) => Err(SharedFailure::from(e).into()),
    }
}

/// An application's charm config, read at most once per pass; `None` when the
/// application is gone.
async fn config_of<'c>(
    ctx: &Context,
    model: &str,
    app: &str,
    configs: &'c mut Configs,
) -> Result<Option<&'c BTreeMap<String, ConfigOption>>, Problem> {
    if !configs.contains_key(app) {
        let config = read(ctx, model, app).await?;
        configs.insert(app.to_owned(), config);
    }
    Ok(configs.get(app).and_then(Option::as_ref))
}

/// Sets (`Some`) or unsets (`None`) one option.
async fn write(
    ctx: &Context,
    model: &str,
    app: &str,
    option: &str,
    value: Option<&str>,
) -> Result<(), Problem> {
    let result = match value {
        Some(v) => {
            ctx.juju
                .set_application_config(
                    model,
                    &[(
                        app.to_owned(),
                        BTreeMap::from([(option.to_owned(), v.to_owned())]),
                    )],
                )
                .await
        }
        None => {
            ctx.juju
                .unset_application_config(model, &[(app.to_owned(), vec![option.to_owned()])])
                .await
        }
    }
    .map_err(SharedFailure::from)?;
    match result.into_iter().next() {
        Some(Err(e)) => Err(Problem::new(
            reason::JUJU_ERROR,
            format!("cannot set {app}'s config option {option:?}: {e}"),
        )),
        _ => Ok(()),
    }
}

/// Persists the record's view of the configured options before Juju is asked.
async fn record(
    ctx: &Context,
    uid: &str,
    model: &str,
    uri: &str,
    configured: &Configured,
) -> Result<(), Problem> {
    ctx.ownership
        .record_configured(uid, model, uri, configured.clone());
    ctx.ownership
        .persist()
        .await
        .map_err(|message| Problem::new(reason::KUBERNETES_ERROR, message).transient())
}

/// Brings the options of grant object `uid` in line with `wanted`: options of granted
/// applications are set to `uri` in `model`; recorded options no longer wanted (or whose
/// application lost the grant) are restored. Returns what holds now.
pub async fn sync(
    ctx: &Context,
    uid: &str,
    model: &str,
    uri: &SecretUri,
    wanted: &[ConfigOptionRef],
    granted: &BTreeSet<String>,
) -> Result<Wiring, Problem> {
    let desired = uri.short();
    let mut configured = configured_of(ctx, uid);
    let mut out = Wiring::default();
    let mut configs = Configs::new();

    // Restore what is recorded and no longer wanted first.
    let keep = kept(wanted, granted);
    for (app, option, wired) in recorded(&configured) {
        if keep.contains(&(app.as_str(), option.as_str())) {
            continue;
        }
        restore(ctx, model, &app, &option, &wired, &mut configs, &mut out).await?;
        drop_option(&mut configured, &app, &option);
        record(ctx, uid, model, &desired, &configured).await?;
    }

    for w in wanted.iter().filter(|w| granted.contains(&w.application)) {
        let (app, option) = (w.application.as_str(), w.option.as_str());
        let what = format!("{app}/{option}");
        let Some(config) = config_of(ctx, model, app, &mut configs).await? else {
            // Granted a moment ago and gone now: the next pass sees it pending.
            continue;
        };
        let now = match option_value(config, app, option) {
            Ok(now) => now,
            Err(invalid) => {
                out.invalid.push(invalid);
                continue;
            }
        };
        let mut owned = configured.get(app).and_then(|o| o.get(option)).cloned();
        if owned
            .as_ref()
            .is_some_and(|w| !w.is_operators(now.as_deref()))
        {
            // A person changed it since the operator set it: theirs again.
            drop_option(&mut configured, app, option);
            record(ctx, uid, model, &desired, &configured).await?;
            owned = None;
        }
        let another = ctx
            .ownership
            .option_wired_by(model, app, option, uid)
            .is_some();
        let prior = match take_over(
            owned.as_ref(),
            now.as_deref(),
            &desired,
            w.overwrite,
            another,
        ) {
            Ok(prior) => prior,
            Err(why) => {
                out.conflicts.push(format!("{what} {why}"));
                continue;
            }
        };
        let done = Wired {
            prior: prior.clone(),
            value: desired.clone(),
            old: None,
            pending: false,
        };
        if now.as_deref() != Some(desired.as_str()) {
            // Recorded before the write, with what the option holds now if that was the
            // operator's own value (a secret followed to its new URI).
            let in_flight = Wired {
                old: owned
                    .as_ref()
                    .map(|w| w.value.clone())
                    .filter(|v| now.as_deref() == Some(v.as_str())),
                pending: true,
                ..done.clone()
            };
            set_wired(&mut configured, app, option, in_flight);
            record(ctx, uid, model, &desired, &configured).await?;
            write(ctx, model, app, option, Some(&desired)).await?;
            info!(application = app, option, secret = %desired, "config option set to the secret");
            out.changed.push(format!("set {what} to {desired}"));
        }
        if configured.get(app).and_then(|o| o.get(option)) != Some(&done) {
            set_wired(&mut configured, app, option, done);
            record(ctx, uid, model, &desired, &configured).await?;
        }
        out.configured.push(ConfiguredOption {
            application: app.to_owned(),
            option: option.to_owned(),
        });
    }
    Ok(out)
}

/// Restores one option the operator set: to its former value (or unset), unless a
/// person changed it since or the application is gone.
async fn restore(
    ctx: &Context,
    model: &str,
    app: &str,
    option: &str,
    wired: &Wired,
    configs: &mut Configs,
    out: &mut Wiring,
) -> Result<(), Problem> {
    let Some(config) = config_of(ctx, model, app, configs).await? else {
        return Ok(());
    };
    let now = config.get(option).and_then(user_text);
    if !wired.is_operators(now.as_deref()) || now.as_deref() == wired.prior.as_deref() {
        // A person changed it since, or it holds its former value already.
        return Ok(());
    }
    write(ctx, model, app, option, wired.prior.as_deref()).await?;
    info!(application = app, option, "config option restored");
    out.changed.push(match &wired.prior {
        Some(p) => format!("restored {app}/{option} to {p}"),
        None => format!("unset {app}/{option}"),
    });
    // Later reads in this pass see the restored value.
    configs.remove(app);
    Ok(())
}

/// Restores every option recorded for grant object `uid` (its deletion, or its secret
/// moved to another model) and clears them from the record.
pub async fn unwire_all(ctx: &Context, uid: &str) -> Result<(), Problem> {
    let Some(entry) = ctx.ownership.grant_entry(uid) else {
        return Ok(());
    };
    let mut configured = entry.configured.clone();
    let mut out = Wiring::default();
    let mut configs = Configs::new();
    for (app, option, wired) in recorded(&entry.configured) {
        match restore(
            ctx,
            &entry.model,
            &app,
            &option,
            &wired,
            &mut configs,
            &mut out,
        )
        .await
        {
            Ok(()) => {}
            // The model is gone, and the application with it.
            Err(p) if p.reason == reason::MODEL_NOT_FOUND => {}
            Err(p) => return Err(p),
        }
        drop_option(&mut configured, &app, &option);
        record(ctx, uid, &entry.model, &entry.uri, &configured).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINE: &str = "secret:9m4e2mr0ui3e8a215n4g";
    const THEIRS: &str = "secret:9m4e2mr0ui3e8a215n50";
    const OLD: &str = "secret:9m4e2mr0ui3e8a215n60";

    fn take(now: Option<&str>, overwrite: bool) -> Result<Option<String>, &'static str> {
        take_over(None, now, MINE, overwrite, false)
    }

    #[test]
    fn only_unset_options_and_its_own_are_taken_without_overwrite() {
        assert_eq!(take(None, false), Ok(None));
        assert_eq!(take(Some(""), false), Ok(Some(String::new())));
        assert_eq!(take(Some(MINE), false), Ok(Some(MINE.into())));
        assert!(take(Some(THEIRS), false).is_err());
        assert_eq!(
            take(Some(THEIRS), true),
            Ok(Some(THEIRS.into())),
            "overwrite takes a person's secret URI over and remembers it"
        );
    }

    #[test]
    fn a_value_that_is_not_a_secret_uri_is_never_taken() {
        for overwrite in [false, true] {
            for v in ["hunter2", "secret:foo", "9m4e2mr0ui3e8a215n4g"] {
                assert!(take(Some(v), overwrite).is_err(), "{v}");
            }
        }
    }

    #[test]
    fn an_option_another_grant_wires_is_never_taken() {
        for now in [None, Some(MINE), Some(THEIRS)] {
            assert!(take_over(None, now, MINE, true, true).is_err(), "{now:?}");
        }
    }

    #[test]
    fn a_recorded_option_is_the_operators_only_while_it_holds_the_operators_value() {
        let set = Wired {
            prior: Some(THEIRS.into()),
            value: OLD.into(),
            old: None,
            pending: false,
        };
        // Followed to the recreated secret's new URI: the former value stays.
        assert_eq!(
            take_over(Some(&set), Some(OLD), MINE, false, false),
            Ok(Some(THEIRS.into()))
        );
        // A person set something else, or reset it: theirs (a Conflict here).
        assert!(take_over(Some(&set), Some("hunter2"), MINE, false, false).is_err());
        assert_eq!(
            take_over(Some(&set), None, MINE, false, false),
            Ok(None),
            "a reset option is unset: taken as a new one, with nothing to give back"
        );
        // A write in flight when the process died: the old value is still the
        // operator's.
        let in_flight = Wired {
            value: MINE.into(),
            old: Some(OLD.into()),
            pending: true,
            ..set.clone()
        };
        assert!(in_flight.is_operators(Some(OLD)));
        assert!(
            in_flight.is_operators(Some(THEIRS)),
            "the write never happened"
        );
        assert!(!set.is_operators(Some(THEIRS)));
    }

    #[test]
    fn a_former_value_that_was_the_followed_secret_follows_it() {
        let same = Wired {
            prior: Some(OLD.into()),
            value: OLD.into(),
            old: None,
            pending: false,
        };
        assert_eq!(
            take_over(Some(&same), Some(OLD), MINE, false, false),
            Ok(Some(MINE.into()))
        );
    }
}
