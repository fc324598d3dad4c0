//! The tenant directory: one row per tenant and one per member, folded from the Tenant and
//! PlatformFlag aggregates, with the keyset-paginated queries the portals ask.
//!
//! # Tables (version 1)
//!
//! * `rm_tenants_v1`: one row per tenant (`tenant_id`, `slug`, `organization`,
//!   `organization_key` (lower case, for search and sort), `status`, `plan`, `seats`,
//!   `partner_id`, `is_platform_tenant`, `created_at`, `updated_at`, `deleted_at`,
//!   `member_count`, `admin_count`).
//! * `rm_tenants_v1_members`: one row per current member (`tenant_id`, `member_id`, `email`,
//!   `email_key`, `display_name`, `role`, `is_owner`, `status`, `has_mailbox`, `subject`).
//! * `rm_tenants_v1_platform`: the platform flag's holder (at most one row), kept so that a
//!   tenant created after the flag was assigned to its id still folds to the right value.
//!
//! # Pagination
//!
//! Every list is keyset-paginated: a cursor encodes the sort it was issued for, the sort key
//! of the last row and that row's id (the tie-breaker), so a page continues exactly after the
//! previous one whatever the sort, and rows inserted meanwhile never cause a duplicate or a
//! gap. Cursors are opaque (base64url of JSON) but not secret: a forged cursor can only move
//! the starting point within the same filtered, scoped query, so it is validated, not signed.
//! The page and cursor types live here and are shared by the audit timeline.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use dezky_commands::encoding::{format_timestamp, EventRecord};
use dezky_commands::store::Db;
use dezky_domain::tenant::{
    claimed_email_spellings, recognises, MemberStatus, PlatformFlagEvent, Principal, Role,
    TenantEvent, TenantStatus, PLATFORM_FLAG_AGGREGATE_TYPE, TENANT_AGGREGATE_TYPE,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::postgres::PgArguments;
use sqlx::Postgres;

use crate::runner::Dialect;
use crate::{on_tx, Projection, ProjectionError, ReadTx};

/// Largest page a list query returns; larger requests are refused, not clamped, so a client
/// never silently gets fewer rows than it asked for.
pub const MAX_PAGE_SIZE: u32 = 100;
/// The page size a caller that states none should use.
pub const DEFAULT_PAGE_SIZE: u32 = 20;
/// Longest cursor accepted, in bytes; real cursors are far shorter, and the bound keeps a
/// hostile one from costing more than a glance.
pub const MAX_CURSOR_BYTES: usize = 1_024;

// ---------------------------------------------------------------------------------------------
// Pages, cursors and query errors (shared with the audit timeline).
// ---------------------------------------------------------------------------------------------

/// Why a read-model query was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The requested page size is outside `1..=MAX_PAGE_SIZE`.
    #[error("page size {first} is outside 1..={max}")]
    PageSize {
        /// What was asked for.
        first: u32,
        /// The largest page allowed.
        max: u32,
    },
    /// The cursor was not issued by this query (tampered, truncated, or from another sort).
    #[error("the cursor is not valid for this query")]
    InvalidCursor,
    /// A time filter is not an RFC 3339 timestamp.
    #[error("{field} '{value}' is not an RFC 3339 timestamp")]
    InvalidTimestamp {
        /// Which filter.
        field: &'static str,
        /// What was given.
        value: String,
    },
    /// A stored value this version cannot read (the read model was written by another
    /// version, or edited by hand).
    #[error("read model column {column} holds '{value}', which this version cannot read")]
    StoredValue {
        /// The column.
        column: &'static str,
        /// The value.
        value: String,
    },
    /// Writing an export failed (the writer, or CSV encoding).
    #[error("export: {0}")]
    Export(#[from] csv::Error),
    /// The read side failed (database, ledger).
    #[error(transparent)]
    Projection(#[from] ProjectionError),
}

impl From<sqlx::Error> for QueryError {
    fn from(error: sqlx::Error) -> Self {
        QueryError::Projection(ProjectionError::Database(error))
    }
}

/// Which page of a list to return.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// How many rows, `1..=MAX_PAGE_SIZE`.
    pub first: u32,
    /// The `end_cursor` of the previous page; `None` for the first page.
    pub after: Option<String>,
}

impl PageRequest {
    /// The first page of `first` rows.
    pub fn first(first: u32) -> Self {
        Self { first, after: None }
    }

    /// The page of `first` rows after `cursor`.
    pub fn after(first: u32, cursor: impl Into<String>) -> Self {
        Self {
            first,
            after: Some(cursor.into()),
        }
    }

    /// The page size, or why it is refused.
    pub(crate) fn checked_size(&self) -> Result<u32, QueryError> {
        if (1..=MAX_PAGE_SIZE).contains(&self.first) {
            Ok(self.first)
        } else {
            Err(QueryError::PageSize {
                first: self.first,
                max: MAX_PAGE_SIZE,
            })
        }
    }
}

impl Default for PageRequest {
    fn default() -> Self {
        Self::first(DEFAULT_PAGE_SIZE)
    }
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The rows of this page, in the requested order.
    pub items: Vec<T>,
    /// The cursor to pass as `after` for the next page (`None` when the page is empty).
    pub end_cursor: Option<String>,
    /// Whether rows follow this page.
    pub has_next_page: bool,
    /// How many rows match the filter, over all pages.
    pub total_count: u64,
}

#[derive(Serialize, Deserialize)]
struct CursorData {
    /// The sort the cursor was issued for.
    s: String,
    /// The sort key of the last row.
    k: Value,
    /// The id of the last row (the tie-breaker).
    i: String,
}

/// Encodes a cursor for `sort` positioned after the row with `key` and `id`.
pub(crate) fn encode_cursor(sort: &str, key: Value, id: &str) -> String {
    let data = CursorData {
        s: sort.to_owned(),
        k: key,
        i: id.to_owned(),
    };
    // Serializing a struct of strings and a JSON value cannot fail; an empty cursor would be
    // refused on the way back in rather than misread.
    let json = serde_json::to_vec(&data).unwrap_or_default();
    URL_SAFE_NO_PAD.encode(json)
}

/// Decodes a cursor issued for `sort` into its key and id; anything else is
/// [`QueryError::InvalidCursor`].
pub(crate) fn decode_cursor(cursor: &str, sort: &str) -> Result<(Value, String), QueryError> {
    if cursor.len() > MAX_CURSOR_BYTES {
        return Err(QueryError::InvalidCursor);
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor)
        .map_err(|_| QueryError::InvalidCursor)?;
    let data: CursorData = serde_json::from_slice(&bytes).map_err(|_| QueryError::InvalidCursor)?;
    if data.s != sort {
        return Err(QueryError::InvalidCursor);
    }
    Ok((data.k, data.i))
}

/// Escapes `%`, `_` and `\` so user text matches literally in `LIKE ... ESCAPE '\'`, and
/// wraps it for a substring match. The text is lower-cased in Rust, where both databases'
/// columns were lower-cased too, so SQLite and PostgreSQL agree on non-ASCII letters.
pub(crate) fn like_pattern(text: &str) -> String {
    let mut pattern = String::with_capacity(text.len() + 2);
    pattern.push('%');
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            pattern.push('\\');
        }
        pattern.push(c);
    }
    pattern.push('%');
    pattern
}

/// `COLLATE "C"` on PostgreSQL: sort keys then compare byte-wise, like SQLite's default and
/// like Rust's `str` ordering, so both backends return one order and keyset comparisons agree
/// with `ORDER BY` whatever the server's locale.
pub(crate) fn byte_order(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Postgres => " COLLATE \"C\"",
        Dialect::Sqlite => "",
    }
}

/// A value bound to a statement.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Text(String),
    NullableText(Option<String>),
    Int(i64),
    Bool(bool),
}

/// SQL text with its arguments, numbered `$1..` as they are added.
#[derive(Debug, Default)]
pub(crate) struct Sql {
    pub(crate) text: String,
    pub(crate) args: Vec<Arg>,
}

impl Sql {
    pub(crate) fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            args: Vec::new(),
        }
    }

    /// Adds an argument and returns its placeholder.
    pub(crate) fn arg(&mut self, arg: Arg) -> String {
        self.args.push(arg);
        format!("${}", self.args.len())
    }

    pub(crate) fn push(&mut self, text: &str) {
        self.text.push_str(text);
    }
}

macro_rules! bound {
    ($query:expr, $args:expr) => {{
        let mut query = $query;
        for arg in $args {
            query = match arg {
                Arg::Text(value) => query.bind(value.clone()),
                Arg::NullableText(value) => query.bind(value.clone()),
                Arg::Int(value) => query.bind(*value),
                Arg::Bool(value) => query.bind(*value),
            };
        }
        query
    }};
}

/// Rows decodable from either backend.
pub(crate) trait AnyRow:
    for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
    + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
    + Send
    + Unpin
{
}

impl<T> AnyRow for T where
    T: for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>
        + for<'r> sqlx::FromRow<'r, sqlx::postgres::PgRow>
        + Send
        + Unpin
{
}

/// Runs a query on the ledger's database and decodes every row.
pub(crate) async fn fetch_all<T: AnyRow>(db: &Db, sql: &Sql) -> Result<Vec<T>, sqlx::Error> {
    match db {
        Db::Sqlite(pool) => {
            bound!(sqlx::query_as::<_, T>(&sql.text), &sql.args)
                .fetch_all(pool)
                .await
        }
        Db::Postgres(pool) => {
            bound!(sqlx::query_as::<_, T>(&sql.text), &sql.args)
                .fetch_all(pool)
                .await
        }
    }
}

/// Runs a `SELECT COUNT(*)` on the ledger's database.
pub(crate) async fn fetch_count(db: &Db, sql: &Sql) -> Result<u64, sqlx::Error> {
    let rows: Vec<(i64,)> = fetch_all(db, sql).await?;
    Ok(rows
        .first()
        .map_or(0, |(count,)| u64::try_from(*count).unwrap_or(0)))
}

