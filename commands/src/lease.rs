//! Leases: background work that must run in one process at a time (a projection's host, the
//! saga worker, the booking processor, the domain rechecks) holds a named lease in the
//! `projection_leases` table, renews it while it works and gives it up on shutdown. A holder
//! that dies lets its lease expire after [`LEASE_TTL_MS`], and another instance takes over.
//!
//! Every job run under a lease must be safe to repeat: a tick cut short because the lease was
//! lost is abandoned mid-way, which is a crash as far as the job knows, and the next holder
//! finishes what is left.

use std::future::Future;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::store::Db;

/// How long a lease lasts without renewal.
pub const LEASE_TTL_MS: u64 = 10_000;
/// How often a holder renews its lease (a third of its lifetime, so one missed renewal does
/// not lose it).
pub const LEASE_RENEW_MS: u64 = 3_000;

fn unix_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Takes or renews the lease on `name` for `holder`; true when `holder` holds it afterwards.
/// A lease is free when nobody holds it or its holder let it expire.
pub async fn acquire(db: &Db, name: &str, holder: &str) -> Result<bool, sqlx::Error> {
    let now = unix_ms();
    let expires = now.saturating_add(i64::try_from(LEASE_TTL_MS).unwrap_or(i64::MAX));
    let sql = "INSERT INTO projection_leases (name, holder, expires_at) VALUES ($1, $2, $3) \
               ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, \
               expires_at = excluded.expires_at \
               WHERE projection_leases.holder = excluded.holder \
                  OR projection_leases.expires_at < $4";
    let done = match db {
        Db::Sqlite(pool) => sqlx::query(sql)
            .bind(name)
            .bind(holder)
            .bind(expires)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected(),
        Db::Postgres(pool) => sqlx::query(sql)
            .bind(name)
            .bind(holder)
            .bind(expires)
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected(),
    };
    Ok(done == 1)
}

/// Gives the lease up (on shutdown), so another instance takes over at once.
pub async fn release(db: &Db, name: &str, holder: &str) -> Result<(), sqlx::Error> {
    let sql = "DELETE FROM projection_leases WHERE name = $1 AND holder = $2";
    match db {
        Db::Sqlite(pool) => {
            sqlx::query(sql)
                .bind(name)
                .bind(holder)
                .execute(pool)
                .await?;
        }
        Db::Postgres(pool) => {
            sqlx::query(sql)
                .bind(name)
                .bind(holder)
                .execute(pool)
                .await?;
        }
    }
    Ok(())
}

/// Runs `tick` at most every `every` for as long as `shutdown` stays false, in whichever
/// process holds the lease `name`: `holder` takes the lease before each tick, renews it every
/// [`LEASE_RENEW_MS`] while the tick runs (abandoning the tick if the lease is lost) and
/// releases it on shutdown. Instances without the lease keep trying, so one takes over within
/// [`LEASE_TTL_MS`] of a holder's death.
pub async fn run_exclusively<F, Fut>(
    db: Db,
    name: &'static str,
    holder: String,
    every: Duration,
    mut shutdown: watch::Receiver<bool>,
    mut tick: F,
) where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    let mut last_tick: Option<Instant> = None;
    loop {
        if *shutdown.borrow() {
            break;
        }
        match acquire(&db, name, &holder).await {
            Ok(true) if last_tick.is_none_or(|t| t.elapsed() >= every) => {
                last_tick = Some(Instant::now());
                let renew = async {
                    loop {
                        tokio::time::sleep(Duration::from_millis(LEASE_RENEW_MS)).await;
                        match acquire(&db, name, &holder).await {
                            Ok(true) => {}
                            Ok(false) => return,
                            Err(error) => {
                                tracing::warn!(%error, lease = name, "renewing a lease");
                                return;
                            }
                        }
                    }
                };
                tokio::select! {
                    () = tick() => {}
                    () = renew => tracing::warn!(lease = name, "lease lost during a tick"),
                    _ = shutdown.changed() => break,
                }
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, lease = name, "taking a lease"),
        }
        tokio::select! {
            _ = shutdown.changed() => {}
            () = tokio::time::sleep(Duration::from_millis(LEASE_RENEW_MS).min(every)) => {}
        }
    }
    if let Err(error) = release(&db, name, &holder).await {
        tracing::warn!(%error, lease = name, "releasing a lease");
    }
}
