//! Contacts: a user's personal ones under `/tenants/{tenant_id}/users/{user_id}/contacts`
//! and the tenant's shared ones under `/tenants/{tenant_id}/contacts`, with the same
//! operations: CRUD, import (vCard or CSV body) and export.
//!
//! Numbers are normalized to E.164 with the tenant's dialing rules on every write, so
//! the call path finds a caller by plain equality; a number that cannot be is a 422
//! naming it. A personal contact's handling code must be one of the owner's codes; a
//! shared contact may name any code (it applies to the users who define it).

use super::error::{ApiError, ErrorBody, FieldIssue};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::ApiState;
use crate::contacts::{
    self, Contact, ContactDraft, ContactError, ContactId, ContactOwner, DialingRules,
    ImportedContact, LineError, VcardVersion,
};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use tsps_actors::{TenantId, UserId};
use utoipa::{IntoParams, ToSchema};

#[derive(Debug, Serialize, ToSchema)]
pub struct ContactView {
    #[schema(value_type = Uuid)]
    pub id: ContactId,
    /// A tenant-shared contact (else personal).
    pub shared: bool,
    /// The owner of a personal contact.
    #[schema(value_type = Option<Uuid>)]
    pub owner_user_id: Option<UserId>,
    pub name: String,
    pub company: Option<String>,
    pub email: Option<String>,
    pub handling_code: Option<String>,
    pub numbers: Vec<PhoneView>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PhoneView {
    /// E.164, or an extension of the tenant (a colleague).
    #[schema(example = "+41445550100")]
    pub number: String,
    /// As people read it (libphonenumber's international format).
    #[schema(example = "+41 44 555 01 00")]
    pub display: String,
    pub label: Option<String>,
}

impl From<Contact> for ContactView {
    fn from(c: Contact) -> Self {
        Self {
            id: c.id,
            shared: c.owner == ContactOwner::Shared,
            owner_user_id: c.owner.user(),
            name: c.name,
            company: c.company,
            email: c.email,
            handling_code: c.handling_code,
            numbers: c
                .numbers
                .into_iter()
                .map(|n| PhoneView {
                    display: crate::contacts::display_number(&n.number),
                    number: n.number,
                    label: n.label,
                })
                .collect(),
        }
    }
}

/// What an import did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ImportSummary {
    pub created: usize,
    /// Contacts equal to one already stored (or earlier in the file): not created again.
    pub unchanged: usize,
    /// Contacts left out because of an error; one entry each in `errors`.
    pub skipped: usize,
    pub errors: Vec<ImportIssue>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ImportIssue {
    /// Line of the file where the contact (vCard: its BEGIN) or the problem is.
    pub line: u64,
    pub message: String,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ExportQuery {
    /// `vcard` (default) or `csv`.
    #[param(inline)]
    pub format: Option<ExportFormat>,
    /// vCard version: `3.0` (default) or `4.0`.
    #[param(inline)]
    pub version: Option<VcardVersionParam>,
}

#[derive(Clone, Copy, Debug, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExportFormat {
    Vcard,
    Csv,
}

#[derive(Clone, Copy, Debug, Deserialize, ToSchema)]
pub enum VcardVersionParam {
    #[serde(rename = "3.0")]
    V3,
    #[serde(rename = "4.0")]
    V4,
}

/// What writing contacts under one owner needs to know.
struct Scope {
    tenant: TenantId,
    owner: ContactOwner,
    rules: DialingRules,
    /// The tenant's extensions: a contact may be a colleague.
    extensions: HashSet<String>,
    /// The owner's handling codes; None for shared contacts (any code goes).
    codes: Option<HashSet<String>>,
}

impl Scope {
    /// Checks that the tenant (and the user) exist: a user of another tenant is 404.
    async fn load(st: &ApiState, tenant: TenantId, owner: ContactOwner) -> Result<Self, ApiError> {
        let rules = st.store().get_tenant_settings(tenant).await?.dialing;
        let extensions = st
            .store()
            .list_users(tenant)
            .await?
            .into_iter()
            .map(|u| u.extension)
            .collect();
        let codes = match owner {
            ContactOwner::Shared => None,
            ContactOwner::User(u) => {
                let (profile, _) = st.store().get_profile(tenant, u).await?;
                Some(profile.handling_codes.into_iter().map(|c| c.name).collect())
            }
        };
        Ok(Self {
            tenant,
            owner,
            rules,
            extensions,
            codes,
        })
    }