/// Runs a statement inside a read-model transaction.
pub(crate) async fn execute(
    tx: &mut ReadTx<'_>,
    sql: &str,
    args: &[Arg],
) -> Result<u64, sqlx::Error> {
    on_tx!(tx, conn => bound!(sqlx::query(sql), args)
        .execute(&mut **conn)
        .await
        .map(|done| done.rows_affected()))
}

/// Most values one statement binds: SQLite's limit (PostgreSQL allows 65,535), so one
/// statement builder serves both.
pub(crate) const MAX_BOUND_ARGS: usize = 32_766;
/// Keys per `IN (…)` list when a batch reads or deletes the rows it touches.
pub(crate) const IN_LIST_CHUNK: usize = 5_000;

/// Adds `values` as arguments and returns their parenthesized placeholder list, for `IN`.
pub(crate) fn in_list(sql: &mut Sql, values: &[String]) -> String {
    let placeholders: Vec<String> = values
        .iter()
        .map(|v| sql.arg(Arg::Text(v.clone())))
        .collect();
    format!("({})", placeholders.join(", "))
}

/// One column of a batch of rows as PostgreSQL binds it: a single array parameter.
///
/// A statement with one `$n` per value costs PostgreSQL a parse, a bind and a plan that grow
/// with the number of values (a 16,000-event batch had statements of over 30,000 parameters);
/// with one array per column the statement text and its plan are the same small ones for any
/// batch, and the values travel in binary.
pub(crate) enum PgColumn {
    Text(Vec<Option<String>>),
    Int(Vec<i64>),
    Bool(Vec<bool>),
}

impl PgColumn {
    fn for_arg(arg: &Arg, rows: usize) -> Self {
        match arg {
            Arg::Text(_) | Arg::NullableText(_) => PgColumn::Text(Vec::with_capacity(rows)),
            Arg::Int(_) => PgColumn::Int(Vec::with_capacity(rows)),
            Arg::Bool(_) => PgColumn::Bool(Vec::with_capacity(rows)),
        }
    }

    fn push(&mut self, arg: Arg) -> Result<(), sqlx::Error> {
        match (self, arg) {
            (PgColumn::Text(values), Arg::Text(value)) => values.push(Some(value)),
            (PgColumn::Text(values), Arg::NullableText(value)) => values.push(value),
            (PgColumn::Int(values), Arg::Int(value)) => values.push(value),
            (PgColumn::Bool(values), Arg::Bool(value)) => values.push(value),
            (_, arg) => {
                return Err(sqlx::Error::Protocol(format!(
                    "a batch column mixes value types ({arg:?})"
                )))
            }
        }
        Ok(())
    }

    fn array_type(&self) -> &'static str {
        match self {
            PgColumn::Text(_) => "text[]",
            PgColumn::Int(_) => "int8[]",
            PgColumn::Bool(_) => "bool[]",
        }
    }

    /// Turns rows (all of one width, each column of one type) into columns.
    pub(crate) fn from_rows(rows: Vec<Vec<Arg>>) -> Result<Vec<Self>, sqlx::Error> {
        let count = rows.len();
        let mut columns: Vec<Self> = match rows.first() {
            Some(first) => first.iter().map(|arg| Self::for_arg(arg, count)).collect(),
            None => return Ok(Vec::new()),
        };
        for row in rows {
            if row.len() != columns.len() {
                return Err(sqlx::Error::Protocol(
                    "batch rows of different widths".into(),
                ));
            }
            for (column, arg) in columns.iter_mut().zip(row) {
                column.push(arg)?;
            }
        }
        Ok(columns)
    }

    /// `SELECT * FROM UNNEST($1::type[], …)` over `columns`, numbered from `$first`.
    pub(crate) fn unnest(columns: &[Self], first: usize) -> String {
        let arrays: Vec<String> = columns
            .iter()
            .enumerate()
            .map(|(i, column)| format!("${}::{}", first + i, column.array_type()))
            .collect();
        format!("SELECT * FROM UNNEST({})", arrays.join(", "))
    }

    /// Binds each column as one array parameter.
    pub(crate) fn bind_all<'q>(
        mut query: sqlx::query::Query<'q, Postgres, PgArguments>,
        columns: Vec<Self>,
    ) -> sqlx::query::Query<'q, Postgres, PgArguments> {
        for column in columns {
            query = match column {
                PgColumn::Text(values) => query.bind(values),
                PgColumn::Int(values) => query.bind(values),
                PgColumn::Bool(values) => query.bind(values),
            };
        }
        query
    }
}

/// Reads the rows of `{head} {column} IN (keys)`: on PostgreSQL one statement with the keys
/// as one array (`= ANY($1)`), on SQLite `IN` lists of [`IN_LIST_CHUNK`] keys.
pub(crate) async fn fetch_by_keys<T: AnyRow>(
    tx: &mut ReadTx<'_>,
    head: &str,
    column: &str,
    keys: &[String],
) -> Result<Vec<T>, sqlx::Error> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    if let ReadTx::Postgres(conn) = tx {
        return sqlx::query_as::<_, T>(&format!("{head} {column} = ANY($1)"))
            .bind(keys)
            .fetch_all(&mut **conn)
            .await;
    }
    let mut rows = Vec::new();
    for chunk in keys.chunks(IN_LIST_CHUNK) {
        let mut sql = Sql::new(format!("{head} {column} IN "));
        let list = in_list(&mut sql, chunk);
        sql.push(&list);
        rows.extend(fetch_all_tx::<T>(tx, &sql).await?);
    }
    Ok(rows)
}

/// Reads the rows of `{head} (tenant_id, member_id) IN pairs`: on PostgreSQL one statement
/// with the pairs as two arrays; on SQLite `tenant_id IN (…) AND member_id IN (…)` per chunk of
/// tenants, which probes the primary key and may return a few pairs not asked for (harmless to
/// callers that look rows up by pair).
pub(crate) async fn fetch_by_pairs<T: AnyRow>(
    tx: &mut ReadTx<'_>,
    head: &str,
    pairs: &[(String, String)],
) -> Result<Vec<T>, sqlx::Error> {
    if pairs.is_empty() {
        return Ok(Vec::new());
    }
    if let ReadTx::Postgres(conn) = tx {
        let (tenant_ids, member_ids): (Vec<&str>, Vec<&str>) =
            pairs.iter().map(|(t, m)| (t.as_str(), m.as_str())).unzip();
        return sqlx::query_as::<_, T>(&format!(
            "{head} (tenant_id, member_id) IN (SELECT * FROM UNNEST($1::text[], $2::text[]))"
        ))
        .bind(tenant_ids)
        .bind(member_ids)
        .fetch_all(&mut **conn)
        .await;
    }
    let mut rows = Vec::new();
    for chunk in pairs.chunks(IN_LIST_CHUNK / 2) {
        let tenant_ids: BTreeSet<&String> = chunk.iter().map(|(t, _)| t).collect();
        let member_ids: BTreeSet<&String> = chunk.iter().map(|(_, m)| m).collect();
        let tenant_ids: Vec<String> = tenant_ids.into_iter().cloned().collect();
        let member_ids: Vec<String> = member_ids.into_iter().cloned().collect();
        let mut sql = Sql::new(format!("{head} tenant_id IN "));
        let list = in_list(&mut sql, &tenant_ids);
        sql.push(&list);
        sql.push(" AND member_id IN ");
        let list = in_list(&mut sql, &member_ids);
        sql.push(&list);
        rows.extend(fetch_all_tx::<T>(tx, &sql).await?);
    }
    Ok(rows)
}

/// Bytes of COPY data sent per message while appending rows.
const COPY_CHUNK_BYTES: usize = 1 << 20;

/// Rows appended to one table while they are being produced: on PostgreSQL a `COPY … FROM
/// STDIN` (which skips the per-statement parse, plan and array decoding of an `INSERT`: the
/// cheapest way in for append-only rows) is opened first and the rows are sent as they come, so the server inserts them
/// while the caller folds the next ones (two cores busy, not one after the other); on SQLite
/// they are gathered and inserted at the end with [`insert_rows`]. Only for rows that cannot
/// conflict. The transaction cannot run other statements until [`Self::finish`].
pub(crate) enum RowAppender<'t, 'c> {
    /// An open COPY and the data not sent yet.
    Copy {
        /// The COPY in progress.
        copy: sqlx::postgres::PgCopyIn<&'t mut sqlx::PgConnection>,
        /// Encoded rows not sent yet.
        buffer: String,
    },
    /// Rows kept for one multi-row insert.
    Gathered {
        /// The transaction.
        tx: &'t mut ReadTx<'c>,
        /// `INSERT INTO table (columns)`.
        head: String,
        /// The rows.
        rows: Vec<Vec<Arg>>,
    },
}

impl<'t, 'c> RowAppender<'t, 'c> {
    /// Opens the append.
    pub(crate) async fn start(
        tx: &'t mut ReadTx<'c>,
        table: &str,
        columns: &str,
    ) -> Result<Self, sqlx::Error> {
        match tx {
            ReadTx::Postgres(conn) => {
                let copy = conn
                    .copy_in_raw(&format!("COPY {table} ({columns}) FROM STDIN"))
                    .await?;
                Ok(Self::Copy {
                    copy,
                    buffer: String::with_capacity(COPY_CHUNK_BYTES + 4096),
                })
            }
            tx @ ReadTx::Sqlite(_) => Ok(Self::Gathered {
                tx,
                head: format!("INSERT INTO {table} ({columns})"),
                rows: Vec::new(),
            }),
        }
    }

