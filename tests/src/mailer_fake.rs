//! An in-memory outgoing-mail server for the booking suites: it keeps every confirmation it
//! accepted and fails the next sends with the errors a test queues.

use std::collections::VecDeque;
use std::sync::Mutex;

use dezky_commands::ports::booking_mail::{
    BookingConfirmation, BookingMailer, MailSendError, SendFuture,
};

#[derive(Default)]
struct State {
    sent: Vec<BookingConfirmation>,
    faults: VecDeque<MailSendError>,
}

/// The fake.
#[derive(Default)]
pub struct FakeMailer {
    state: Mutex<State>,
}

impl FakeMailer {
    /// A mailer that accepts everything.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Makes the next sends fail with `faults`, in order.
    pub fn fail_next(&self, faults: impl IntoIterator<Item = MailSendError>) {
        self.state().faults.extend(faults);
    }

    /// Every confirmation accepted so far, in order.
    pub fn sent(&self) -> Vec<BookingConfirmation> {
        self.state().sent.clone()
    }
}

impl BookingMailer for FakeMailer {
    fn send_confirmation<'a>(&'a self, confirmation: &'a BookingConfirmation) -> SendFuture<'a> {
        Box::pin(async move {
            let mut state = self.state();
            match state.faults.pop_front() {
                Some(MailSendError::OutcomeUnknown(e)) => {
                    // Handed over, answer lost: the attendee got it.
                    state.sent.push(confirmation.clone());
                    Err(MailSendError::OutcomeUnknown(e))
                }
                Some(fault) => Err(fault),
                None => {
                    state.sent.push(confirmation.clone());
                    Ok(())
                }
            }
        })
    }
}
