//! Dependency sets and their incremental evaluation.
//!
//! A task may wait for an `after` set (start once those tasks are done) and
//! a `follow` set (also run on the engine where they ran). A [`Tracker`]
//! follows one set: it is told, once each, how every dependency ended, and
//! answers whether the set is met, still pending, or can never be met (an
//! impossible dependency, named with the reason). Each observation costs
//! O(1), so a task after 10^5 others costs 10^5 steps in all, not 10^10.
//! Which tasks depend on which, and timeouts, are the task table's.

use super::ids::{EngineId, EngineSet, TaskId};

/// Whether every dependency of a set must be met, or one is enough.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Mode {
    /// Every dependency (the default).
    #[default]
    All,
    /// At least one.
    Any,
}

/// A set of tasks a task depends on, with its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DepSet {
    pub tasks: Vec<TaskId>,
    pub mode: Mode,
    /// `true` (the default): a dependency is met only when it succeeded, and
    /// one that failed can never be met. `false`: a failed dependency is met
    /// too (it is done).
    pub success_only: bool,
}

impl DepSet {
    #[cfg(test)]
    /// `tasks`, all of them, successes only (the defaults).
    pub(crate) fn all(tasks: impl IntoIterator<Item = TaskId>) -> DepSet {
        DepSet {
            tasks: tasks.into_iter().collect(),
            mode: Mode::All,
            success_only: true,
        }
    }

    #[cfg(test)]
    /// `tasks`, any one of them, successes only.
    pub(crate) fn any(tasks: impl IntoIterator<Item = TaskId>) -> DepSet {
        DepSet {
            mode: Mode::Any,
            ..DepSet::all(tasks)
        }
    }

    #[cfg(test)]
    /// The same set, met also by failed dependencies.
    pub(crate) fn or_failure(self) -> DepSet {
        DepSet {
            success_only: false,
            ..self
        }
    }
}

/// Which kind of set a tracker follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    After,
    Follow,
}

/// How a dependency ended, as far as the table knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Ended {
    /// It succeeded on this engine.
    Succeeded(EngineId),
    /// It failed on this engine, or (`None`) without running anywhere:
    /// aborted, timed out, or impossible itself.
    Failed(Option<EngineId>),
    /// The table does not know the task (never submitted, or forgotten).
    Unknown,
}

/// What a set says now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Verdict {
    Pending,
    /// Met; for `follow`, the engine the task must run on.
    Met(Option<EngineId>),
    /// Can never be met because of `dependency`; `reason` completes
    /// "dependency N ...".
    Impossible {
        dependency: TaskId,
        reason: String,
    },
}

/// The state of one set of one waiting task.
#[derive(Debug, Clone)]
pub(super) struct Tracker {
    kind: Kind,
    mode: Mode,
    success_only: bool,
    /// Dependencies not observed yet (`All`), or not ruled out yet (`Any`).
    remaining: usize,
    /// `follow` + `all`: the engine the met dependencies ran on, and one of them.
    engine: Option<(EngineId, TaskId)>,
    /// `any`: the first dependency ruled out, and why.
    first_bad: Option<(TaskId, String)>,
    verdict: Verdict,
}

impl Tracker {
    /// A tracker for `set`, whose repeats must have been removed; an empty
    /// set is met at once.
    pub(super) fn new(kind: Kind, set: &DepSet) -> Tracker {
        let remaining = set.tasks.len();
        Tracker {
            kind,
            mode: set.mode,
            success_only: set.success_only,
            remaining,
            engine: None,
            first_bad: None,
            verdict: if remaining == 0 {
                Verdict::Met(None)
            } else {
                Verdict::Pending
            },
        }
    }

    pub(super) fn verdict(&self) -> &Verdict {
        &self.verdict
    }

    /// Records how `dependency` ended (at most once per dependency) and
    /// returns the set's verdict. `view` is the task's view, where a
    /// `follow` target must be.
    pub(super) fn observe(
        &mut self,
        dependency: TaskId,
        ended: Ended,
        view: &EngineSet,
    ) -> &Verdict {
        if self.verdict != Verdict::Pending {
            return &self.verdict;
        }
        let own = self.judge(ended, view);
        self.verdict = match (self.mode, own) {
            (Mode::All, Err(reason)) => Verdict::Impossible { dependency, reason },
            (Mode::All, Ok(engine)) => {
                self.remaining = self.remaining.saturating_sub(1);
                if let Some(e) = engine {
                    self.engine.get_or_insert((e, dependency));
                }
                if self.remaining == 0 {
                    Verdict::Met(self.engine.map(|(e, _)| e))
                } else {
                    Verdict::Pending
                }
            }
            (Mode::Any, Ok(engine)) => Verdict::Met(engine),
            (Mode::Any, Err(reason)) => {
                self.remaining = self.remaining.saturating_sub(1);
                self.first_bad.get_or_insert((dependency, reason));
                match (self.remaining, &self.first_bad) {
                    (0, Some((dependency, reason))) => Verdict::Impossible {
                        dependency: *dependency,
                        reason: format!(
                            "{reason}, and no other dependency of the `any` set can be met"
                        ),
                    },
                    _ => Verdict::Pending,
                }
            }
        };
        &self.verdict
    }

    /// Whether this one dependency, ended so, meets the set's condition:
    /// `Ok` with the engine a `follow` task must run on, or why not.
    fn judge(&self, ended: Ended, view: &EngineSet) -> Result<Option<EngineId>, String> {
        let ran_on = match ended {
            Ended::Unknown => return Err("is not a known task".into()),
            Ended::Failed(_) if self.success_only => {
                return Err("failed, and the task waits for successes only".into())
            }
            Ended::Succeeded(e) => Some(e),
            Ended::Failed(e) => e,
        };
        if self.kind == Kind::After {
            return Ok(None);
        }
        let Some(engine) = ran_on else {
            return Err("never ran on an engine, so there is no engine to follow".into());
        };
        if !view.contains(engine) {
            return Err(format!("ran on engine {engine}, which is outside the view"));
        }
        if self.mode == Mode::All {
            if let Some((other, other_dep)) = self.engine {
                if other != engine {
                    return Err(format!(
                        "ran on engine {engine} but dependency {other_dep} ran on engine {other}, \
                         and `follow` with `all` needs one engine"
                    ));
                }
            }
        }
        Ok(Some(engine))
    }
}
