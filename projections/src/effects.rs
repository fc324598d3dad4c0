//! Saga effects as operators see them: one row per effect (keyed by its idempotency key) with
//! its saga, step, system, status, attempts and last error — what `dezky sagas status` lists
//! and what a saga worker reads to find effects that are due.

use dezky_commands::encoding::EventRecord;
use dezky_commands::store::Db;
use dezky_domain::effects::{EffectEvent, EffectStatus, EFFECT_AGGREGATE_TYPE};
use serde::Serialize;
use serde_json::Value;

use crate::runner::{Dialect, Projection, ProjectionError, ReadTx};
use crate::sql::{
    byte_order, decode, decode_cursor, encode_cursor, execute, fetch_all, fetch_count, Arg, Page,
    PageRequest, QueryError, Sql,
};

read_model! {
    /// The effects projection.
    SagaEffects, name = "saga_effects", schema_version = 2,
    /// 2: each effect's subject, so the effects on one external object run one after another.
}

impl SagaEffects {
    fn table(&self) -> String {
        table_of(self.version)
    }
}

fn table_of(build: u32) -> String {
    format!("rm_{}_v{build}", SagaEffects::NAME)
}

/// The external object an effect's request acts on, with its system (`stalwart:acme.eu`, a
/// mailbox or list address), or `""` for one that names none. Effects on one subject run in the order their
/// triggers happened ([`due_effects`]), so a retried older change never lands after a newer
/// one: a list's earlier recipients over its later ones, a domain's creation before the
/// deletion of the same name that preceded it.
pub fn subject_of(system: &str, request: &Value) -> String {
    ["name", "address", "domain"]
        .iter()
        .find_map(|field| request.get(*field).and_then(Value::as_str))
        .map(|subject| format!("{system}:{}", subject.to_ascii_lowercase()))
        .unwrap_or_default()
}

/// The stored name of a status.
pub fn effect_status_name(status: EffectStatus) -> &'static str {
    match status {
        EffectStatus::Pending => "pending",
        EffectStatus::InFlight => "in_flight",
        EffectStatus::Retrying => "retrying",
        EffectStatus::Unknown => "unknown",
        EffectStatus::Succeeded => "succeeded",
        EffectStatus::DeadLettered => "dead_lettered",
        EffectStatus::NotConfigured => "not_configured",
    }
}

fn parse_status(value: &str) -> Result<EffectStatus, QueryError> {
    Ok(match value {
        "pending" => EffectStatus::Pending,
        "in_flight" => EffectStatus::InFlight,
        "retrying" => EffectStatus::Retrying,
        "unknown" => EffectStatus::Unknown,
        "succeeded" => EffectStatus::Succeeded,
        "dead_lettered" => EffectStatus::DeadLettered,
        "not_configured" => EffectStatus::NotConfigured,
        other => {
            return Err(QueryError::StoredValue {
                column: "status",
                value: other.to_owned(),
            })
        }
    })
}

impl Projection for SagaEffects {
    read_model_identity!();

    fn indexes(&self, _dialect: Dialect) -> Vec<String> {
        // A small model: its indexes are made with its tables (`schema`), also for a rebuild.
        Vec::new()
    }

    fn schema(&self, dialect: Dialect) -> Vec<String> {
        let table = self.table();
        let c = byte_order(dialect);
        vec![
            format!(
                "CREATE TABLE IF NOT EXISTS {table} (\
                 effect_key TEXT{c} PRIMARY KEY, \
                 saga TEXT NOT NULL, \
                 step TEXT NOT NULL, \
                 system TEXT NOT NULL, \
                 tenant_id TEXT, \
                 trigger_position BIGINT NOT NULL, \
                 status TEXT NOT NULL, \
                 attempts BIGINT NOT NULL, \
                 attempt_budget BIGINT NOT NULL, \
                 retry_at TEXT, \
                 last_error TEXT, \
                 updated_at TEXT NOT NULL, \
                 subject TEXT NOT NULL DEFAULT '')"
            ),
            format!("CREATE INDEX IF NOT EXISTS {table}_by_status ON {table} (status, effect_key)"),
            format!(
                "CREATE INDEX IF NOT EXISTS {table}_by_subject ON {table} (subject, trigger_position)"
            ),
        ]
    }

    fn tables(&self) -> Vec<String> {
        vec![self.table()]
    }

