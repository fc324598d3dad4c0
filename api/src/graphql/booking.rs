//! Booking over GraphQL: the public booking page (a host's free slots, booking one, confirming
//! it) without authentication and rate-limited, and for a workspace's admins its bookings by
//! state with the calendar-write attempts and last error, publishing a host's availability,
//! cancelling, and retrying a booking whose calendar write failed.
//!
//! # Who may
//!
//! * **The public fields** (`bookingSlots`, `bookSlot`, `confirmBooking`, and
//!   `cancelBookingWithLink` / `rescheduleBookingWithLink`) need no token: they are what an
//!   attendee's browser calls. Cancelling and moving need the booking's **signed link**
//!   ([`LinkKey`]): the receipt of `bookSlot` carries it, and only the attendee has it; a link
//!   that does not verify is `FORBIDDEN`. Each is rate-limited per client
//!   ([`crate::client::PUBLIC_READS_PER_MINUTE`], [`crate::client::PUBLIC_WRITES_PER_MINUTE`]; over the limit the code is
//!   `RATE_LIMITED`). They reveal a host's free times, never who booked them.
//! * **Everything else** needs standing in the workspace that may change its settings
//!   (operators, the owning partner, the workspace's admins; [`authz::may_read_settings`]); a
//!   caller without it gets `FORBIDDEN` whether the workspace or booking exists or not, and a
//!   booking of another workspace is `NOT_FOUND`.
//!
//! # Error codes
//!
//! A slot someone else holds is `CONFLICT`; a confirmation whose calendar write failed is
//! `UNAVAILABLE` (the booking stays pending and is retried; it is never confirmed without its
//! event); a slot not on the host's grid, in the past or beyond the horizon is `VALIDATION`.

use std::sync::Arc;

use async_graphql::{Context, Enum, InputObject, Object, SimpleObject, ID};
use chrono::{DateTime, Utc};
use dezky_adapters::caldav::CalDav;
use dezky_commands::booking::{
    BookRequest, BookingFlow, BookingFlowError, BookingSettings, Issuer,
};
use dezky_domain::booking::{
    free_slots, Attendee, Availability, BookingStatus, Party, Weekday, WorkingHours,
    MAX_QUERY_DAYS, MAX_SLOT_MINUTES,
};
use dezky_domain::Actor;
use dezky_projections::bookings::{booking, held_slots, list_bookings, BookingFilter, BookingRow};

use super::authz;
use super::error::{ApiError, Code};
use super::schema::{api, managed_tenant, page, read_your_writes_timeout};
use crate::client::{ClientAddress, RequestOrigin};

type Result<T> = std::result::Result<T, async_graphql::Error>;

/// What a signed link signs: the purpose and version, then the booking id, so a MAC for
/// anything else the key may ever sign cannot stand in for a booking link.
const LINK_CONTEXT: &str = "dezky-booking-link/v1:";

/// The key attendees' cancel/reschedule links are signed with (HMAC-SHA256). A link is
/// `{booking id}.{base64url MAC}`: it names the booking and proves it was issued by us, so
/// whoever holds it may cancel or move that booking and no other.
#[derive(Clone)]
pub struct LinkKey(ring::hmac::Key);

impl LinkKey {
    /// A key from a secret (at least 32 bytes of configuration).
    pub fn new(secret: &[u8]) -> Self {
        Self(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret))
    }

    /// The link token of `booking_id`.
    pub fn sign(&self, booking_id: &str) -> String {
        use base64::Engine as _;
        let tag = ring::hmac::sign(&self.0, format!("{LINK_CONTEXT}{booking_id}").as_bytes());
        format!(
            "{booking_id}.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(tag.as_ref())
        )
    }

    /// The booking id a token was issued for, if it verifies (in constant time).
    pub fn verify(&self, token: &str) -> Option<String> {
        use base64::Engine as _;
        let (booking_id, tag) = token.rsplit_once('.')?;
        let tag = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(tag)
            .ok()?;
        ring::hmac::verify(
            &self.0,
            format!("{LINK_CONTEXT}{booking_id}").as_bytes(),
            &tag,
        )
        .ok()?;
        Some(booking_id.to_owned())
    }
}

