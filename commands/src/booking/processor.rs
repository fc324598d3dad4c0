//! The booking retry processor: every tick it finds the bookings with work left and drives
//! each with [`BookingFlow::drive`].
//!
//! Work left means: a pending booking whose last calendar attempt (or request) is at least
//! the retry interval old; a booking holding locks it no longer needs; a booking whose
//! calendar event must still be moved or deleted. What is due is decided from the ledger's
//! booking events alone, read afresh each tick, so a restart loses nothing and needs no
//! progress of its own; a booking driven twice (two instances, or a tick and a public confirm
//! at once) is safe because every step is idempotent.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use dezky_domain::booking::{Booking, BookingEvent, BookingStatus, BOOKING_AGGREGATE_TYPE};
use tokio::sync::watch;

use super::{BookingFlow, BookingFlowError, Driven, Issuer};
use crate::ports::calendar::CalendarServer;

/// The longest pause between two ticks, so a booking is retried close to when it is due even
/// with a long retry interval.
pub const MAX_TICK_MS: u64 = 30_000;

/// One booking as the processor sees it.
#[derive(Debug, Clone, Default)]
struct Tracked {
    booking: Booking,
    /// The last time a calendar call was made or the booking was (re)started.
    last_try: Option<DateTime<Utc>>,
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
    /// Bookings whose drive hit an error other than the calendar's (retried next tick).
    pub errors: usize,
}

/// The processor.
pub struct BookingProcessor<C> {
    flow: Arc<BookingFlow<C>>,
}

impl<C: CalendarServer> BookingProcessor<C> {
    /// A processor driving `flow`.
    pub fn new(flow: Arc<BookingFlow<C>>) -> Self {
        Self { flow }
    }

    /// The bookings with work due at `now`, in id order.
    pub async fn due(&self, now: DateTime<Utc>) -> Result<Vec<String>, BookingFlowError> {
        let records = self
            .flow
            .ledger()
            .events_of_type(BOOKING_AGGREGATE_TYPE)
            .await
            .map_err(super::ledger_error)?;
        let mut tracked: BTreeMap<String, Tracked> = BTreeMap::new();
        for record in records {
            let event: BookingEvent = serde_json::from_str(&record.payload)
                .map_err(|e| BookingFlowError::Ledger(format!("booking payload: {e}")))?;
            let entry = tracked.entry(record.aggregate_id).or_default();
            match &event {
                BookingEvent::BookingRequested { at, .. }
                | BookingEvent::CalendarWriteFailed { at, .. }
                | BookingEvent::CalendarSyncFailed { at, .. }
                | BookingEvent::BookingRetried { at, .. }
                | BookingEvent::ConfirmationEmailFailed { at, .. } => entry.last_try = Some(*at),
                _ => {}
            }
            entry.booking.apply(event);
        }
        let interval = chrono::Duration::milliseconds(
            i64::try_from(self.flow.settings().retry_interval_ms).unwrap_or(i64::MAX),
        );
        let max_attempts = self.flow.settings().max_attempts;
        let is_due = |t: &Tracked| t.last_try.is_none_or(|last| last + interval <= now);
        Ok(tracked
            .into_iter()
            .filter(|(_, t)| {
                let b = &t.booking;
                !b.locks_to_free().is_empty()
                    || (b.calendar_out_of_sync && is_due(t))
                    || (b.status == Some(BookingStatus::Pending) && is_due(t))
                    || (b.confirmation_due(max_attempts) && is_due(t))
            })
            .map(|(id, _)| id)
            .collect())
    }

    /// Drives every booking due at `now`.
    pub async fn tick(&self, now: DateTime<Utc>) -> Result<TickReport, BookingFlowError> {
        let mut report = TickReport::default();
        let issuer = Issuer::processor();
        for booking_id in self.due(now).await? {
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
