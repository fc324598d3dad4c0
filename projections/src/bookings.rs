//! Bookings as tenant admins and the public booking page see them: one row per booking with
//! its host, slot, attendee, status, calendar-write attempts and last calendar error; the
//! admin list by state and a host's taken slots are its queries.

use chrono::{DateTime, Utc};
use dezky_commands::encoding::EventRecord;
use dezky_commands::store::Db;
use dezky_domain::booking::{BookingEvent, BookingStatus, Slot, BOOKING_AGGREGATE_TYPE};
use serde_json::Value;

use crate::runner::{Dialect, Projection, ProjectionError, ReadTx};
use crate::sql::{
    byte_order, decode, decode_cursor, encode_cursor, execute, fetch_all, fetch_count, Arg, Page,
    PageRequest, QueryError, Sql,
};

read_model! {
    /// The bookings projection.
    Bookings, name = "bookings", schema_version = 1
}

fn table_of(build: u32) -> String {
    format!("rm_{}_v{build}", Bookings::NAME)
}

/// Instants as stored: second precision, `Z`, so text order is time order.
fn instant(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn parse_status(value: &str) -> Result<BookingStatus, QueryError> {
    Ok(match value {
        "pending" => BookingStatus::Pending,
        "confirmed" => BookingStatus::Confirmed,
        "calendar_failed" => BookingStatus::CalendarFailed,
        "refused" => BookingStatus::Refused,
        "cancelled" => BookingStatus::Cancelled,
        other => {
            return Err(QueryError::StoredValue {
                column: "status",
                value: other.to_owned(),
            })
        }
    })
}

impl Projection for Bookings {
    read_model_identity!();

    fn indexes(&self, _dialect: Dialect) -> Vec<String> {
        // A small model: its indexes are made with its tables (`schema`), also for a rebuild.
        Vec::new()
    }

    fn schema(&self, dialect: Dialect) -> Vec<String> {
        let table = table_of(self.version);
        let c = byte_order(dialect);
        vec![
            format!(
                "CREATE TABLE IF NOT EXISTS {table} (\
                 booking_id TEXT{c} PRIMARY KEY, \
                 tenant_id TEXT NOT NULL, \
                 host_id TEXT NOT NULL, \
                 slot_start TEXT NOT NULL, \
                 slot_end TEXT NOT NULL, \
                 attendee_name TEXT NOT NULL, \
                 attendee_email TEXT NOT NULL, \
                 status TEXT NOT NULL, \
                 attempts BIGINT NOT NULL, \
                 last_error TEXT, \
                 calendar_out_of_sync BIGINT NOT NULL, \
                 confirmation_sent BIGINT NOT NULL, \
                 confirmation_error TEXT, \
                 requested_at TEXT NOT NULL, \
                 updated_at TEXT NOT NULL)"
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS {table}_by_tenant \
                 ON {table} (tenant_id, status, booking_id)"
            ),
            format!("CREATE INDEX IF NOT EXISTS {table}_by_host ON {table} (host_id, slot_start)"),
        ]
    }

    fn tables(&self) -> Vec<String> {
        vec![table_of(self.version)]
    }

    async fn apply(
        &self,
        tx: &mut ReadTx<'_>,
        events: &[EventRecord],
    ) -> Result<(), ProjectionError> {
        let table = table_of(self.version);
        for event in events
            .iter()
            .filter(|e| e.aggregate_type == BOOKING_AGGREGATE_TYPE)
        {
            let id = Arg::Text(event.aggregate_id.clone());
            let at = Arg::Text(event.recorded_at.clone());
            let status = |s: BookingStatus| Arg::Text(s.as_str().to_owned());
            let set_status = |s: BookingStatus| {
                (
                    format!(
                        "UPDATE {table} SET status = $2, updated_at = $3 WHERE booking_id = $1"
                    ),
                    vec![id.clone(), status(s), at.clone()],
                )
            };
            let (sql, args): (String, Vec<Arg>) = match decode::<BookingEvent>(event)? {
                BookingEvent::BookingRequested {
                    tenant_id,
                    host_id,
                    slot,
                    attendee,
                    ..
                } => (
                    format!(
                        "INSERT INTO {table} (booking_id, tenant_id, host_id, slot_start, \
                         slot_end, attendee_name, attendee_email, status, attempts, \
                         last_error, calendar_out_of_sync, confirmation_sent, \
                         confirmation_error, requested_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, NULL, 0, 0, NULL, $9, $9) \
                         ON CONFLICT (booking_id) DO NOTHING"
                    ),
                    vec![
                        id,
                        Arg::Text(tenant_id),
                        Arg::Text(host_id),
                        Arg::Text(instant(slot.start)),
                        Arg::Text(instant(slot.end)),
                        Arg::Text(attendee.name),
                        Arg::Text(attendee.email),
                        status(BookingStatus::Pending),
                        at,
                    ],
                ),
                // Which locks a booking holds matters to the flow, not to these readers.
                BookingEvent::SlotHeld { .. } | BookingEvent::SlotFreed { .. } => continue,
                BookingEvent::BookingRefused { .. } => set_status(BookingStatus::Refused),
                BookingEvent::CalendarWriteFailed { attempt, error, .. } => (
                    format!(
                        "UPDATE {table} SET attempts = $2, last_error = $3, updated_at = $4 \
                         WHERE booking_id = $1"
                    ),
                    vec![
                        id,
                        Arg::Int(i64::from(attempt)),
                        Arg::NullableText(Some(error)),
                        at,
                    ],
                ),
                BookingEvent::BookingConfirmed { attempt, .. } => (
                    format!(
                        "UPDATE {table} SET status = $2, attempts = $3, updated_at = $4 \
                         WHERE booking_id = $1"
                    ),
                    vec![
                        id,
                        status(BookingStatus::Confirmed),
                        Arg::Int(i64::from(attempt)),
                        at,
                    ],
                ),
                BookingEvent::CalendarWriteAbandoned { .. } => (
                    format!(
                        "UPDATE {table} SET status = $2, calendar_out_of_sync = 1, \
                         updated_at = $3 WHERE booking_id = $1"
                    ),
                    vec![id, status(BookingStatus::CalendarFailed), at],
                ),
                BookingEvent::BookingRetried { .. } => (
                    format!(
                        "UPDATE {table} SET status = $2, attempts = 0, updated_at = $3 \
                         WHERE booking_id = $1"
                    ),
                    vec![id, status(BookingStatus::Pending), at],
                ),
                BookingEvent::BookingCancelled { .. } => (
                    format!(
                        "UPDATE {table} SET status = $2, calendar_out_of_sync = 1, \
                         updated_at = $3 WHERE booking_id = $1"
                    ),
                    vec![id, status(BookingStatus::Cancelled), at],
                ),
                // The same rule as the aggregate: a confirmed booking's event must move; a
                // pending one's only when a failed write may have landed at the old time.
                BookingEvent::BookingRescheduled { slot, .. } => (
                    format!(
                        "UPDATE {table} SET slot_start = $2, slot_end = $3, \
                         calendar_out_of_sync = CASE \
                         WHEN status = 'confirmed' THEN 1 \
                         WHEN status = 'pending' AND (calendar_out_of_sync = 1 OR attempts > 0) \
                         THEN 1 ELSE 0 END, \
                         updated_at = $4 WHERE booking_id = $1"
                    ),
                    vec![
                        id,
                        Arg::Text(instant(slot.start)),
                        Arg::Text(instant(slot.end)),
                        at,
                    ],
                ),
                BookingEvent::CalendarSynced { .. } => (
                    format!(
                        "UPDATE {table} SET calendar_out_of_sync = 0, updated_at = $2 \
                         WHERE booking_id = $1"
                    ),
                    vec![id, at],
                ),
                BookingEvent::ConfirmationEmailSent { .. } => (
                    format!(
                        "UPDATE {table} SET confirmation_sent = 1, confirmation_error = NULL, \
                         updated_at = $2 WHERE booking_id = $1"
                    ),
                    vec![id, at],
                ),
                BookingEvent::ConfirmationEmailFailed { error, .. } => (
                    format!(
                        "UPDATE {table} SET confirmation_error = $2, updated_at = $3 \
                         WHERE booking_id = $1"
                    ),
                    vec![id, Arg::NullableText(Some(error)), at],
                ),
                BookingEvent::CalendarSyncFailed { error, .. } => (
                    format!(
                        "UPDATE {table} SET last_error = $2, updated_at = $3 \
                         WHERE booking_id = $1"
                    ),
                    vec![id, Arg::NullableText(Some(error)), at],
                ),
            };
            execute(tx, &sql, &args).await?;
        }
        Ok(())
    }
}

/// One booking as the read model holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookingRow {
    /// The booking id.
    pub booking_id: String,
    /// The tenant.
    pub tenant_id: String,
    /// The host.
    pub host_id: String,
    /// Slot start, RFC 3339 UTC.
    pub slot_start: String,
    /// Slot end, RFC 3339 UTC.
    pub slot_end: String,
    /// The attendee's name.
    pub attendee_name: String,
    /// The attendee's e-mail address.
    pub attendee_email: String,
    /// Where it is.
    pub status: BookingStatus,
    /// Calendar-write attempts since the request or the last operator retry.
    pub attempts: u32,
    /// The last calendar error.
    pub last_error: Option<String>,
    /// Whether the calendar event still has to be moved or deleted.
    pub calendar_out_of_sync: bool,
    /// Whether the attendee's confirmation e-mail went out.
    pub confirmation_sent: bool,
    /// Why it has not (the last failure), if it has not.
    pub confirmation_error: Option<String>,
    /// When it was requested (ledger time).
    pub requested_at: String,
    /// When it last changed (ledger time).
    pub updated_at: String,
}