/// The booking flow the resolvers use, with its calendar server and link key. Without one in
/// the schema's data, booking works with an unconfigured calendar and no links: slots can be
/// held, a confirmation answers `UNAVAILABLE` and stays pending (never confirmed without its
/// event), and link mutations answer `UNAVAILABLE`.
#[derive(Clone)]
pub struct BookingService {
    flow: Arc<BookingFlow<CalDav>>,
    links: Option<LinkKey>,
}

impl BookingService {
    /// The service over `ledger` writing to `calendar`, without attendee links.
    pub fn new(
        ledger: dezky_commands::Ledger,
        calendar: CalDav,
        settings: BookingSettings,
    ) -> Self {
        Self {
            flow: Arc::new(BookingFlow::new(ledger, Arc::new(calendar), settings)),
            links: None,
        }
    }

    /// The service over `ledger` writing to `calendar` and sending confirmations through
    /// `mailer`, without attendee links.
    pub fn with_mailer(
        ledger: dezky_commands::Ledger,
        calendar: CalDav,
        mailer: Arc<dyn dezky_commands::ports::booking_mail::BookingMailer>,
        settings: BookingSettings,
    ) -> Self {
        Self {
            flow: Arc::new(
                BookingFlow::new(ledger, Arc::new(calendar), settings).with_mailer(mailer),
            ),
            links: None,
        }
    }

    /// The service as `dezky serve` runs it: confirmations through `mailer`, links signed with
    /// `key` (if any), and, when `manage_url` is set too, each confirmation carrying the
    /// attendee's link `{manage_url}?token={signed token}`.
    pub fn configured(
        ledger: dezky_commands::Ledger,
        calendar: CalDav,
        mailer: Arc<dyn dezky_commands::ports::booking_mail::BookingMailer>,
        settings: BookingSettings,
        key: Option<LinkKey>,
        manage_url: Option<String>,
    ) -> Self {
        let mut flow = BookingFlow::new(ledger, Arc::new(calendar), settings).with_mailer(mailer);
        if let (Some(key), Some(base)) = (key.clone(), manage_url) {
            flow = flow.with_manage_links(Arc::new(move |booking_id: &str| {
                format!("{base}?token={}", key.sign(booking_id))
            }));
        }
        Self {
            flow: Arc::new(flow),
            links: key,
        }
    }

    /// Signs attendees' links with `key`.
    pub fn with_links(mut self, key: LinkKey) -> Self {
        self.links = Some(key);
        self
    }

    /// The flow, for the retry processor.
    pub fn flow(&self) -> Arc<BookingFlow<CalDav>> {
        self.flow.clone()
    }
}

/// Counts a public call of `kind` against the caller's budget; `RATE_LIMITED` past it. The
/// caller is the real client ([`crate::client`]): the peer, or behind a trusted proxy the
/// right-most untrusted `X-Forwarded-For` hop.
fn rate_limit(ctx: &Context<'_>, kind: Kind) -> Result<()> {
    let api = api(ctx);
    let client = ctx
        .data_opt::<RequestOrigin>()
        .map_or(ClientAddress(None), |origin| {
            origin.client(&api.trusted_proxies)
        });
    let limiter = match kind {
        Kind::Read => &api.public_limits.reads,
        Kind::Write => &api.public_limits.writes,
    };
    if limiter.allow(client) {
        Ok(())
    } else {
        Err(ApiError::new(
            Code::RateLimited,
            "too many requests; try again in a minute",
        )
        .into())
    }
}

/// Which budget a public call spends.
#[derive(Clone, Copy)]
enum Kind {
    Read,
    Write,
}

fn flow(ctx: &Context<'_>) -> Arc<BookingFlow<CalDav>> {
    match ctx.data_opt::<BookingService>() {
        Some(service) => service.flow.clone(),
        None => Arc::new(BookingFlow::new(
            api(ctx).ledger.clone(),
            Arc::new(CalDav::unconfigured()),
            BookingSettings::default(),
        )),
    }
}

fn links<'a>(ctx: &Context<'a>) -> Option<&'a LinkKey> {
    ctx.data_opt::<BookingService>()
        .and_then(|service| service.links.as_ref())
}

/// The booking a link names, or why it cannot be used.
fn linked_booking(ctx: &Context<'_>, token: &str) -> std::result::Result<String, ApiError> {
    let key = links(ctx)
        .ok_or_else(|| ApiError::new(Code::Unavailable, "booking links are not configured"))?;
    key.verify(token)
        .ok_or_else(|| ApiError::new(Code::Forbidden, "the link is not valid"))
}

