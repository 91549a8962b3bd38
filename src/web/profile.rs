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
use crate::contacts::ContactOwner;
use axum::extract::State;
use axum::Json;
use std::collections::{BTreeMap, HashSet};
use tsps_actors::feature::profile::{validate, Handling, Profile, Target};
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
    ApiJson(profile): ApiJson<Profile>,
) -> Result<Json<Profile>, ApiError> {
    let user = st.store().get_user(tenant_id, user_id).await?;
    let mut issues: Vec<FieldIssue> = match validate(&profile, &user.extension) {
        Ok(()) => Vec::new(),
        Err(errs) => errs
            .into_iter()
            .map(|e| FieldIssue::new(e.field, e.reason))
            .collect(),
    };
    let extensions: HashSet<String> = st
        .store()
        .list_users(tenant_id)
        .await?
        .into_iter()
        .map(|u| u.extension)
        .collect();
    for (field, extension) in extension_targets(&profile) {
        // The user's own extension is already reported as a loop.
        if extension != user.extension && !extensions.contains(extension) {
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
fn extension_targets(p: &Profile) -> Vec<(String, &str)> {
    let mut all: Vec<(String, &Target)> = Vec::new();
    let handlings = p
        .handling_codes
        .iter()
        .enumerate()
        .map(|(i, c)| (format!("handling_codes[{i}].handling"), &c.handling))
        .chain(std::iter::once((
            "default_handling".to_string(),
            &p.default_handling,
        )));
    for (field, h) in handlings {
        match h {
            Handling::Sequential { steps, fallback } => {
                for (i, s) in steps.iter().enumerate() {
                    all.push((format!("{field}.steps[{i}].target"), &s.target));
                }
                if let Some(f) = fallback {
                    all.push((format!("{field}.fallback"), f));
                }
            }
            Handling::Forward { target } => all.push((format!("{field}.target"), target)),
            Handling::Ring
            | Handling::Attendant
            | Handling::RejectBusy
            | Handling::RejectDeclined => {}
        }
    }
    for (i, t) in p.simultaneous.iter().enumerate() {
        all.push((format!("simultaneous[{i}]"), t));
    }
    let fw = &p.forwarding;
    for (name, t) in [
        ("always", &fw.always),
        ("busy", &fw.busy),
        ("unreachable", &fw.unreachable),
    ] {
        if let Some(t) = t {
            all.push((format!("forwarding.{name}"), t));
        }
    }
    if let Some(na) = &fw.no_answer {
        all.push(("forwarding.no_answer.target".into(), &na.target));
    }
    for (i, s) in fw.selective.iter().enumerate() {
        all.push((format!("forwarding.selective[{i}].target"), &s.target));
    }
    if let Some(t) = &p.attendant {
        all.push(("attendant".into(), t));
    }
    all.into_iter()
        .filter_map(|(field, t)| match t {
            Target::Extension(x) => Some((field, x.as_str())),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tsps_actors::feature::profile::{HandlingCode, NoAnswerForward, SequentialStep};

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
        let found: Vec<(&str, &str)> = found.iter().map(|(f, x)| (f.as_str(), *x)).collect();
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
}