#[derive(sqlx::FromRow)]
struct BookingRecord {
    booking_id: String,
    tenant_id: String,
    host_id: String,
    slot_start: String,
    slot_end: String,
    attendee_name: String,
    attendee_email: String,
    status: String,
    attempts: i64,
    last_error: Option<String>,
    calendar_out_of_sync: i64,
    confirmation_sent: i64,
    confirmation_error: Option<String>,
    requested_at: String,
    updated_at: String,
}

impl BookingRecord {
    fn into_row(self) -> Result<BookingRow, QueryError> {
        Ok(BookingRow {
            status: parse_status(&self.status)?,
            booking_id: self.booking_id,
            tenant_id: self.tenant_id,
            host_id: self.host_id,
            slot_start: self.slot_start,
            slot_end: self.slot_end,
            attendee_name: self.attendee_name,
            attendee_email: self.attendee_email,
            attempts: u32::try_from(self.attempts).unwrap_or(u32::MAX),
            last_error: self.last_error,
            calendar_out_of_sync: self.calendar_out_of_sync != 0,
            confirmation_sent: self.confirmation_sent != 0,
            confirmation_error: self.confirmation_error,
            requested_at: self.requested_at,
            updated_at: self.updated_at,
        })
    }
}

const COLUMNS: &str = "booking_id, tenant_id, host_id, slot_start, slot_end, attendee_name, \
                       attendee_email, status, attempts, last_error, calendar_out_of_sync, \
                       confirmation_sent, confirmation_error, requested_at, updated_at";
