//! Mastership rules: per entity and field, which system is the source of truth and how a
//! value survives when several systems hold one.
//!
//! Contract: a field's rule names an optional master system, an ordered fallback list and a
//! survivorship rule. The systems allowed to supply the field are the master and the
//! fallbacks; when a rule names neither, every system is allowed. So a field mastered by the
//! CRM with no fallback can never take a bank system's value. Empty values never compete
//! (see [`crate::mdm::survivorship`]), so a value is never overwritten by an empty one.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Core banking: master of identity and financial data by default.
pub const SYSTEM_ABS: &str = "abs";
/// Card processing.
pub const SYSTEM_CARDS: &str = "cards";
/// The CRM: master of contact preferences, marketing consent and notes by default.
pub const SYSTEM_CRM: &str = "crm";

/// How a field's value is chosen among the allowed systems when the master has none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SurvivorshipRule {
    /// The first system in `fallback` order that holds a value.
    SourcePriority,
    /// The newest value (event time, then version) among the allowed systems.
    MostRecent,
    /// The value with the most filled parts (list items, object fields), then the longest,
    /// then the newest.
    MostComplete,
}

/// The rule for one field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldRule {
    /// The system whose value wins whenever it holds one, for example `abs`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub master: Option<String>,
    /// Systems allowed after the master, in priority order (used by `source_priority`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallback: Vec<String>,
    /// How the value is chosen when the master holds none.
    pub rule: SurvivorshipRule,
}

impl FieldRule {
    /// A field mastered by `system` alone: no other system may supply it.
    pub fn mastered_by(system: &str) -> Self {
        FieldRule {
            master: Some(system.to_owned()),
            fallback: Vec::new(),
            rule: SurvivorshipRule::SourcePriority,
        }
    }

    /// A field mastered by `system`, then taken from `fallback` in that order.
    pub fn with_fallback(system: &str, fallback: &[&str]) -> Self {
        FieldRule {
            master: Some(system.to_owned()),
            fallback: fallback.iter().map(|s| (*s).to_owned()).collect(),
            rule: SurvivorshipRule::SourcePriority,
        }
    }

    /// A field with no master that any system may supply, chosen by `rule`.
    pub fn open(rule: SurvivorshipRule) -> Self {
        FieldRule {
            master: None,
            fallback: Vec::new(),
            rule,
        }
    }

    /// Whether `system` may supply this field.
    pub fn allows(&self, system: &str) -> bool {
        if self.master.is_none() && self.fallback.is_empty() {
            return true;
        }
        self.master.as_deref() == Some(system) || self.fallback.iter().any(|s| s == system)
    }

    /// Position of `system` in priority order: 0 for the master, then the fallbacks; systems
    /// not named (allowed only by an open rule) come after all named ones.
    pub fn rank(&self, system: &str) -> usize {
        if self.master.as_deref() == Some(system) {
            return 0;
        }
        match self.fallback.iter().position(|s| s == system) {
            Some(i) => i + 1,
            None => self.fallback.len() + 1,
        }
    }
}

/// The rules for one entity (for example `party`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EntityRules {
    /// The rule for fields not listed in `fields`.
    pub default: FieldRule,
    /// Rules per canonical field name (`last_name`, `phones`, `marketing_consent`, ...).
    #[serde(default)]
    pub fields: BTreeMap<String, FieldRule>,
}

impl EntityRules {
    /// The rule that governs `field`.
    pub fn rule(&self, field: &str) -> &FieldRule {
        self.fields.get(field).unwrap_or(&self.default)
    }
}

/// Mastership rules for every entity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MastershipConfig {
    /// Rules per entity name: `party`, `account`, `card`.
    pub entities: BTreeMap<String, EntityRules>,
}

/// A mastership configuration that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MastershipError {
    /// A system name is empty.
    #[error("mastership: entity {entity}, field {field}: empty system name")]
    EmptySystem {
        /// The entity.
        entity: String,
        /// The field, or `default`.
        field: String,
    },
    /// A system appears twice among master and fallback.
    #[error("mastership: entity {entity}, field {field}: system {system} is listed twice")]
    Repeated {
        /// The entity.
        entity: String,
        /// The field, or `default`.
        field: String,
        /// The repeated system.
        system: String,
    },
    /// `source_priority` without any system to order by.
    #[error(
        "mastership: entity {entity}, field {field}: source_priority needs a master or a fallback list"
    )]
    PriorityWithoutOrder {
        /// The entity.
        entity: String,
        /// The field, or `default`.
        field: String,
    },
}