    /// Only that the tenant and user exist (reads).
    async fn check(st: &ApiState, tenant: TenantId, owner: ContactOwner) -> Result<(), ApiError> {
        match owner {
            ContactOwner::Shared => st.store().get_tenant(tenant).await.map(drop)?,
            ContactOwner::User(u) => st.store().get_user(tenant, u).await.map(drop)?,
        }
        Ok(())
    }

    /// The draft as a contact of this scope, or every problem with it.
    fn build(&self, draft: ContactDraft, id: ContactId) -> Result<Contact, Vec<FieldIssue>> {
        let mut issues = Vec::new();
        if let (Some(codes), Some(code)) = (&self.codes, draft.handling_code.as_deref()) {
            let code = code.trim();
            if !code.is_empty() && !codes.contains(code) {
                issues.push(FieldIssue::new(
                    "handling_code",
                    format!("{code:?} is not one of the user's handling codes"),
                ));
            }
        }
        match draft.into_contact(id, self.tenant, self.owner, &self.rules, &self.extensions) {
            Ok(c) if issues.is_empty() => Ok(c),
            Ok(_) => Err(issues),
            Err(errs) => {
                issues.splice(0..0, errs.into_iter().map(issue));
                Err(issues)
            }
        }
    }

    fn changed(&self, st: &ApiState) {
        match self.owner {
            ContactOwner::Shared => st.notify.tenant_changed(self.tenant),
            ContactOwner::User(u) => st.notify.user_changed(self.tenant, u),
        }
    }
}

fn issue(e: ContactError) -> FieldIssue {
    match e {
        ContactError::Field { field, reason } => FieldIssue::new(field, reason),
        ContactError::Number { input, reason } => {
            FieldIssue::new("numbers", format!("{input:?} {reason}"))
        }
        ContactError::File { line, reason } => {
            FieldIssue::new("body", format!("line {line}: {reason}"))
        }
    }
}

fn invalid(issues: Vec<FieldIssue>) -> ApiError {
    ApiError::unprocessable("invalid_contact", "invalid contact", issues)
}

async fn list(
    st: &ApiState,
    tenant: TenantId,
    owner: ContactOwner,
) -> Result<Json<Vec<ContactView>>, ApiError> {
    Scope::check(st, tenant, owner).await?;
    let all = st.store().list_contacts(tenant, owner).await?;
    Ok(Json(all.into_iter().map(ContactView::from).collect()))
}

async fn create(
    st: &ApiState,
    tenant: TenantId,
    owner: ContactOwner,
    draft: ContactDraft,
) -> Result<(StatusCode, Json<ContactView>), ApiError> {
    let scope = Scope::load(st, tenant, owner).await?;
    let contact = scope.build(draft, ContactId::new()).map_err(invalid)?;
    super::quotas::room_for_contacts(st, tenant, owner, 1).await?;
    st.store().create_contact(tenant, &contact).await?;
    scope.changed(st);
    Ok((StatusCode::CREATED, Json(contact.into())))
}

async fn get(
    st: &ApiState,
    tenant: TenantId,
    owner: ContactOwner,
    id: ContactId,
) -> Result<Json<ContactView>, ApiError> {
    Ok(Json(
        st.store().get_contact(tenant, owner, id).await?.into(),
    ))
}

async fn update(
    st: &ApiState,
    tenant: TenantId,
    owner: ContactOwner,
    id: ContactId,
    draft: ContactDraft,
) -> Result<Json<ContactView>, ApiError> {
    let scope = Scope::load(st, tenant, owner).await?;
    let contact = scope.build(draft, id).map_err(invalid)?;
    st.store().update_contact(tenant, &contact).await?;
    scope.changed(st);
    Ok(Json(contact.into()))
}

async fn delete(
    st: &ApiState,
    tenant: TenantId,
    owner: ContactOwner,
    id: ContactId,
) -> Result<StatusCode, ApiError> {
    st.store().delete_contact(tenant, owner, id).await?;
    match owner {
        ContactOwner::Shared => st.notify.tenant_changed(tenant),
        ContactOwner::User(u) => st.notify.user_changed(tenant, u),
    }
    Ok(StatusCode::NO_CONTENT)
}

enum FileKind {
    Vcard,
    Csv,
}

fn file_kind(headers: &HeaderMap) -> Result<FileKind, ApiError> {
    let unsupported = || {
        ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the file with Content-Type: text/vcard or text/csv",
        )
    };
    let value = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(unsupported)?;
    let mime = value.split(';').next().unwrap_or("").trim();
    let charset_ok = value.split(';').skip(1).all(|p| match p.split_once('=') {
        Some((k, v)) if k.trim().eq_ignore_ascii_case("charset") => {
            let v = v.trim().trim_matches('"');
            v.eq_ignore_ascii_case("utf-8") || v.eq_ignore_ascii_case("us-ascii")
        }
        _ => true,
    });
    if !charset_ok {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "only UTF-8 files can be imported",
        ));
    }
    match mime.to_ascii_lowercase().as_str() {
        "text/vcard" | "text/x-vcard" | "text/directory" => Ok(FileKind::Vcard),
        "text/csv" => Ok(FileKind::Csv),
        _ => Err(unsupported()),
    }
}

