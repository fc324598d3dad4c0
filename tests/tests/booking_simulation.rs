//! A seeded simulation of the booking flow: random book / confirm / cancel / reschedule /
//! operator-retry / processor interleavings, run concurrently, while the host changes its slot
//! length (so bookings of different grids, with different locks, overlap), with injected calendar faults
//! (refusals, lost answers, outages) and crashes (an operation aborted mid-way, then the
//! ledger reopened and the flow rebuilt), through the real code on a real ledger. After every
//! step: no two confirmed bookings overlap, and every confirmed booking has its calendar
//! event. At the end, with the calendar healthy, the processor settles everything: no booking
//! is left pending, every held lock belongs to its live booking, and the calendar holds
//! exactly the confirmed bookings' events.
//!
//! A failure prints its seed; `DEZKY_BOOKING_SIM_SEED=<seed>` replays just that one, and
//! `DEZKY_BOOKING_SIM_SEEDS=<n>` runs more seeds.

mod booking_common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use booking_common::{availability, flow, later, now, slot_start, CALENDAR, HOST, TENANT};
use chrono::{DateTime, Duration, Utc};
use cqrs_es::Aggregate;
use dezky_commands::booking::processor::BookingProcessor;
use dezky_commands::booking::{
    load, BookRequest, BookingFlow, BookingFlowError, BookingSettings, Issuer,
};
use dezky_commands::Ledger;
use dezky_domain::booking::{
    Attendee, Booking, BookingEvent, BookingStatus, Party, SlotLock, BOOKING_AGGREGATE_TYPE,
};
use dezky_tests::calendar_fake::{FakeCalendar, Fault};
use dezky_tests::{Backend, TestDb};

/// Seeds run by default.
const DEFAULT_SEEDS: u64 = 12;
/// Steps per seed.
const STEPS: usize = 60;
/// Grid slots the bookings fight over.
const SLOTS: i64 = 5;
/// The slot lengths the host switches between (minutes): none divides into another's grid
/// evenly, so a change makes slots that overlap old bookings under other locks.
const GRIDS: [u32; 3] = [30, 45, 20];

/// SplitMix64: small, seedable, and the same on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// The `k`-th slot of the grid of `minutes`-long slots.
fn slot(minutes: u32, k: i64) -> DateTime<Utc> {
    slot_start() + Duration::minutes(i64::from(minutes) * k)
}

#[derive(Debug, Clone)]
enum Op {
    Book(String, DateTime<Utc>),
    Confirm(String),
    Cancel(String, Party),
    Reschedule(String, DateTime<Utc>),
    /// The host publishes slots of this many minutes.
    Republish(u32),
    Retry(String),
    Tick,
}

struct World {
    db: TestDb,
    ledger: Ledger,
    calendar: Arc<FakeCalendar>,
    flow: Arc<BookingFlow<FakeCalendar>>,
    settings: BookingSettings,
    now: DateTime<Utc>,
    bookings: Vec<String>,
    /// The slot length of the grid the next operations pick their slots from.
    grid: u32,
}

/// The errors an operation may meet in a correct run; anything else is a failure.
fn expected(error: &BookingFlowError) -> bool {
    !matches!(error, BookingFlowError::Ledger(_))
}

async fn run_op(
    flow: Arc<BookingFlow<FakeCalendar>>,
    op: Op,
    at: DateTime<Utc>,
) -> Result<(), String> {
    let public = Issuer::public(None);
    let outcome = match op.clone() {
        Op::Book(id, start) => {
            flow.book(
                BookRequest {
                    booking_id: id.clone(),
                    host_id: booking_common::HOST.into(),
                    start,
                    attendee: Attendee {
                        name: format!("Person {id}"),
                        email: format!("{id}@example.eu"),
                    },
                },
                &public,
                at,
            )
            .await
        }
        Op::Confirm(id) => flow.confirm(&id, &public, at).await,
        Op::Cancel(id, by) => flow.cancel(&id, by, &public, at).await,
        Op::Reschedule(id, start) => {
            flow.reschedule(&id, start, Party::Attendee, &public, at)
                .await
        }
        Op::Republish(minutes) => {
            let mut published = availability();
            published.slot_minutes = minutes;
            flow.publish_availability(HOST, TENANT, published, &Issuer::processor(), at)
                .await
        }
        Op::Retry(id) => flow
            .operator_retry(&id, &Issuer::processor(), at)
            .await
            .map(|_| ()),
        Op::Tick => BookingProcessor::new(flow.clone())
            .tick(at)
            .await
            .map(|report| assert_eq!(report.errors, 0, "{report:?}")),
    };
    match outcome {
        Ok(()) => Ok(()),
        Err(e) if expected(&e) => Ok(()),
        Err(e) => Err(format!("{op:?}: {e:?}")),
    }
}

