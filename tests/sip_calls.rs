//! Calls between two devices of one tenant through the B2BUA, end to end: SIPp plays the
//! caller (1001) and the callee (1002); each test checks what both phones saw (every
//! expected message arrived: SIPp exit 0) and the call detail record tsps wrote.

mod common;

use common::{free_port, register, tenant_a_yaml, PgDatabase, Sipp, Tsps, DEVICE_IP};
use std::net::IpAddr;
use std::time::Duration;
use tsps_actors::model::{CallDirection, CallOutcome, CallRecord, Party};

const CDR_WAIT: Duration = Duration::from_secs(10);

fn start(extra_env: &[(&str, &str)]) -> Tsps {
    Tsps::start(
        &tenant_a_yaml(free_port(IpAddr::V4(DEVICE_IP), false)),
        extra_env,
    )
}

fn caller(scenario: &str) -> Sipp {
    Sipp::new(scenario)
        .device("a.test", "1001", "secret1001")
        .calling("1002")
}

/// Registers 1002 and starts its UAS on the registered port.
fn callee(tsps: &Tsps, scenario: &str) -> common::SippHandle {
    let port = free_port(IpAddr::V4(DEVICE_IP), false);
    register(tsps, "a.test", "1002", "secret1002", port);
    tsps.spawn_sipp(Sipp::uas(scenario).port(port))
}

fn only_record(tsps: &mut Tsps) -> CallRecord {
    let records = tsps.wait_for_call_records("a.test", 1, CDR_WAIT);
    assert_eq!(records.len(), 1, "exactly one call was made: {records:#?}");
    records.into_iter().next().expect("one record")
}

fn assert_internal(record: &CallRecord) {
    assert_eq!(record.direction, CallDirection::Internal, "{record:#?}");
    assert_eq!(record.caller, "1001", "{record:#?}");
    assert_eq!(record.callee, "1002", "{record:#?}");
    assert!(record.caller_user_id.is_some(), "{record:#?}");
}

fn assert_answered_legs(record: &CallRecord) {
    assert!(record.answered_at.is_some(), "{record:#?}");
    assert!(record.ended_at >= record.started_at, "{record:#?}");
    let caller_legs = record
        .legs
        .iter()
        .filter(|l| l.role == Party::Caller)
        .count();
    assert_eq!(caller_legs, 1, "one caller leg: {record:#?}");
    let answered: Vec<_> = record
        .legs
        .iter()
        .filter(|l| l.role == Party::Callee && l.answered_at.is_some())
        .collect();
    assert_eq!(answered.len(), 1, "one answered callee leg: {record:#?}");
    assert_eq!(answered[0].status_code, Some(200), "{record:#?}");
}

#[test]
fn answered_call_hung_up_by_the_caller() {
    let mut tsps = start(&[]);
    let uas = callee(&tsps, "uas_answer.xml");
    let uac = tsps.sipp(caller("uac_call.xml"));
    let uas = uas.join();
    uac.assert_success("caller: 407, 180, 200, BYE answered");
    uas.assert_success("callee: INVITE with SDP, ACK, BYE relayed");

    let record = only_record(&mut tsps);
    assert_internal(&record);
    assert_eq!(record.outcome, CallOutcome::Answered, "{record:#?}");
    assert_eq!(record.hangup_by, Some(Party::Caller), "{record:#?}");
    assert!(record.callee_user_id.is_some(), "{record:#?}");
    assert_answered_legs(&record);
    // Why it rang where it rang is on the record.
    assert_eq!(record.decision, vec!["1002: ring devices"], "{record:#?}");
}

#[test]
fn answered_call_hung_up_by_the_callee() {
    let mut tsps = start(&[]);
    let uas = callee(&tsps, "uas_hangup.xml");
    let uac = tsps.sipp(caller("uac_call_callee_hangs_up.xml"));
    let uas = uas.join();
    uac.assert_success("caller: answered, then receives the relayed BYE");
    uas.assert_success("callee: answers, sends BYE, gets 200");

    let record = only_record(&mut tsps);
    assert_internal(&record);
    assert_eq!(record.outcome, CallOutcome::Answered, "{record:#?}");
    assert_eq!(record.hangup_by, Some(Party::Callee), "{record:#?}");
    assert_answered_legs(&record);
}

