//! The API contract: the OpenAPI document (`/api/v1/openapi.json`) is the truth about
//! the API. schemathesis generates requests from it, valid and invalid, sends them to
//! a real `tsps serve`, and checks every answer against the document: each status is
//! documented, each body matches its schema, each valid request is accepted and each
//! invalid one refused (tests/openapi/schemathesis.toml lists the few operations whose
//! rules no schema can state).
//!
//! The fixture is provisioned with the binary (`tsps provision apply`), and what the
//! provisioning document has no place for (contacts, external phones, an API token)
//! with the store, before the server starts. tests/openapi/run.sh then runs the
//! server and schemathesis inside a private network namespace (`unshare -n`, as root):
//! fuzzed trunks and click-to-dial must not send SIP anywhere.
//!
//! schemathesis comes from `SCHEMATHESIS_BIN`, or the virtualenv scripts/test.sh
//! installs in `target/schemathesis`. The seed is fixed: a failure reproduces.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tsps::contacts::{ContactDraft, ContactId, ContactOwner, DialingRules, PhoneDraft};
use tsps::store::{ApiToken, ApiTokenId, DynStore};
use tsps_actors::model::ExternalPhone;
use tsps_actors::{DeviceId, TenantId, UserId};

const TOKEN: &str = "contract-token";
/// Generated requests per operation and phase; the run takes about 30 s.
const MAX_EXAMPLES: &str = "10";
const SEED: &str = "1";
/// Well above the run's time on a loaded two-core machine, below nextest's 240 s.
const TIMEOUT: Duration = Duration::from_secs(200);

/// Two tenants: the one the operations work on, with a user whose path ids every
/// operation gets, and one for `DELETE /tenants/{t}`; a third for quotas (a quota of
/// 0 would refuse every later contact and device). The `doomed` objects are there to
/// be deleted.
const FIXTURE: &str = r#"
tenants:
  - domain: contract.test
    name: Contract
    time_zone: Europe/Zurich
    users:
      - extension: "1001"
        display_name: Alice
        portal_login: alice
        role: tenant_admin
        password: alice-portal-pw
        devices:
          - sip_username: alice
            password: alice-device-pw
      - extension: "1002"
        display_name: Bob
        devices:
          - sip_username: bob
            password: bob-device-pw
      - extension: "1099"
        display_name: Doomed user
        devices:
          - sip_username: doomed
            password: doomed-device-pw
    dids:
      - number: "+41445550100"
        extension: "1001"
      - number: "+41445550199"
        extension: "1099"
    trunks:
      - name: carrier
        peer_host: 127.0.0.2
        peer_port: 5070
      - name: doomed
        peer_host: 127.0.0.3
  - domain: doomed.test
    name: Doomed
    users:
      - extension: "2001"
        display_name: Doomed
  - domain: quota.test
    name: Quotas
"#;

fn schemathesis() -> PathBuf {
    let path = std::env::var_os("SCHEMATHESIS_BIN").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("target/schemathesis/bin/schemathesis"),
        PathBuf::from,
    );
    assert!(
        path.exists(),
        "no schemathesis at {} (or set SCHEMATHESIS_BIN): install it: scripts/test.sh does",
        path.display()
    );
    path
}

