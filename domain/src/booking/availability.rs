//! A host's published availability and the slot grid it generates: pure functions of the
//! rules, a time window and "now" (which the caller passes; the domain has no clock).
//!
//! Slots are generated per local working-hours window: the window's local start and end are
//! resolved to UTC instants in the host's time zone, and slots are laid in **absolute** time
//! from the start, `slot_minutes` long and `slot_minutes + buffer_minutes` apart, while they end
//! inside the window. Stepping in UTC rather than in local wall-clock time is what keeps a slot
//! exactly `slot_minutes` long on a DST transition day and keeps two slots of one window from
//! ever overlapping; windows of one weekday are validated not to overlap, so the whole grid of
//! one availability is overlap-free (see `no_two_slots_of_a_grid_overlap`).
//!
//! Local times that do not exist (the spring-forward gap) resolve to the first instant after
//! the gap; local times that exist twice (the fall-back hour) resolve to the earlier instant
//! for a window's start and the later one for its end, so a window never loses time it was
//! published with.

use chrono::{DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// Minutes in a day: the latest a working-hours window can end (midnight of the next day).
pub const MINUTES_PER_DAY: u16 = 24 * 60;
/// The shortest slot a host can publish.
pub const MIN_SLOT_MINUTES: u32 = 5;
/// The longest slot a host can publish (one working day).
pub const MAX_SLOT_MINUTES: u32 = 8 * 60;
/// The longest buffer between two meetings.
pub const MAX_BUFFER_MINUTES: u32 = 4 * 60;
/// The furthest ahead a host can be booked.
pub const MAX_HORIZON_DAYS: u32 = 366;
/// The most working-hours windows per week.
pub const MAX_WINDOWS: usize = 7 * 8;
/// The widest range one free-slot question may span, so an answer stays small.
pub const MAX_QUERY_DAYS: i64 = 62;

/// A day of the week, stored by its short English name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Weekday {
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

impl From<chrono::Weekday> for Weekday {
    fn from(day: chrono::Weekday) -> Self {
        match day {
            chrono::Weekday::Mon => Weekday::Mon,
            chrono::Weekday::Tue => Weekday::Tue,
            chrono::Weekday::Wed => Weekday::Wed,
            chrono::Weekday::Thu => Weekday::Thu,
            chrono::Weekday::Fri => Weekday::Fri,
            chrono::Weekday::Sat => Weekday::Sat,
            chrono::Weekday::Sun => Weekday::Sun,
        }
    }
}

/// One working-hours window on a weekday, in the host's local time, as minutes after local
/// midnight (`end_minute` may be [`MINUTES_PER_DAY`]: until midnight).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkingHours {
    /// The weekday.
    pub weekday: Weekday,
    /// Start, minutes after local midnight.
    pub start_minute: u16,
    /// End (exclusive), minutes after local midnight.
    pub end_minute: u16,
}

/// What a host publishes: when and how they can be booked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Availability {
    /// IANA time zone name of the working hours (`Europe/Berlin`).
    pub time_zone: String,
    /// Working-hours windows; windows of one weekday do not overlap.
    pub working_hours: Vec<WorkingHours>,
    /// Length of a meeting.
    pub slot_minutes: u32,
    /// Free time after each meeting before the next slot starts.
    pub buffer_minutes: u32,
    /// How far ahead slots can be booked, in days from now.
    pub horizon_days: u32,
    /// The host's calendar collection on the CalDAV server, relative to the configured base
    /// URL (`alice/bookings/`), where confirmed bookings are written.
    pub calendar: String,
}

