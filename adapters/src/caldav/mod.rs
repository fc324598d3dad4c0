//! The calendar server port ([`CalendarServer`]) over CalDAV (RFC 4791): Stalwart in
//! production, Radicale in the contract suite.
//!
//! Every booking event is one resource, `<base>/<calendar>/<uid>.ics`. The base URL is
//! configuration because servers lay calendars out differently (Stalwart:
//! `/dav/cal/<account>/<calendar>/`; Radicale: `/<user>/<calendar>/`).
//!
//! How the port's promises are kept here:
//!
//! * **Create-only writes**: `PUT` with `If-None-Match: *`. A `412 Precondition Failed` means
//!   the resource exists; it is read back and the write counts as done when it holds the
//!   same UID (a retry after a lost answer), and is refused when it holds another.
//! * **Moves**: `GET` for the `ETag`, then `PUT` with `If-Match`, so a concurrent change is
//!   noticed (412) and the read-modify-write is done again on the new version.
//! * **Deletes**: `DELETE`; `404` counts as deleted.
//! * **Listing**: `REPORT` calendar-query with a time range, reading each resource's UID from
//!   its calendar data.
//! * **Errors**: a connection that could not be made, `5xx` and `429` are
//!   [`CalendarError::Unavailable`]; a write whose answer was lost (timeout, connection
//!   dropped after sending) is [`CalendarError::OutcomeUnknown`]; `401`/`403` are
//!   [`CalendarError::Unauthorized`]; other `4xx` are [`CalendarError::Rejected`].
//!
//! An adapter built with [`CalDav::unconfigured`] answers [`CalendarError::NotConfigured`] to
//! everything.

mod ical;

use std::time::Duration;

use chrono::{DateTime, Utc};
use dezky_commands::ports::calendar::{CalendarError, CalendarEvent, CalendarServer};
use dezky_commands::ports::Secret;
use reqwest::header::{HeaderValue, CONTENT_TYPE, ETAG, IF_MATCH, IF_NONE_MATCH};
use reqwest::{Method, StatusCode, Url};

pub use ical::{parse as parse_icalendar, render as render_icalendar};

/// Default time limit on one request to the calendar server.
pub const DEFAULT_REQUEST_TIMEOUT_SECONDS: u64 = 15;
/// Longest server answer kept in an error (answers can be whole HTML pages).
const MAX_ERROR_DETAIL_CHARS: usize = 300;
/// Times a move re-reads the event after its `If-Match` lost to a concurrent change.
const MAX_MOVE_ROUNDS: usize = 3;

/// Where the calendar server is and how to sign in to it.
#[derive(Debug, Clone)]
pub struct CalDavConfig {
    /// The URL calendar collections are relative to (`https://mail.example.eu/dav/cal/`).
    pub base_url: String,
    /// The user (HTTP Basic).
    pub user: String,
    /// The password.
    pub password: Secret,
    /// Time limit on one request; a write that runs out of it is
    /// [`CalendarError::OutcomeUnknown`].
    pub request_timeout_seconds: u64,
}

impl CalDavConfig {
    /// A configuration with [`DEFAULT_REQUEST_TIMEOUT_SECONDS`].
    pub fn new(base_url: impl Into<String>, user: impl Into<String>, password: Secret) -> Self {
        Self {
            base_url: base_url.into(),
            user: user.into(),
            password,
            request_timeout_seconds: DEFAULT_REQUEST_TIMEOUT_SECONDS,
        }
    }
}

struct Client {
    http: reqwest::Client,
    base: Url,
    user: String,
    password: Secret,
}

/// The CalDAV adapter.
pub struct CalDav {
    client: Option<Client>,
}

/// Whether a request changes the server, which decides what a lost answer means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Effect {
    Read,
    Write,
}

fn shorten(text: &str) -> String {
    text.chars().take(MAX_ERROR_DETAIL_CHARS).collect()
}

/// An error with its sources (reqwest's own message hides the cause).
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn transport(error: &reqwest::Error, effect: Effect) -> CalendarError {
    let text = error_chain(error);
    if error.is_connect() || effect == Effect::Read {
        CalendarError::Unavailable(text)
    } else {
        CalendarError::OutcomeUnknown(text)
    }
}

