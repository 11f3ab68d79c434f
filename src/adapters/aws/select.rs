//! Selections: Parameter Store by path (GetParametersByPath) and Secrets Manager by name
//! prefix and tags (BatchGetSecretValue with filters), pages followed until the limit.

use std::time::Instant;

use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType};

use super::classify::classify;
use super::credentials::Signing;
use super::errors::{from_sdk, Classified};
use super::store::AwsStore;
use crate::domain::failover::{ClientKind, ErrorClass};
use crate::domain::objects::Selection;
use crate::domain::region::Region;
use crate::domain::secret::SecretValue;
use crate::domain::text::bounded;
use crate::ports::{Fetched, MatchAccount, Selected, StoreError};

/// Most results per page each API allows.
const PARAMETERS_PER_PAGE: i32 = 10;
const SECRETS_PER_PAGE: i32 = 20;
/// Pages beyond those `limit` matches need, allowed for pages AWS returns short or empty
/// (filters are applied after a page is read).
const SLACK_PAGES: usize = 50;

/// Stops a selection whose pages do not come to an end: a token seen before, or more
/// pages than the limit can need.
struct Pages {
    seen: std::collections::HashSet<String>,
    max: usize,
    what: String,
}

impl Pages {
    fn new(limit: usize, per_page: i32, what: &str) -> Pages {
        let per_page = usize::try_from(per_page).unwrap_or(1).max(1);
        Pages {
            seen: std::collections::HashSet::new(),
            max: limit / per_page + 1 + SLACK_PAGES,
            what: what.to_string(),
        }
    }

    /// Whether to read the page of `token`.
    fn next(&mut self, token: &str) -> Result<(), Classified> {
        if self.seen.len() >= self.max || !self.seen.insert(token.to_string()) {
            return Err(Classified {
                error: StoreError::new(
                    ErrorClass::Server,
                    format!(
                        "{}: the pages did not come to an end ({} read)",
                        self.what,
                        self.seen.len()
                    ),
                ),
                code: None,
            });
        }
        Ok(())
    }
}

impl AwsStore {
    /// Every page of `selection` until more than `limit` matches; the error says whether
    /// AWS refused the credentials as stale.
    pub(super) async fn select_with(
        &self,
        region: &Region,
        signing: &Signing,
        selection: &Selection,
        limit: usize,
        account: &dyn MatchAccount,
    ) -> Result<Vec<Selected>, Classified> {
        let clients = self.clients(region, signing);
        match selection {
            Selection::ParameterPath { path, recursive } => {
                self.by_path(&clients.ssm, region, path, *recursive, limit, account)
                    .await
            }
            Selection::Secrets {
                name_prefix,
                tag_key,
                tag_value,
            } => {
                let filter = |key: FilterNameStringType, value: &Option<String>| {
                    value
                        .as_ref()
                        .map(|v| Filter::builder().key(key).values(v).build())
                };
                let filters: Vec<Filter> = [
                    filter(FilterNameStringType::Name, name_prefix),
                    filter(FilterNameStringType::TagKey, tag_key),
                    filter(FilterNameStringType::TagValue, tag_value),
                ]
                .into_iter()
                .flatten()
                .collect();
                self.by_filters(&clients.secrets, region, filters, selection, limit, account)
                    .await
            }
        }
    }