fn now(ctx: &Context<'_>) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(&api(ctx).clock.now())
        .map_or_else(|_| Utc::now(), |t| t.with_timezone(&Utc))
}

fn parse_instant(name: &str, value: &str) -> std::result::Result<DateTime<Utc>, ApiError> {
    DateTime::parse_from_rfc3339(value)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| ApiError::new(Code::Validation, format!("{name} must be RFC 3339")))
}

fn flow_error(error: BookingFlowError) -> ApiError {
    use dezky_domain::booking::BookingError as B;
    match error {
        BookingFlowError::NotFound | BookingFlowError::Booking(B::NotFound) => {
            ApiError::new(Code::NotFound, "no such booking or host")
        }
        BookingFlowError::SlotTaken => ApiError::new(Code::Conflict, "the slot is taken"),
        BookingFlowError::CalendarUnavailable(_) => ApiError::new(
            Code::Unavailable,
            "the calendar could not be written; the booking is pending and will be retried",
        ),
        BookingFlowError::Slot(e) => ApiError::new(Code::Validation, e.to_string()),
        BookingFlowError::Host(e) => ApiError::new(Code::Validation, e.to_string()),
        BookingFlowError::Booking(e @ B::Invalid(_)) => {
            ApiError::new(Code::Validation, e.to_string())
        }
        BookingFlowError::Booking(e @ B::DisallowedCharacter { .. }) => {
            ApiError::new(Code::InvalidCharacters, e.to_string())
        }
        BookingFlowError::Booking(e) => ApiError::new(Code::Conflict, e.to_string()),
        BookingFlowError::Ledger(e) => ApiError::internal(&e),
    }
}

fn operator(viewer: &authz::Viewer) -> Issuer {
    Issuer {
        actor: Actor {
            subject: viewer.subject.clone(),
            email: viewer.email.clone(),
        },
        request_ip: None,
        correlation_id: None,
    }
}

// ---------------------------------------------------------------------------------------------
// Types.
// ---------------------------------------------------------------------------------------------

/// Where a booking is.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "BookingStatus", name = "BookingStatus")]
pub enum BookingStatusGql {
    /// Requested; the calendar event is not written yet (retried).
    Pending,
    /// The calendar event is written.
    Confirmed,
    /// Every calendar write failed; the slot was given up. An admin may retry.
    CalendarFailed,
    /// Someone else held the slot.
    Refused,
    /// Cancelled.
    Cancelled,
}

/// A day of the week.
#[derive(Enum, Copy, Clone, Eq, PartialEq)]
#[graphql(remote = "Weekday", name = "Weekday")]
pub enum WeekdayGql {
    /// Monday.
    Mon,
    /// Tuesday.
    Tue,
    /// Wednesday.
    Wed,
    /// Thursday.
    Thu,
    /// Friday.
    Fri,
    /// Saturday.
    Sat,
    /// Sunday.
    Sun,
}

/// A bookable time.
#[derive(SimpleObject)]
#[graphql(name = "BookingSlot")]
pub struct SlotGql {
    /// Start, RFC 3339 UTC.
    pub start: String,
    /// End, RFC 3339 UTC.
    pub end: String,
}

/// What the public hears after booking.
#[derive(SimpleObject)]
#[graphql(name = "BookingReceipt")]
pub struct ReceiptGql {
    /// The booking's id (to confirm it).
    pub booking_id: ID,
    /// Its status.
    pub status: BookingStatusGql,
    /// Start, RFC 3339 UTC.
    pub start: String,
    /// End, RFC 3339 UTC.
    pub end: String,
    /// The attendee's token to cancel or move the booking (for the link in their e-mail);
    /// absent when links are not configured.
    pub manage_token: Option<String>,
}

/// A booking as a workspace's admins see it.
#[derive(SimpleObject)]
#[graphql(name = "Booking")]
pub struct BookingGql {
    /// The id.
    pub id: ID,
    /// The host.
    pub host_id: String,
    /// Start, RFC 3339 UTC.
    pub start: String,
    /// End, RFC 3339 UTC.
    pub end: String,
    /// Who booked.
    pub attendee_name: String,
    /// Their e-mail address.
    pub attendee_email: String,
    /// Where it is.
    pub status: BookingStatusGql,
    /// Calendar-write attempts since the request or the last retry.
    pub calendar_write_attempts: u32,
    /// The last calendar error.
    pub last_calendar_error: Option<String>,
    /// Whether the calendar event still has to be moved or deleted.
    pub calendar_out_of_sync: bool,
    /// Whether the attendee's confirmation e-mail went out.
    pub confirmation_sent: bool,
    /// Why it has not, if it has not (for example that outgoing mail is not configured).
    pub confirmation_error: Option<String>,
    /// When it was requested.
    pub requested_at: String,
    /// When it last changed.
    pub updated_at: String,
}