#[test]
fn caller_cancels_before_answer() {
    let mut tsps = start(&[]);
    let uas = callee(&tsps, "uas_no_answer.xml");
    let uac = tsps.sipp(caller("uac_call_cancel.xml"));
    let uas = uas.join();
    uac.assert_success("caller: 180, CANCEL answered 200, INVITE answered 487");
    uas.assert_success("callee: rings, receives the CANCEL");

    let record = only_record(&mut tsps);
    assert_internal(&record);
    assert_eq!(record.outcome, CallOutcome::Cancelled, "{record:#?}");
    assert_eq!(record.hangup_by, Some(Party::Caller), "{record:#?}");
    assert!(record.answered_at.is_none(), "{record:#?}");
}

#[test]
fn busy_callee() {
    let mut tsps = start(&[]);
    let uas = callee(&tsps, "uas_busy.xml");
    let uac = tsps.sipp(caller("uac_call_busy.xml"));
    let uas = uas.join();
    uac.assert_success("caller gets 486");
    uas.assert_success("callee answers 486 and gets the ACK");

    let record = only_record(&mut tsps);
    assert_internal(&record);
    assert_eq!(record.outcome, CallOutcome::Busy, "{record:#?}");
    assert!(record.answered_at.is_none(), "{record:#?}");
    assert!(
        record
            .legs
            .iter()
            .any(|l| l.role == Party::Callee && l.status_code == Some(486)),
        "the callee leg ended with 486: {record:#?}"
    );
}

#[test]
fn unregistered_callee_is_unavailable() {
    let mut tsps = start(&[]);
    tsps.sipp(caller("uac_call_unavailable.xml"))
        .assert_success("caller gets 480 when 1002 has no contact");

    let record = only_record(&mut tsps);
    assert_internal(&record);
    assert_eq!(record.outcome, CallOutcome::Unavailable, "{record:#?}");
}

#[test]
fn unknown_extension_is_not_found() {
    let tsps = start(&[]);
    tsps.sipp(
        Sipp::new("uac_call_not_found.xml")
            .device("a.test", "1001", "secret1001")
            .calling("1099"),
    )
    .assert_success("caller gets 404 for an extension nobody has");
}

#[test]
fn unanswered_call_times_out() {
    let mut tsps = start(&[("TSPS_SIP__RING_TIMEOUT_SECS", "3")]);
    let uas = callee(&tsps, "uas_no_answer.xml");
    let uac = tsps.sipp(caller("uac_call_timeout.xml"));
    let uas = uas.join();
    uac.assert_success("caller gets 408 after the ring timeout");
    uas.assert_success("callee is cancelled by tsps");

    let record = only_record(&mut tsps);
    assert_internal(&record);
    assert_eq!(record.outcome, CallOutcome::NoAnswer, "{record:#?}");
    assert_eq!(record.hangup_by, Some(Party::System), "{record:#?}");
    let rang = record.ended_at - record.started_at;
    assert!(
        rang >= chrono::Duration::milliseconds(2500),
        "the callee rang for the 3 s ring timeout, not {rang}"
    );
}

#[test]
fn hold_reinvite_is_relayed_both_ways() {
    let mut tsps = start(&[]);
    let uas = callee(&tsps, "uas_hold.xml");
    let uac = tsps.sipp(caller("uac_call_hold.xml"));
    let uas = uas.join();
    uac.assert_success("caller: re-INVITE a=sendonly answered a=recvonly");
    uas.assert_success("callee: receives the re-INVITE with a=sendonly");

    let record = only_record(&mut tsps);
    assert_eq!(record.outcome, CallOutcome::Answered, "{record:#?}");
    assert_eq!(record.hangup_by, Some(Party::Caller), "{record:#?}");
}