/// The comparable content of a contact: what makes an imported one "already there".
type ContentKey = (
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Vec<(String, Option<String>)>,
);

fn content_key(c: &Contact) -> ContentKey {
    (
        c.name.clone(),
        c.company.clone(),
        c.email.clone(),
        c.handling_code.clone(),
        c.numbers
            .iter()
            .map(|n| (n.number.clone(), n.label.clone()))
            .collect(),
    )
}

async fn import(
    st: &ApiState,
    tenant: TenantId,
    owner: ContactOwner,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ImportSummary>, ApiError> {
    let kind = file_kind(&headers)?;
    let body = body.map_err(|r| {
        let code = if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            "payload_too_large"
        } else {
            "bad_request"
        };
        ApiError::new(r.status(), code, r.body_text())
    })?;
    let text = std::str::from_utf8(&body)
        .map_err(|e| ApiError::bad_request(format!("the file is not UTF-8: {e}")))?;
    let scope = Scope::load(st, tenant, owner).await?;
    // Full already: say so before reading the file.
    super::quotas::room_for_contacts(st, tenant, owner, 1).await?;
    let read = match kind {
        FileKind::Vcard => contacts::read_vcards(text),
        FileKind::Csv => contacts::read_csv(text),
    };
    let (found, mut errors): (Vec<ImportedContact>, Vec<LineError>) = read.map_err(|e| {
        ApiError::unprocessable(
            "invalid_file",
            "the file cannot be imported",
            vec![issue(e)],
        )
    })?;
    let mut seen: HashSet<ContentKey> = st
        .store()
        .list_contacts(tenant, owner)
        .await?
        .iter()
        .map(content_key)
        .collect();
    let mut new = Vec::new();
    let mut unchanged = 0;
    for imported in found {
        match scope.build(imported.draft, ContactId::new()) {
            Ok(c) => {
                if seen.insert(content_key(&c)) {
                    new.push(c);
                } else {
                    unchanged += 1;
                }
            }
            Err(issues) => errors.push(LineError {
                line: imported.line,
                message: issues
                    .iter()
                    .map(|i| format!("{}: {}", i.field, i.reason))
                    .collect::<Vec<_>>()
                    .join("; "),
            }),
        }
    }
    // All or nothing: a file that does not fit is refused whole.
    super::quotas::room_for_contacts(st, tenant, owner, new.len()).await?;
    st.store().create_contacts(tenant, &new).await?;
    if !new.is_empty() {
        scope.changed(st);
    }
    errors.sort_by_key(|e| e.line);
    Ok(Json(ImportSummary {
        created: new.len(),
        unchanged,
        skipped: errors.len(),
        errors: errors
            .into_iter()
            .map(|e| ImportIssue {
                line: e.line,
                message: e.message,
            })
            .collect(),
    }))
}

async fn export(
    st: &ApiState,
    tenant: TenantId,
    owner: ContactOwner,
    q: ExportQuery,
) -> Result<Response, ApiError> {
    Scope::check(st, tenant, owner).await?;
    let all = st.store().list_contacts(tenant, owner).await?;
    let (body, content_type, file) = match q.format.unwrap_or(ExportFormat::Vcard) {
        ExportFormat::Vcard => {
            let version = match q.version {
                Some(VcardVersionParam::V4) => VcardVersion::V4,
                Some(VcardVersionParam::V3) | None => VcardVersion::V3,
            };
            (
                contacts::write_vcards(&all, version),
                "text/vcard; charset=utf-8",
                "contacts.vcf",
            )
        }
        ExportFormat::Csv => (
            contacts::write_csv(&all),
            "text/csv; charset=utf-8",
            "contacts.csv",
        ),
    };
    let disposition = format!("attachment; filename=\"{file}\"");
    Ok((
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CONTENT_DISPOSITION,
                HeaderValue::from_str(&disposition)
                    .map_err(|_| ApiError::bad_request("bad file name"))?,
            ),
        ],
        body,
    )
        .into_response())
}

// ---------------------------------------------------------------- personal