    async fn by_path(
        &self,
        client: &aws_sdk_ssm::Client,
        region: &Region,
        path: &str,
        recursive: bool,
        limit: usize,
        account: &dyn MatchAccount,
    ) -> Result<Vec<Selected>, Classified> {
        let what = format!("GetParametersByPath {} in {region}", bounded(path));
        let mut pages = Pages::new(limit, PARAMETERS_PER_PAGE, &what);
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let started = Instant::now();
            let sent = client
                .get_parameters_by_path()
                .path(path)
                .recursive(recursive)
                .with_decryption(true)
                .max_results(PARAMETERS_PER_PAGE)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| from_sdk(&what, e));
            self.record(
                "ssm",
                "GetParametersByPath",
                region,
                sent.as_ref().err().map(|c| c.error.class),
                started,
            );
            let page = sent?;
            for p in page.parameters() {
                // Counted before it is copied out of the page.
                let size = p.value().map_or(0, str::len);
                account.take(size).map_err(Classified::plain)?;
                found.push(Selected {
                    name: p.name().unwrap_or_default().to_string(),
                    fetched: Fetched {
                        value: SecretValue::new(p.value().unwrap_or_default().as_bytes().to_vec()),
                        version: p.version().to_string(),
                    },
                });
            }
            token = page.next_token().map(str::to_string);
            match &token {
                Some(t) if found.len() <= limit => pages.next(t)?,
                _ => return Ok(found),
            }
        }
    }

    async fn by_filters(
        &self,
        client: &aws_sdk_secretsmanager::Client,
        region: &Region,
        filters: Vec<Filter>,
        selection: &Selection,
        limit: usize,
        account: &dyn MatchAccount,
    ) -> Result<Vec<Selected>, Classified> {
        let what = format!("BatchGetSecretValue {selection} in {region}");
        let mut pages = Pages::new(limit, SECRETS_PER_PAGE, &what);
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let started = Instant::now();
            let sent = client
                .batch_get_secret_value()
                .set_filters(Some(filters.clone()))
                .max_results(SECRETS_PER_PAGE)
                .set_next_token(token.take())
                .send()
                .await
                .map_err(|e| from_sdk(&what, e));
            self.record(
                "secretsmanager",
                "BatchGetSecretValue",
                region,
                sent.as_ref().err().map(|c| c.error.class),
                started,
            );
            let page = sent?;
            // A secret the filters chose but that could not be read fails the selection,
            // naming it: a mount never silently lacks a file it would otherwise have.
            if let Some(e) = page.errors().first() {
                let code = e.error_code().map(str::to_string);
                let class = classify(code.as_deref(), None);
                return Err(Classified {
                    error: StoreError::new(
                        class,
                        format!(
                            "{what}: secret `{}`: {}: {}",
                            bounded(e.secret_id().unwrap_or("?")),
                            code.as_deref().unwrap_or("error"),
                            e.message().unwrap_or("no message")
                        ),
                    ),
                    code,
                });
            }
            for s in page.secret_values() {
                let size = s
                    .secret_string()
                    .map(str::len)
                    .or(s.secret_binary().map(|b| b.as_ref().len()))
                    .unwrap_or(0);
                account.take(size).map_err(Classified::plain)?;
                let value = match (s.secret_string(), s.secret_binary()) {
                    (Some(text), _) => SecretValue::new(text.as_bytes().to_vec()),
                    (None, Some(b)) => SecretValue::new(b.as_ref().to_vec()),
                    (None, None) => {
                        return Err(Classified {
                            error: StoreError::new(
                                ErrorClass::Client(ClientKind::Invalid),
                                format!(
                                    "{what}: secret `{}` has neither SecretString nor SecretBinary",
                                    bounded(s.name().unwrap_or("?"))
                                ),
                            ),
                            code: None,
                        })
                    }
                };
                found.push(Selected {
                    name: s.name().unwrap_or_default().to_string(),
                    fetched: Fetched {
                        value,
                        version: s.version_id().unwrap_or_default().to_string(),
                    },
                });
            }
            token = page.next_token().map(str::to_string);
            match &token {
                Some(t) if found.len() <= limit => pages.next(t)?,
                _ => return Ok(found),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_end_on_a_repeated_token_or_past_what_the_limit_needs() {
        let mut pages = Pages::new(256, 20, "BatchGetSecretValue x");
        assert!(pages.next("a").is_ok());
        assert!(pages.next("b").is_ok());
        let e = pages.next("a").unwrap_err();
        assert_eq!(e.error.class, ErrorClass::Server);
        assert!(e.error.message.contains("did not come to an end"));
        let mut pages = Pages::new(10, 10, "GetParametersByPath /p");
        let read = (0..1000)
            .take_while(|i| pages.next(&i.to_string()).is_ok())
            .count();
        assert_eq!(read, 10 / 10 + 1 + SLACK_PAGES);
    }
}