    async fn apply(
        &self,
        tx: &mut ReadTx<'_>,
        events: &[EventRecord],
    ) -> Result<(), ProjectionError> {
        let table = self.table();
        for event in events
            .iter()
            .filter(|e| e.aggregate_type == EFFECT_AGGREGATE_TYPE)
        {
            let key = Arg::Text(event.aggregate_id.clone());
            let at = Arg::Text(event.recorded_at.clone());
            let status = |s: EffectStatus| Arg::Text(effect_status_name(s).to_owned());
            let (sql, args): (String, Vec<Arg>) = match decode::<EffectEvent>(event)? {
                EffectEvent::EffectIntended { intent, .. } => {
                    let subject = subject_of(&intent.system, &intent.request);
                    (
                        format!(
                            "INSERT INTO {table} (effect_key, saga, step, system, tenant_id, \
                         trigger_position, status, attempts, attempt_budget, retry_at, \
                         last_error, updated_at, subject) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, NULL, NULL, $9, $10) \
                         ON CONFLICT (effect_key) DO NOTHING"
                        ),
                        vec![
                            key,
                            Arg::Text(intent.saga),
                            Arg::Text(intent.step),
                            Arg::Text(intent.system),
                            Arg::NullableText(intent.tenant_id),
                            Arg::Int(i64::try_from(intent.trigger_position).unwrap_or(i64::MAX)),
                            status(EffectStatus::Pending),
                            Arg::Int(i64::from(intent.max_attempts)),
                            at,
                            Arg::Text(subject),
                        ],
                    )
                }
                EffectEvent::EffectAttempted { attempt, .. } => (
                    format!(
                        "UPDATE {table} SET status = $2, attempts = $3, retry_at = NULL, \
                         updated_at = $4 WHERE effect_key = $1"
                    ),
                    vec![
                        key,
                        status(EffectStatus::InFlight),
                        Arg::Int(i64::from(attempt)),
                        at,
                    ],
                ),
                EffectEvent::EffectSucceeded { .. } => (
                    format!(
                        "UPDATE {table} SET status = $2, updated_at = $3 WHERE effect_key = $1"
                    ),
                    vec![key, status(EffectStatus::Succeeded), at],
                ),
                EffectEvent::EffectFailed {
                    error, retry_at, ..
                } => (
                    format!(
                        "UPDATE {table} SET status = $2, last_error = $3, retry_at = $4, \
                         updated_at = $5 WHERE effect_key = $1"
                    ),
                    vec![
                        key,
                        status(EffectStatus::Retrying),
                        Arg::NullableText(Some(error)),
                        Arg::NullableText(retry_at),
                        at,
                    ],
                ),
                EffectEvent::EffectOutcomeUnknown { reason, .. } => (
                    format!(
                        "UPDATE {table} SET status = $2, last_error = $3, updated_at = $4 \
                         WHERE effect_key = $1"
                    ),
                    vec![
                        key,
                        status(EffectStatus::Unknown),
                        Arg::NullableText(Some(reason)),
                        at,
                    ],
                ),
                EffectEvent::EffectReconciled {
                    applied, retry_at, ..
                } => (
                    format!(
                        "UPDATE {table} SET status = $2, retry_at = $3, updated_at = $4 \
                         WHERE effect_key = $1"
                    ),
                    vec![
                        key,
                        status(if applied {
                            EffectStatus::Succeeded
                        } else {
                            EffectStatus::Retrying
                        }),
                        Arg::NullableText(retry_at),
                        at,
                    ],
                ),
                EffectEvent::EffectDeadLettered { error, .. } => (
                    format!(
                        "UPDATE {table} SET status = $2, last_error = $3, retry_at = NULL, \
                         updated_at = $4 WHERE effect_key = $1"
                    ),
                    vec![
                        key,
                        status(EffectStatus::DeadLettered),
                        Arg::NullableText(Some(error)),
                        at,
                    ],
                ),
                EffectEvent::EffectNotConfigured { system, .. } => (
                    format!(
                        "UPDATE {table} SET status = $2, last_error = $3, updated_at = $4 \
                         WHERE effect_key = $1"
                    ),
                    vec![
                        key,
                        status(EffectStatus::NotConfigured),
                        Arg::NullableText(Some(format!("{system} is not configured"))),
                        at,
                    ],
                ),
                EffectEvent::EffectRetryRequested { attempt_budget, .. } => (
                    format!(
                        "UPDATE {table} SET status = $2, attempt_budget = $3, retry_at = NULL, \
                         updated_at = $4 WHERE effect_key = $1"
                    ),
                    vec![
                        key,
                        status(EffectStatus::Retrying),
                        Arg::Int(i64::from(attempt_budget)),
                        at,
                    ],
                ),
            };
            execute(tx, &sql, &args).await?;
        }
        Ok(())
    }
}

