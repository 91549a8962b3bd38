//! `/tenants/{tenant_id}/users/{user_id}/profile`: the user's feature profile (handling
//! codes, forwarding, do not disturb, ringing, schedules, caller rules, attendant).
//!
//! A PUT is checked as a whole before anything is stored, and a 422 lists every
//! problem with the path of its field: the rules of
//! [`tsps_actors::feature::profile::validate`], plus what only the tenant knows (an
//! extension target must name a user of the tenant) and what the user's contacts
//! need (a code still tagged on personal contacts cannot be removed).

use super::error::{ApiError, ErrorBody, FieldIssue};
use super::extract::{ApiJson, ApiPath};
use super::profile_schema::ProfileDoc;
use super::ApiState;
use crate::contacts::{e164, ContactOwner, DialingRules};
use axum::extract::State;
use axum::Json;
use std::collections::{BTreeMap, HashSet};
use tsps_actors::feature::profile::{validate, Profile, Target};
use tsps_actors::{TenantId, UserId};

#[utoipa::path(get, path = "/tenants/{tenant_id}/users/{user_id}/profile", tag = "features",
    params(("tenant_id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 200, body = ProfileDoc,
            description = "the stored profile, or the default one"),
        (status = 404, body = ErrorBody)))]
pub async fn get_profile(
    State(st): State<ApiState>,
    ApiPath((tenant_id, user_id)): ApiPath<(TenantId, UserId)>,
) -> Result<Json<Profile>, ApiError> {
    let (profile, _) = st.store().get_profile(tenant_id, user_id).await?;
    Ok(Json(profile))
}

#[utoipa::path(put, path = "/tenants/{tenant_id}/users/{user_id}/profile", tag = "features",
    params(("tenant_id" = Uuid, Path), ("user_id" = Uuid, Path)), request_body = ProfileDoc,
    responses((status = 200, body = ProfileDoc),
        (status = 400, body = ErrorBody, description = "malformed JSON or unknown fields"),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody,
            description = "`invalid_profile`: every problem in `details`")))]
pub async fn put_profile(
    State(st): State<ApiState>,
    ApiPath((tenant_id, user_id)): ApiPath<(TenantId, UserId)>,
    ApiJson(mut profile): ApiJson<Profile>,
) -> Result<Json<Profile>, ApiError> {
    let user = st.store().get_user(tenant_id, user_id).await?;
    let extensions: HashSet<String> = st
        .store()
        .list_users(tenant_id)
        .await?
        .into_iter()
        .map(|u| u.extension)
        .collect();
    // Numbers first, so that `validate` checks the stored (E.164) form; a number that
    // cannot be normalised is reported once, by the normalisation.
    let rules = st.store().get_tenant_settings(tenant_id).await?.dialing;
    let mut issues = normalize_numbers(&mut profile, &rules, &extensions);
    if let Err(errs) = validate(&profile, &user.extension) {
        let reported: HashSet<String> = issues.iter().map(|i| i.field.clone()).collect();
        issues.extend(
            errs.into_iter()
                .filter(|e| !reported.contains(&e.field))
                .map(|e| FieldIssue::new(e.field, e.reason)),
        );
    }
    for (field, extension) in extension_targets(&profile) {
        // The user's own extension is already reported as a loop.
        if extension != user.extension && !extensions.contains(&extension) {
            issues.push(FieldIssue::new(
                field,
                format!("extension {extension} names no user of the tenant"),
            ));
        }
    }
    let mut in_use: BTreeMap<String, usize> = BTreeMap::new();
    for c in st
        .store()
        .list_contacts(tenant_id, ContactOwner::User(user_id))
        .await?
    {
        if let Some(code) = c.handling_code {
            *in_use.entry(code).or_default() += 1;
        }
    }
    for (code, count) in in_use {
        if profile.code(&code).is_none() {
            issues.push(FieldIssue::new(
                "handling_codes",
                format!(
                    "{code:?} is still the handling code of {count} personal contact(s); \
                     change those contacts first"
                ),
            ));
        }
    }
    if !issues.is_empty() {
        return Err(ApiError::unprocessable(
            "invalid_profile",
            "invalid profile",
            issues,
        ));
    }
    st.store().put_profile(tenant_id, user_id, &profile).await?;
    st.notify.user_changed(tenant_id, user_id);
    Ok(Json(profile))
}

/// Every `Extension` target of the profile, with the path of its field (the paths
/// `validate` uses).
fn extension_targets(p: &Profile) -> Vec<(String, String)> {
    let mut p = p.clone();
    p.targets_mut()
        .into_iter()
        .filter_map(|(field, t)| match t {
            Target::Extension(x) => Some((field, x.clone())),
            _ => None,
        })
        .collect()
}