    /// Appends rows; on PostgreSQL they are sent once a chunk's worth is encoded.
    pub(crate) async fn push(&mut self, rows: Vec<Vec<Arg>>) -> Result<(), sqlx::Error> {
        match self {
            Self::Copy { copy, buffer } => {
                for row in &rows {
                    for (i, arg) in row.iter().enumerate() {
                        if i > 0 {
                            buffer.push('\t');
                        }
                        copy_value(buffer, arg);
                    }
                    buffer.push('\n');
                    if buffer.len() >= COPY_CHUNK_BYTES {
                        let full = std::mem::replace(
                            buffer,
                            String::with_capacity(COPY_CHUNK_BYTES + 4096),
                        );
                        copy.send(full.into_bytes()).await?;
                    }
                }
                Ok(())
            }
            Self::Gathered { rows: gathered, .. } => {
                gathered.extend(rows);
                Ok(())
            }
        }
    }

    /// Sends what is left and ends the append.
    pub(crate) async fn finish(self) -> Result<(), sqlx::Error> {
        match self {
            Self::Copy { mut copy, buffer } => {
                if !buffer.is_empty() {
                    copy.send(buffer.into_bytes()).await?;
                }
                copy.finish().await?;
                Ok(())
            }
            Self::Gathered { tx, head, rows } => insert_rows(tx, &head, "", rows).await,
        }
    }
}

/// One value in COPY's text format: `\N` for NULL; backslash, tab, newline and carriage return
/// escaped, so any text arrives byte for byte.
fn copy_value(buffer: &mut String, arg: &Arg) {
    use std::fmt::Write as _;
    let text = match arg {
        Arg::Text(text) | Arg::NullableText(Some(text)) => text,
        Arg::NullableText(None) => {
            buffer.push_str("\\N");
            return;
        }
        Arg::Int(value) => {
            // Writing to a String cannot fail.
            let _ = write!(buffer, "{value}");
            return;
        }
        Arg::Bool(value) => {
            buffer.push(if *value { 't' } else { 'f' });
            return;
        }
    };
    // Runs of ordinary bytes are copied whole; only the four special ASCII bytes are escaped
    // (they never occur inside a multi-byte UTF-8 sequence, so slicing there is safe).
    let mut plain = 0;
    for (i, byte) in text.bytes().enumerate() {
        let escaped = match byte {
            b'\\' => "\\\\",
            b'\t' => "\\t",
            b'\n' => "\\n",
            b'\r' => "\\r",
            _ => continue,
        };
        buffer.push_str(&text[plain..i]);
        buffer.push_str(escaped);
        plain = i + 1;
    }
    buffer.push_str(&text[plain..]);
}

/// Runs `{head} VALUES (…), (…) {tail}` for `rows` (all of one width). On PostgreSQL that is
/// one statement binding one array per column (see [`PgColumn`]); on SQLite, which has no
/// arrays, multi-row `VALUES` in as few statements as [`MAX_BOUND_ARGS`] allows. Either way a
/// batch's rows cost a round trip per few thousand at most, not one each.
pub(crate) async fn insert_rows(
    tx: &mut ReadTx<'_>,
    head: &str,
    tail: &str,
    rows: Vec<Vec<Arg>>,
) -> Result<(), sqlx::Error> {
    use std::fmt::Write as _;
    let Some(width) = rows.first().map(Vec::len) else {
        return Ok(());
    };
    if let ReadTx::Postgres(conn) = tx {
        let columns = PgColumn::from_rows(rows)?;
        let text = format!("{head} {} {tail}", PgColumn::unnest(&columns, 1));
        PgColumn::bind_all(sqlx::query(&text), columns)
            .execute(&mut **conn)
            .await?;
        return Ok(());
    }
    let per_statement = (MAX_BOUND_ARGS / width.max(1)).max(1);
    for chunk in rows.chunks(per_statement) {
        let mut text = String::with_capacity(head.len() + tail.len() + chunk.len() * width * 7);
        text.push_str(head);
        text.push_str(" VALUES ");
        let mut n = 0;
        for (i, row) in chunk.iter().enumerate() {
            text.push_str(if i == 0 { "(" } else { ", (" });
            for j in 0..row.len() {
                n += 1;
                let separator = if j == 0 { "" } else { ", " };
                // Writing to a String cannot fail.
                let _ = write!(text, "{separator}${n}");
            }
            text.push(')');
        }
        text.push(' ');
        text.push_str(tail);
        on_tx!(tx, conn => {
            bound!(sqlx::query(&text), chunk.iter().flatten())
                .execute(&mut **conn)
                .await?;
        });
    }
    Ok(())
}

/// Runs a query inside a transaction and decodes every row.
pub(crate) async fn fetch_all_tx<T: AnyRow>(
    tx: &mut ReadTx<'_>,
    sql: &Sql,
) -> Result<Vec<T>, sqlx::Error> {
    on_tx!(tx, conn => bound!(sqlx::query_as::<_, T>(&sql.text), &sql.args)
        .fetch_all(&mut **conn)
        .await)
}

/// Runs a query inside a read-model transaction and decodes at most one row.
pub(crate) async fn fetch_optional_tx<T: AnyRow>(
    tx: &mut ReadTx<'_>,
    sql: &str,
    args: &[Arg],
) -> Result<Option<T>, sqlx::Error> {
    on_tx!(tx, conn => bound!(sqlx::query_as::<_, T>(sql), args)
        .fetch_optional(&mut **conn)
        .await)
}

/// A timestamp as the ledger writes them (UTC, microseconds), so fixed-width text compares
/// chronologically; text that is not RFC 3339 is kept as it is.
pub(crate) fn normalized_time(value: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(value)
        .map(|time| format_timestamp(time.with_timezone(&chrono::Utc)))
        .unwrap_or_else(|_| value.to_owned())
}

fn to_u32(value: i64) -> u32 {
    u32::try_from(value.max(0)).unwrap_or(u32::MAX)
}

// ---------------------------------------------------------------------------------------------
// Stored names of the domain's enums.
// ---------------------------------------------------------------------------------------------

/// The stored name of a tenant status (the same as its serde name).
pub fn tenant_status_name(status: TenantStatus) -> &'static str {
    match status {
        TenantStatus::PendingProvisioning => "pending_provisioning",
        TenantStatus::Active => "active",
        TenantStatus::Suspended => "suspended",
        TenantStatus::SoftDeleted => "soft_deleted",
        TenantStatus::Purged => "purged",
    }
}

fn parse_tenant_status(value: &str) -> Result<TenantStatus, QueryError> {
    Ok(match value {
        "pending_provisioning" => TenantStatus::PendingProvisioning,
        "active" => TenantStatus::Active,
        "suspended" => TenantStatus::Suspended,
        "soft_deleted" => TenantStatus::SoftDeleted,
        "purged" => TenantStatus::Purged,
        other => {
            return Err(QueryError::StoredValue {
                column: "status",
                value: other.to_owned(),
            })
        }
    })
}

/// The stored name of a role (the same as its serde name).
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Member => "member",
        Role::Admin => "admin",
    }
}

fn parse_role(value: &str) -> Result<Role, QueryError> {
    match value {
        "member" => Ok(Role::Member),
        "admin" => Ok(Role::Admin),
        other => Err(QueryError::StoredValue {
            column: "role",
            value: other.to_owned(),
        }),
    }
}

/// The stored name of a member status (the same as its serde name).
pub fn member_status_name(status: MemberStatus) -> &'static str {
    match status {
        MemberStatus::Active => "active",
        MemberStatus::Suspended => "suspended",
    }
}

