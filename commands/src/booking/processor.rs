//! The booking retry processor: every tick it finds the bookings with work left and drives
//! each with [`BookingFlow::drive`].
//!
//! Work left means: a pending booking whose last calendar attempt (or request) is at least
//! the retry interval old; a booking holding locks it no longer needs; a booking whose
//! calendar event must still be moved or deleted; a confirmation e-mail still due. What is due
//! is decided from the ledger's booking events alone, followed by position: each tick reads
//! only the booking events since the last one, in bounded reads ([`EVENTS_PER_READ`], at most
//! [`MAX_EVENTS_PER_TICK`]), and keeps in memory only the bookings with work possibly left (a
//! settled booking is forgotten, and folded afresh from its own events should it come back).
//! A restart starts from the beginning again, so it loses nothing and needs no progress of
//! its own; a booking driven twice (two instances, or a tick and a public confirm at once) is
//! safe because every step is idempotent.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;

use crate::app::registry::upcast_payload;
use crate::encoding::EventRecord;
use dezky_domain::booking::{Booking, BookingEvent, BookingStatus, BOOKING_AGGREGATE_TYPE};
use tokio::sync::watch;

use super::{BookingFlow, BookingFlowError, Driven, Issuer};
use crate::ports::calendar::CalendarServer;

/// The longest pause between two ticks, so a booking is retried close to when it is due even
/// with a long retry interval.
pub const MAX_TICK_MS: u64 = 30_000;
/// Booking events read from the ledger per query.
pub const EVENTS_PER_READ: usize = 1_000;
/// Most booking events one tick reads; a backlog beyond it is read by the next ticks.
pub const MAX_EVENTS_PER_TICK: usize = 20_000;

/// One booking as the processor sees it.
#[derive(Debug, Clone, Default)]
struct Tracked {
    booking: Booking,
    /// The aggregate version folded so far.
    version: u64,
    /// The last time a calendar call was made or the booking was (re)started.
    last_try: Option<DateTime<Utc>>,
}

impl Tracked {
    /// Folds one of the booking's events, unless it was folded already.
    fn fold(&mut self, record: &EventRecord) -> Result<(), BookingFlowError> {
        if record.aggregate_version <= self.version {
            return Ok(());
        }
        let payload: serde_json::Value = serde_json::from_str(&record.payload)
            .map_err(|e| BookingFlowError::Ledger(format!("booking payload: {e}")))?;
        let payload = upcast_payload::<Booking>(&record.event_type, &record.event_version, payload);
        let event: BookingEvent = serde_json::from_value(payload)
            .map_err(|e| BookingFlowError::Ledger(format!("booking payload: {e}")))?;
        match &event {
            BookingEvent::BookingRequested { at, .. }
            | BookingEvent::CalendarWriteFailed { at, .. }
            | BookingEvent::CalendarSyncFailed { at, .. }
            | BookingEvent::BookingRetried { at, .. }
            | BookingEvent::ConfirmationEmailFailed { at, .. } => self.last_try = Some(*at),
            _ => {}
        }
        self.booking.apply(event);
        self.version = record.aggregate_version;
        Ok(())
    }

    /// Whether anything may still have to be done for the booking, now or later.
    fn has_work(&self, max_attempts: u32) -> bool {
        let b = &self.booking;
        !b.locks_to_free().is_empty()
            || b.calendar_out_of_sync
            || b.status == Some(BookingStatus::Pending)
            || b.confirmation_due(max_attempts)
    }
}

/// What the processor has read of the ledger: the position it has read up to, and the
/// bookings with work possibly left.
#[derive(Debug, Default)]
struct Followed {
    position: u64,
    open: BTreeMap<String, Tracked>,
}

/// What one tick did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TickReport {
    /// Bookings driven.
    pub driven: usize,
    /// Confirmed now.
    pub confirmed: usize,
    /// Failed again, still pending.
    pub failed: usize,
    /// Abandoned (calendar_failed).
    pub abandoned: usize,
    /// Booking events read from the ledger this tick.
    pub events_read: usize,
    /// Bookings whose drive hit an error other than the calendar's (retried next tick).
    pub errors: usize,
}

/// The processor.
pub struct BookingProcessor<C> {
    flow: Arc<BookingFlow<C>>,
    followed: tokio::sync::Mutex<Followed>,
}

impl<C: CalendarServer> BookingProcessor<C> {
    /// A processor driving `flow`.
    pub fn new(flow: Arc<BookingFlow<C>>) -> Self {
        Self {
            flow,
            followed: tokio::sync::Mutex::default(),
        }
    }