/// Every booking folded from the ledger.
async fn bookings(ledger: &Ledger) -> BTreeMap<String, Booking> {
    let mut all: BTreeMap<String, Booking> = BTreeMap::new();
    for record in ledger
        .events_of_type(BOOKING_AGGREGATE_TYPE)
        .await
        .expect("booking events")
    {
        let event: BookingEvent = serde_json::from_str(&record.payload).expect("payload");
        all.entry(record.aggregate_id).or_default().apply(event);
    }
    all
}

/// One aggregate's stored events, one per line, for a failure message.
async fn history(ledger: &Ledger, aggregate_type: &str, id: &str) -> String {
    let mut text = String::new();
    for r in ledger
        .aggregate_events(aggregate_type, id, 0)
        .await
        .unwrap_or_default()
    {
        text.push_str(&format!("\n  {id} #{}: {}", r.position, r.payload));
    }
    text
}

async fn check_safety(world: &World) -> Result<(), String> {
    let all = bookings(&world.ledger).await;
    let confirmed: Vec<_> = all
        .iter()
        .filter(|(_, b)| b.status == Some(BookingStatus::Confirmed))
        .collect();
    for (i, (a_id, a)) in confirmed.iter().enumerate() {
        for (b_id, b) in &confirmed[i + 1..] {
            let (Some(sa), Some(sb)) = (a.slot, b.slot) else {
                return Err(format!("{a_id} or {b_id} has no slot"));
            };
            if sa.overlaps(&sb) {
                let mut text = format!("{a_id} and {b_id} are both confirmed on {sa:?}/{sb:?}");
                for id in [a_id.as_str(), b_id.as_str()] {
                    text.push_str(&history(&world.ledger, BOOKING_AGGREGATE_TYPE, id).await);
                }
                for lock in [&a.lock_key, &b.lock_key] {
                    text.push_str(&history(&world.ledger, "slot_lock", lock).await);
                }
                return Err(text);
            }
        }
    }
    let written: BTreeSet<String> = world
        .calendar
        .events(CALENDAR)
        .into_iter()
        .map(|e| e.uid)
        .collect();
    for (id, _) in &confirmed {
        if !written.contains(*id) {
            return Err(format!("{id} is confirmed without its calendar event"));
        }
    }
    Ok(())
}

impl World {
    async fn restart(&mut self) {
        self.ledger.close().await;
        self.ledger = self.db.open().await.expect("ledger reopens");
        self.flow = Arc::new(BookingFlow::new(
            self.ledger.clone(),
            self.calendar.clone(),
            self.settings,
        ));
    }

    fn pick(&self, rng: &mut Rng) -> String {
        if self.bookings.is_empty() {
            return "sim-none".into();
        }
        let i = usize::try_from(rng.below(self.bookings.len() as u64)).unwrap_or(0);
        self.bookings[i].clone()
    }

    fn op(&mut self, rng: &mut Rng) -> Op {
        let k = i64::try_from(rng.below(SLOTS as u64)).unwrap_or(0);
        match rng.below(13) {
            0..=3 => {
                let id = format!("sim-{}", self.bookings.len());
                self.bookings.push(id.clone());
                Op::Book(id, slot(self.grid, k))
            }
            4..=5 => Op::Confirm(self.pick(rng)),
            6 => Op::Cancel(
                self.pick(rng),
                if rng.chance(50) {
                    Party::Attendee
                } else {
                    Party::Host
                },
            ),
            7 => Op::Reschedule(self.pick(rng), slot(self.grid, k)),
            8 => Op::Retry(self.pick(rng)),
            9 => {
                // Operations already picked keep the old grid's slots: they race the change.
                self.grid = GRIDS[usize::try_from(rng.below(GRIDS.len() as u64)).unwrap_or(0)];
                Op::Republish(self.grid)
            }
            _ => Op::Tick,
        }
    }
}

