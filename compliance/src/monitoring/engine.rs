//! The monitor: takes operations one at a time, in any arrival order, and returns alerts.
//!
//! Contract:
//! - deterministic: the same operations in the same order give the same alerts and state;
//! - the booking time, not the arrival order, places an operation in the account's window, so
//!   an operation that arrives late but within the window is evaluated as if it came in time;
//! - an operation already in the window (same account and source id) is a duplicate and
//!   changes nothing; one older than the window is evaluated by the single-operation rules
//!   only and reported as late;
//! - alerts carry a content-derived id, so a caller that re-sends operations after a crash can
//!   drop alerts it already has.

use chrono::Duration;
use mapping::Transaction;

use super::alert::{Evaluation, RuleId, Skipped};
use super::config::{ConfigError, MonitoringConfig};
use super::money::{Conversion, Rates};
use super::profile::TxContext;
use super::rules::{self, Op};
use super::window::{Item, MonitorState};

pub struct Monitor {
    config: MonitoringConfig,
    rates: Rates,
    retention: Duration,
    state: MonitorState,
}

impl Monitor {
    /// A monitor with empty state.
    pub fn new(config: MonitoringConfig) -> Result<Self, ConfigError> {
        Self::with_state(config, MonitorState::default())
    }

    /// A monitor continuing from a persisted state.
    pub fn with_state(
        mut config: MonitoringConfig,
        mut state: MonitorState,
    ) -> Result<Self, ConfigError> {
        config.home_country = config.home_country.trim().to_ascii_lowercase();
        config.validate()?;
        if state.format() != super::window::STATE_FORMAT {
            return Err(ConfigError {
                field: "state".into(),
                reason: format!(
                    "format {} is not the supported {}",
                    state.format(),
                    super::window::STATE_FORMAT
                ),
            });
        }
        state.normalize();
        let rates = Rates::from_config(&config)?;
        let retention = Duration::hours(i64::from(config.retention_hours()));
        Ok(Monitor {
            config,
            rates,
            retention,
            state,
        })
    }

    pub fn config(&self) -> &MonitoringConfig {
        &self.config
    }

    pub fn state(&self) -> &MonitorState {
        &self.state
    }

    pub fn into_state(self) -> MonitorState {
        self.state
    }

    /// How long operations stay in an account's window.
    pub fn retention(&self) -> Duration {
        self.retention
    }

    /// Forgets accounts with no operation booked within the retention before `now`; returns
    /// how many. Call it now and then to keep the state small.
    pub fn drop_idle(&mut self, now: chrono::DateTime<chrono::Utc>) -> usize {
        self.state
            .drop_idle(super::window::minus(now, self.retention))
    }