/// One effect as the read model holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EffectRow {
    /// The idempotency key (the aggregate id).
    pub key: String,
    /// The saga.
    pub saga: String,
    /// The step.
    pub step: String,
    /// The external system.
    pub system: String,
    /// The tenant, if any.
    pub tenant_id: Option<String>,
    /// The triggering event's position.
    pub trigger_position: u64,
    /// Where it is.
    pub status: EffectStatus,
    /// Attempts made.
    pub attempts: u32,
    /// Attempts allowed.
    pub attempt_budget: u32,
    /// When the next attempt is due.
    pub retry_at: Option<String>,
    /// The last error.
    pub last_error: Option<String>,
    /// When it last changed.
    pub updated_at: String,
}

#[derive(sqlx::FromRow)]
struct EffectRecord {
    effect_key: String,
    saga: String,
    step: String,
    system: String,
    tenant_id: Option<String>,
    trigger_position: i64,
    status: String,
    attempts: i64,
    attempt_budget: i64,
    retry_at: Option<String>,
    last_error: Option<String>,
    updated_at: String,
}

impl EffectRecord {
    fn into_row(self) -> Result<EffectRow, QueryError> {
        Ok(EffectRow {
            status: parse_status(&self.status)?,
            key: self.effect_key,
            saga: self.saga,
            step: self.step,
            system: self.system,
            tenant_id: self.tenant_id,
            trigger_position: u64::try_from(self.trigger_position).unwrap_or(0),
            attempts: u32::try_from(self.attempts).unwrap_or(u32::MAX),
            attempt_budget: u32::try_from(self.attempt_budget).unwrap_or(u32::MAX),
            retry_at: self.retry_at,
            last_error: self.last_error,
            updated_at: self.updated_at,
        })
    }
}

const COLUMNS: &str = "effect_key, saga, step, system, tenant_id, trigger_position, status, \
                       attempts, attempt_budget, retry_at, last_error, updated_at";
const CURSOR_SORT: &str = "effect_key";

/// Which effects to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EffectFilter {
    /// Only these statuses (all when empty).
    pub statuses: Vec<EffectStatus>,
    /// Only this saga.
    pub saga: Option<String>,
    /// Only this tenant's.
    pub tenant_id: Option<String>,
}

/// A page of effects by key.
pub async fn list_effects(
    db: &Db,
    filter: &EffectFilter,
    page: &PageRequest,
) -> Result<Page<EffectRow>, QueryError> {
    let size = page.checked_size()?;
    let build =
        crate::builds::live_build(db, SagaEffects::NAME, crate::builds::FIRST_BUILD).await?;
    let table = table_of(build);
    let mut where_sql = Sql::new(String::new());
    let mut clauses = Vec::new();
    if !filter.statuses.is_empty() {
        let list: Vec<String> = filter
            .statuses
            .iter()
            .map(|s| where_sql.arg(Arg::Text(effect_status_name(*s).to_owned())))
            .collect();
        clauses.push(format!("status IN ({})", list.join(", ")));
    }
    if let Some(saga) = &filter.saga {
        clauses.push(format!("saga = {}", where_sql.arg(Arg::Text(saga.clone()))));
    }
    if let Some(tenant) = &filter.tenant_id {
        clauses.push(format!(
            "tenant_id = {}",
            where_sql.arg(Arg::Text(tenant.clone()))
        ));
    }
    let filtered = if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    };
    let mut count = Sql::new(format!("SELECT COUNT(*) FROM {table}{filtered}"));
    count.args = where_sql.args.clone();
    let total_count = fetch_count(db, &count).await?;
    let mut sql = Sql::new(format!("SELECT {COLUMNS} FROM {table}{filtered}"));
    sql.args = where_sql.args;
    if let Some(cursor) = &page.after {
        let (_, after) = decode_cursor(cursor, CURSOR_SORT)?;
        let p = sql.arg(Arg::Text(after));
        let joiner = if clauses.is_empty() { " WHERE" } else { " AND" };
        sql.push(&format!("{joiner} effect_key > {p}"));
    }
    sql.push(&format!(" ORDER BY effect_key LIMIT {}", size + 1));
    let records: Vec<EffectRecord> = fetch_all(db, &sql).await?;
    let mut items = records
        .into_iter()
        .map(EffectRecord::into_row)
        .collect::<Result<Vec<_>, _>>()?;
    let has_next_page = items.len() > size as usize;
    items.truncate(size as usize);
    let end_cursor = items
        .last()
        .map(|row| encode_cursor(CURSOR_SORT, Value::Null, &row.key));
    Ok(Page {
        items,
        end_cursor,
        has_next_page,
        total_count,
    })
}

