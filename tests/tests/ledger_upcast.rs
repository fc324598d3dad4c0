//! Upcasting: an event stored at an older schema version keeps its bytes (and hash) and loads
//! in the current shape, through the registry every production path uses, for each aggregate
//! with upcasters (the probe and the tenant).

use cqrs_es::persist::PersistedEventStore;
use cqrs_es::EventStore;
use dezky_commands::audit::verify_store;
use dezky_commands::{AppendBatch, LedgerRepository, NewEvent};
use dezky_domain::probe::{self, Probe, ProbeEvent, READING_RECORDED};
use dezky_tests::{metadata_for, probe_cqrs, record, test_key, Backend, TestDb};

const OLD_PAYLOAD: &str = r#"{"ReadingRecorded":{"label":"legacy","n":1,"value":7}}"#;

async fn a_version_one_event_loads_in_the_version_two_shape(backend: Backend) {
    let db = TestDb::create(backend).await.expect("database");
    let ledger = db.open().await.expect("ledger");
    // Given a ReadingRecorded stored at schema 1.0 with its old shape...
    ledger
        .append(AppendBatch {
            events: vec![NewEvent {
                aggregate_type: probe::PROBE_AGGREGATE_TYPE.into(),
                aggregate_id: "legacy-probe".into(),
                aggregate_version: 1,
                event_type: READING_RECORDED.into(),
                event_version: "1.0".into(),
                tenant_id: None,
                metadata: "{}".into(),
                payload: OLD_PAYLOAD.into(),
            }],
            snapshot: None,
        })
        .await
        .expect("old event stored");

    // ...when it is loaded through the event store with the probe's upcasters...
    let store =
        PersistedEventStore::<_, Probe>::new_event_store(LedgerRepository::new(ledger.clone()))
            .with_upcasters(probe::upcasters());
    let events = store.load_events("legacy-probe").await.expect("load");

    // ...then it has the new shape, and its stored bytes are untouched.
    assert_eq!(
        events[0].payload,
        ProbeEvent::ReadingRecorded {
            reading_no: 1,
            value_milli: 7_000,
            unit: "count".into(),
            label: "legacy".into(),
        }
    );
    let stored = ledger
        .aggregate_events(probe::PROBE_AGGREGATE_TYPE, "legacy-probe", 0)
        .await
        .expect("raw rows");
    assert_eq!(stored[0].payload, OLD_PAYLOAD);
    assert_eq!(stored[0].event_version, "1.0");

    // And commands keep working on top of the upcast state.
    probe_cqrs(&ledger)
        .execute_with_metadata("legacy-probe", record(1, "new"), metadata_for("t").to_map())
        .await
        .expect("a new command on an upcast aggregate");
    let after = ledger
        .aggregate_events(probe::PROBE_AGGREGATE_TYPE, "legacy-probe", 1)
        .await
        .expect("rows");
    assert_eq!(after[0].event_version, probe::READING_RECORDED_VERSION);
    assert!(after[0].payload.contains(r#""reading_no":2"#));
    let (_, trusted) = test_key("dezky.test/ledger");
    let report = verify_store(&ledger, trusted, |_, _| {})
        .await
        .expect("verify");
    assert_eq!(report.first_break, None);
}

/// A tenant's member linked at `MemberSubjectLinked` 1.0 (before links carried an issuer),
/// loaded through the registry as every production path loads it.
async fn a_subject_link_stored_before_issuers_loads_through_the_registry(backend: Backend) {
    use dezky_commands::app::registry::{framework, load};
    use dezky_domain::tenant::{Tenant, TenantAction, TenantCommand, TENANT_AGGREGATE_TYPE};
    use dezky_tests::{operator_context, seed_tenant, tenant_cqrs};

    let db = TestDb::create(backend).await.expect("database");
    let ledger = db.open().await.expect("ledger");
    let tenant = seed_tenant(&tenant_cqrs(&ledger), 1, 1)
        .await
        .expect("tenant");
    let member = format!("{tenant}-m0");
    let version = ledger
        .aggregate_events(TENANT_AGGREGATE_TYPE, &tenant, 0)
        .await
        .expect("rows")
        .len() as u64;
    ledger
        .append(AppendBatch {
            events: vec![NewEvent {
                aggregate_type: TENANT_AGGREGATE_TYPE.into(),
                aggregate_id: tenant.clone(),
                aggregate_version: version + 1,
                event_type: "MemberSubjectLinked".into(),
                event_version: "1.0".into(),
                tenant_id: Some(tenant.clone()),
                metadata: "{}".into(),
                payload: format!(
                    r#"{{"MemberSubjectLinked":{{"member_id":"{member}","subject":"sub-old"}}}}"#
                ),
            }],
            snapshot: None,
        })
        .await
        .expect("old event stored");

    let (state, loaded_version) = load::<Tenant>(&ledger, &tenant).await.expect("load");
    assert_eq!(loaded_version as u64, version + 1);
    let linked = &state.members[&member];
    assert_eq!(linked.subject.as_deref(), Some("sub-old"));
    assert_eq!(linked.issuer, None);

    // Commands keep working on top of the upcast state, through the production framework.
    framework::<Tenant>(&ledger)
        .execute_with_metadata(
            &tenant,
            TenantCommand::new(
                operator_context(),
                TenantAction::SuspendMember {
                    member_id: member.clone(),
                },
            ),
            metadata_for(&tenant).to_map(),
        )
        .await
        .expect("a command on the upcast tenant");
}

#[tokio::test]
async fn a_subject_link_stored_before_issuers_loads_through_the_registry_on_sqlite() {
    a_subject_link_stored_before_issuers_loads_through_the_registry(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_subject_link_stored_before_issuers_loads_through_the_registry_on_postgres() {
    a_subject_link_stored_before_issuers_loads_through_the_registry(Backend::Postgres).await;
}

#[tokio::test]
async fn a_version_one_event_loads_in_the_version_two_shape_on_sqlite() {
    a_version_one_event_loads_in_the_version_two_shape(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_version_one_event_loads_in_the_version_two_shape_on_postgres() {
    a_version_one_event_loads_in_the_version_two_shape(Backend::Postgres).await;
}
