//! The booking retry processor as `dezky serve` runs it: in one instance at a time, under the
//! `booking_processor` lease, renewed while a tick runs and given up on shutdown.
//!
//! Every step of the booking flow may be repeated, so two instances driving one booking would
//! still never double-book; the lease keeps them from repeating calendar calls and counting an
//! attempt twice. A tick cut short because the lease was lost is abandoned mid-way, which the
//! flow treats like a crash: the next holder finishes what is left.

use std::sync::Arc;
use std::time::Duration;

use dezky_commands::booking::processor::{BookingProcessor, MAX_TICK_MS};
use dezky_commands::booking::BookingFlow;
use dezky_commands::lease::run_exclusively;
use dezky_commands::ports::calendar::CalendarServer;
use tokio::sync::watch;

/// The lease name of the booking processor (one per deployment).
pub const BOOKING_PROCESSOR_LEASE: &str = "booking_processor";

/// Runs the processor over `flow` as `holder` until `shutdown` turns true.
pub async fn run<C: CalendarServer + 'static>(
    flow: Arc<BookingFlow<C>>,
    holder: String,
    shutdown: watch::Receiver<bool>,
) {
    let db = flow.ledger().db().clone();
    let every = Duration::from_millis(flow.settings().retry_interval_ms.clamp(1, MAX_TICK_MS));
    let processor = BookingProcessor::new(flow);
    run_exclusively(
        db,
        BOOKING_PROCESSOR_LEASE,
        holder,
        every,
        shutdown,
        || async {
            match processor.tick(chrono::Utc::now()).await {
                Ok(report) if report.driven > 0 => tracing::info!(?report, "booking retry tick"),
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "booking retry tick failed"),
            }
        },
    )
    .await;
}