fn parse_member_status(value: &str) -> Result<MemberStatus, QueryError> {
    match value {
        "active" => Ok(MemberStatus::Active),
        "suspended" => Ok(MemberStatus::Suspended),
        other => Err(QueryError::StoredValue {
            column: "member status",
            value: other.to_owned(),
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// The projection.
// ---------------------------------------------------------------------------------------------

/// The tenant directory projection (name `tenants`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantDirectory {
    version: u32,
}

/// The table names of one version of the directory.
#[derive(Debug, Clone)]
struct Tables {
    tenants: String,
    members: String,
    platform: String,
    /// The member columns to select from `members` (the build's schema decides).
    member_columns: &'static str,
}

impl Tables {
    fn of(version: u32) -> Self {
        let tenants = format!("rm_{}_v{version}", TenantDirectory::NAME);
        Self {
            members: format!("{tenants}_members"),
            platform: format!("{tenants}_platform"),
            tenants,
            member_columns: MEMBER_COLUMNS,
        }
    }
}

/// The tables of the build queries read.
async fn live_tables(db: &Db) -> Result<Tables, sqlx::Error> {
    let (build, schema_version) = crate::builds::live_build_and_schema(
        db,
        TenantDirectory::NAME,
        TenantDirectory::FIRST_BUILD,
        TenantDirectory::VERSION,
    )
    .await?;
    let mut tables = Tables::of(build);
    tables.member_columns = if schema_version >= 2 {
        MEMBER_COLUMNS
    } else {
        // A build of schema 1 (serving while its successor is built) has no issuer column.
        MEMBER_COLUMNS_SCHEMA_1
    };
    Ok(tables)
}

impl TenantDirectory {
    /// The projection's name.
    pub const NAME: &'static str = "tenants";
    /// The schema version of this code's fold and tables.
    pub const VERSION: u32 = 2;

    /// The build a fresh database starts with. Build numbers count builds; they are not
    /// schema versions (a database may have been rebuilt several times at one version).
    pub const FIRST_BUILD: u32 = 1;

    /// The first build.
    pub fn new() -> Self {
        Self {
            version: Self::FIRST_BUILD,
        }
    }

    /// Another version of the same fold, built in its own tables (rebuilds beside the live
    /// version, and the projection-equals-replay check).
    pub fn with_version(version: u32) -> Self {
        Self { version }
    }

    /// The table holding one row per tenant in this version.
    pub fn tenants_table(&self) -> String {
        Tables::of(self.version).tenants
    }

    /// The table holding one row per member in this version.
    pub fn members_table(&self) -> String {
        Tables::of(self.version).members
    }

    fn tables(&self) -> Tables {
        Tables::of(self.version)
    }
}

impl Default for TenantDirectory {
    fn default() -> Self {
        Self::new()
    }
}

/// The error for an event this version cannot fold.
pub(crate) fn fold_error(event: &EventRecord, reason: impl std::fmt::Display) -> ProjectionError {
    ProjectionError::Fold {
        position: event.position,
        reason: format!("{} {}: {reason}", event.aggregate_type, event.event_type),
    }
}

/// Decodes a payload as cqrs-es stored it (an externally tagged enum).
pub(crate) fn decode<E: serde::de::DeserializeOwned>(
    event: &EventRecord,
) -> Result<E, ProjectionError> {
    serde_json::from_str(&event.payload).map_err(|error| fold_error(event, error))
}

impl Projection for TenantDirectory {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn version(&self) -> u32 {
        self.version
    }

    fn schema_version(&self) -> u32 {
        Self::VERSION
    }

    fn tables(&self) -> Vec<String> {
        let Tables {
            tenants,
            members,
            platform,
            ..
        } = self.tables();
        vec![tenants, members, platform]
    }

    fn schema(&self, dialect: Dialect) -> Vec<String> {
        let Tables {
            tenants,
            members,
            platform,
            ..
        } = self.tables();
        let c = byte_order(dialect);
        vec![
            format!(
                "CREATE TABLE IF NOT EXISTS {tenants} (\
                 tenant_id TEXT{c} PRIMARY KEY, \
                 slug TEXT{c} NOT NULL, \
                 organization TEXT NOT NULL, \
                 organization_key TEXT{c} NOT NULL, \
                 status TEXT NOT NULL, \
                 plan TEXT NOT NULL, \
                 seats BIGINT NOT NULL, \
                 partner_id TEXT, \
                 is_platform_tenant BOOLEAN NOT NULL, \
                 created_at TEXT{c} NOT NULL, \
                 updated_at TEXT NOT NULL, \
                 deleted_at TEXT, \
                 member_count BIGINT NOT NULL, \
                 admin_count BIGINT NOT NULL)"
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {members} (\
                 tenant_id TEXT{c} NOT NULL, \
                 member_id TEXT{c} NOT NULL, \
                 email TEXT NOT NULL, \
                 email_key TEXT{c} NOT NULL, \
                 display_name TEXT NOT NULL, \
                 role TEXT NOT NULL, \
                 is_owner BOOLEAN NOT NULL, \
                 status TEXT NOT NULL, \
                 has_mailbox BOOLEAN NOT NULL, \
                 subject TEXT, \
                 subject_issuer TEXT, \
                 PRIMARY KEY (tenant_id, member_id))"
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {platform} (\
                 singleton BIGINT PRIMARY KEY, tenant_id TEXT NOT NULL)"
            ),
        ]
    }

    fn indexes(&self, _dialect: Dialect) -> Vec<String> {
        // The directory's listings and look-ups; the fold itself reads rows by primary key.
        let Tables {
            tenants, members, ..
        } = self.tables();
        vec![
            format!("CREATE INDEX IF NOT EXISTS {tenants}_by_slug ON {tenants} (slug, tenant_id)"),
            format!(
                "CREATE INDEX IF NOT EXISTS {tenants}_by_organization \
                 ON {tenants} (organization_key, tenant_id)"
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS {tenants}_by_created ON {tenants} (created_at, tenant_id)"
            ),
            format!("CREATE INDEX IF NOT EXISTS {tenants}_by_seats ON {tenants} (seats, tenant_id)"),
            format!(
                "CREATE INDEX IF NOT EXISTS {tenants}_by_partner ON {tenants} (partner_id, slug)"
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS {members}_by_subject ON {members} (subject, tenant_id)"
            ),
            format!(
                "CREATE INDEX IF NOT EXISTS {members}_by_email ON {members} (email_key, tenant_id)"
            ),
        ]
    }

    async fn apply(
        &self,
        tx: &mut ReadTx<'_>,
        events: &[EventRecord],
    ) -> Result<(), ProjectionError> {
        // The batch is folded in memory: every row it touches is read first (one query per
        // table), the events are applied in Rust, and the changed rows are written back with
        // multi-row statements, so a batch costs a handful of round trips, not one per event.
        let mut decoded = Vec::with_capacity(events.len());
        for event in events {
            match event.aggregate_type.as_str() {
                TENANT_AGGREGATE_TYPE => {
                    decoded.push((event, DirectoryEvent::Tenant(Box::new(decode(event)?))));
                }
                PLATFORM_FLAG_AGGREGATE_TYPE => {
                    let PlatformFlagEvent::PlatformTenantAssigned { tenant_id, .. } =
                        decode(event)?;
                    decoded.push((event, DirectoryEvent::PlatformFlag(tenant_id)));
                }
                // Slug claims, probes and aggregates this version does not know change nothing
                // in the directory.
                _ => {}
            }
        }
        if decoded.is_empty() {
            return Ok(());
        }
        let tables = self.tables();
        let mut batch = DirectoryBatch::load(tx, &tables, &decoded).await?;
        for (record, event) in decoded {
            match event {
                DirectoryEvent::Tenant(event) => batch.fold_tenant_event(record, *event),
                DirectoryEvent::PlatformFlag(holder) => {
                    batch.fold_platform_flag(&record.recorded_at, &holder);
                }
            }
        }
        batch.store(tx, &tables).await?;
        Ok(())
    }
}

/// An event the directory folds, decoded.
enum DirectoryEvent {
    /// Boxed: tenant events are far larger than the flag's.
    Tenant(Box<TenantEvent>),
    /// The platform flag's new holder.
    PlatformFlag(String),
}

/// A member row as stored (with its tenant and search key).
#[derive(Debug, Clone, sqlx::FromRow)]
struct StoredMember {
    tenant_id: String,
    member_id: String,
    email: String,
    email_key: String,
    display_name: String,
    role: String,
    is_owner: bool,
    status: String,
    has_mailbox: bool,
    subject: Option<String>,
    subject_issuer: Option<String>,
}

/// The rows one batch touches, as the fold changes them before they are written back.
struct DirectoryBatch {
    /// Every tenant the batch names (`None`: no row, which updates leave alone, as an
    /// `UPDATE` of a missing row would), and the platform flag's holders when it moves.
    tenants: HashMap<String, Option<TenantRecord>>,
    /// Current members by tenant and member id: every member of a tenant whose events act on
    /// all its members (a purge, an ownership change), otherwise only the members the batch's
    /// events name. Member counts are therefore kept by difference, not recounted.
    members: HashMap<String, BTreeMap<String, StoredMember>>,
    /// The platform flag's holder.
    platform: Option<String>,
    changed_tenants: BTreeSet<String>,
    /// Member rows to write back: upserted when present in `members`, deleted when not.
    changed_members: BTreeSet<(String, String)>,
    platform_changed: bool,
    /// Tenants the batch looked for and found no row of.
    absent_tenants: HashSet<String>,
    /// Members the batch looked for and found no row of.
    absent_members: AbsentMembers,
}

/// Which (tenant, member) rows a batch knows not to exist: named and not found, or of a
/// tenant whose members were all read and not among them.
struct AbsentMembers {
    named: HashSet<(String, String)>,
    whole_tenants: HashSet<String>,
    stored: HashSet<(String, String)>,
}

impl AbsentMembers {
    fn contains(&self, key: &(String, String)) -> bool {
        self.named.contains(key)
            || (self.whole_tenants.contains(&key.0) && !self.stored.contains(key))
    }
}

impl DirectoryBatch {
    /// Reads the rows `events` touch, in one query per table (more only past the bound
    /// parameter limit).
    async fn load(
        tx: &mut ReadTx<'_>,
        tables: &Tables,
        events: &[(&EventRecord, DirectoryEvent)],
    ) -> Result<Self, ProjectionError> {
        let mut tenant_ids = BTreeSet::new();
        // Tenants whose events act on every member, and the (tenant, member) pairs the other
        // events name: loading only those keeps a batch's reads proportional to its events,
        // not to the size of the tenants it touches.
        let mut whole_tenants = BTreeSet::new();
        let mut named = BTreeSet::new();
        let mut platform_moves = false;
        let mut needs_holder = false;
        for (record, event) in events {
            match event {
                DirectoryEvent::Tenant(event) => {
                    let tenant_id = &record.aggregate_id;
                    tenant_ids.insert(tenant_id.clone());
                    needs_holder |= matches!(**event, TenantEvent::TenantCreated { .. });
                    match &**event {
                        TenantEvent::TenantPurged { .. }
                        | TenantEvent::OwnershipTransferred { .. }
                        | TenantEvent::MemberInvited { owner: true, .. } => {
                            whole_tenants.insert(tenant_id.clone());
                        }
                        TenantEvent::MemberInvited { member_id, .. }
                        | TenantEvent::MemberAdded { member_id, .. }
                        | TenantEvent::MemberRoleChanged { member_id, .. }
                        | TenantEvent::MemberSuspended { member_id }
                        | TenantEvent::MemberResumed { member_id }
                        | TenantEvent::MemberRemoved { member_id }
                        | TenantEvent::MemberSubjectLinked { member_id, .. }
                        | TenantEvent::MemberMailboxCreated { member_id } => {
                            named.insert((tenant_id.clone(), member_id.clone()));
                        }
                        _ => {}
                    }
                }
                DirectoryEvent::PlatformFlag(holder) => {
                    tenant_ids.insert(holder.clone());
                    platform_moves = true;
                }
            }
        }
        let tenant_ids: Vec<String> = tenant_ids.into_iter().collect();
        named.retain(|(tenant_id, _)| !whole_tenants.contains(tenant_id));
        let whole_tenants: Vec<String> = whole_tenants.into_iter().collect();
        let mut tenants: HashMap<String, Option<TenantRecord>> =
            tenant_ids.iter().map(|id| (id.clone(), None)).collect();
        let head = format!("SELECT {TENANT_COLUMNS} FROM {} WHERE", tables.tenants);
        let rows: Vec<TenantRecord> = fetch_by_keys(tx, &head, "tenant_id", &tenant_ids).await?;
        for row in rows {
            tenants.insert(row.tenant_id.clone(), Some(row));
        }
        if platform_moves {
            // The flag's move also clears it on whoever holds it now.
            let mut sql = Sql::new(format!(
                "SELECT {TENANT_COLUMNS} FROM {} WHERE is_platform_tenant = ",
                tables.tenants
            ));
            let p = sql.arg(Arg::Bool(true));
            sql.push(&p);
            let rows: Vec<TenantRecord> = fetch_all_tx(tx, &sql).await?;
            for row in rows {
                tenants
                    .entry(row.tenant_id.clone())
                    .or_insert_with(|| Some(row));
            }
        }
        let mut members: HashMap<String, BTreeMap<String, StoredMember>> = HashMap::new();
        let head = format!(
            "SELECT tenant_id, {MEMBER_COLUMNS}, email_key FROM {} WHERE",
            tables.members
        );
        let mut rows: Vec<StoredMember> =
            fetch_by_keys(tx, &head, "tenant_id", &whole_tenants).await?;
        let named: Vec<(String, String)> = named.into_iter().collect();
        rows.extend(fetch_by_pairs::<StoredMember>(tx, &head, &named).await?);
        for row in rows {
            members
                .entry(row.tenant_id.clone())
                .or_default()
                .insert(row.member_id.clone(), row);
        }
        // What was looked for and not found has no row yet: written back, such rows can go in
        // without `ON CONFLICT` (see [`Self::store`]).
        let absent_tenants = tenants
            .iter()
            .filter(|(_, row)| row.is_none())
            .map(|(id, _)| id.clone())
            .collect();
        let is_stored = |t: &str, m: &str| members.get(t).is_some_and(|ms| ms.contains_key(m));
        let absent_named = named
            .iter()
            .filter(|(t, m)| !is_stored(t, m))
            .cloned()
            .collect();
        let whole_tenants = whole_tenants.into_iter().collect();
        let platform = if needs_holder || platform_moves {
            #[derive(sqlx::FromRow)]
            struct Holder {
                tenant_id: String,
            }
            let holder: Option<Holder> = fetch_optional_tx(
                tx,
                &format!(
                    "SELECT tenant_id FROM {} WHERE singleton = 1",
                    tables.platform
                ),
                &[],
            )
            .await?;
            holder.map(|h| h.tenant_id)
        } else {
            None
        };
        let absent_members = AbsentMembers {
            named: absent_named,
            whole_tenants,
            stored: members
                .iter()
                .flat_map(|(t, ms)| ms.keys().map(|m| (t.clone(), m.clone())))
                .collect(),
        };
        Ok(Self {
            tenants,
            members,
            platform,
            changed_tenants: BTreeSet::new(),
            changed_members: BTreeSet::new(),
            platform_changed: false,
            absent_tenants,
            absent_members,
        })
    }

    fn fold_platform_flag(&mut self, recorded_at: &str, holder: &str) {
        self.platform = Some(holder.to_owned());
        self.platform_changed = true;
        // Only the rows whose flag flips are touched, so `updated_at` of the others stays.
        for (id, row) in &mut self.tenants {
            let Some(row) = row else { continue };
            if id == holder || row.is_platform_tenant {
                row.is_platform_tenant = id == holder;
                row.updated_at = recorded_at.to_owned();
                self.changed_tenants.insert(id.clone());
            }
        }
    }

    /// Sets `updated_at` and whatever `change` sets on an existing tenant row.
    fn touch(&mut self, tenant_id: &str, at: &str, change: impl FnOnce(&mut TenantRecord)) {
        if let Some(Some(row)) = self.tenants.get_mut(tenant_id) {
            row.updated_at = at.to_owned();
            change(row);
            self.changed_tenants.insert(tenant_id.to_owned());
        }
    }

    /// Marks a membership change on the tenant row; the counts themselves were adjusted by
    /// [`Self::count_change`] as each member changed.
    fn recount(&mut self, tenant_id: &str, at: &str) {
        self.touch(tenant_id, at, |_| {});
    }

    /// Adjusts a tenant's member and admin counts for one member going from `before` to
    /// `after` (`None`: not a member). The stored counts are those of every member row, so the
    /// difference keeps them exact without reading members the batch does not name.
    fn count_change(
        &mut self,
        tenant_id: &str,
        before: Option<&StoredMember>,
        after: Option<&StoredMember>,
    ) {
        let weight = |m: Option<&StoredMember>| match m {
            None => (0, 0),
            Some(m) => (1, i64::from(m.role == role_name(Role::Admin))),
        };
        let (members_before, admins_before) = weight(before);
        let (members_after, admins_after) = weight(after);
        if let Some(Some(row)) = self.tenants.get_mut(tenant_id) {
            row.member_count += members_after - members_before;
            row.admin_count += admins_after - admins_before;
        }
    }

    fn tenant_members(&mut self, tenant_id: &str) -> &mut BTreeMap<String, StoredMember> {
        self.members.entry(tenant_id.to_owned()).or_default()
    }

    /// Changes an existing member row.
    fn set_member(
        &mut self,
        tenant_id: &str,
        member_id: &str,
        change: impl FnOnce(&mut StoredMember),
    ) {
        if let Some(member) = self.tenant_members(tenant_id).get_mut(member_id) {
            let before = member.clone();
            change(member);
            let after = member.clone();
            self.count_change(tenant_id, Some(&before), Some(&after));
            self.changed_members
                .insert((tenant_id.to_owned(), member_id.to_owned()));
        }
    }

    fn insert_member(&mut self, tenant_id: &str, member: NewMemberRow<'_>) {
        let members = self.tenant_members(tenant_id);
        let mut changed = Vec::new();
        if member.owner {
            for (id, m) in members.iter_mut() {
                m.is_owner = false;
                changed.push(id.clone());
            }
        }
        // Like the aggregate's fold, a (re)inserted member starts active and unlinked; an
        // existing owner stays owner.
        let was_owner = members.get(member.member_id).is_some_and(|m| m.is_owner);
        let inserted = StoredMember {
            tenant_id: tenant_id.to_owned(),
            member_id: member.member_id.to_owned(),
            email: member.email.to_owned(),
            email_key: email_key(member.email),
            display_name: member.display_name.to_owned(),
            role: role_name(member.role).to_owned(),
            is_owner: was_owner || member.owner,
            status: member_status_name(MemberStatus::Active).to_owned(),
            has_mailbox: member.has_mailbox,
            subject: None,
            subject_issuer: None,
        };
        let before = members.insert(member.member_id.to_owned(), inserted.clone());
        self.count_change(tenant_id, before.as_ref(), Some(&inserted));
        changed.push(member.member_id.to_owned());
        for id in changed {
            self.changed_members.insert((tenant_id.to_owned(), id));
        }
    }

    fn remove_members(&mut self, tenant_id: &str, member_id: Option<&str>) {
        let members = self.tenant_members(tenant_id);
        let removed: Vec<StoredMember> = match member_id {
            Some(id) => members.remove(id).into_iter().collect(),
            None => std::mem::take(members).into_values().collect(),
        };
        for member in removed {
            self.count_change(tenant_id, Some(&member), None);
            self.changed_members
                .insert((tenant_id.to_owned(), member.member_id));
        }
    }

    fn fold_tenant_event(&mut self, record: &EventRecord, event: TenantEvent) {
        // The aggregate id is the tenant: later events carry no tenant id of their own.
        let tenant_id = record.aggregate_id.as_str();
        let at = record.recorded_at.as_str();
        let status = |status: TenantStatus| tenant_status_name(status).to_owned();
        match event {
            TenantEvent::TenantCreated {
                organization_name,
                slug,
                plan,
                seats,
                partner_id,
                created_at,
                ..
            } => {
                let is_platform = self.platform.as_deref() == Some(tenant_id);
                let organization_key = organization_name.to_lowercase();
                let created_at = normalized_time(&created_at);
                let entry = self.tenants.entry(tenant_id.to_owned()).or_default();
                match entry {
                    // A second creation (never decided, but the fold is total) resets what
                    // creation sets and keeps the flag and the counts.
                    Some(row) => {
                        row.slug = slug;
                        row.organization = organization_name;
                        row.organization_key = organization_key;
                        row.status = status(TenantStatus::PendingProvisioning);
                        row.plan = plan;
                        row.seats = i64::from(seats);
                        row.partner_id = partner_id;
                        row.created_at = created_at;
                        row.updated_at = at.to_owned();
                        row.deleted_at = None;
                    }
                    None => {
                        *entry = Some(TenantRecord {
                            tenant_id: tenant_id.to_owned(),
                            slug,
                            organization: organization_name,
                            organization_key,
                            status: status(TenantStatus::PendingProvisioning),
                            plan,
                            seats: i64::from(seats),
                            partner_id,
                            is_platform_tenant: is_platform,
                            created_at,
                            updated_at: at.to_owned(),
                            deleted_at: None,
                            member_count: 0,
                            admin_count: 0,
                        });
                    }
                }
                self.changed_tenants.insert(tenant_id.to_owned());
            }
            TenantEvent::TenantProvisioned {} | TenantEvent::TenantResumed {} => {
                self.touch(tenant_id, at, |row| {
                    row.status = status(TenantStatus::Active)
                });
            }
            TenantEvent::TenantSuspended {} => {
                self.touch(tenant_id, at, |row| {
                    row.status = status(TenantStatus::Suspended);
                });
            }
            TenantEvent::TenantSoftDeleted { deleted_at } => {
                self.touch(tenant_id, at, |row| {
                    row.status = status(TenantStatus::SoftDeleted);
                    row.deleted_at = Some(normalized_time(&deleted_at));
                });
            }
            TenantEvent::TenantPurged { .. } => {
                // A purged tenant keeps its directory row (operators see what was purged) but
                // not its members: nobody acts in it any more, and their personal data has no
                // use here once the tenant is gone (the ledger keeps the record).
                self.remove_members(tenant_id, None);
                self.touch(tenant_id, at, |row| {
                    row.status = status(TenantStatus::Purged)
                });
                self.recount(tenant_id, at);
            }
            TenantEvent::BillingInfoUpdated { .. }
            | TenantEvent::BrandingUpdated { .. }
            | TenantEvent::SecurityPolicyUpdated { .. } => {
                // The directory shows none of these fields, but the tenant did change.
                self.touch(tenant_id, at, |_| {});
            }
            TenantEvent::MemberInvited {
                member_id,
                email,
                display_name,
                role,
                owner,
                has_mailbox,
            } => {
                let member = NewMemberRow {
                    member_id: &member_id,
                    email: &email,
                    display_name: &display_name,
                    role,
                    owner,
                    has_mailbox,
                };
                self.insert_member(tenant_id, member);
                self.recount(tenant_id, at);
            }
            TenantEvent::MemberAdded {
                member_id,
                email,
                display_name,
                role,
                has_mailbox,
            } => {
                let member = NewMemberRow {
                    member_id: &member_id,
                    email: &email,
                    display_name: &display_name,
                    role,
                    owner: false,
                    has_mailbox,
                };
                self.insert_member(tenant_id, member);
                self.recount(tenant_id, at);
            }
            TenantEvent::MemberRoleChanged { member_id, to, .. } => {
                self.set_member(tenant_id, &member_id, |m| {
                    m.role = role_name(to).to_owned();
                });
                self.recount(tenant_id, at);
            }
            TenantEvent::OwnershipTransferred { to_member_id, .. } => {
                let members = self.tenant_members(tenant_id);
                let flipped: Vec<String> = members
                    .iter_mut()
                    .filter(|(id, m)| m.is_owner || **id == to_member_id)
                    .map(|(id, m)| {
                        m.is_owner = *id == to_member_id;
                        id.clone()
                    })
                    .collect();
                for id in flipped {
                    self.changed_members.insert((tenant_id.to_owned(), id));
                }
                self.set_member(tenant_id, &to_member_id, |m| {
                    m.role = role_name(Role::Admin).to_owned();
                });
                self.recount(tenant_id, at);
            }
            TenantEvent::MemberSuspended { member_id } => {
                self.set_member(tenant_id, &member_id, |m| {
                    m.status = member_status_name(MemberStatus::Suspended).to_owned();
                });
                self.touch(tenant_id, at, |_| {});
            }
            TenantEvent::MemberResumed { member_id } => {
                self.set_member(tenant_id, &member_id, |m| {
                    m.status = member_status_name(MemberStatus::Active).to_owned();
                });
                self.touch(tenant_id, at, |_| {});
            }
            TenantEvent::MemberLogoutRequested { .. }
            | TenantEvent::MemberPasswordResetRequested { .. } => {
                // Requests for the member saga; nothing the directory shows changes.
            }
            TenantEvent::MemberRemoved { member_id } => {
                self.remove_members(tenant_id, Some(&member_id));
                self.recount(tenant_id, at);
            }
            TenantEvent::MemberSubjectLinked {
                member_id,
                subject,
                issuer,
            } => {
                self.set_member(tenant_id, &member_id, |m| {
                    m.subject = Some(subject);
                    m.subject_issuer = issuer;
                });
                self.touch(tenant_id, at, |_| {});
            }
            TenantEvent::MemberMailboxCreated { member_id } => {
                self.set_member(tenant_id, &member_id, |m| m.has_mailbox = true);
                self.touch(tenant_id, at, |_| {});
            }
            TenantEvent::MemberAliasAdded { .. }
            | TenantEvent::MemberAliasRemoved { .. }
            | TenantEvent::MailingListCreated { .. }
            | TenantEvent::MailingListRecipientsSet { .. }
            | TenantEvent::MailingListDeleted { .. } => {
                // Addresses are the mail_addresses read model's; the tenant did change.
                self.touch(tenant_id, at, |_| {});
            }
        }
    }

    /// Writes the changed rows back: removed members deleted, the other changed rows
    /// upserted whole, each kind in as few statements as the bound-parameter limit allows.
    async fn store(self, tx: &mut ReadTx<'_>, tables: &Tables) -> Result<(), ProjectionError> {
        let Tables {
            tenants,
            members,
            platform,
            ..
        } = tables;
        let mut removed: BTreeMap<&str, Vec<String>> = BTreeMap::new();
        // Rows the batch knows to be new are appended (COPY on PostgreSQL: no conflict check,
        // no arrays to decode); the others are upserted.
        let mut new_member_rows = Vec::new();
        let mut member_rows = Vec::new();
        for key in &self.changed_members {
            let (tenant_id, member_id) = key;
            let rows = if self.absent_members.contains(key) {
                &mut new_member_rows
            } else {
                &mut member_rows
            };
            match self.members.get(tenant_id).and_then(|m| m.get(member_id)) {
                Some(m) => rows.push(vec![
                    Arg::Text(m.tenant_id.clone()),
                    Arg::Text(m.member_id.clone()),
                    Arg::Text(m.email.clone()),
                    Arg::Text(m.email_key.clone()),
                    Arg::Text(m.display_name.clone()),
                    Arg::Text(m.role.clone()),
                    Arg::Bool(m.is_owner),
                    Arg::Text(m.status.clone()),
                    Arg::Bool(m.has_mailbox),
                    Arg::NullableText(m.subject.clone()),
                    Arg::NullableText(m.subject_issuer.clone()),
                ]),
                None => removed
                    .entry(tenant_id.as_str())
                    .or_default()
                    .push(member_id.clone()),
            }
        }
        if let ReadTx::Postgres(conn) = tx {
            // One statement for the whole batch: the (tenant, member) pairs as two arrays.
            let (tenant_ids, member_ids): (Vec<String>, Vec<String>) = removed
                .iter()
                .flat_map(|(t, ids)| ids.iter().map(|m| ((*t).to_owned(), m.clone())))
                .unzip();
            if !tenant_ids.is_empty() {
                sqlx::query(&format!(
                    "DELETE FROM {members} WHERE (tenant_id, member_id) IN \
                     (SELECT * FROM UNNEST($1::text[], $2::text[]))"
                ))
                .bind(tenant_ids)
                .bind(member_ids)
                .execute(&mut **conn)
                .await?;
            }
            removed.clear();
        }
        for (tenant_id, ids) in removed {
            for chunk in ids.chunks(IN_LIST_CHUNK) {
                let mut sql = Sql::new(format!("DELETE FROM {members} WHERE tenant_id = "));
                let t = sql.arg(Arg::Text(tenant_id.to_owned()));
                sql.push(&t);
                sql.push(" AND member_id IN ");
                let list = in_list(&mut sql, chunk);
                sql.push(&list);
                execute(tx, &sql.text, &sql.args).await?;
            }
        }
        let member_columns = "tenant_id, member_id, email, email_key, display_name, role, \
                              is_owner, status, has_mailbox, subject, subject_issuer";
        if !new_member_rows.is_empty() {
            let mut appender = RowAppender::start(tx, members, member_columns).await?;
            appender.push(new_member_rows).await?;
            appender.finish().await?;
        }
        insert_rows(
            tx,
            &format!("INSERT INTO {members} ({member_columns})"),
            "ON CONFLICT (tenant_id, member_id) DO UPDATE SET email = excluded.email, \
             email_key = excluded.email_key, display_name = excluded.display_name, \
             role = excluded.role, is_owner = excluded.is_owner, status = excluded.status, \
             has_mailbox = excluded.has_mailbox, subject = excluded.subject, \
             subject_issuer = excluded.subject_issuer",
            member_rows,
        )
        .await?;
        let (new_tenant_rows, tenant_rows): (Vec<_>, Vec<_>) = self
            .changed_tenants
            .iter()
            .filter_map(|id| self.tenants.get(id).and_then(Option::as_ref))
            .map(|t| {
                let row = vec![
                    Arg::Text(t.tenant_id.clone()),
                    Arg::Text(t.slug.clone()),
                    Arg::Text(t.organization.clone()),
                    Arg::Text(t.organization_key.clone()),
                    Arg::Text(t.status.clone()),
                    Arg::Text(t.plan.clone()),
                    Arg::Int(t.seats),
                    Arg::NullableText(t.partner_id.clone()),
                    Arg::Bool(t.is_platform_tenant),
                    Arg::Text(t.created_at.clone()),
                    Arg::Text(t.updated_at.clone()),
                    Arg::NullableText(t.deleted_at.clone()),
                    Arg::Int(t.member_count),
                    Arg::Int(t.admin_count),
                ];
                (self.absent_tenants.contains(&t.tenant_id), row)
            })
            .partition(|(new, _)| *new);
        let strip = |rows: Vec<(bool, Vec<Arg>)>| -> Vec<Vec<Arg>> {
            rows.into_iter().map(|(_, row)| row).collect()
        };
        if !new_tenant_rows.is_empty() {
            let mut appender = RowAppender::start(tx, tenants, TENANT_COLUMNS).await?;
            appender.push(strip(new_tenant_rows)).await?;
            appender.finish().await?;
        }
        let tenant_rows = strip(tenant_rows);
        insert_rows(
            tx,
            &format!("INSERT INTO {tenants} ({TENANT_COLUMNS})"),
            "ON CONFLICT (tenant_id) DO UPDATE SET slug = excluded.slug, \
             organization = excluded.organization, \
             organization_key = excluded.organization_key, status = excluded.status, \
             plan = excluded.plan, seats = excluded.seats, partner_id = excluded.partner_id, \
             is_platform_tenant = excluded.is_platform_tenant, \
             created_at = excluded.created_at, updated_at = excluded.updated_at, \
             deleted_at = excluded.deleted_at, member_count = excluded.member_count, \
             admin_count = excluded.admin_count",
            tenant_rows,
        )
        .await?;
        if let (true, Some(holder)) = (self.platform_changed, self.platform) {
            execute(
                tx,
                &format!(
                    "INSERT INTO {platform} (singleton, tenant_id) VALUES (1, $1) \
                     ON CONFLICT (singleton) DO UPDATE SET tenant_id = excluded.tenant_id"
                ),
                &[Arg::Text(holder)],
            )
            .await?;
        }
        Ok(())
    }
}

struct NewMemberRow<'a> {
    member_id: &'a str,
    email: &'a str,
    display_name: &'a str,
    role: Role,
    owner: bool,
    has_mailbox: bool,
}

/// E-mail addresses compare trimmed and case-insensitively, as the aggregate compares them.
fn email_key(email: &str) -> String {
    email.trim().to_lowercase()
}

// ---------------------------------------------------------------------------------------------
// Rows and queries.
// ---------------------------------------------------------------------------------------------

/// A tenant as the directory lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantRow {
    /// The tenant id.
    pub id: String,
    /// The slug.
    pub slug: String,
    /// The organization's name.
    pub organization: String,
    /// Where the tenant is in its lifecycle.
    pub status: TenantStatus,
    /// The plan id.
    pub plan: String,
    /// Seats.
    pub seats: u32,
    /// The owning partner, if sold through one.
    pub partner_id: Option<String>,
    /// Whether this is the platform tenant.
    pub is_platform_tenant: bool,
    /// When it was created (from the creating command, UTC).
    pub created_at: String,
    /// When the ledger recorded the last event that changed this row.
    pub updated_at: String,
    /// When it was soft-deleted.
    pub deleted_at: Option<String>,
    /// Current members (all statuses).
    pub member_count: u32,
    /// Current members with the admin role (all statuses).
    pub admin_count: u32,
}

/// A member of a tenant, with the role they hold in that tenant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MemberRow {
    /// The member id.
    pub member_id: String,
    /// Sign-in e-mail.
    pub email: String,
    /// Display name.
    pub display_name: String,
    /// Role in this tenant.
    pub role: Role,
    /// Whether the member owns the tenant.
    pub is_owner: bool,
    /// Whether the member can sign in.
    pub status: MemberStatus,
    /// Whether the member has a workspace mailbox.
    pub has_mailbox: bool,
    /// The linked SSO subject.
    pub subject: Option<String>,
    /// The issuer of the linked subject (`None` before linking and for links recorded before
    /// issuers were).
    pub subject_issuer: Option<String>,
}