/// The ids the configuration refers to, as `CONTRACT_*` environment variables.
async fn fixture_ids(store: &DynStore) -> Vec<(&'static str, String)> {
    let tenants = store.list_tenants().await.unwrap();
    let tenant = |domain: &str| tenants.iter().find(|t| t.domain == domain).unwrap().id;
    let (t, doomed_t, quota_t) = (
        tenant("contract.test"),
        tenant("doomed.test"),
        tenant("quota.test"),
    );
    let users = store.list_users(t).await.unwrap();
    let user = |ext: &str| users.iter().find(|u| u.extension == ext).unwrap().id;
    let (alice, doomed_user) = (user("1001"), user("1099"));
    let devices = store.list_devices(t, None).await.unwrap();
    let device = |name: &str| devices.iter().find(|d| d.sip_username == name).unwrap().id;
    let trunks = store.list_trunks(t).await.unwrap();
    let trunk = |name: &str| trunks.iter().find(|r| r.name == name).unwrap().id;
    let mut ids = vec![
        ("CONTRACT_TENANT", t.to_string()),
        ("CONTRACT_DOOMED_TENANT", doomed_t.to_string()),
        ("CONTRACT_QUOTA_TENANT", quota_t.to_string()),
        ("CONTRACT_USER", alice.to_string()),
        ("CONTRACT_DOOMED_USER", doomed_user.to_string()),
        ("CONTRACT_DEVICE", device("alice").to_string()),
        ("CONTRACT_DOOMED_DEVICE", device("doomed").to_string()),
        ("CONTRACT_TRUNK", trunk("carrier").to_string()),
        ("CONTRACT_DOOMED_TRUNK", trunk("doomed").to_string()),
        ("CONTRACT_DID", "+41445550100".into()),
        ("CONTRACT_DOOMED_DID", "+41445550199".into()),
    ];
    for (var, owner, name, number) in [
        (
            "CONTRACT_SHARED_CONTACT",
            ContactOwner::Shared,
            "Shared",
            "+41445550111",
        ),
        (
            "CONTRACT_DOOMED_SHARED_CONTACT",
            ContactOwner::Shared,
            "Doomed",
            "+41445550112",
        ),
        (
            "CONTRACT_PERSONAL_CONTACT",
            ContactOwner::User(alice),
            "Personal",
            "+41445550113",
        ),
        (
            "CONTRACT_DOOMED_PERSONAL_CONTACT",
            ContactOwner::User(alice),
            "Doomed",
            "+41445550114",
        ),
    ] {
        let draft = ContactDraft {
            name: name.into(),
            numbers: vec![PhoneDraft {
                number: number.into(),
                label: Some("work".into()),
            }],
            ..Default::default()
        };
        let contact = draft
            .into_contact(
                ContactId::new(),
                t,
                owner,
                &DialingRules::default(),
                &Default::default(),
            )
            .unwrap();
        store.create_contact(t, &contact).await.unwrap();
        ids.push((var, contact.id.to_string()));
    }
    for (var, number, label) in [
        ("CONTRACT_PHONE", "+41791234567", "Mobile"),
        ("CONTRACT_DOOMED_PHONE", "+41791234568", "Old"),
    ] {
        let phone = external_phone(t, alice, number, label);
        store.create_external_phone(t, &phone).await.unwrap();
        ids.push((var, phone.id.to_string()));
    }
    let token = ApiToken {
        id: ApiTokenId::new(),
        tenant_id: t,
        name: "crm".into(),
        // The hash of no secret anybody has: this token is only there to be revoked.
        secret_hash: "0".repeat(64).into(),
        users: None,
        created_at: chrono::Utc::now(),
        expires_at: None,
    };
    store.create_api_token(t, &token).await.unwrap();
    ids.push(("CONTRACT_TOKEN", token.id.to_string()));
    ids
}

fn external_phone(tenant: TenantId, user: UserId, number: &str, label: &str) -> ExternalPhone {
    ExternalPhone {
        id: DeviceId::new(),
        tenant_id: tenant,
        user_id: user,
        number: number.into(),
        label: label.into(),
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

#[test]
fn the_server_keeps_the_contract_of_its_openapi_document() {
    let st = schemathesis();
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let db = format!("sqlite://{}", dir.join("tsps.db").display());
    let config = dir.join("tsps.toml");
    std::fs::write(
        &config,
        format!(
            "version = 1\n\
             [sip]\nudp_listen = \"127.0.0.1:0\"\ntcp_listen = \"127.0.0.1:0\"\n\
             [http]\nlisten = \"127.0.0.1:0\"\napi_token = \"{TOKEN}\"\n\
             [database]\nurl = \"{db}\"\n\
             [media]\nenabled = false\n"
        ),
    )
    .unwrap();
    let fixture = dir.join("fixture.yaml");
    std::fs::write(&fixture, FIXTURE).unwrap();
    let bin = env!("CARGO_BIN_EXE_tsps");
    let applied = Command::new(bin)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .arg("--config")
        .arg(&config)
        .args(["provision", "apply"])
        .arg(&fixture)
        .output()
        .unwrap();
    assert!(
        applied.status.success(),
        "provisioning failed: {}",
        String::from_utf8_lossy(&applied.stderr)
    );
    let ids = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let store = tsps::store::open(&db, 1).await.unwrap();
        fixture_ids(&store).await
    });
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    std::fs::copy(
        manifest.join("tests/openapi/schemathesis.toml"),
        dir.join("schemathesis.toml"),
    )
    .unwrap();

    let started = Instant::now();
    let mut run = Command::new("timeout");
    // Only this test's settings reach tsps: it reads every TSPS_* variable as its own
    // configuration (TSPS_SKIP_SETUP of scripts/test.sh would be an unknown key).
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("TSPS_")) {
        run.env_remove(k);
    }
    let run = run
        .arg(TIMEOUT.as_secs().to_string())
        .args(["unshare", "-n"])
        .arg(manifest.join("tests/openapi/run.sh"))
        .arg(bin)
        .arg(dir)
        .arg(&st)
        .args(["-H", &format!("Authorization: Bearer {TOKEN}")])
        .args(["--max-examples", MAX_EXAMPLES, "--seed", SEED])
        .envs(ids)
        .output()
        .unwrap();
    let took = started.elapsed();
    let output = format!(
        "{}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        run.status.success(),
        "schemathesis found the server breaking its contract ({:?}, after {took:.0?}):\n\
         {output}\n----- the last lines of tsps.log -----\n{}",
        run.status,
        tail(&dir.join("tsps.log"), 40)
    );
    eprintln!("the contract holds ({took:.0?})");
}
