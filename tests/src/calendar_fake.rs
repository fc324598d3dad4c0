//! An in-memory calendar server with injectable faults, for the booking suites and the
//! seeded simulation. It keeps the [`CalendarServer`] contract (the contract suite runs it
//! next to Radicale) and can be taken down or made to fail the next calls in the two ways a
//! real server fails: before applying (`Unavailable`) or after applying with the answer lost
//! (`OutcomeUnknown`).

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use dezky_commands::ports::calendar::{CalendarError, CalendarEvent, CalendarServer};

/// How the next call fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Refused before anything was applied.
    Unavailable,
    /// Applied, but the answer never arrived.
    LostAnswer,
}

#[derive(Default)]
struct State {
    /// (calendar, uid) → event; a `BTreeMap` so listings are in a stable order.
    events: BTreeMap<(String, String), CalendarEvent>,
    down: bool,
    faults: VecDeque<Fault>,
    calls: u64,
}

/// The fake server.
#[derive(Default)]
pub struct FakeCalendar {
    state: Mutex<State>,
}

impl FakeCalendar {
    /// An empty, reachable server.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes the server down (`true`) or brings it back.
    pub fn set_down(&self, down: bool) {
        self.state().down = down;
    }

    /// Makes the next calls fail with `faults`, in order.
    pub fn inject(&self, faults: impl IntoIterator<Item = Fault>) {
        self.state().faults.extend(faults);
    }

    /// Back up, with no fault pending.
    pub fn heal(&self) {
        let mut state = self.state();
        state.down = false;
        state.faults.clear();
    }

    /// Calls made so far.
    pub fn calls(&self) -> u64 {
        self.state().calls
    }

    /// Every stored event of `calendar`.
    pub fn events(&self, calendar: &str) -> Vec<CalendarEvent> {
        self.state()
            .events
            .iter()
            .filter(|((c, _), _)| c == calendar)
            .map(|(_, e)| e.clone())
            .collect()
    }

    /// Runs `apply` unless the server is down or a fault is due; a lost answer applies first.
    fn call<T>(
        &self,
        write: bool,
        apply: impl FnOnce(&mut State) -> Result<T, CalendarError>,
    ) -> Result<T, CalendarError> {
        let mut state = self.state();
        state.calls += 1;
        if state.down {
            return Err(CalendarError::Unavailable(
                "connection refused (fake)".into(),
            ));
        }
        match state.faults.pop_front() {
            None => apply(&mut state),
            Some(Fault::Unavailable) => {
                Err(CalendarError::Unavailable("HTTP 503 (injected)".into()))
            }
            Some(Fault::LostAnswer) => {
                if write {
                    let _ = apply(&mut state);
                }
                Err(CalendarError::OutcomeUnknown(
                    "answer lost (injected)".into(),
                ))
            }
        }
    }
}

fn key(calendar: &str, uid: &str) -> (String, String) {
    let mut calendar = calendar.trim_start_matches('/').to_owned();
    if !calendar.ends_with('/') {
        calendar.push('/');
    }
    (calendar, uid.to_owned())
}

impl CalendarServer for FakeCalendar {
    async fn create_event(
        &self,
        calendar: &str,
        event: &CalendarEvent,
    ) -> Result<(), CalendarError> {
        self.call(true, |state| {
            // The resource is named by the UID, so an existing one always holds this UID:
            // a repeated create is done.
            state
                .events
                .entry(key(calendar, &event.uid))
                .or_insert_with(|| event.clone());
            Ok(())
        })
    }

    async fn update_event(
        &self,
        calendar: &str,
        event: &CalendarEvent,
    ) -> Result<(), CalendarError> {
        self.call(true, |state| {
            state
                .events
                .insert(key(calendar, &event.uid), event.clone());
            Ok(())
        })
    }

    async fn delete_event(&self, calendar: &str, uid: &str) -> Result<(), CalendarError> {
        self.call(true, |state| {
            state.events.remove(&key(calendar, uid));
            Ok(())
        })
    }

    async fn event(
        &self,
        calendar: &str,
        uid: &str,
    ) -> Result<Option<CalendarEvent>, CalendarError> {
        self.call(false, |state| {
            Ok(state.events.get(&key(calendar, uid)).cloned())
        })
    }

    async fn event_uids(
        &self,
        calendar: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<String>, CalendarError> {
        let calendar = key(calendar, "").0;
        self.call(false, |state| {
            Ok(state
                .events
                .iter()
                .filter(|((c, _), e)| *c == calendar && e.start < to && from < e.end)
                .map(|(_, e)| e.uid.clone())
                .collect())
        })
    }
}
