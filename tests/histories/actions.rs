//! The actions of a history and their seeded generator.
//!
//! An action names things by small indices into per-history pools (objects `o0..`,
//! Juju names `n0..`, grant objects `g0..`, applications), never by what exists: it is
//! resolved against the tester's model when it runs, and one that does not apply then
//! is skipped. So a seed always gives the same action list, and a shrunk list (actions
//! dropped) still runs.

use std::collections::BTreeSet;
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
    EditContent {
        obj: u8,
        reuse: Option<u8>,
    },
    Rename {
        obj: u8,
        name: u8,
    },
    Describe {
        obj: u8,
        desc: u8,
    },
    SetAdopt {
        obj: u8,
        on: bool,
    },
    Suspend {
        obj: u8,
        on: bool,
    },
    SetPolicy {
        obj: u8,
        retain: bool,
    },
    Delete {
        obj: u8,
    },
    /// Creates grant object `grant` on JujuSecret `obj` for the applications of the
    /// bit mask `apps` (1 = mysql, 2 = wordpress, 3 = both).
    GrantCreate {
        grant: u8,
        obj: u8,
        apps: u8,
    },
    GrantEdit {
        grant: u8,
        apps: u8,
    },
    GrantDelete {
        grant: u8,
    },
    /// Waits (bounded; no failure when it does not happen) for the object's condition.
    Wait {
        obj: u8,
        until: Until,
    },

    // ---- People in Juju (the project's client, as a person would use the CLI)
    PersonCreate {
        name: u8,
    },
    PersonEdit {
        name: u8,
    },
    PersonRename {
        name: u8,
        to: u8,
    },
    PersonRemove {
        name: u8,
    },
    /// Grants `app` by hand on whatever secret is named `name` now.
    PersonGrant {
        name: u8,
        app: u8,
    },
    PersonRevoke {
        name: u8,
        app: u8,
    },
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
    ForgeSecret {
        obj: u8,
        target: u8,
    },
    /// Forges a grant status: another secret, both applications "owned".
    ForgeGrant {
        grant: u8,
        target: u8,
    },

    // ---- Faults
    /// SIGKILL the leader now and restart it (with two replicas the standby takes over
    /// once the Lease expires); with `pause_ms`, freeze the leader (SIGSTOP) that long
    /// instead and resume it: past the Lease the standby takes over while the old
    /// leader is frozen mid-work, and on waking it must stop before writing anything.
    Kill {
        pause_ms: Option<u16>,
    },
    /// Delays `write` in the emulator, makes the operator send one (create `obj` as
    /// `name`, or edit `obj`), and SIGKILLs it `jitter_ms` into the delay: `before`
    /// holds the write before it takes effect (it never reaches Juju), otherwise its
    /// answer is held after it took effect (the kill lands between the Juju write and
    /// the status write).
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
            Action::Kill { pause_ms: None } => "fault-kill",
            Action::Kill { pause_ms: Some(_) } => "fault-pause-leader",
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
                    write!(
                        f,
                        ", then o{obj} takes n{name}{}",
                        if *adopt { " (adopt)" } else { "" }
                    )?;
                }
                Ok(())
            }
            Action::ForgeSecret { obj, target } => {
                write!(f, "tenant forges o{obj} status -> n{target}")
            }
            Action::ForgeGrant { grant, target } => {
                write!(f, "tenant forges g{grant} status -> n{target}")
            }
            Action::Kill { pause_ms: None } => write!(f, "SIGKILL the leader, restart"),
            Action::Kill { pause_ms: Some(ms) } => {
                write!(f, "SIGSTOP the leader for {ms} ms, SIGCONT")
            }
            Action::AimedKill {
                write: w,
                obj,
                name,
                before,
                jitter_ms,
            } => write!(
                f,
                "SIGKILL {} {w:?} (o{obj} n{name}, +{} ms), restart",
                if *before {
                    "before a held"
                } else {
                    "after an applied"
                },
                jitter_ms % 1400
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
    let mut shadow = Shadow::default();
    // A history starts with GitOps declaring something, so the rest has objects to
    // act on.
    for i in 0..len {
        let action = if i == 0 {
            create(&mut rng, &shadow)
        } else {
            pick(&mut rng, &shadow)
        };
        shadow.apply(&action);
        let pause_ms = if rng.random_bool(0.3) {
            0
        } else {
            rng.random_range(0..400)
        };
        steps.push(Step { action, pause_ms });
    }
    steps
}