impl From<BookingRow> for BookingGql {
    fn from(row: BookingRow) -> Self {
        Self {
            id: ID(row.booking_id),
            host_id: row.host_id,
            start: row.slot_start,
            end: row.slot_end,
            attendee_name: row.attendee_name,
            attendee_email: row.attendee_email,
            status: row.status.into(),
            calendar_write_attempts: row.attempts,
            last_calendar_error: row.last_error,
            calendar_out_of_sync: row.calendar_out_of_sync,
            confirmation_sent: row.confirmation_sent,
            confirmation_error: row.confirmation_error,
            requested_at: row.requested_at,
            updated_at: row.updated_at,
        }
    }
}

/// A page of bookings.
#[derive(SimpleObject)]
#[graphql(name = "BookingPage")]
pub struct BookingPageGql {
    /// The bookings, by id.
    pub items: Vec<BookingGql>,
    /// Pass as `after` for the next page.
    pub end_cursor: Option<String>,
    /// Whether more follow.
    pub has_next_page: bool,
    /// How many match.
    pub total_count: u64,
}

/// One working-hours window.
#[derive(InputObject)]
#[graphql(name = "WorkingHoursInput")]
pub struct WorkingHoursInput {
    /// The weekday.
    pub weekday: WeekdayGql,
    /// Start, minutes after local midnight.
    pub start_minute: u16,
    /// End, minutes after local midnight (up to 1440).
    pub end_minute: u16,
}

/// A host's availability.
#[derive(InputObject)]
#[graphql(name = "AvailabilityInput")]
pub struct AvailabilityInput {
    /// IANA time zone (`Europe/Berlin`).
    pub time_zone: String,
    /// Working hours per weekday.
    pub working_hours: Vec<WorkingHoursInput>,
    /// Meeting length in minutes.
    pub slot_minutes: u32,
    /// Free minutes after each meeting.
    pub buffer_minutes: u32,
    /// How many days ahead the host can be booked.
    pub horizon_days: u32,
    /// The host's calendar collection relative to the CalDAV base URL.
    pub calendar: String,
}

// ---------------------------------------------------------------------------------------------
// Queries and mutations.
// ---------------------------------------------------------------------------------------------

/// Booking queries.
#[derive(Default)]
pub struct BookingQuery;

#[Object]
impl BookingQuery {
    /// Public: the host's free slots starting in `[from, to)` (at most 62 days).
    async fn booking_slots(
        &self,
        ctx: &Context<'_>,
        host_id: ID,
        from: String,
        to: String,
    ) -> Result<Vec<SlotGql>> {
        rate_limit(ctx, Kind::Read)?;
        let (from, to) = (parse_instant("from", &from)?, parse_instant("to", &to)?);
        if to <= from || to - from > chrono::Duration::days(MAX_QUERY_DAYS) {
            return Err(ApiError::new(
                Code::Validation,
                format!(
                    "the range must end after it starts and span at most {MAX_QUERY_DAYS} days"
                ),
            )
            .into());
        }
        let flow = flow(ctx);
        let (_, availability) = flow.host(&host_id).await.map_err(flow_error)?;
        // Held slots overlapping the range, on whatever grid they were booked: a slot of the
        // current grid that overlaps one is not offered.
        let reach = chrono::Duration::minutes(i64::from(MAX_SLOT_MINUTES));
        let held = held_slots(api(ctx).ledger.db(), &host_id, from - reach, to + reach)
            .await
            .map_err(ApiError::from)?;
        let slots = free_slots(&availability, from, to, now(ctx), &[])
            .map_err(|e| ApiError::new(Code::Validation, e.to_string()))?;
        Ok(slots
            .into_iter()
            .filter(|slot| !held.iter().any(|h| h.overlaps(slot)))
            .map(|s| SlotGql {
                start: s.start.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
                end: s.end.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            })
            .collect())
    }