/// Why an availability cannot be published.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AvailabilityError {
    /// Not an IANA time zone name.
    #[error("unknown time zone {0:?}")]
    UnknownTimeZone(String),
    /// Slot length outside the limits.
    #[error("a slot must last between {MIN_SLOT_MINUTES} and {MAX_SLOT_MINUTES} minutes")]
    SlotLength,
    /// Buffer outside the limits.
    #[error("the buffer must be at most {MAX_BUFFER_MINUTES} minutes")]
    Buffer,
    /// Horizon outside the limits.
    #[error("the booking horizon must be between 1 and {MAX_HORIZON_DAYS} days")]
    Horizon,
    /// A window whose end is not after its start, or past midnight.
    #[error("a working-hours window must start before it ends, within one day")]
    Window,
    /// Two windows of one weekday overlap.
    #[error("working-hours windows on {0:?} overlap")]
    OverlappingWindows(Weekday),
    /// More windows than [`MAX_WINDOWS`].
    #[error("at most {MAX_WINDOWS} working-hours windows")]
    TooManyWindows,
    /// No calendar collection to write bookings to.
    #[error("the calendar collection must be a relative path without '..'")]
    Calendar,
}

impl Availability {
    /// Checks every rule; the time zone is returned parsed.
    pub fn validate(&self) -> Result<Tz, AvailabilityError> {
        let tz = self.zone()?;
        if !(MIN_SLOT_MINUTES..=MAX_SLOT_MINUTES).contains(&self.slot_minutes) {
            return Err(AvailabilityError::SlotLength);
        }
        if self.buffer_minutes > MAX_BUFFER_MINUTES {
            return Err(AvailabilityError::Buffer);
        }
        if !(1..=MAX_HORIZON_DAYS).contains(&self.horizon_days) {
            return Err(AvailabilityError::Horizon);
        }
        if self.working_hours.len() > MAX_WINDOWS {
            return Err(AvailabilityError::TooManyWindows);
        }
        let calendar = self.calendar.trim();
        if calendar.is_empty()
            || calendar.starts_with('/')
            || calendar.contains("..")
            || calendar.contains("://")
        {
            return Err(AvailabilityError::Calendar);
        }
        let mut windows = self.working_hours.clone();
        windows.sort_by_key(|w| (w.weekday, w.start_minute));
        for window in &windows {
            if window.start_minute >= window.end_minute || window.end_minute > MINUTES_PER_DAY {
                return Err(AvailabilityError::Window);
            }
        }
        for pair in windows.windows(2) {
            if pair[0].weekday == pair[1].weekday && pair[1].start_minute < pair[0].end_minute {
                return Err(AvailabilityError::OverlappingWindows(pair[0].weekday));
            }
        }
        Ok(tz)
    }

    /// The time zone, parsed.
    pub fn zone(&self) -> Result<Tz, AvailabilityError> {
        self.time_zone
            .parse::<Tz>()
            .map_err(|_| AvailabilityError::UnknownTimeZone(self.time_zone.clone()))
    }

    fn step(&self) -> Duration {
        Duration::minutes(i64::from(self.slot_minutes) + i64::from(self.buffer_minutes))
    }

    fn length(&self) -> Duration {
        Duration::minutes(i64::from(self.slot_minutes))
    }

    /// The last instant a slot may start at, seen from `now`.
    pub fn horizon_end(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now + Duration::days(i64::from(self.horizon_days))
    }
}

/// One bookable time: `[start, end)` in UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Slot {
    /// Start (inclusive).
    pub start: DateTime<Utc>,
    /// End (exclusive).
    pub end: DateTime<Utc>,
}

impl Slot {
    /// Whether two slots share any instant.
    pub fn overlaps(&self, other: &Slot) -> bool {
        self.start < other.end && other.start < self.end
    }
}

/// Why a requested slot cannot be booked (before any lock is looked at).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlotError {
    /// The availability itself is invalid.
    #[error(transparent)]
    Availability(#[from] AvailabilityError),
    /// The start is not on the host's slot grid.
    #[error("no slot of this host starts at that time")]
    NotOnGrid,
    /// The slot starts in the past (or now).
    #[error("the slot has already begun")]
    InThePast,
    /// The slot starts beyond the booking horizon.
    #[error("the slot is beyond the booking horizon")]
    BeyondHorizon,
    /// The question spans more than [`MAX_QUERY_DAYS`] or ends before it starts.
    #[error("the range must end after it starts and span at most {MAX_QUERY_DAYS} days")]
    Range,
}