/// A tenant with its members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TenantDetail {
    /// The tenant.
    pub tenant: TenantRow,
    /// Its current members: the owner first, then by e-mail.
    pub members: Vec<MemberRow>,
}

/// Which tenants a directory list returns. Every field narrows the list; `Default` lists all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TenantFilter {
    /// Case-insensitive substring of the slug or the organization's name.
    pub search: Option<String>,
    /// Only tenants in this status.
    pub status: Option<TenantStatus>,
    /// Only tenants of this partner.
    pub partner_id: Option<String>,
    /// Only tenants on this plan.
    pub plan: Option<String>,
}

/// The column a directory list is sorted by; ties are broken by tenant id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TenantSortField {
    /// By slug.
    #[default]
    Slug,
    /// By organization name, case-insensitively.
    Organization,
    /// By creation time.
    CreatedAt,
    /// By seats.
    Seats,
}

/// The order of a directory list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TenantSort {
    /// The column.
    pub field: TenantSortField,
    /// Largest first (the tie-breaker descends too).
    pub descending: bool,
}

impl TenantSortField {
    fn column(self) -> &'static str {
        match self {
            TenantSortField::Slug => "slug",
            TenantSortField::Organization => "organization_key",
            TenantSortField::CreatedAt => "created_at",
            TenantSortField::Seats => "seats",
        }
    }
}