#[test]
fn whole_flow_on_postgres() {
    let db = PgDatabase::create();
    let mut tsps = Tsps::start_with_database(
        &tenant_a_yaml(free_port(IpAddr::V4(DEVICE_IP), false)),
        &[],
        &db.url(),
    );
    assert!(tsps.db_url().starts_with("postgres://"));

    let uas = callee(&tsps, "uas_answer.xml");
    let uac = tsps.sipp(caller("uac_call.xml"));
    let uas = uas.join();
    uac.assert_success("caller on the PostgreSQL-backed tsps");
    uas.assert_success("callee on the PostgreSQL-backed tsps");

    let record = only_record(&mut tsps);
    assert_internal(&record);
    assert_eq!(record.outcome, CallOutcome::Answered, "{record:#?}");
    assert_eq!(record.hangup_by, Some(Party::Caller), "{record:#?}");
    assert_answered_legs(&record);
    assert_eq!(
        tsps.bindings("a.test").len(),
        1,
        "1002's binding is in PostgreSQL"
    );
    drop(tsps); // before the database goes
}

/// Both phones on TCP: the callee registered over a connection that has closed since,
/// so tsps connects to its Contact (transport=tcp) to deliver the call.
#[test]
fn answered_call_over_tcp() {
    let mut tsps = start(&[]);
    let port = free_port(IpAddr::V4(DEVICE_IP), true);
    tsps.sipp(
        Sipp::new("register.xml")
            .device("a.test", "1002", "secret1002")
            .port(port)
            .transport("t1"),
    )
    .assert_success("register 1002 over TCP");
    let uas = tsps.spawn_sipp(Sipp::uas("uas_answer.xml").port(port).transport("t1"));
    let uac = tsps.sipp(caller("uac_call.xml").transport("t1"));
    let uas = uas.join();
    uac.assert_success("caller over TCP: 407, 180, 200, BYE answered");
    uas.assert_success("callee over TCP: INVITE, ACK, BYE");
    let record = only_record(&mut tsps);
    assert_eq!(record.outcome, CallOutcome::Answered, "{record:#?}");
    assert_answered_legs(&record);
}

/// A failing database degrades, it does not lose: while the CDR table is unusable the
/// call still completes (signalling never waits on the database) and tsps keeps
/// retrying the write; once the table is back the record appears.
#[test]
fn call_record_survives_a_database_outage() {
    use sqlx::Connection;
    let db = PgDatabase::create();
    let mut tsps = Tsps::start_with_database(
        &tenant_a_yaml(free_port(IpAddr::V4(DEVICE_IP), false)),
        &[],
        &db.url(),
    );
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let sql = |statement: &'static str| {
        rt.block_on(async {
            let mut conn = sqlx::PgConnection::connect(&db.url())
                .await
                .expect("connect");
            sqlx::query(statement)
                .execute(&mut conn)
                .await
                .expect(statement);
        })
    };
    let uas = callee(&tsps, "uas_answer.xml");
    sql("ALTER TABLE call_records RENAME TO call_records_away");
    let uac = tsps.sipp(caller("uac_call.xml"));
    uas.join().assert_success("callee during the outage");
    uac.assert_success("caller during the outage");
    // The writer has failed at least once by now (it logs each first failure).
    let deadline = std::time::Instant::now() + CDR_WAIT;
    while !tsps.log_text().contains("will retry") {
        assert!(
            std::time::Instant::now() < deadline,
            "no failed write was logged:\n{}",
            tsps.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    sql("ALTER TABLE call_records_away RENAME TO call_records");
    let record = only_record(&mut tsps);
    assert_eq!(record.outcome, CallOutcome::Answered, "{record:#?}");
    assert_answered_legs(&record);
    drop(tsps); // before the database goes
}

/// 183 Session Progress with SDP (early media) is relayed to the caller with its SDP.
#[test]
fn early_media_is_relayed() {
    let mut tsps = start(&[]);
    let uas = callee(&tsps, "uas_early_media.xml");
    let uac = tsps.sipp(caller("uac_call_early_media.xml"));
    let uas = uas.join();
    uac.assert_success("caller: 183 with the callee's early-media SDP, then 200");
    uas.assert_success("callee: 183 with SDP, 200, ACK, BYE");
    let record = only_record(&mut tsps);
    assert_eq!(record.outcome, CallOutcome::Answered, "{record:#?}");
}