/// The slot lock's aggregate id for a host's slot starting at `start`: `{host}/{start UTC}`.
/// Second precision and a `Z` suffix, so one instant has exactly one key.
pub fn slot_lock_key(host_id: &str, start: DateTime<Utc>) -> String {
    format!("{host_id}/{}", start.format("%Y-%m-%dT%H:%M:%SZ"))
}

/// The UTC instant of local `date` + `minute` in `tz`; `latest` picks the later of two
/// instants in a fall-back overlap, and a local time inside a spring-forward gap resolves to
/// the first instant after it.
fn resolve(tz: Tz, date: NaiveDate, minute: u16, latest: bool) -> Option<DateTime<Utc>> {
    let local: NaiveDateTime = date.and_hms_opt(0, 0, 0)? + Duration::minutes(i64::from(minute));
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => Some(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(early, late) => {
            Some(if latest { late } else { early }.with_timezone(&Utc))
        }
        LocalResult::None => {
            // Walk forward to the end of the gap (gaps are at most a few hours anywhere).
            let mut probe = local;
            for _ in 0..(4 * 60) {
                probe += Duration::minutes(1);
                if let Some(t) = tz.from_local_datetime(&probe).earliest() {
                    return Some(t.with_timezone(&Utc));
                }
            }
            None
        }
    }
}