    /// A workspace's bookings, optionally only those in `statuses`, by id.
    async fn bookings(
        &self,
        ctx: &Context<'_>,
        tenant_id: ID,
        statuses: Option<Vec<BookingStatusGql>>,
        host_id: Option<String>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<BookingPageGql> {
        let (_, tenant) = managed_tenant(ctx, &tenant_id).await?;
        let page = list_bookings(
            api(ctx).ledger.db(),
            &BookingFilter {
                tenant_id: tenant.id,
                statuses: statuses
                    .unwrap_or_default()
                    .into_iter()
                    .map(Into::into)
                    .collect(),
                host_id,
            },
            &page(first, after)?,
        )
        .await
        .map_err(ApiError::from)?;
        Ok(BookingPageGql {
            items: page.items.into_iter().map(Into::into).collect(),
            end_cursor: page.end_cursor,
            has_next_page: page.has_next_page,
            total_count: page.total_count,
        })
    }
}

/// Booking mutations.
#[derive(Default)]
pub struct BookingMutation;

/// Finds a booking of an admin's workspace, after the standing check.
async fn admin_booking(
    ctx: &Context<'_>,
    tenant_id: &str,
    booking_id: &str,
) -> std::result::Result<(authz::Viewer, BookingRow), ApiError> {
    let (viewer, tenant) = managed_tenant(ctx, tenant_id).await?;
    let row = booking(api(ctx).ledger.db(), &tenant.id, booking_id)
        .await?
        .ok_or_else(|| ApiError::new(Code::NotFound, "no such booking"))?;
    Ok((viewer.clone(), row))
}

async fn reread(ctx: &Context<'_>, tenant_id: &str, booking_id: &str) -> Result<BookingGql> {
    api(ctx).read_your_writes(read_your_writes_timeout()).await;
    booking(api(ctx).ledger.db(), tenant_id, booking_id)
        .await
        .map_err(ApiError::from)?
        .map(Into::into)
        .ok_or_else(|| ApiError::new(Code::NotFound, "no such booking").into())
}

#[Object]
impl BookingMutation {
    /// Public: books the host's slot starting at `start`. `CONFLICT` when it is taken.
    async fn book_slot(
        &self,
        ctx: &Context<'_>,
        host_id: ID,
        start: String,
        name: String,
        email: String,
    ) -> Result<ReceiptGql> {
        rate_limit(ctx, Kind::Write)?;
        let start = parse_instant("start", &start)?;
        let flow = flow(ctx);
        let booking_id = api(ctx).ids.next();
        let booked = flow
            .book(
                BookRequest {
                    booking_id: booking_id.clone(),
                    host_id: host_id.0,
                    start,
                    attendee: Attendee { name, email },
                },
                &Issuer::public(None),
                now(ctx),
            )
            .await;
        // The admin list shows what was recorded, refused or not.
        api(ctx).read_your_writes(read_your_writes_timeout()).await;
        booked.map_err(flow_error)?;
        let booking = flow.booking(&booking_id).await.map_err(flow_error)?;
        let slot = booking
            .slot
            .ok_or_else(|| ApiError::internal(&"a booked booking without a slot"))?;
        Ok(ReceiptGql {
            manage_token: links(ctx).map(|key| key.sign(&booking_id)),
            booking_id: ID(booking_id),
            status: booking.status.unwrap_or(BookingStatus::Pending).into(),
            start: slot.start.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            end: slot.end.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        })
    }

    /// Public: confirms a booking by writing its calendar event. `UNAVAILABLE` when the write
    /// failed (the booking stays pending and is retried).
    async fn confirm_booking(&self, ctx: &Context<'_>, booking_id: ID) -> Result<BookingStatusGql> {
        rate_limit(ctx, Kind::Write)?;
        let confirmed = flow(ctx)
            .confirm(&booking_id, &Issuer::public(None), now(ctx))
            .await;
        // A failed attempt is recorded too: the admin list shows it at once.
        api(ctx).read_your_writes(read_your_writes_timeout()).await;
        confirmed.map_err(flow_error)?;
        Ok(BookingStatusGql::Confirmed)
    }