/// Writes outside numbers and caller patterns in E.164 with the tenant's dialing rules
/// (`044 555 01 00` → `+41445550100`, `044*` → `+4144*`), so they match callers as
/// the trunk presents them. A tenant extension in a caller list stays as it is.
fn normalize_numbers(
    p: &mut Profile,
    rules: &DialingRules,
    extensions: &HashSet<String>,
) -> Vec<FieldIssue> {
    let mut issues = Vec::new();
    for (field, t) in p.targets_mut() {
        if let Target::Number(n) = t {
            match e164::normalize(n, rules) {
                Ok(e) => *n = e,
                Err(e) => issues.push(FieldIssue::new(field, e.to_string())),
            }
        }
    }
    for (field, c) in p.caller_patterns_mut() {
        if extensions.contains(c.as_str()) {
            continue;
        }
        let normalized = match c.strip_suffix('*') {
            Some(prefix) => e164::normalize_prefix(prefix, rules).map(|p| format!("{p}*")),
            None => e164::normalize(c, rules),
        };
        match normalized {
            Ok(e) => *c = e,
            Err(e) => issues.push(FieldIssue::new(field, e.to_string())),
        }
    }
    issues
}

#[cfg(test)]
mod tests {
    use super::*;
    use tsps_actors::feature::profile::{Handling, HandlingCode, NoAnswerForward, SequentialStep};

    #[test]
    fn every_extension_target_is_found_with_its_field() {
        let x = |e: &str| Target::Extension(e.into());
        let mut p = Profile {
            handling_codes: vec![
                HandlingCode {
                    name: "A".into(),
                    handling: Handling::Sequential {
                        steps: vec![SequentialStep {
                            target: x("1"),
                            seconds: 10,
                        }],
                        fallback: Some(x("2")),
                    },
                },
                HandlingCode {
                    name: "B".into(),
                    handling: Handling::Forward { target: x("3") },
                },
            ],
            default_handling: Handling::Forward {
                target: Target::Number("+41445550100".into()),
            },
            simultaneous: vec![Target::Devices, x("4")],
            attendant: Some(x("9")),
            ..Default::default()
        };
        p.forwarding.always = Some(x("5"));
        p.forwarding.busy = Some(Target::Attendant);
        p.forwarding.unreachable = Some(x("6"));
        p.forwarding.no_answer = Some(NoAnswerForward {
            target: x("7"),
            seconds: 20,
        });
        p.forwarding
            .selective
            .push(tsps_actors::feature::profile::SelectiveForward {
                when: Default::default(),
                target: x("8"),
            });
        let found = extension_targets(&p);
        let found: Vec<(&str, &str)> = found
            .iter()
            .map(|(f, x)| (f.as_str(), x.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                ("handling_codes[0].handling.steps[0].target", "1"),
                ("handling_codes[0].handling.fallback", "2"),
                ("handling_codes[1].handling.target", "3"),
                ("simultaneous[1]", "4"),
                ("forwarding.always", "5"),
                ("forwarding.unreachable", "6"),
                ("forwarding.no_answer.target", "7"),
                ("forwarding.selective[0].target", "8"),
                ("attendant", "9"),
            ]
        );
    }

    #[test]
    fn numbers_and_patterns_become_e164_and_bad_ones_are_named() {
        let rules = DialingRules {
            country_code: "41".into(),
            national_prefix: "0".into(),
            international_prefix: "00".into(),
        };
        let extensions: HashSet<String> = ["1002".to_string()].into();
        let mut p = Profile {
            simultaneous: vec![Target::Number("079 123 45 67".into())],
            ..Default::default()
        };
        p.forwarding.busy = Some(Target::Number("0041 44 555 01 00".into()));
        p.forwarding.unreachable = Some(Target::Number("call me".into()));
        p.caller_rules.blocked = vec!["044*".into(), "1002".into(), "+33 1 23 45 67 89".into()];
        let issues = normalize_numbers(&mut p, &rules, &extensions);
        assert_eq!(p.simultaneous, [Target::Number("+41791234567".into())]);
        assert_eq!(
            p.forwarding.busy,
            Some(Target::Number("+41445550100".into()))
        );
        assert_eq!(p.caller_rules.blocked, ["+4144*", "1002", "+33123456789"]);
        assert_eq!(issues.len(), 1, "{issues:?}");
        assert_eq!(issues[0].field, "forwarding.unreachable");
    }
}
