//! The actions of a history and their seeded generator.
//!
//! An action names things by small indices into per-history pools (objects `o0..`,
//! Juju names `n0..`, grant objects `g0..`, applications), never by what exists: it is
//! resolved against the tester's model when it runs, and one that does not apply then
//! is skipped. So a seed always gives the same action list, and a shrunk list (actions
//! dropped) still runs.

use std::fmt;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// JujuSecret object names per history (`h<N>-o<i>`).
pub const OBJECTS: u8 = 3;
/// Juju secret names per history (`h<N>-n<i>`): few, so that clashes are common.
pub const NAMES: u8 = 3;
/// JujuSecretGrant object names per history.
pub const GRANTS: u8 = 2;
/// Applications of the emulator's `admin/dev` model.
pub const APPS: [&str; 2] = ["mysql", "wordpress"];

/// Which Juju write a targeted kill aims at.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Write {
    Create,
    Update,
}

impl Write {
    pub fn method(self) -> &'static str {
        match self {
            Write::Create => "CreateSecrets",
            Write::Update => "UpdateSecrets",
        }
    }
}

/// What a `Wait` action waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Until {
    Synced,
    Conflict,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    // ---- GitOps (kubectl-like, through the apiserver)
    /// Creates JujuSecret `obj` with Juju name `name` (waits for an earlier object of
    /// that name to finish deleting).
    Create {
        obj: u8,
        name: u8,
        adopt: bool,
        retain: bool,
        two_keys: bool,
    },
    /// New content (fresh values, or an earlier content of the same object again).
    EditContent { obj: u8, reuse: Option<u8> },
    Rename { obj: u8, name: u8 },
    Describe { obj: u8, desc: u8 },
    SetAdopt { obj: u8, on: bool },
    Suspend { obj: u8, on: bool },
    SetPolicy { obj: u8, retain: bool },
    Delete { obj: u8 },
    /// Creates grant object `grant` on JujuSecret `obj` for the applications of the
    /// bit mask `apps` (1 = mysql, 2 = wordpress, 3 = both).
    GrantCreate { grant: u8, obj: u8, apps: u8 },
    GrantEdit { grant: u8, apps: u8 },
    GrantDelete { grant: u8 },
    /// Waits (bounded; no failure when it does not happen) for the object's condition.
    Wait { obj: u8, until: Until },

    // ---- People in Juju (the project's client, as a person would use the CLI)
    PersonCreate { name: u8 },
    PersonEdit { name: u8 },
    PersonRename { name: u8, to: u8 },
    PersonRemove { name: u8 },
    /// Grants `app` by hand on whatever secret is named `name` now.
    PersonGrant { name: u8, app: u8 },
    PersonRevoke { name: u8, app: u8 },
    /// Right after the operator listed the model: a person creates `name`, then (if
    /// `gitops`) JujuSecret `obj` is created with, or renamed to, that name.
    StaleClash {
        obj: u8,
        name: u8,
        gitops: bool,
        adopt: bool,
    },

    // ---- A tenant with only `*/status` rights
    /// Forges the status of JujuSecret `obj` to point at the secret named `target`.
    ForgeSecret { obj: u8, target: u8 },
    /// Forges a grant status: another secret, both applications "owned".
    ForgeGrant { grant: u8, target: u8 },

    // ---- Faults
    /// SIGKILL the operator now, restart it.
    Kill,
    /// Delays `write` in the emulator, makes the operator send one (create `obj` as
    /// `name`, or edit `obj`), and SIGKILLs it `jitter_ms` into the delay (`before`:
    /// the write never reaches Juju) or just after Juju applied it.
    AimedKill {
        write: Write,
        obj: u8,
        name: u8,
        before: bool,
        jitter_ms: u16,
    },
    DropConnections,
}