/// Maps an unexpected status to the port's error.
async fn status_error(response: reqwest::Response) -> CalendarError {
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    match status {
        StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN => CalendarError::Unauthorized,
        StatusCode::TOO_MANY_REQUESTS => CalendarError::Unavailable(format!("HTTP {status}")),
        s if s.is_server_error() => {
            CalendarError::Unavailable(format!("HTTP {status}: {}", shorten(&body)))
        }
        s => CalendarError::Rejected {
            status: s.as_u16(),
            detail: shorten(&body),
        },
    }
}

/// The text between `<…calendar-data …>` and its closing tag, whatever the namespace prefix,
/// with XML entities undone.
fn calendar_data(xml: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = xml;
    while let Some(at) = rest.find("calendar-data") {
        // Only an opening tag: the character before the name is '<' or a prefix's ':', and
        // the tag is not a closing or self-closing one.
        let before = &rest[..at];
        let tag_start = before.rfind('<');
        let after = &rest[at..];
        let Some(tag_end) = after.find('>') else {
            break;
        };
        let opening = tag_start.is_some_and(|s| !before[s..].starts_with("</"))
            && !after[..tag_end].ends_with('/');
        rest = &after[tag_end + 1..];
        if !opening {
            continue;
        }
        let Some(close) = rest.find("</") else {
            break;
        };
        found.push(unescape_xml(&rest[..close]));
        rest = &rest[close..];
    }
    found
}

fn unescape_xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(amp) = rest.find('&') {
        out.push_str(&rest[..amp]);
        let tail = &rest[amp..];
        let Some(semi) = tail.find(';') else {
            out.push_str(tail);
            return out;
        };
        let entity = &tail[1..semi];
        let decoded = match entity {
            "lt" => Some('<'),
            "gt" => Some('>'),
            "amp" => Some('&'),
            "quot" => Some('"'),
            "apos" => Some('\''),
            _ => entity
                .strip_prefix("#x")
                .and_then(|h| u32::from_str_radix(h, 16).ok())
                .or_else(|| entity.strip_prefix('#').and_then(|d| d.parse().ok()))
                .and_then(char::from_u32),
        };
        match decoded {
            Some(c) => out.push(c),
            None => out.push_str(&tail[..=semi]),
        }
        rest = &tail[semi + 1..];
    }
    out.push_str(rest);
    out
}

impl CalDav {
    /// An adapter for the server in `config`.
    pub fn new(config: CalDavConfig) -> Result<Self, CalendarError> {
        let mut base = config.base_url.trim().to_owned();
        if !base.ends_with('/') {
            base.push('/');
        }
        let base = Url::parse(&base)
            .map_err(|e| CalendarError::Protocol(format!("base URL {base:?}: {e}")))?;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(config.request_timeout_seconds.max(1)))
            .build()
            .map_err(|e| CalendarError::Protocol(error_chain(&e)))?;
        Ok(Self {
            client: Some(Client {
                http,
                base,
                user: config.user,
                password: config.password,
            }),
        })
    }

    /// An adapter that answers [`CalendarError::NotConfigured`] to everything.
    pub fn unconfigured() -> Self {
        Self { client: None }
    }

    fn client(&self) -> Result<&Client, CalendarError> {
        self.client.as_ref().ok_or(CalendarError::NotConfigured)
    }

    /// Creates the calendar collection unless it exists (`MKCALENDAR`). Production servers
    /// create a user's calendars themselves; this is for set-up and tests.
    pub async fn ensure_calendar(&self, calendar: &str) -> Result<(), CalendarError> {
        let client = self.client()?;
        let url = client.collection(calendar)?;
        let response = client
            .request(
                Method::from_bytes(b"MKCALENDAR")
                    .map_err(|e| CalendarError::Protocol(e.to_string()))?,
                url,
            )
            .send()
            .await
            .map_err(|e| transport(&e, Effect::Write))?;
        match response.status() {
            s if s.is_success() => Ok(()),
            // Already there (servers answer 405 or 409 to MKCALENDAR on an existing one).
            StatusCode::METHOD_NOT_ALLOWED | StatusCode::CONFLICT => Ok(()),
            _ => Err(status_error(response).await),
        }
    }

    /// The resource and its ETag, or `None`.
    async fn fetch(
        &self,
        calendar: &str,
        uid: &str,
    ) -> Result<Option<(CalendarEvent, Option<HeaderValue>)>, CalendarError> {
        let client = self.client()?;
        let response = client
            .request(Method::GET, client.resource(calendar, uid)?)
            .send()
            .await
            .map_err(|e| transport(&e, Effect::Read))?;
        match response.status() {
            StatusCode::NOT_FOUND | StatusCode::GONE => Ok(None),
            s if s.is_success() => {
                let etag = response.headers().get(ETAG).cloned();
                let text = response
                    .text()
                    .await
                    .map_err(|e| transport(&e, Effect::Read))?;
                let event = ical::parse(&text).map_err(CalendarError::Protocol)?;
                Ok(Some((event, etag)))
            }
            _ => Err(status_error(response).await),
        }
    }

    /// `PUT` of the event with one precondition header.
    async fn put(
        &self,
        calendar: &str,
        event: &CalendarEvent,
        precondition: (reqwest::header::HeaderName, HeaderValue),
    ) -> Result<reqwest::Response, CalendarError> {
        let client = self.client()?;
        client
            .request(Method::PUT, client.resource(calendar, &event.uid)?)
            .header(CONTENT_TYPE, "text/calendar; charset=utf-8")
            .header(precondition.0, precondition.1)
            .body(ical::render(event, Utc::now()))
            .send()
            .await
            .map_err(|e| transport(&e, Effect::Write))
    }
}