impl TenantSort {
    /// The tag a cursor carries, so a cursor of one sort is refused by another.
    fn tag(self) -> String {
        let direction = if self.descending { "desc" } else { "asc" };
        format!("tenants:{}:{direction}", self.field.column())
    }

    fn key_of(self, record: &TenantRecord) -> Value {
        match self.field {
            TenantSortField::Slug => Value::from(record.slug.clone()),
            TenantSortField::Organization => Value::from(record.organization_key.clone()),
            TenantSortField::CreatedAt => Value::from(record.created_at.clone()),
            TenantSortField::Seats => Value::from(record.seats),
        }
    }

    /// The cursor's key as an argument of this sort's type; a key of another type means the
    /// cursor was not issued for this sort.
    fn key_arg(self, key: Value) -> Result<Arg, QueryError> {
        match (self.field, key) {
            (TenantSortField::Seats, Value::Number(n)) => {
                n.as_i64().map(Arg::Int).ok_or(QueryError::InvalidCursor)
            }
            (TenantSortField::Seats, _) => Err(QueryError::InvalidCursor),
            (_, Value::String(s)) => Ok(Arg::Text(s)),
            (_, _) => Err(QueryError::InvalidCursor),
        }
    }
}

const TENANT_COLUMNS: &str = "tenant_id, slug, organization, organization_key, status, plan, \
     seats, partner_id, is_platform_tenant, created_at, updated_at, deleted_at, member_count, \
     admin_count";