#[utoipa::path(get, path = "/tenants/{tenant_id}/users/{user_id}/contacts", tag = "contacts",
    params(("tenant_id" = Uuid, Path), ("user_id" = Uuid, Path)),
    responses((status = 200, body = [ContactView], description = "by name"),
        (status = 404, body = ErrorBody)))]
pub async fn list_personal(
    State(st): State<ApiState>,
    ApiPath((t, u)): ApiPath<(TenantId, UserId)>,
) -> Result<Json<Vec<ContactView>>, ApiError> {
    list(&st, t, ContactOwner::User(u)).await
}

#[utoipa::path(post, path = "/tenants/{tenant_id}/users/{user_id}/contacts", tag = "contacts",
    params(("tenant_id" = Uuid, Path), ("user_id" = Uuid, Path)), request_body = ContactDraft,
    responses((status = 201, body = ContactView), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`quota_exceeded`: the tenant's or \
            the user's contacts are at their quota"),
        (status = 422, body = ErrorBody, description = "`invalid_contact`: a number that \
            cannot be made E.164, a handling code the user does not have, ...")))]
pub async fn create_personal(
    State(st): State<ApiState>,
    ApiPath((t, u)): ApiPath<(TenantId, UserId)>,
    ApiJson(draft): ApiJson<ContactDraft>,
) -> Result<(StatusCode, Json<ContactView>), ApiError> {
    create(&st, t, ContactOwner::User(u), draft).await
}

#[utoipa::path(get, path = "/tenants/{tenant_id}/users/{user_id}/contacts/{contact_id}",
    tag = "contacts",
    params(("tenant_id" = Uuid, Path), ("user_id" = Uuid, Path), ("contact_id" = Uuid, Path)),
    responses((status = 200, body = ContactView), (status = 404, body = ErrorBody)))]
pub async fn get_personal(
    State(st): State<ApiState>,
    ApiPath((t, u, id)): ApiPath<(TenantId, UserId, ContactId)>,
) -> Result<Json<ContactView>, ApiError> {
    get(&st, t, ContactOwner::User(u), id).await
}

#[utoipa::path(put, path = "/tenants/{tenant_id}/users/{user_id}/contacts/{contact_id}",
    tag = "contacts",
    params(("tenant_id" = Uuid, Path), ("user_id" = Uuid, Path), ("contact_id" = Uuid, Path)),
    request_body = ContactDraft,
    responses((status = 200, body = ContactView), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_personal(
    State(st): State<ApiState>,
    ApiPath((t, u, id)): ApiPath<(TenantId, UserId, ContactId)>,
    ApiJson(draft): ApiJson<ContactDraft>,
) -> Result<Json<ContactView>, ApiError> {
    update(&st, t, ContactOwner::User(u), id, draft).await
}

#[utoipa::path(delete, path = "/tenants/{tenant_id}/users/{user_id}/contacts/{contact_id}",
    tag = "contacts",
    params(("tenant_id" = Uuid, Path), ("user_id" = Uuid, Path), ("contact_id" = Uuid, Path)),
    responses((status = 204, description = "deleted"), (status = 404, body = ErrorBody)))]
pub async fn delete_personal(
    State(st): State<ApiState>,
    ApiPath((t, u, id)): ApiPath<(TenantId, UserId, ContactId)>,
) -> Result<StatusCode, ApiError> {
    delete(&st, t, ContactOwner::User(u), id).await
}