impl Client {
    fn request(&self, method: Method, url: Url) -> reqwest::RequestBuilder {
        self.http
            .request(method, url)
            .basic_auth(&self.user, Some(self.password.expose()))
    }

    fn collection(&self, calendar: &str) -> Result<Url, CalendarError> {
        let mut path = calendar.trim().trim_start_matches('/').to_owned();
        if !path.ends_with('/') {
            path.push('/');
        }
        if path.split('/').any(|s| s == "..") {
            return Err(CalendarError::Protocol(format!(
                "calendar path {calendar:?}"
            )));
        }
        self.base
            .join(&path)
            .map_err(|e| CalendarError::Protocol(format!("calendar path {calendar:?}: {e}")))
    }

    fn resource(&self, calendar: &str, uid: &str) -> Result<Url, CalendarError> {
        let mut url = self.collection(calendar)?;
        url.path_segments_mut()
            .map_err(|()| CalendarError::Protocol("base URL cannot hold a path".into()))?
            .pop_if_empty()
            .push(&format!("{uid}.ics"));
        Ok(url)
    }
}

impl CalendarServer for CalDav {
    async fn create_event(
        &self,
        calendar: &str,
        event: &CalendarEvent,
    ) -> Result<(), CalendarError> {
        let response = self
            .put(
                calendar,
                event,
                (IF_NONE_MATCH, HeaderValue::from_static("*")),
            )
            .await?;
        match response.status() {
            s if s.is_success() => Ok(()),
            StatusCode::PRECONDITION_FAILED => match self.fetch(calendar, &event.uid).await? {
                Some((existing, _)) if existing.uid == event.uid => Ok(()),
                Some((existing, _)) => Err(CalendarError::Rejected {
                    status: 412,
                    detail: format!("the resource holds event {}", existing.uid),
                }),
                // Deleted between the PUT and the GET: the write did not happen.
                None => Err(CalendarError::Unavailable(
                    "the event vanished while it was being written".into(),
                )),
            },
            _ => Err(status_error(response).await),
        }
    }

    async fn update_event(
        &self,
        calendar: &str,
        event: &CalendarEvent,
    ) -> Result<(), CalendarError> {
        for _ in 0..MAX_MOVE_ROUNDS {
            let Some((_, etag)) = self.fetch(calendar, &event.uid).await? else {
                return self.create_event(calendar, event).await;
            };
            let Some(etag) = etag else {
                return Err(CalendarError::Protocol("the event has no ETag".into()));
            };
            let response = self.put(calendar, event, (IF_MATCH, etag)).await?;
            match response.status() {
                s if s.is_success() => return Ok(()),
                // Changed or deleted meanwhile: read again and redo.
                StatusCode::PRECONDITION_FAILED => continue,
                _ => return Err(status_error(response).await),
            }
        }
        Err(CalendarError::Unavailable(
            "the event kept changing while it was being moved".into(),
        ))
    }