async fn simulate(seed: u64) -> Result<(), String> {
    let mut rng = Rng(seed);
    let db = TestDb::create(Backend::Sqlite)
        .await
        .map_err(|e| e.to_string())?;
    let ledger = db.open().await.map_err(|e| e.to_string())?;
    let calendar = Arc::new(FakeCalendar::new());
    let settings = BookingSettings {
        retry_interval_ms: 2 * 60 * 1_000,
        max_attempts: 3,
    };
    let flow = flow(&ledger, calendar.clone(), settings).await;
    let mut world = World {
        db,
        ledger,
        calendar,
        flow,
        settings,
        now: now(),
        bookings: Vec::new(),
        grid: GRIDS[0],
    };

    for step in 0..STEPS {
        // Faults first: they hit whichever calls come next.
        if rng.chance(25) {
            let faults: Vec<_> = (0..=rng.below(3))
                .map(|_| {
                    if rng.chance(50) {
                        Fault::Unavailable
                    } else {
                        Fault::LostAnswer
                    }
                })
                .collect();
            world.calendar.inject(faults);
        }
        if rng.chance(10) {
            world.calendar.set_down(rng.chance(50));
        }
        if rng.chance(20) {
            world.now = later(world.now, settings);
        }

        if rng.chance(8) {
            // A crash: one operation cut off at a random await point, then a restart.
            let op = world.op(&mut rng);
            let task = tokio::spawn(run_op(world.flow.clone(), op, world.now));
            for _ in 0..rng.below(40) {
                tokio::task::yield_now().await;
            }
            task.abort();
            let _ = task.await;
            world.restart().await;
        } else {
            let batch: Vec<Op> = (0..=rng.below(3)).map(|_| world.op(&mut rng)).collect();
            let tasks: Vec<_> = batch
                .into_iter()
                .map(|op| tokio::spawn(run_op(world.flow.clone(), op, world.now)))
                .collect();
            for task in tasks {
                task.await.map_err(|e| format!("step {step}: task {e}"))??;
            }
        }
        check_safety(&world)
            .await
            .map_err(|e| format!("step {step}: {e}"))?;
    }

    // Settle: the calendar is healthy again and the processor runs until nothing is due.
    world.calendar.heal();
    let processor = BookingProcessor::new(world.flow.clone());
    for _ in 0..(settings.max_attempts + 3) {
        world.now = later(world.now, settings);
        processor
            .tick(world.now)
            .await
            .map_err(|e| format!("settling: {e:?}"))?;
    }
    check_safety(&world)
        .await
        .map_err(|e| format!("settled: {e}"))?;

    let all = bookings(&world.ledger).await;
    let mut confirmed = BTreeSet::new();
    for (id, b) in &all {
        match b.status {
            Some(BookingStatus::Pending) => return Err(format!("{id} is still pending")),
            Some(BookingStatus::Confirmed) => {
                confirmed.insert(id.clone());
                if b.held_locks != vec![b.lock_key.clone()] {
                    return Err(format!("{id} holds {:?}", b.held_locks));
                }
            }
            _ if !b.held_locks.is_empty() => {
                return Err(format!(
                    "{id} ({:?}) still holds {:?}",
                    b.status, b.held_locks
                ))
            }
            _ => {}
        }
        if b.calendar_out_of_sync {
            let history: Vec<_> = world
                .ledger
                .aggregate_events(BOOKING_AGGREGATE_TYPE, id, 0)
                .await
                .map_err(|e| e.to_string())?
                .into_iter()
                .map(|r| r.payload)
                .collect();
            return Err(format!(
                "{id}'s calendar event is still out of date: {history:#?}"
            ));
        }
    }
    // Every lock that is held is held by a confirmed booking whose current slot it is.
    let keys: BTreeSet<String> = world
        .ledger
        .events_of_type("slot_lock")
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .map(|r| r.aggregate_id)
        .collect();
    for key in keys {
        let (lock, _) = load::<SlotLock>(&world.ledger, &key)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(holder) = lock.holder {
            let ok = all
                .get(&holder)
                .is_some_and(|b| b.status == Some(BookingStatus::Confirmed) && b.lock_key == key);
            if !ok {
                return Err(format!(
                    "{key} is held by {holder}, which does not own it{}{}",
                    history(&world.ledger, BOOKING_AGGREGATE_TYPE, &holder).await,
                    history(&world.ledger, "slot_lock", &key).await
                ));
            }
        }
    }
    let written: BTreeSet<String> = world
        .calendar
        .events(CALENDAR)
        .into_iter()
        .map(|e| e.uid)
        .collect();
    if written != confirmed {
        let mut histories = String::new();
        for id in written.symmetric_difference(&confirmed) {
            for r in world
                .ledger
                .aggregate_events(BOOKING_AGGREGATE_TYPE, id, 0)
                .await
                .map_err(|e| e.to_string())?
            {
                histories.push_str(&format!("\n  {id}: {}", r.payload));
            }
        }
        return Err(format!(
            "calendar holds {written:?}, confirmed bookings are {confirmed:?}{histories}"
        ));
    }
    for event in world.calendar.events(CALENDAR) {
        let slot = all.get(&event.uid).and_then(|b| b.slot);
        if slot.map(|s| (s.start, s.end)) != Some((event.start, event.end)) {
            return Err(format!("{}'s event is at the wrong time", event.uid));
        }
    }
    world.ledger.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_booking_interleavings_with_calendar_faults_and_crashes_never_double_book() {
    let seeds: Vec<u64> = match std::env::var("DEZKY_BOOKING_SIM_SEED") {
        Ok(seed) => vec![seed.parse().expect("DEZKY_BOOKING_SIM_SEED is a number")],
        Err(_) => {
            let n = std::env::var("DEZKY_BOOKING_SIM_SEEDS")
                .ok()
                .and_then(|n| n.parse().ok())
                .unwrap_or(DEFAULT_SEEDS);
            (1..=n).collect()
        }
    };
    for seed in seeds {
        if let Err(failure) = simulate(seed).await {
            panic!("booking simulation failed with seed {seed} (replay: DEZKY_BOOKING_SIM_SEED={seed}): {failure}");
        }
    }
}