/// Keys of effects the worker may need to drive at `now` (RFC 3339, as the ledger writes
/// times): pending, unknown and in-flight ones, and retrying ones whose time has come — except
/// an effect whose subject has an older effect still in progress (waiting for its retry, or
/// with its outcome unknown), which waits for it. An older effect that gave up (dead-lettered,
/// not configured) does not hold the subject: the newer change, which carries the whole
/// intended state, goes ahead, and the old one runs only if an operator asks. Oldest trigger first, so a backlog drains in the
/// order it was caused.
pub async fn due_effects(db: &Db, now: &str, limit: usize) -> Result<Vec<String>, QueryError> {
    let build =
        crate::builds::live_build(db, SagaEffects::NAME, crate::builds::FIRST_BUILD).await?;
    let table = table_of(build);
    let mut sql = Sql::new(format!(
        "SELECT e.effect_key FROM {table} e WHERE (e.status IN ('pending', 'unknown', \
         'in_flight') OR (e.status = 'retrying' AND (e.retry_at IS NULL OR e.retry_at <= "
    ));
    let p = sql.arg(Arg::Text(now.to_owned()));
    // A retry without a time (an operator's) is due at once.
    sql.push(&format!(
        "{p}))) AND NOT EXISTS (SELECT 1 FROM {table} o WHERE e.subject <> '' \
         AND o.subject = e.subject AND o.trigger_position < e.trigger_position \
         AND o.status IN ('pending', 'in_flight', 'retrying', 'unknown')) \
         ORDER BY e.trigger_position, e.effect_key LIMIT {}",
        limit.min(10_000)
    ));
    #[derive(sqlx::FromRow)]
    struct Key {
        effect_key: String,
    }
    let keys: Vec<Key> = fetch_all(db, &sql).await?;
    Ok(keys.into_iter().map(|k| k.effect_key).collect())
}

/// The lease name of the saga worker (one per deployment).
pub const SAGA_WORKER_LEASE: &str = "saga_worker";

/// The effect worker's queue: due effects from this read model, and the worker lease.
#[derive(Debug, Clone)]
pub struct EffectsQueue {
    db: Db,
}

impl EffectsQueue {
    /// A queue over `db`.
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

impl dezky_commands::saga::worker::EffectQueue for EffectsQueue {
    async fn due(&self, now: &str, limit: usize) -> Result<Vec<String>, String> {
        due_effects(&self.db, now, limit)
            .await
            .map_err(|e| e.to_string())
    }

    async fn hold_lease(&self, holder: &str) -> Result<bool, String> {
        dezky_commands::lease::acquire(&self.db, SAGA_WORKER_LEASE, holder)
            .await
            .map_err(|e| e.to_string())
    }

    async fn release_lease(&self, holder: &str) {
        if let Err(error) =
            dezky_commands::lease::release(&self.db, SAGA_WORKER_LEASE, holder).await
        {
            tracing::warn!(%error, "releasing the saga worker lease");
        }
    }
}

/// One effect by its key.
pub async fn effect(db: &Db, key: &str) -> Result<Option<EffectRow>, QueryError> {
    let build =
        crate::builds::live_build(db, SagaEffects::NAME, crate::builds::FIRST_BUILD).await?;
    let table = table_of(build);
    let mut sql = Sql::new(format!("SELECT {COLUMNS} FROM {table} WHERE effect_key = "));
    let p = sql.arg(Arg::Text(key.to_owned()));
    sql.push(&p);
    let records: Vec<EffectRecord> = fetch_all(db, &sql).await?;
    records
        .into_iter()
        .next()
        .map(EffectRecord::into_row)
        .transpose()
}