impl Action {
    /// The kind, for the figures.
    pub fn kind(&self) -> &'static str {
        match self {
            Action::Create { .. } => "gitops-create",
            Action::EditContent { .. } => "gitops-edit-content",
            Action::Rename { .. } => "gitops-rename",
            Action::Describe { .. } => "gitops-describe",
            Action::SetAdopt { .. } => "gitops-adopt",
            Action::Suspend { .. } => "gitops-suspend",
            Action::SetPolicy { .. } => "gitops-deletion-policy",
            Action::Delete { .. } => "gitops-delete",
            Action::GrantCreate { .. } => "gitops-grant-create",
            Action::GrantEdit { .. } => "gitops-grant-edit",
            Action::GrantDelete { .. } => "gitops-grant-delete",
            Action::Wait { .. } => "gitops-wait",
            Action::PersonCreate { .. } => "person-create",
            Action::PersonEdit { .. } => "person-edit",
            Action::PersonRename { .. } => "person-rename",
            Action::PersonRemove { .. } => "person-remove",
            Action::PersonGrant { .. } => "person-grant",
            Action::PersonRevoke { .. } => "person-revoke",
            Action::StaleClash { .. } => "person-after-reconcile",
            Action::ForgeSecret { .. } => "tenant-forge-secret-status",
            Action::ForgeGrant { .. } => "tenant-forge-grant-status",
            Action::Kill => "fault-kill",
            Action::AimedKill { .. } => "fault-aimed-kill",
            Action::DropConnections => "fault-drop-connections",
        }
    }
}

fn app(i: u8) -> &'static str {
    APPS[usize::from(i) % APPS.len()]
}

pub fn apps_of(mask: u8) -> Vec<String> {
    let mut v = Vec::new();
    for (i, a) in APPS.iter().enumerate() {
        if mask & (1 << i) != 0 {
            v.push((*a).to_owned());
        }
    }
    v
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Action::Create {
                obj,
                name,
                adopt,
                retain,
                two_keys,
            } => write!(
                f,
                "create o{obj} name=n{name}{}{}{}",
                if *adopt { " adopt" } else { "" },
                if *retain { " Retain" } else { " Delete" },
                if *two_keys { " 2keys" } else { "" }
            ),
            Action::EditContent { obj, reuse } => match reuse {
                Some(r) => write!(f, "edit o{obj} content=earlier#{r}"),
                None => write!(f, "edit o{obj} content=fresh"),
            },
            Action::Rename { obj, name } => write!(f, "rename o{obj} -> n{name}"),
            Action::Describe { obj, desc } => write!(f, "describe o{obj} d{desc}"),
            Action::SetAdopt { obj, on } => write!(f, "set o{obj} adopt={on}"),
            Action::Suspend { obj, on } => write!(f, "set o{obj} suspend={on}"),
            Action::SetPolicy { obj, retain } => write!(
                f,
                "set o{obj} deletionPolicy={}",
                if *retain { "Retain" } else { "Delete" }
            ),
            Action::Delete { obj } => write!(f, "delete o{obj}"),
            Action::GrantCreate { grant, obj, apps } => {
                write!(f, "grant g{grant} on o{obj} to {:?}", apps_of(*apps))
            }
            Action::GrantEdit { grant, apps } => {
                write!(f, "edit g{grant} apps={:?}", apps_of(*apps))
            }
            Action::GrantDelete { grant } => write!(f, "delete g{grant}"),
            Action::Wait { obj, until } => write!(f, "wait o{obj} {until:?}"),
            Action::PersonCreate { name } => write!(f, "person creates n{name}"),
            Action::PersonEdit { name } => write!(f, "person edits n{name}"),
            Action::PersonRename { name, to } => write!(f, "person renames n{name} -> n{to}"),
            Action::PersonRemove { name } => write!(f, "person removes n{name}"),
            Action::PersonGrant { name, app: a } => {
                write!(f, "person grants {} on n{name}", app(*a))
            }
            Action::PersonRevoke { name, app: a } => {
                write!(f, "person revokes {} on n{name}", app(*a))
            }
            Action::StaleClash {
                obj,
                name,
                gitops,
                adopt,
            } => {
                write!(f, "after a listing: person creates n{name}")?;
                if *gitops {
                    write!(f, ", then o{obj} takes n{name}{}", if *adopt { " (adopt)" } else { "" })?;
                }
                Ok(())
            }
            Action::ForgeSecret { obj, target } => {
                write!(f, "tenant forges o{obj} status -> n{target}")
            }
            Action::ForgeGrant { grant, target } => {
                write!(f, "tenant forges g{grant} status -> n{target}")
            }
            Action::Kill => write!(f, "SIGKILL operator, restart"),
            Action::AimedKill {
                write: w,
                obj,
                name,
                before,
                jitter_ms,
            } => write!(
                f,
                "SIGKILL {} {w:?} (o{obj} n{name}, +{jitter_ms} ms), restart",
                if *before { "inside delayed" } else { "just after" }
            ),
            Action::DropConnections => write!(f, "drop Juju connections"),
        }
    }
}