    async fn delete_event(&self, calendar: &str, uid: &str) -> Result<(), CalendarError> {
        let client = self.client()?;
        let response = client
            .request(Method::DELETE, client.resource(calendar, uid)?)
            .send()
            .await
            .map_err(|e| transport(&e, Effect::Write))?;
        match response.status() {
            s if s.is_success() => Ok(()),
            StatusCode::NOT_FOUND | StatusCode::GONE => Ok(()),
            _ => Err(status_error(response).await),
        }
    }

    async fn event(
        &self,
        calendar: &str,
        uid: &str,
    ) -> Result<Option<CalendarEvent>, CalendarError> {
        Ok(self.fetch(calendar, uid).await?.map(|(event, _)| event))
    }

    async fn event_uids(
        &self,
        calendar: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<String>, CalendarError> {
        let client = self.client()?;
        let body = format!(
            r#"<?xml version="1.0" encoding="utf-8"?>
<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav">
  <D:prop><D:getetag/><C:calendar-data/></D:prop>
  <C:filter>
    <C:comp-filter name="VCALENDAR">
      <C:comp-filter name="VEVENT">
        <C:time-range start="{}" end="{}"/>
      </C:comp-filter>
    </C:comp-filter>
  </C:filter>
</C:calendar-query>"#,
            from.format("%Y%m%dT%H%M%SZ"),
            to.format("%Y%m%dT%H%M%SZ")
        );
        let response = client
            .request(
                Method::from_bytes(b"REPORT")
                    .map_err(|e| CalendarError::Protocol(e.to_string()))?,
                client.collection(calendar)?,
            )
            .header("Depth", "1")
            .header(CONTENT_TYPE, "application/xml; charset=utf-8")
            .body(body)
            .send()
            .await
            .map_err(|e| transport(&e, Effect::Read))?;
        match response.status() {
            StatusCode::MULTI_STATUS | StatusCode::OK => {
                let xml = response
                    .text()
                    .await
                    .map_err(|e| transport(&e, Effect::Read))?;
                Ok(calendar_data(&xml)
                    .iter()
                    .flat_map(|data| ical::uids(data))
                    .collect())
            }
            StatusCode::NOT_FOUND => Ok(Vec::new()),
            _ => Err(status_error(response).await),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calendar_data_is_read_whatever_the_prefix_and_unescaped() {
        let xml = r#"<multistatus xmlns="DAV:"><response><propstat><prop>
<C:calendar-data xmlns:C="urn:ietf:params:xml:ns:caldav">BEGIN:VEVENT&#13;
UID:a&amp;b&#13;
END:VEVENT</C:calendar-data></prop></propstat></response>
<response><propstat><prop><calendar-data>UID:c</calendar-data><cal:calendar-data/></prop></propstat></response></multistatus>"#;
        let data = calendar_data(xml);
        assert_eq!(data.len(), 2, "{data:?}");
        assert!(data[0].contains("UID:a&b\r\n"), "{:?}", data[0]);
        assert_eq!(data[1], "UID:c");
    }

    #[test]
    fn resources_are_named_by_uid_under_the_calendar_and_base() {
        let dav = CalDav::new(CalDavConfig::new(
            "https://mail.example.eu/dav/cal",
            "u",
            Secret::new("p"),
        ))
        .expect("valid base");
        let client = dav.client().expect("configured");
        assert_eq!(
            client
                .resource("ann/bookings", "b 1")
                .expect("url")
                .as_str(),
            "https://mail.example.eu/dav/cal/ann/bookings/b%201.ics"
        );
        assert!(client.collection("../x").is_err());
    }

    #[tokio::test]
    async fn an_unconfigured_calendar_server_says_so() {
        let dav = CalDav::unconfigured();
        assert_eq!(
            dav.delete_event("c/", "u").await,
            Err(CalendarError::NotConfigured)
        );
    }
}