    /// Reads the booking events since the last read (at most [`MAX_EVENTS_PER_TICK`]) into
    /// `followed`; returns how many it read.
    async fn catch_up(&self, followed: &mut Followed) -> Result<usize, BookingFlowError> {
        let ledger = self.flow.ledger();
        let max_attempts = self.flow.settings().max_attempts;
        let mut read = 0;
        while read < MAX_EVENTS_PER_TICK {
            let batch = ledger
                .events_of_type_after(BOOKING_AGGREGATE_TYPE, followed.position, EVENTS_PER_READ)
                .await
                .map_err(super::ledger_error)?;
            let Some(last) = batch.last() else {
                break;
            };
            let last_position = last.position;
            read += batch.len();
            for record in &batch {
                if !followed.open.contains_key(&record.aggregate_id) {
                    // New, or settled and forgotten: fold the booking's whole history (which
                    // may reach past this batch; those events are then skipped as folded).
                    let mut tracked = Tracked::default();
                    if record.aggregate_version > 1 {
                        for earlier in ledger
                            .aggregate_events(BOOKING_AGGREGATE_TYPE, &record.aggregate_id, 0)
                            .await
                            .map_err(super::ledger_error)?
                        {
                            tracked.fold(&earlier)?;
                        }
                    }
                    followed.open.insert(record.aggregate_id.clone(), tracked);
                }
                if let Some(tracked) = followed.open.get_mut(&record.aggregate_id) {
                    tracked.fold(record)?;
                    if !tracked.has_work(max_attempts) {
                        followed.open.remove(&record.aggregate_id);
                    }
                }
            }
            followed.position = last_position;
        }
        Ok(read)
    }

    /// The bookings with work due at `now`, in id order, and how many booking events were
    /// read to know it.
    async fn due_and_read(
        &self,
        now: DateTime<Utc>,
    ) -> Result<(Vec<String>, usize), BookingFlowError> {
        let mut followed = self.followed.lock().await;
        let read = self.catch_up(&mut followed).await?;
        // A booking driven since it was last read may have settled; its events say so once
        // read, so the next tick forgets it.
        let interval = chrono::Duration::milliseconds(
            i64::try_from(self.flow.settings().retry_interval_ms).unwrap_or(i64::MAX),
        );
        let max_attempts = self.flow.settings().max_attempts;
        let is_due = |t: &Tracked| t.last_try.is_none_or(|last| last + interval <= now);
        let due = followed
            .open
            .iter()
            .filter(|(_, t)| {
                let b = &t.booking;
                !b.locks_to_free().is_empty()
                    || (b.calendar_out_of_sync && is_due(t))
                    || (b.status == Some(BookingStatus::Pending) && is_due(t))
                    || (b.confirmation_due(max_attempts) && is_due(t))
            })
            .map(|(id, _)| id.clone())
            .collect();
        Ok((due, read))
    }

    /// The bookings with work due at `now`, in id order.
    pub async fn due(&self, now: DateTime<Utc>) -> Result<Vec<String>, BookingFlowError> {
        Ok(self.due_and_read(now).await?.0)
    }

    /// Drives every booking due at `now`.
    pub async fn tick(&self, now: DateTime<Utc>) -> Result<TickReport, BookingFlowError> {
        let (due, events_read) = self.due_and_read(now).await?;
        let mut report = TickReport {
            events_read,
            ..TickReport::default()
        };
        let issuer = Issuer::processor();
        for booking_id in due {
            report.driven += 1;
            match self.flow.drive(&booking_id, &issuer, now).await {
                Ok(Driven::Confirmed) => report.confirmed += 1,
                Ok(Driven::WriteFailed(_)) => report.failed += 1,
                Ok(Driven::Abandoned(_)) => report.abandoned += 1,
                Ok(_) => {}
                Err(error) => {
                    report.errors += 1;
                    tracing::warn!(%error, booking_id, "booking could not be driven; next tick");
                }
            }
        }
        Ok(report)
    }

    /// Ticks until `shutdown` turns true, at most [`MAX_TICK_MS`] apart.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let pause =
            Duration::from_millis(self.flow.settings().retry_interval_ms.clamp(1, MAX_TICK_MS));
        loop {
            match self.tick(Utc::now()).await {
                Ok(report) if report.driven > 0 => {
                    tracing::info!(?report, "booking retry tick");
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "booking retry tick failed"),
            }
            tokio::select! {
                _ = shutdown.changed() => return,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }
}