#[utoipa::path(post, path = "/tenants/{tenant_id}/users/{user_id}/contacts/import",
    tag = "contacts",
    params(("tenant_id" = Uuid, Path), ("user_id" = Uuid, Path)),
    request_body(description = "a vCard 3.0/4.0 or CSV file (UTF-8)",
        content((String = "text/vcard"), (String = "text/csv"))),
    responses((status = 200, body = ImportSummary,
            description = "contacts created; bad ones skipped with their line numbers"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`quota_exceeded`: the contacts \
            would not fit the quota (nothing is imported)"),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "`invalid_file`: no vCard in a \
            vCard file (not one `BEGIN:VCARD`), an unusable CSV header")))]
pub async fn import_personal(
    State(st): State<ApiState>,
    ApiPath((t, u)): ApiPath<(TenantId, UserId)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ImportSummary>, ApiError> {
    import(&st, t, ContactOwner::User(u), headers, body).await
}

#[utoipa::path(get, path = "/tenants/{tenant_id}/users/{user_id}/contacts/export",
    tag = "contacts",
    params(("tenant_id" = Uuid, Path), ("user_id" = Uuid, Path), ExportQuery),
    responses((status = 200, description = "the contacts as a file",
            content((String = "text/vcard"), (String = "text/csv"))),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn export_personal(
    State(st): State<ApiState>,
    ApiPath((t, u)): ApiPath<(TenantId, UserId)>,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> Result<Response, ApiError> {
    export(&st, t, ContactOwner::User(u), q).await
}

// ---------------------------------------------------------------- shared

#[utoipa::path(get, path = "/tenants/{tenant_id}/contacts", tag = "contacts",
    params(("tenant_id" = Uuid, Path)),
    responses((status = 200, body = [ContactView], description = "by name"),
        (status = 404, body = ErrorBody)))]
pub async fn list_shared(
    State(st): State<ApiState>,
    ApiPath(t): ApiPath<TenantId>,
) -> Result<Json<Vec<ContactView>>, ApiError> {
    list(&st, t, ContactOwner::Shared).await
}

#[utoipa::path(post, path = "/tenants/{tenant_id}/contacts", tag = "contacts",
    params(("tenant_id" = Uuid, Path)), request_body = ContactDraft,
    responses((status = 201, body = ContactView), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`quota_exceeded`: the tenant's \
            contacts are at their quota"),
        (status = 422, body = ErrorBody, description = "`invalid_contact`")))]
pub async fn create_shared(
    State(st): State<ApiState>,
    ApiPath(t): ApiPath<TenantId>,
    ApiJson(draft): ApiJson<ContactDraft>,
) -> Result<(StatusCode, Json<ContactView>), ApiError> {
    create(&st, t, ContactOwner::Shared, draft).await
}

#[utoipa::path(get, path = "/tenants/{tenant_id}/contacts/{contact_id}", tag = "contacts",
    params(("tenant_id" = Uuid, Path), ("contact_id" = Uuid, Path)),
    responses((status = 200, body = ContactView), (status = 404, body = ErrorBody)))]
pub async fn get_shared(
    State(st): State<ApiState>,
    ApiPath((t, id)): ApiPath<(TenantId, ContactId)>,
) -> Result<Json<ContactView>, ApiError> {
    get(&st, t, ContactOwner::Shared, id).await
}

#[utoipa::path(put, path = "/tenants/{tenant_id}/contacts/{contact_id}", tag = "contacts",
    params(("tenant_id" = Uuid, Path), ("contact_id" = Uuid, Path)), request_body = ContactDraft,
    responses((status = 200, body = ContactView), (status = 400, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_shared(
    State(st): State<ApiState>,
    ApiPath((t, id)): ApiPath<(TenantId, ContactId)>,
    ApiJson(draft): ApiJson<ContactDraft>,
) -> Result<Json<ContactView>, ApiError> {
    update(&st, t, ContactOwner::Shared, id, draft).await
}

#[utoipa::path(delete, path = "/tenants/{tenant_id}/contacts/{contact_id}", tag = "contacts",
    params(("tenant_id" = Uuid, Path), ("contact_id" = Uuid, Path)),
    responses((status = 204, description = "deleted"), (status = 404, body = ErrorBody)))]
pub async fn delete_shared(
    State(st): State<ApiState>,
    ApiPath((t, id)): ApiPath<(TenantId, ContactId)>,
) -> Result<StatusCode, ApiError> {
    delete(&st, t, ContactOwner::Shared, id).await
}

#[utoipa::path(post, path = "/tenants/{tenant_id}/contacts/import", tag = "contacts",
    params(("tenant_id" = Uuid, Path)),
    request_body(description = "a vCard 3.0/4.0 or CSV file (UTF-8)",
        content((String = "text/vcard"), (String = "text/csv"))),
    responses((status = 200, body = ImportSummary,
            description = "contacts created; bad ones skipped with their line numbers"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "`quota_exceeded`: the contacts \
            would not fit the quota (nothing is imported)"),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "`invalid_file`: no vCard in a \
            vCard file (not one `BEGIN:VCARD`), an unusable CSV header")))]
pub async fn import_shared(
    State(st): State<ApiState>,
    ApiPath(t): ApiPath<TenantId>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<ImportSummary>, ApiError> {
    import(&st, t, ContactOwner::Shared, headers, body).await
}

#[utoipa::path(get, path = "/tenants/{tenant_id}/contacts/export", tag = "contacts",
    params(("tenant_id" = Uuid, Path), ExportQuery),
    responses((status = 200, description = "the contacts as a file",
            content((String = "text/vcard"), (String = "text/csv"))),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn export_shared(
    State(st): State<ApiState>,
    ApiPath(t): ApiPath<TenantId>,
    ApiQuery(q): ApiQuery<ExportQuery>,
) -> Result<Response, ApiError> {
    export(&st, t, ContactOwner::Shared, q).await
}