impl MastershipConfig {
    /// The rules for `entity`, if configured.
    pub fn entity(&self, entity: &str) -> Option<&EntityRules> {
        self.entities.get(entity)
    }

    /// Checks every rule: no empty or repeated system names, and `source_priority` only where
    /// there is an order to follow. Does no IO.
    pub fn validate(&self) -> Result<(), MastershipError> {
        for (entity, rules) in &self.entities {
            let all = std::iter::once(("default", &rules.default))
                .chain(rules.fields.iter().map(|(f, r)| (f.as_str(), r)));
            for (field, rule) in all {
                check_rule(entity, field, rule)?;
            }
        }
        Ok(())
    }
}

fn check_rule(entity: &str, field: &str, rule: &FieldRule) -> Result<(), MastershipError> {
    let mut seen: Vec<&str> = Vec::new();
    for system in rule.master.iter().chain(rule.fallback.iter()) {
        if system.trim().is_empty() {
            return Err(MastershipError::EmptySystem {
                entity: entity.to_owned(),
                field: field.to_owned(),
            });
        }
        if seen.contains(&system.as_str()) {
            return Err(MastershipError::Repeated {
                entity: entity.to_owned(),
                field: field.to_owned(),
                system: system.clone(),
            });
        }
        seen.push(system);
    }
    if rule.rule == SurvivorshipRule::SourcePriority && seen.is_empty() {
        return Err(MastershipError::PriorityWithoutOrder {
            entity: entity.to_owned(),
            field: field.to_owned(),
        });
    }
    Ok(())
}

/// Party fields whose master is core banking: identity.
pub const IDENTITY_FIELDS: [&str; 10] = [
    "kind",
    "last_name",
    "first_name",
    "middle_name",
    "full_name",
    "inn",
    "snils",
    "passport",
    "birth_date",
    "ogrn",
];

/// Party fields whose master is core banking: financial standing.
pub const FINANCIAL_FIELDS: [&str; 2] = ["segment", "status"];

/// Party fields mastered by the CRM alone.
pub const CRM_FIELDS: [&str; 3] = ["contact_preferences", "marketing_consent", "notes"];

/// Party contact fields: the newest non-empty value wins, from any system.
pub const CONTACT_FIELDS: [&str; 3] = ["phones", "emails", "addresses"];