#[derive(sqlx::FromRow)]
struct TenantRecord {
    tenant_id: String,
    slug: String,
    organization: String,
    organization_key: String,
    status: String,
    plan: String,
    seats: i64,
    partner_id: Option<String>,
    is_platform_tenant: bool,
    created_at: String,
    updated_at: String,
    deleted_at: Option<String>,
    member_count: i64,
    admin_count: i64,
}

impl TenantRecord {
    fn into_row(self) -> Result<TenantRow, QueryError> {
        Ok(TenantRow {
            status: parse_tenant_status(&self.status)?,
            id: self.tenant_id,
            slug: self.slug,
            organization: self.organization,
            plan: self.plan,
            seats: to_u32(self.seats),
            partner_id: self.partner_id,
            is_platform_tenant: self.is_platform_tenant,
            created_at: self.created_at,
            updated_at: self.updated_at,
            deleted_at: self.deleted_at,
            member_count: to_u32(self.member_count),
            admin_count: to_u32(self.admin_count),
        })
    }
}

const MEMBER_COLUMNS: &str =
    "member_id, email, display_name, role, is_owner, status, has_mailbox, subject, subject_issuer";
/// [`MEMBER_COLUMNS`] of a schema-1 build, which stored no issuer.
const MEMBER_COLUMNS_SCHEMA_1: &str = "member_id, email, display_name, role, is_owner, status, \
     has_mailbox, subject, CAST(NULL AS TEXT) AS subject_issuer";

#[derive(sqlx::FromRow)]
struct MemberRecord {
    member_id: String,
    email: String,
    display_name: String,
    role: String,
    is_owner: bool,
    status: String,
    has_mailbox: bool,
    subject: Option<String>,
    subject_issuer: Option<String>,
}

impl MemberRecord {
    fn into_row(self) -> Result<MemberRow, QueryError> {
        Ok(MemberRow {
            role: parse_role(&self.role)?,
            status: parse_member_status(&self.status)?,
            member_id: self.member_id,
            email: self.email,
            display_name: self.display_name,
            is_owner: self.is_owner,
            has_mailbox: self.has_mailbox,
            subject: self.subject,
            subject_issuer: self.subject_issuer,
        })
    }
}

/// Appends the filter's conditions (each preceded by `AND`).
fn push_tenant_filter(sql: &mut Sql, filter: &TenantFilter) {
    if let Some(search) = filter.search.as_deref().map(str::trim) {
        if !search.is_empty() {
            let p = sql.arg(Arg::Text(like_pattern(search)));
            sql.push(&format!(
                " AND (slug LIKE {p} ESCAPE '\\' OR organization_key LIKE {p} ESCAPE '\\')"
            ));
        }
    }
    if let Some(status) = filter.status {
        let p = sql.arg(Arg::Text(tenant_status_name(status).to_owned()));
        sql.push(&format!(" AND status = {p}"));
    }
    if let Some(partner_id) = &filter.partner_id {
        let p = sql.arg(Arg::Text(partner_id.clone()));
        sql.push(&format!(" AND partner_id = {p}"));
    }
    if let Some(plan) = &filter.plan {
        let p = sql.arg(Arg::Text(plan.clone()));
        sql.push(&format!(" AND plan = {p}"));
    }
}

/// Lists tenants matching `filter`, in `sort` order, one page at a time.
pub async fn list_tenants(
    db: &Db,
    filter: &TenantFilter,
    sort: TenantSort,
    page: &PageRequest,
) -> Result<Page<TenantRow>, QueryError> {
    list_in(&live_tables(db).await?, db, filter, sort, page).await
}