/// Every slot of the grid that starts in `[from, to)`, in order, ignoring "now", the horizon
/// and what is taken (see [`free_slots`] for the public answer).
pub fn grid_slots(
    availability: &Availability,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<Slot>, SlotError> {
    let tz = availability.validate()?;
    if to <= from || to - from > Duration::days(MAX_QUERY_DAYS) {
        return Err(SlotError::Range);
    }
    let length = availability.length();
    let step = availability.step();
    // Local dates whose windows could reach into [from, to): one day of margin either side
    // covers every offset from UTC.
    let first = from.with_timezone(&tz).date_naive() - Duration::days(1);
    let last = to.with_timezone(&tz).date_naive() + Duration::days(1);
    let mut slots = Vec::new();
    let mut date = first;
    while date <= last {
        let weekday = Weekday::from(date.weekday());
        let mut windows: Vec<_> = availability
            .working_hours
            .iter()
            .filter(|w| w.weekday == weekday)
            .collect();
        windows.sort_by_key(|w| w.start_minute);
        for window in windows {
            let (Some(start), Some(end)) = (
                resolve(tz, date, window.start_minute, false),
                resolve(tz, date, window.end_minute, true),
            ) else {
                continue;
            };
            let mut at = start;
            while at + length <= end {
                if at >= from && at < to {
                    slots.push(Slot {
                        start: at,
                        end: at + length,
                    });
                }
                at += step;
            }
        }
        date += Duration::days(1);
    }
    slots.sort();
    slots.dedup();
    Ok(slots)
}

/// The slots a member of the public may book in `[from, to)`: on the grid, starting after
/// `now` and within the horizon, and not among `taken` (slot starts held by a booking).
pub fn free_slots(
    availability: &Availability,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    now: DateTime<Utc>,
    taken: &[DateTime<Utc>],
) -> Result<Vec<Slot>, SlotError> {
    let horizon = availability.horizon_end(now);
    Ok(grid_slots(availability, from, to)?
        .into_iter()
        .filter(|slot| slot.start > now && slot.start <= horizon)
        .filter(|slot| !taken.contains(&slot.start))
        .collect())
}

/// The grid slot starting exactly at `start`, if it may be booked at `now`.
pub fn bookable_slot(
    availability: &Availability,
    start: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<Slot, SlotError> {
    if start <= now {
        return Err(SlotError::InThePast);
    }
    if start > availability.horizon_end(now) {
        return Err(SlotError::BeyondHorizon);
    }
    let around = grid_slots(
        availability,
        start - Duration::days(1),
        start + Duration::days(1),
    )?;
    around
        .into_iter()
        .find(|slot| slot.start == start)
        .ok_or(SlotError::NotOnGrid)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("test instant")
            .with_timezone(&Utc)
    }

    fn every_day(start: u16, end: u16) -> Vec<WorkingHours> {
        [
            Weekday::Mon,
            Weekday::Tue,
            Weekday::Wed,
            Weekday::Thu,
            Weekday::Fri,
            Weekday::Sat,
            Weekday::Sun,
        ]
        .into_iter()
        .map(|weekday| WorkingHours {
            weekday,
            start_minute: start,
            end_minute: end,
        })
        .collect()
    }

    fn availability(tz: &str, hours: Vec<WorkingHours>, slot: u32, buffer: u32) -> Availability {
        Availability {
            time_zone: tz.into(),
            working_hours: hours,
            slot_minutes: slot,
            buffer_minutes: buffer,
            horizon_days: 60,
            calendar: "host/bookings/".into(),
        }
    }

    #[test]
    fn berlin_working_hours_become_utc_slots_with_the_buffer_between_them() {
        // Monday 2026-11-30, Berlin is UTC+1 in winter.
        let a = availability(
            "Europe/Berlin",
            vec![WorkingHours {
                weekday: Weekday::Mon,
                start_minute: 9 * 60,
                end_minute: 11 * 60,
            }],
            30,
            15,
        );
        let slots = grid_slots(&a, utc("2026-11-30T00:00:00Z"), utc("2026-12-01T00:00:00Z"))
            .expect("valid");
        let starts: Vec<_> = slots.iter().map(|s| s.start).collect();
        assert_eq!(
            starts,
            vec![
                utc("2026-11-30T08:00:00Z"),
                utc("2026-11-30T08:45:00Z"),
                utc("2026-11-30T09:30:00Z"),
            ]
        );
        assert!(slots
            .iter()
            .all(|s| s.end - s.start == Duration::minutes(30)));
    }

    #[test]
    fn the_spring_forward_night_in_berlin_has_one_hour_less_of_slots() {
        // 2026-03-29 (last Sunday of March): 02:00 local jumps to 03:00.
        let a = availability("Europe/Berlin", every_day(0, 6 * 60), 60, 0);
        let slots = grid_slots(&a, utc("2026-03-28T22:00:00Z"), utc("2026-03-29T06:00:00Z"))
            .expect("valid");
        // Local 00:00 = 23:00Z (CET), local 06:00 = 04:00Z (CEST): five real hours.
        let starts: Vec<_> = slots.iter().map(|s| s.start).collect();
        assert_eq!(
            starts,
            vec![
                utc("2026-03-28T23:00:00Z"),
                utc("2026-03-29T00:00:00Z"),
                utc("2026-03-29T01:00:00Z"),
                utc("2026-03-29T02:00:00Z"),
                utc("2026-03-29T03:00:00Z"),
            ]
        );
        assert!(slots.iter().all(|s| s.end - s.start == Duration::hours(1)));
    }

    #[test]
    fn the_fall_back_night_in_berlin_has_one_hour_more_of_slots() {
        // 2026-10-25 (last Sunday of October): 03:00 local falls back to 02:00.
        let a = availability("Europe/Berlin", every_day(0, 6 * 60), 60, 0);
        let slots = grid_slots(&a, utc("2026-10-24T21:00:00Z"), utc("2026-10-25T06:00:00Z"))
            .expect("valid");
        // Local 00:00 = 22:00Z (CEST), local 06:00 = 05:00Z (CET): seven real hours.
        assert_eq!(slots.len(), 7);
        assert_eq!(slots[0].start, utc("2026-10-24T22:00:00Z"));
        assert_eq!(slots[6].end, utc("2026-10-25T05:00:00Z"));
        for pair in slots.windows(2) {
            assert_eq!(pair[1].start - pair[0].start, Duration::hours(1));
        }
    }

    #[test]
    fn a_window_starting_inside_the_spring_gap_starts_when_the_gap_ends() {
        let a = availability(
            "Europe/Berlin",
            vec![WorkingHours {
                weekday: Weekday::Sun,
                start_minute: 2 * 60 + 30,
                end_minute: 5 * 60,
            }],
            60,
            0,
        );
        let slots = grid_slots(&a, utc("2026-03-28T12:00:00Z"), utc("2026-03-29T12:00:00Z"))
            .expect("valid");
        // 02:30 does not exist: the window opens at 03:00 CEST = 01:00Z and closes at 03:00Z.
        let starts: Vec<_> = slots.iter().map(|s| s.start).collect();
        assert_eq!(
            starts,
            vec![utc("2026-03-29T01:00:00Z"), utc("2026-03-29T02:00:00Z")]
        );
    }

    #[test]
    fn a_window_ending_in_the_repeated_hour_keeps_all_of_its_time() {
        let a = availability(
            "Europe/Berlin",
            vec![WorkingHours {
                weekday: Weekday::Sun,
                start_minute: 60,
                end_minute: 2 * 60 + 30,
            }],
            30,
            0,
        );
        let slots = grid_slots(&a, utc("2026-10-24T12:00:00Z"), utc("2026-10-25T12:00:00Z"))
            .expect("valid");
        // 01:00 CEST = 23:00Z; 02:30 (second occurrence, CET) = 01:30Z: 2.5 real hours.
        assert_eq!(slots.len(), 5);
        assert_eq!(slots[0].start, utc("2026-10-24T23:00:00Z"));
        assert_eq!(slots[4].end, utc("2026-10-25T01:30:00Z"));
    }

    #[test]
    fn new_york_slots_follow_its_own_dst_dates_not_europes() {
        // The US moves on 2026-03-08, Europe on 2026-03-29. On Monday 2026-03-16 New York is
        // UTC-4 while Berlin is still UTC+1.
        let a = availability(
            "America/New_York",
            vec![WorkingHours {
                weekday: Weekday::Mon,
                start_minute: 9 * 60,
                end_minute: 10 * 60,
            }],
            60,
            0,
        );
        let slots = grid_slots(&a, utc("2026-03-16T00:00:00Z"), utc("2026-03-17T00:00:00Z"))
            .expect("valid");
        assert_eq!(slots.len(), 1);
        assert_eq!(slots[0].start, utc("2026-03-16T13:00:00Z"));
        let winter = grid_slots(&a, utc("2026-03-02T00:00:00Z"), utc("2026-03-03T00:00:00Z"))
            .expect("valid");
        assert_eq!(winter[0].start, utc("2026-03-02T14:00:00Z"));
    }

    #[test]
    fn a_zone_east_of_utc_books_slots_on_the_previous_utc_day() {
        // Tokyo (UTC+9, no DST): Monday 08:00 local is Sunday 23:00 UTC.
        let a = availability(
            "Asia/Tokyo",
            vec![WorkingHours {
                weekday: Weekday::Mon,
                start_minute: 8 * 60,
                end_minute: 9 * 60,
            }],
            30,
            0,
        );
        let slots = grid_slots(&a, utc("2026-11-29T00:00:00Z"), utc("2026-11-30T12:00:00Z"))
            .expect("valid");
        let starts: Vec<_> = slots.iter().map(|s| s.start).collect();
        assert_eq!(
            starts,
            vec![utc("2026-11-29T23:00:00Z"), utc("2026-11-29T23:30:00Z")]
        );
    }

    #[test]
    fn no_two_slots_of_a_grid_overlap() {
        for tz in [
            "Europe/Berlin",
            "America/New_York",
            "Australia/Lord_Howe",
            "Asia/Kolkata",
        ] {
            let a = availability(tz, every_day(0, MINUTES_PER_DAY), 50, 7);
            for (from, to) in [
                ("2026-03-01T00:00:00Z", "2026-04-15T00:00:00Z"),
                ("2026-09-20T00:00:00Z", "2026-11-10T00:00:00Z"),
            ] {
                let slots = grid_slots(&a, utc(from), utc(to)).expect("valid");
                assert!(!slots.is_empty());
                for pair in slots.windows(2) {
                    assert!(!pair[0].overlaps(&pair[1]), "{tz}: {pair:?}");
                }
            }
        }
    }

    #[test]
    fn free_slots_leave_out_the_past_the_taken_and_what_lies_beyond_the_horizon() {
        let mut a = availability("UTC", every_day(9 * 60, 12 * 60), 60, 0);
        a.horizon_days = 1;
        let now = utc("2026-12-01T09:30:00Z");
        let taken = [utc("2026-12-01T10:00:00Z")];
        let slots = free_slots(
            &a,
            utc("2026-12-01T00:00:00Z"),
            utc("2026-12-04T00:00:00Z"),
            now,
            &taken,
        )
        .expect("valid");
        let starts: Vec<_> = slots.iter().map(|s| s.start).collect();
        assert_eq!(
            starts,
            vec![utc("2026-12-01T11:00:00Z"), utc("2026-12-02T09:00:00Z")]
        );
    }

    #[test]
    fn a_start_off_the_grid_is_not_bookable() {
        let a = availability("Europe/Berlin", every_day(9 * 60, 17 * 60), 30, 0);
        let now = utc("2026-12-01T00:00:00Z");
        assert_eq!(
            bookable_slot(&a, utc("2026-12-01T08:10:00Z"), now),
            Err(SlotError::NotOnGrid)
        );
        assert_eq!(
            bookable_slot(&a, utc("2026-11-30T08:00:00Z"), now),
            Err(SlotError::InThePast)
        );
        assert_eq!(
            bookable_slot(&a, utc("2027-03-01T08:00:00Z"), now),
            Err(SlotError::BeyondHorizon)
        );
        let slot = bookable_slot(&a, utc("2026-12-01T08:30:00Z"), now).expect("on the grid");
        assert_eq!(slot.end, utc("2026-12-01T09:00:00Z"));
    }

    #[test]
    fn overlapping_windows_on_one_weekday_are_refused() {
        let a = availability(
            "UTC",
            vec![
                WorkingHours {
                    weekday: Weekday::Tue,
                    start_minute: 9 * 60,
                    end_minute: 12 * 60,
                },
                WorkingHours {
                    weekday: Weekday::Tue,
                    start_minute: 11 * 60,
                    end_minute: 13 * 60,
                },
            ],
            30,
            0,
        );
        assert_eq!(
            a.validate(),
            Err(AvailabilityError::OverlappingWindows(Weekday::Tue))
        );
    }

    #[test]
    fn an_unknown_time_zone_is_refused() {
        let a = availability("Mars/Olympus_Mons", every_day(0, 60), 30, 0);
        assert_eq!(
            a.validate(),
            Err(AvailabilityError::UnknownTimeZone(
                "Mars/Olympus_Mons".into()
            ))
        );
    }

    #[test]
    fn limits_on_slot_buffer_horizon_windows_and_calendar_are_enforced() {
        let good = availability("UTC", every_day(60, 120), 30, 0);
        assert!(good.validate().is_ok());
        let mut a = good.clone();
        a.slot_minutes = 2;
        assert_eq!(a.validate(), Err(AvailabilityError::SlotLength));
        let mut a = good.clone();
        a.buffer_minutes = MAX_BUFFER_MINUTES + 1;
        assert_eq!(a.validate(), Err(AvailabilityError::Buffer));
        let mut a = good.clone();
        a.horizon_days = 0;
        assert_eq!(a.validate(), Err(AvailabilityError::Horizon));
        let mut a = good.clone();
        a.working_hours[0].end_minute = a.working_hours[0].start_minute;
        assert_eq!(a.validate(), Err(AvailabilityError::Window));
        let mut a = good;
        a.calendar = "../other/".into();
        assert_eq!(a.validate(), Err(AvailabilityError::Calendar));
    }

    #[test]
    fn a_slot_lock_key_names_the_host_and_the_utc_second() {
        assert_eq!(
            slot_lock_key("h-1", utc("2026-03-29T03:00:00+02:00")),
            "h-1/2026-03-29T01:00:00Z"
        );
    }
}