/// One step: an action and the pause before the next one.
#[derive(Clone, Debug)]
pub struct Step {
    pub action: Action,
    pub pause_ms: u16,
}

/// The actions of history `seed`: `len` steps.
pub fn generate(seed: u64, len: usize) -> Vec<Step> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut steps = Vec::with_capacity(len);
    // A history starts with GitOps declaring something, so the rest has objects to
    // act on.
    for i in 0..len {
        let action = if i == 0 {
            create(&mut rng)
        } else {
            pick(&mut rng)
        };
        let pause_ms = if rng.random_bool(0.3) {
            0
        } else {
            rng.random_range(0..400)
        };
        steps.push(Step { action, pause_ms });
    }
    steps
}

fn create(rng: &mut StdRng) -> Action {
    Action::Create {
        obj: rng.random_range(0..OBJECTS),
        name: rng.random_range(0..NAMES),
        adopt: rng.random_bool(0.3),
        retain: rng.random_bool(0.3),
        two_keys: rng.random_bool(0.3),
    }
}

fn pick(rng: &mut StdRng) -> Action {
    let obj = rng.random_range(0..OBJECTS);
    let name = rng.random_range(0..NAMES);
    let grant = rng.random_range(0..GRANTS);
    let a = rng.random_range(0..2u8);
    // Weights: GitOps ~45, people ~30, tenant ~7, faults ~13.
    let table: &[(u32, u8)] = &[
        (12, 0),  // create
        (8, 1),   // edit content
        (4, 2),   // rename
        (2, 3),   // describe
        (2, 4),   // adopt
        (2, 5),   // suspend
        (2, 6),   // deletion policy
        (6, 7),   // delete
        (4, 8),   // grant create
        (2, 9),   // grant edit
        (2, 10),  // grant delete
        (2, 11),  // wait
        (7, 12),  // person create
        (4, 13),  // person edit
        (3, 14),  // person rename
        (3, 15),  // person remove
        (4, 16),  // person grant
        (2, 17),  // person revoke
        (7, 18),  // stale clash
        (4, 19),  // forge secret
        (2, 20),  // forge grant
        (5, 21),  // kill
        (5, 22),  // aimed kill
        (3, 23),  // drop connections
    ];
    let total: u32 = table.iter().map(|(w, _)| w).sum();
    let mut roll = rng.random_range(0..total);
    let mut which = 0;
    for (w, k) in table {
        if roll < *w {
            which = *k;
            break;
        }
        roll -= w;
    }
    match which {
        0 => create(rng),
        1 => Action::EditContent {
            obj,
            reuse: rng.random_bool(0.2).then(|| rng.random_range(0..3)),
        },
        2 => Action::Rename { obj, name },
        3 => Action::Describe {
            obj,
            desc: rng.random_range(0..3),
        },
        4 => Action::SetAdopt {
            obj,
            on: rng.random_bool(0.5),
        },
        5 => Action::Suspend {
            obj,
            on: rng.random_bool(0.5),
        },
        6 => Action::SetPolicy {
            obj,
            retain: rng.random_bool(0.5),
        },
        7 => Action::Delete { obj },
        8 => Action::GrantCreate {
            grant,
            obj,
            apps: rng.random_range(1..4),
        },
        9 => Action::GrantEdit {
            grant,
            apps: rng.random_range(1..4),
        },
        10 => Action::GrantDelete { grant },
        11 => Action::Wait {
            obj,
            until: Until::Synced,
        },
        12 => Action::PersonCreate { name },
        13 => Action::PersonEdit { name },
        14 => Action::PersonRename {
            name,
            to: rng.random_range(0..NAMES),
        },
        15 => Action::PersonRemove { name },
        16 => Action::PersonGrant { name, app: a },
        17 => Action::PersonRevoke { name, app: a },
        18 => Action::StaleClash {
            obj,
            name,
            gitops: rng.random_bool(0.7),
            adopt: rng.random_bool(0.3),
        },
        19 => Action::ForgeSecret {
            obj,
            target: rng.random_range(0..NAMES),
        },
        20 => Action::ForgeGrant {
            grant,
            target: rng.random_range(0..NAMES),
        },
        21 => Action::Kill,
        22 => Action::AimedKill {
            write: if rng.random_bool(0.5) {
                Write::Create
            } else {
                Write::Update
            },
            obj,
            name,
            before: rng.random_bool(0.5),
            jitter_ms: rng.random_range(0..1200),
        },
        _ => Action::DropConnections,
    }
}