async fn list_in(
    tables: &Tables,
    db: &Db,
    filter: &TenantFilter,
    sort: TenantSort,
    page: &PageRequest,
) -> Result<Page<TenantRow>, QueryError> {
    let size = page.checked_size()?;
    let tag = sort.tag();
    let after = match &page.after {
        Some(cursor) => {
            let (key, id) = decode_cursor(cursor, &tag)?;
            Some((sort.key_arg(key)?, id))
        }
        None => None,
    };

    let mut count = Sql::new(format!(
        "SELECT COUNT(*) FROM {} WHERE 1 = 1",
        tables.tenants
    ));
    push_tenant_filter(&mut count, filter);
    let total_count = fetch_count(db, &count).await?;

    let mut sql = Sql::new(format!(
        "SELECT {TENANT_COLUMNS} FROM {} WHERE 1 = 1",
        tables.tenants
    ));
    push_tenant_filter(&mut sql, filter);
    let column = sort.field.column();
    let (cmp, direction) = if sort.descending {
        ("<", "DESC")
    } else {
        (">", "ASC")
    };
    if let Some((key, id)) = after {
        let k = sql.arg(key);
        let i = sql.arg(Arg::Text(id));
        sql.push(&format!(
            " AND ({column} {cmp} {k} OR ({column} = {k} AND tenant_id {cmp} {i}))"
        ));
    }
    // One row more than asked tells whether another page follows.
    let limit = sql.arg(Arg::Int(i64::from(size) + 1));
    sql.push(&format!(
        " ORDER BY {column} {direction}, tenant_id {direction} LIMIT {limit}"
    ));
    let mut records: Vec<TenantRecord> = fetch_all(db, &sql).await?;
    let has_next_page = records.len() > size as usize;
    records.truncate(size as usize);
    let end_cursor = records
        .last()
        .map(|last| encode_cursor(&tag, sort.key_of(last), &last.tenant_id));
    let items = records
        .into_iter()
        .map(TenantRecord::into_row)
        .collect::<Result<_, _>>()?;
    Ok(Page {
        items,
        end_cursor,
        has_next_page,
        total_count,
    })
}

/// The tenants a partner owns, in `sort` order: the directory list scoped to that partner,
/// so the partner portal cannot forget the scope.
pub async fn tenants_of_partner(
    db: &Db,
    partner_id: &str,
    sort: TenantSort,
    page: &PageRequest,
) -> Result<Page<TenantRow>, QueryError> {
    let filter = TenantFilter {
        partner_id: Some(partner_id.to_owned()),
        ..TenantFilter::default()
    };
    list_tenants(db, &filter, sort, page).await
}

/// The query for the tenant whose `condition` column equals `value`.
fn tenant_sql(tables: &Tables, condition: &str, value: &str) -> Sql {
    let mut sql = Sql::new(format!("SELECT {TENANT_COLUMNS} FROM {}", tables.tenants));
    let p = sql.arg(Arg::Text(value.to_owned()));
    let purged = sql.arg(Arg::Text(
        tenant_status_name(TenantStatus::Purged).to_owned(),
    ));
    // A purged tenant's slug can be claimed again; the live holder wins over the purged one.
    sql.push(&format!(
        " WHERE {condition} = {p} \
         ORDER BY CASE WHEN status = {purged} THEN 1 ELSE 0 END, created_at DESC, tenant_id \
         LIMIT 1"
    ));
    sql
}

async fn tenant_where(
    tables: &Tables,
    db: &Db,
    condition: &str,
    value: &str,
) -> Result<Option<TenantRow>, QueryError> {
    let records: Vec<TenantRecord> = fetch_all(db, &tenant_sql(tables, condition, value)).await?;
    records
        .into_iter()
        .next()
        .map(TenantRecord::into_row)
        .transpose()
}

/// A tenant with its members and their roles in it, or `None` if no such tenant.
///
/// The tenant row and its members are read in one snapshot (a read transaction; repeatable
/// read on PostgreSQL), so the member count always matches the members listed even while
/// the runner folds new events between the two reads.
pub async fn tenant_detail(db: &Db, tenant_id: &str) -> Result<Option<TenantDetail>, QueryError> {
    let tables = live_tables(db).await?;
    let mut tx = match db {
        Db::Sqlite(pool) => ReadTx::Sqlite(pool.begin().await?),
        Db::Postgres(pool) => {
            let mut tx = pool.begin().await?;
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .execute(&mut *tx)
                .await?;
            ReadTx::Postgres(tx)
        }
    };
    let records: Vec<TenantRecord> =
        fetch_all_tx(&mut tx, &tenant_sql(&tables, "tenant_id", tenant_id)).await?;
    let Some(tenant) = records
        .into_iter()
        .next()
        .map(TenantRecord::into_row)
        .transpose()?
    else {
        return Ok(None);
    };
    let mut sql = Sql::new(format!(
        "SELECT {} FROM {}",
        tables.member_columns, tables.members
    ));
    let p = sql.arg(Arg::Text(tenant_id.to_owned()));
    sql.push(&format!(
        " WHERE tenant_id = {p} ORDER BY is_owner DESC, email_key, member_id"
    ));
    let records: Vec<MemberRecord> = fetch_all_tx(&mut tx, &sql).await?;
    let members = records
        .into_iter()
        .map(MemberRecord::into_row)
        .collect::<Result<_, _>>()?;
    // Read-only: ending it either way releases the snapshot.
    match tx {
        ReadTx::Sqlite(tx) => tx.commit().await?,
        ReadTx::Postgres(tx) => tx.commit().await?,
    }
    Ok(Some(TenantDetail { tenant, members }))
}

/// The tenant holding `slug` (the live one, when a purged tenant held it before).
pub async fn tenant_by_slug(db: &Db, slug: &str) -> Result<Option<TenantRow>, QueryError> {
    let tables = live_tables(db).await?;
    tenant_where(&tables, db, "slug", &slug.trim().to_lowercase()).await
}

/// Most member rows one identity look-up considers: a subject is linked to at most one member
/// of a tenant, and an address belongs to at most one; the bound keeps a tenant with broken
/// data from turning a request into a scan.
const MAX_IDENTITY_CANDIDATES: usize = 8;

/// The role under which a principal acts in a tenant, for authorization: `None` unless the
/// principal is recognised as an active member of a tenant that is not (soft-)deleted.
///
/// Recognition is the aggregate's own rule ([`dezky_domain::tenant::recognises`], which
/// `Member::is_recognised_as` applies on the write side): by the linked (issuer, subject), or
/// by a verified e-mail compared strictly only while the member has no linked subject. The
/// query only narrows the candidates (by subject, and by a lower-cased address key that is a
/// superset of what the rule accepts); the rule decides. A subject match wins over an e-mail
/// match. A suspended tenant's members keep their role: what a suspended tenant still allows is
/// the API's decision, made with the tenant's status.
pub async fn member_role(
    db: &Db,
    tenant_id: &str,
    principal: &Principal,
) -> Result<Option<Role>, QueryError> {
    let tables = live_tables(db).await?;
    let Some(tenant) = tenant_where(&tables, db, "tenant_id", tenant_id).await? else {
        return Ok(None);
    };
    if tenant.status.is_deleted() {
        return Ok(None);
    }
    let mut sql = Sql::new(format!(
        "SELECT {} FROM {}",
        tables.member_columns, tables.members
    ));
    let t = sql.arg(Arg::Text(tenant_id.to_owned()));
    let s = sql.arg(Arg::Text(principal.subject.clone()));
    let mut condition = format!("subject = {s}");
    // The address keys an unlinked member could be found under: the claim as sent, and with
    // its domain in ASCII and Unicode form (members' addresses are stored as typed).
    let mut keys: Vec<String> = principal
        .email
        .as_deref()
        .map(claimed_email_spellings)
        .unwrap_or_default()
        .iter()
        .map(|spelling| email_key(spelling))
        .collect();
    keys.sort();
    keys.dedup();
    if !keys.is_empty() {
        let list: Vec<String> = keys
            .into_iter()
            .map(|key| sql.arg(Arg::Text(key)))
            .collect();
        condition = format!(
            "{condition} OR (subject IS NULL AND email_key IN ({}))",
            list.join(", ")
        );
    }
    sql.push(&format!(
        " WHERE tenant_id = {t} AND ({condition}) ORDER BY member_id LIMIT {MAX_IDENTITY_CANDIDATES}"
    ));
    let records: Vec<MemberRecord> = fetch_all(db, &sql).await?;
    let mut linked = None;
    let mut by_email = None;
    for member in records.into_iter().map(MemberRecord::into_row) {
        let member = member?;
        if !recognises(
            member.subject.as_deref(),
            member.subject_issuer.as_deref(),
            &member.email,
            principal,
        ) {
            continue;
        }
        if member.subject.is_some() {
            linked.get_or_insert(member);
        } else {
            by_email.get_or_insert(member);
        }
    }
    Ok(linked
        .or(by_email)
        .filter(|member| member.status == MemberStatus::Active)
        .map(|member| member.role))
}

/// Every tenant and member row of one version of the directory, in id order: what an
/// operator compares before switching to a rebuilt version, and what the
/// projection-equals-replay check compares. Not a portal query (it is not scoped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryContents {
    /// Every tenant row, by id.
    pub tenants: Vec<TenantRow>,
    /// Every member row by tenant id, each tenant's members by member id.
    pub members: BTreeMap<String, Vec<MemberRow>>,
}

impl TenantDirectory {
    /// Reads every row of this version's tables (see [`DirectoryContents`]).
    pub async fn contents(&self, db: &Db) -> Result<DirectoryContents, QueryError> {
        let tables = self.tables();
        let sql = Sql::new(format!(
            "SELECT {TENANT_COLUMNS} FROM {} ORDER BY tenant_id",
            tables.tenants
        ));
        let tenants: Vec<TenantRecord> = fetch_all(db, &sql).await?;
        let tenants = tenants
            .into_iter()
            .map(TenantRecord::into_row)
            .collect::<Result<_, _>>()?;
        #[derive(sqlx::FromRow)]
        struct Owned {
            tenant_id: String,
            #[sqlx(flatten)]
            member: MemberRecord,
        }
        let sql = Sql::new(format!(
            "SELECT tenant_id, {MEMBER_COLUMNS} FROM {} ORDER BY tenant_id, member_id",
            tables.members
        ));
        let rows: Vec<Owned> = fetch_all(db, &sql).await?;
        let mut members = BTreeMap::<String, Vec<MemberRow>>::new();
        for row in rows {
            members
                .entry(row.tenant_id)
                .or_default()
                .push(row.member.into_row()?);
        }
        Ok(DirectoryContents { tenants, members })
    }
}
