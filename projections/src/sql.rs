//! The read-model kit every projection uses: pages and cursors (keyset pagination), the one
//! query error type, dialect-neutral SQL with bound arguments, batched reads and writes
//! (`IN` lists, COPY on PostgreSQL), and decoding stored events for a fold.
//!
//! # Pagination
//!
//! Every list is keyset-paginated: a cursor encodes the sort it was issued for, the sort key
//! of the last row and that row's id (the tie-breaker), so a page continues exactly after the
//! previous one whatever the sort, and rows inserted meanwhile never cause a duplicate or a
//! gap. Cursors are opaque (base64url of JSON) but not secret: a forged cursor can only move
//! the starting point within the same filtered, scoped query, so it is validated, not signed.

use std::collections::BTreeSet;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use dezky_commands::encoding::{format_timestamp, EventRecord};
use dezky_commands::store::Db;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlx::postgres::PgArguments;
use sqlx::Postgres;

use crate::runner::Dialect;
use crate::{on_tx, ProjectionError, ReadTx};

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