/// What the actions so far declared, as the generator imagines it (outcomes unseen):
/// used only to aim most actions at things that probably exist, so few are skipped.
#[derive(Default)]
struct Shadow {
    objs: BTreeSet<u8>,
    grants: BTreeSet<u8>,
    persons: BTreeSet<u8>,
}

impl Shadow {
    fn apply(&mut self, a: &Action) {
        match *a {
            Action::Create { obj, .. } => {
                self.objs.insert(obj);
            }
            Action::AimedKill {
                write: Write::Create,
                obj,
                ..
            } => {
                self.objs.insert(obj);
            }
            Action::Delete { obj } => {
                self.objs.remove(&obj);
            }
            Action::GrantCreate { grant, .. } => {
                self.grants.insert(grant);
            }
            Action::GrantDelete { grant } => {
                self.grants.remove(&grant);
            }
            Action::PersonCreate { name } => {
                self.persons.insert(name);
            }
            Action::PersonRename { name, to } if self.persons.remove(&name) => {
                self.persons.insert(to);
            }
            Action::PersonRemove { name } => {
                self.persons.remove(&name);
            }
            Action::StaleClash {
                obj, name, gitops, ..
            } => {
                self.persons.insert(name);
                if gitops {
                    self.objs.insert(obj);
                }
            }
            _ => {}
        }
    }
}

/// One of `set` with probability `p` (when it has any), else any of `0..n`.
fn one_of(rng: &mut StdRng, set: &BTreeSet<u8>, n: u8, p: f64) -> u8 {
    if !set.is_empty() && rng.random_bool(p) {
        let i = rng.random_range(0..set.len());
        set.iter().nth(i).copied().unwrap_or(0)
    } else {
        rng.random_range(0..n)
    }
}

/// One not in `set` with probability `p` (when there is one), else any of `0..n`.
fn one_not_of(rng: &mut StdRng, set: &BTreeSet<u8>, n: u8, p: f64) -> u8 {
    let free: BTreeSet<u8> = (0..n).filter(|i| !set.contains(i)).collect();
    one_of(rng, &free, n, p)
}

fn create(rng: &mut StdRng, shadow: &Shadow) -> Action {
    Action::Create {
        obj: one_not_of(rng, &shadow.objs, OBJECTS, 0.85),
        name: rng.random_range(0..NAMES),
        adopt: rng.random_bool(0.3),
        retain: rng.random_bool(0.3),
        two_keys: rng.random_bool(0.3),
    }
}

fn pick(rng: &mut StdRng, shadow: &Shadow) -> Action {
    let obj = one_of(rng, &shadow.objs, OBJECTS, 0.85);
    let name = rng.random_range(0..NAMES);
    let person = one_of(rng, &shadow.persons, NAMES, 0.8);
    let grant = one_of(rng, &shadow.grants, GRANTS, 0.85);
    let new_grant = one_not_of(rng, &shadow.grants, GRANTS, 0.85);
    let a = rng.random_range(0..2u8);
    // Weights: GitOps ~45, people ~30, tenant ~7, faults ~13.
    let table: &[(u32, u8)] = &[
        (12, 0), // create
        (8, 1),  // edit content
        (4, 2),  // rename
        (2, 3),  // describe
        (2, 4),  // adopt
        (2, 5),  // suspend
        (2, 6),  // deletion policy
        (6, 7),  // delete
        (4, 8),  // grant create
        (2, 9),  // grant edit
        (2, 10), // grant delete
        (2, 11), // wait
        (7, 12), // person create
        (4, 13), // person edit
        (3, 14), // person rename
        (3, 15), // person remove
        (4, 16), // person grant
        (2, 17), // person revoke
        (7, 18), // stale clash
        (4, 19), // forge secret
        (2, 20), // forge grant
        (5, 21), // kill
        (5, 22), // aimed kill
        (3, 23), // drop connections
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
        0 => create(rng, shadow),
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
            grant: new_grant,
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
        13 => Action::PersonEdit { name: person },
        14 => Action::PersonRename {
            name: person,
            to: rng.random_range(0..NAMES),
        },
        15 => Action::PersonRemove { name: person },
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
        // Values drawn above decide the kind of kill, so that adding the pause left
        // every seed's history otherwise as it was.
        21 => Action::Kill {
            pause_ms: (a == 1).then(|| 2000 + 1500 * u16::from(name % 3)),
        },
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