impl Default for MastershipConfig {
    /// The bank's usual split: core banking (`abs`) masters identity and financial data,
    /// with the card system and then the CRM as fallbacks for identity (a customer known only
    /// there still gets a name); the CRM alone masters contact preferences, marketing consent
    /// and notes; phones, e-mails and addresses take the newest non-empty value from any
    /// system. Accounts are mastered by core banking and cards by the card system.
    fn default() -> Self {
        let mut party = BTreeMap::new();
        for f in IDENTITY_FIELDS {
            party.insert(
                f.to_owned(),
                FieldRule::with_fallback(SYSTEM_ABS, &[SYSTEM_CARDS, SYSTEM_CRM]),
            );
        }
        for f in FINANCIAL_FIELDS {
            party.insert(f.to_owned(), FieldRule::mastered_by(SYSTEM_ABS));
        }
        for f in CRM_FIELDS {
            party.insert(f.to_owned(), FieldRule::mastered_by(SYSTEM_CRM));
        }
        for f in CONTACT_FIELDS {
            party.insert(f.to_owned(), FieldRule::open(SurvivorshipRule::MostRecent));
        }
        let mut entities = BTreeMap::new();
        entities.insert(
            "party".to_owned(),
            EntityRules {
                default: FieldRule::open(SurvivorshipRule::MostRecent),
                fields: party,
            },
        );
        entities.insert(
            "account".to_owned(),
            EntityRules {
                default: FieldRule::mastered_by(SYSTEM_ABS),
                fields: BTreeMap::new(),
            },
        );
        entities.insert(
            "card".to_owned(),
            EntityRules {
                default: FieldRule::with_fallback(SYSTEM_CARDS, &[SYSTEM_ABS]),
                fields: BTreeMap::new(),
            },
        );
        MastershipConfig { entities }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example in docs/master-data.md, kept in step by this test.
    const EXAMPLE: &str = r#"
[entities.party.default]
rule = "most_recent"

[entities.party.fields.last_name]
master = "abs"
fallback = ["cards", "crm"]
rule = "source_priority"

[entities.party.fields.phones]
rule = "most_recent"

[entities.party.fields.addresses]
master = "abs"
fallback = ["cards"]
rule = "most_complete"

[entities.party.fields.marketing_consent]
master = "crm"
rule = "source_priority"
"#;

    #[test]
    fn example_config_parses_and_validates() {
        let c: MastershipConfig = toml::from_str(EXAMPLE).unwrap();
        c.validate().unwrap();
        let party = c.entity("party").unwrap();
        assert_eq!(party.rule("phones").rule, SurvivorshipRule::MostRecent);
        assert_eq!(party.rule("segment"), &party.default);
        assert!(party.rule("marketing_consent").allows("crm"));
        assert!(!party.rule("marketing_consent").allows("abs"));
        assert_eq!(party.rule("addresses").rule, SurvivorshipRule::MostComplete);
    }

    #[test]
    fn unknown_keys_are_refused() {
        let bad = "[entities.party.default]\nrule = \"most_recent\"\nmastr = \"abs\"\n";
        let e = toml::from_str::<MastershipConfig>(bad).unwrap_err();
        assert!(e.to_string().contains("mastr"), "{e}");
        let bad = "[entities.party.default]\nrule = \"newest\"\n";
        assert!(toml::from_str::<MastershipConfig>(bad).is_err());
    }

    #[test]
    fn defaults_follow_the_bank_split() {
        let c = MastershipConfig::default();
        c.validate().unwrap();
        let party = c.entity("party").unwrap();
        for f in IDENTITY_FIELDS {
            assert_eq!(party.rule(f).master.as_deref(), Some("abs"), "{f}");
        }
        for f in CRM_FIELDS {
            let r = party.rule(f);
            assert!(
                r.allows("crm") && !r.allows("abs") && !r.allows("cards"),
                "{f}"
            );
        }
        for f in ["phones", "emails"] {
            assert_eq!(party.rule(f).rule, SurvivorshipRule::MostRecent);
            assert!(party.rule(f).allows("anything"));
        }
        assert!(!party.rule("segment").allows("crm"));
        // The defaults round-trip through TOML.
        let text = toml::to_string(&c).unwrap();
        assert_eq!(toml::from_str::<MastershipConfig>(&text).unwrap(), c);
    }

    #[test]
    fn validate_names_the_bad_rule() {
        let mut c = MastershipConfig::default();
        let party = c.entities.get_mut("party").unwrap();
        party.fields.insert(
            "notes".into(),
            FieldRule::with_fallback("crm", &["abs", "crm"]),
        );
        assert_eq!(
            c.validate().unwrap_err().to_string(),
            "mastership: entity party, field notes: system crm is listed twice"
        );
        let mut c = MastershipConfig::default();
        c.entities.get_mut("party").unwrap().default = FieldRule {
            master: None,
            fallback: vec![],
            rule: SurvivorshipRule::SourcePriority,
        };
        assert!(matches!(
            c.validate(),
            Err(MastershipError::PriorityWithoutOrder { .. })
        ));
        let mut c = MastershipConfig::default();
        c.entities.get_mut("party").unwrap().default = FieldRule::mastered_by(" ");
        assert!(matches!(
            c.validate(),
            Err(MastershipError::EmptySystem { .. })
        ));
    }

    #[test]
    fn rank_orders_master_fallback_others() {
        let r = FieldRule::with_fallback("abs", &["cards", "crm"]);
        assert_eq!(r.rank("abs"), 0);
        assert_eq!(r.rank("cards"), 1);
        assert_eq!(r.rank("crm"), 2);
        assert_eq!(r.rank("other"), 3);
        assert!(!r.allows("other"));
    }
}