    /// Public, with the attendee's signed link: cancels the booking and deletes its event.
    async fn cancel_booking_with_link(
        &self,
        ctx: &Context<'_>,
        token: String,
    ) -> Result<BookingStatusGql> {
        rate_limit(ctx, Kind::Write)?;
        let booking_id = linked_booking(ctx, &token)?;
        let outcome = flow(ctx)
            .cancel(
                &booking_id,
                Party::Attendee,
                &Issuer::public(None),
                now(ctx),
            )
            .await;
        api(ctx).read_your_writes(read_your_writes_timeout()).await;
        outcome.map_err(flow_error)?;
        Ok(BookingStatusGql::Cancelled)
    }

    /// Public, with the attendee's signed link: moves the booking to another free slot of its
    /// host (`CONFLICT` when that one is taken); the calendar event moves with it.
    async fn reschedule_booking_with_link(
        &self,
        ctx: &Context<'_>,
        token: String,
        start: String,
    ) -> Result<SlotGql> {
        rate_limit(ctx, Kind::Write)?;
        let booking_id = linked_booking(ctx, &token)?;
        let start = parse_instant("start", &start)?;
        let flow = flow(ctx);
        let outcome = flow
            .reschedule(
                &booking_id,
                start,
                Party::Attendee,
                &Issuer::public(None),
                now(ctx),
            )
            .await;
        api(ctx).read_your_writes(read_your_writes_timeout()).await;
        outcome.map_err(flow_error)?;
        let slot = flow
            .booking(&booking_id)
            .await
            .map_err(flow_error)?
            .slot
            .ok_or_else(|| ApiError::internal(&"a moved booking without a slot"))?;
        Ok(SlotGql {
            start: slot.start.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            end: slot.end.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        })
    }

    /// Publishes a host's availability in a workspace.
    async fn publish_booking_availability(
        &self,
        ctx: &Context<'_>,
        tenant_id: ID,
        host_id: ID,
        availability: AvailabilityInput,
    ) -> Result<bool> {
        let (viewer, tenant) = managed_tenant(ctx, &tenant_id).await?;
        let availability = Availability {
            time_zone: availability.time_zone,
            working_hours: availability
                .working_hours
                .into_iter()
                .map(|w| WorkingHours {
                    weekday: w.weekday.into(),
                    start_minute: w.start_minute,
                    end_minute: w.end_minute,
                })
                .collect(),
            slot_minutes: availability.slot_minutes,
            buffer_minutes: availability.buffer_minutes,
            horizon_days: availability.horizon_days,
            calendar: availability.calendar,
        };
        flow(ctx)
            .publish_availability(
                &host_id,
                &tenant.id,
                availability,
                &operator(viewer),
                now(ctx),
            )
            .await
            .map_err(flow_error)?;
        Ok(true)
    }

    /// Cancels a booking of the workspace (the host, from the portal); the calendar event is
    /// deleted.
    async fn cancel_booking(
        &self,
        ctx: &Context<'_>,
        tenant_id: ID,
        booking_id: ID,
    ) -> Result<BookingGql> {
        let (viewer, row) = admin_booking(ctx, &tenant_id, &booking_id).await?;
        flow(ctx)
            .cancel(&row.booking_id, Party::Host, &operator(&viewer), now(ctx))
            .await
            .map_err(flow_error)?;
        reread(ctx, &row.tenant_id, &row.booking_id).await
    }

    /// Retries a pending or `calendar_failed` booking's calendar write now. A
    /// `calendar_failed` booking first re-claims its slot: `CONFLICT` when someone else took it.
    async fn retry_booking(
        &self,
        ctx: &Context<'_>,
        tenant_id: ID,
        booking_id: ID,
    ) -> Result<BookingGql> {
        let (viewer, row) = admin_booking(ctx, &tenant_id, &booking_id).await?;
        flow(ctx)
            .operator_retry(&row.booking_id, &operator(&viewer), now(ctx))
            .await
            .map_err(flow_error)?;
        reread(ctx, &row.tenant_id, &row.booking_id).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_verifies_for_its_booking_and_not_once_altered_or_under_another_key() {
        let key = LinkKey::new(b"0123456789abcdef0123456789abcdef");
        let token = key.sign("b-1");
        assert_eq!(key.verify(&token).as_deref(), Some("b-1"));
        let forged = token.replacen("b-1", "b-2", 1);
        assert_eq!(key.verify(&forged), None);
        let other = LinkKey::new(b"another secret of thirty-two b..");
        assert_eq!(other.verify(&token), None);
        assert_eq!(key.verify("b-1"), None);
        assert_eq!(key.verify("b-1.not-base64!"), None);
    }
}