const CURSOR_SORT: &str = "booking_id";

/// Which bookings of a tenant to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BookingFilter {
    /// The tenant (always one: a list never spans tenants).
    pub tenant_id: String,
    /// Only these statuses (all when empty).
    pub statuses: Vec<BookingStatus>,
    /// Only this host's.
    pub host_id: Option<String>,
}

/// A page of a tenant's bookings by id.
pub async fn list_bookings(
    db: &Db,
    filter: &BookingFilter,
    page: &PageRequest,
) -> Result<Page<BookingRow>, QueryError> {
    let size = page.checked_size()?;
    let build = crate::builds::live_build(db, Bookings::NAME, crate::builds::FIRST_BUILD).await?;
    let table = table_of(build);
    let mut where_sql = Sql::new(String::new());
    let mut clauses = vec![format!(
        "tenant_id = {}",
        where_sql.arg(Arg::Text(filter.tenant_id.clone()))
    )];
    if !filter.statuses.is_empty() {
        let list: Vec<String> = filter
            .statuses
            .iter()
            .map(|s| where_sql.arg(Arg::Text(s.as_str().to_owned())))
            .collect();
        clauses.push(format!("status IN ({})", list.join(", ")));
    }
    if let Some(host) = &filter.host_id {
        clauses.push(format!(
            "host_id = {}",
            where_sql.arg(Arg::Text(host.clone()))
        ));
    }
    let filtered = format!(" WHERE {}", clauses.join(" AND "));
    let mut count = Sql::new(format!("SELECT COUNT(*) FROM {table}{filtered}"));
    count.args = where_sql.args.clone();
    let total_count = fetch_count(db, &count).await?;
    let mut sql = Sql::new(format!("SELECT {COLUMNS} FROM {table}{filtered}"));
    sql.args = where_sql.args;
    if let Some(cursor) = &page.after {
        let (_, after) = decode_cursor(cursor, CURSOR_SORT)?;
        let p = sql.arg(Arg::Text(after));
        sql.push(&format!(" AND booking_id > {p}"));
    }
    sql.push(&format!(" ORDER BY booking_id LIMIT {}", size + 1));
    let records: Vec<BookingRecord> = fetch_all(db, &sql).await?;
    let mut items = records
        .into_iter()
        .map(BookingRecord::into_row)
        .collect::<Result<Vec<_>, _>>()?;
    let has_next_page = items.len() > size as usize;
    items.truncate(size as usize);
    let end_cursor = items
        .last()
        .map(|row| encode_cursor(CURSOR_SORT, Value::Null, &row.booking_id));
    Ok(Page {
        items,
        end_cursor,
        has_next_page,
        total_count,
    })
}