    /// Evaluates one operation.
    pub fn observe(&mut self, tx: &Transaction, ctx: &TxContext<'_>) -> Evaluation {
        let mut eval = Evaluation::default();
        if let Some(reason) = unusable(tx) {
            eval.skipped.push(Skipped {
                rule: None,
                reason: format!("{reason}; operation not evaluated"),
            });
            return eval;
        }
        let account = self.state.account(&tx.account_source_id);
        if account.is_some_and(|a| a.contains(&tx.source_id)) {
            eval.duplicate = true;
            return eval;
        }
        eval.late = account.is_some_and(|a| a.is_late(tx.booked_at, self.retention));

        let currency = tx.currency.trim().to_ascii_uppercase();
        let rub = match self.rates.to_rub(tx.amount_minor, &currency) {
            Conversion::Rub(k) => Some(k),
            Conversion::NoRate => {
                self.skip_amount_rules(
                    &mut eval,
                    &format!("no rate for currency {currency} in the configuration"),
                );
                None
            }
            Conversion::Overflow => {
                self.skip_amount_rules(&mut eval, "amount too large to convert to roubles");
                None
            }
        };
        let country = self.counterparty_country(tx, ctx, &mut eval);
        let op = Op {
            tx,
            currency,
            rub,
            country,
            party: ctx.party,
        };

        let cfg = &self.config;
        // Keep the operation in its account's window unless it is late; `window_skip` says
        // why the window rules cannot look at it.
        let window_skip = if eval.late {
            Some(format!(
                "operation booked more than {} h before the newest one of its account; window \
                 not evaluated",
                self.retention.num_hours()
            ))
        } else {
            let window = self.state.account_mut(&tx.account_source_id);
            let dropped = window.insert(
                Item {
                    id: tx.source_id.clone(),
                    at: tx.booked_at,
                    direction: tx.direction,
                    amount_minor: tx.amount_minor,
                    currency: op.currency.clone(),
                    rub_minor: rub,
                    alerted: Default::default(),
                },
                self.retention,
                cfg.max_items_per_account,
            );
            if dropped > 0 {
                eval.skipped.push(Skipped {
                    rule: None,
                    reason: format!(
                        "account window full ({} operations); the oldest {dropped} dropped",
                        cfg.max_items_per_account
                    ),
                });
            }
            (!window.contains(&tx.source_id)).then(|| {
                "operation older than every other in a full account window; window not \
                 evaluated"
                    .to_owned()
            })
        };
        if let Some(reason) = &window_skip {
            for (rule, enabled) in [
                (RuleId::Structuring, cfg.structuring.enabled),
                (RuleId::Velocity, cfg.velocity.enabled),
                (RuleId::Transit, cfg.transit.enabled),
            ] {
                if enabled {
                    eval.skipped.push(Skipped {
                        rule: Some(rule),
                        reason: reason.clone(),
                    });
                }
            }
        }

        if cfg.mandatory_control.enabled {
            eval.alerts
                .extend(rules::mandatory::check(&cfg.mandatory_control, &op));
        }
        if window_skip.is_none() {
            let window = self.state.account_mut(&tx.account_source_id);
            if cfg.structuring.enabled {
                eval.alerts.extend(rules::structuring::check(
                    &cfg.structuring,
                    &cfg.mandatory_control,
                    window,
                    &op,
                ));
            }
            if cfg.velocity.enabled {
                eval.alerts
                    .extend(rules::velocity::check(&cfg.velocity, window, &op));
            }
        }
        if cfg.high_risk_geography.enabled {
            eval.alerts
                .extend(rules::geography::check(&cfg.high_risk_geography, &op));
        }
        if cfg.transit.enabled && window_skip.is_none() {
            let window = self.state.account_mut(&tx.account_source_id);
            eval.alerts
                .extend(rules::transit::check(&cfg.transit, window, &op));
        }
        if cfg.profile_mismatch.enabled {
            eval.alerts.extend(rules::profile::check(
                &cfg.profile_mismatch,
                &cfg.home_country,
                &op,
            ));
        }
        eval
    }

    fn skip_amount_rules(&self, eval: &mut Evaluation, why: &str) {
        let cfg = &self.config;
        for (rule, enabled, effect) in [
            (
                RuleId::MandatoryControl,
                cfg.mandatory_control.enabled,
                "not evaluated",
            ),
            (
                RuleId::Structuring,
                cfg.structuring.enabled,
                "not evaluated",
            ),
            (
                RuleId::Velocity,
                cfg.velocity.enabled,
                "counted but not summed",
            ),
            (RuleId::Transit, cfg.transit.enabled, "not evaluated"),
            (
                RuleId::ProfileMismatch,
                cfg.profile_mismatch.enabled,
                "turnover check not evaluated",
            ),
        ] {
            if enabled {
                eval.skipped.push(Skipped {
                    rule: Some(rule),
                    reason: format!("{why}; {effect}"),
                });
            }
        }
    }

    /// The counterparty's country from the caller, else from an IBAN counterparty account.
    fn counterparty_country(
        &self,
        tx: &Transaction,
        ctx: &TxContext<'_>,
        eval: &mut Evaluation,
    ) -> Option<(&'static str, &'static str)> {
        if let Some(given) = ctx.counterparty_country {
            match crate::lists::country::from_code(given) {
                Some(code) => return Some((code, "counterparty data")),
                None => eval.skipped.push(Skipped {
                    rule: Some(RuleId::HighRiskGeography),
                    reason: "counterparty country given is not an iso alpha-2 code; ignored".into(),
                }),
            }
        }
        tx.counterparty_account
            .as_deref()
            .and_then(rules::geography::iban_country)
            .map(|c| (c, "the counterparty's iban"))
    }
}

/// Why an operation cannot be evaluated at all, if it cannot.
fn unusable(tx: &Transaction) -> Option<&'static str> {
    if tx.source_id.trim().is_empty() {
        Some("empty source id")
    } else if tx.account_source_id.trim().is_empty() {
        Some("empty account id")
    } else if tx.amount_minor < 0 {
        Some("negative amount (the sign belongs in the direction)")
    } else if tx.currency.trim().is_empty() {
        Some("empty currency")
    } else {
        None
    }
}