/// One booking by id, if it exists and belongs to `tenant_id`.
pub async fn booking(
    db: &Db,
    tenant_id: &str,
    booking_id: &str,
) -> Result<Option<BookingRow>, QueryError> {
    let build = crate::builds::live_build(db, Bookings::NAME, crate::builds::FIRST_BUILD).await?;
    let table = table_of(build);
    let mut sql = Sql::new(format!("SELECT {COLUMNS} FROM {table} WHERE booking_id = "));
    let p = sql.arg(Arg::Text(booking_id.to_owned()));
    sql.push(&p);
    let t = sql.arg(Arg::Text(tenant_id.to_owned()));
    sql.push(&format!(" AND tenant_id = {t}"));
    let records: Vec<BookingRecord> = fetch_all(db, &sql).await?;
    records
        .into_iter()
        .next()
        .map(BookingRecord::into_row)
        .transpose()
}

/// Starts of the host's slots in `[from, to)` held by a pending or confirmed booking: what
/// the public page leaves out. (The slot lock stays the authority when booking.)
pub async fn taken_slots(
    db: &Db,
    host_id: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<DateTime<Utc>>, QueryError> {
    let build = crate::builds::live_build(db, Bookings::NAME, crate::builds::FIRST_BUILD).await?;
    let table = table_of(build);
    let mut sql = Sql::new(format!("SELECT slot_start FROM {table} WHERE host_id = "));
    let h = sql.arg(Arg::Text(host_id.to_owned()));
    let f = sql.arg(Arg::Text(instant(from)));
    let t = sql.arg(Arg::Text(instant(to)));
    sql.push(&format!(
        "{h} AND slot_start >= {f} AND slot_start < {t} \
         AND status IN ('pending', 'confirmed') ORDER BY slot_start"
    ));
    let rows: Vec<(String,)> = fetch_all(db, &sql).await?;
    rows.into_iter()
        .map(|(start,)| {
            DateTime::parse_from_rfc3339(&start)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|_| QueryError::StoredValue {
                    column: "slot_start",
                    value: start,
                })
        })
        .collect()
}

/// The slots of the host held by a pending or confirmed booking that overlap `[from, to)`,
/// whatever grid they were booked on: what the public page must not offer.
pub async fn held_slots(
    db: &Db,
    host_id: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<Slot>, QueryError> {
    let build = crate::builds::live_build(db, Bookings::NAME, crate::builds::FIRST_BUILD).await?;
    let table = table_of(build);
    let mut sql = Sql::new(format!(
        "SELECT slot_start, slot_end FROM {table} WHERE host_id = "
    ));
    let h = sql.arg(Arg::Text(host_id.to_owned()));
    let f = sql.arg(Arg::Text(instant(from)));
    let t = sql.arg(Arg::Text(instant(to)));
    sql.push(&format!(
        "{h} AND slot_start < {t} AND slot_end > {f} \
         AND status IN ('pending', 'confirmed') ORDER BY slot_start"
    ));
    let rows: Vec<(String, String)> = fetch_all(db, &sql).await?;
    let parse = |value: String, column: &'static str| {
        DateTime::parse_from_rfc3339(&value)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| QueryError::StoredValue { column, value })
    };
    rows.into_iter()
        .map(|(start, end)| {
            Ok(Slot {
                start: parse(start, "slot_start")?,
                end: parse(end, "slot_end")?,
            })
        })
        .collect()
}
