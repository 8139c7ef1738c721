-- Trustbroker schema, version 2 (PostgreSQL): policy rules.
--
-- Casbin policy lines as the persist adapter in policy.go stores them: the
-- line type (p: a rule, g: a role assignment) and its values. seq keeps
-- the order lines were added in; a rule's own priority orders evaluation.
-- policy_revision counts changes, so that every replica notices them; a
-- write also sends NOTIFY trustbroker_policy.
-- Keep this file in step with migrations/sqlite/0002_policy.sql.

CREATE TABLE policy_rules (
    seq   BIGINT  GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ptype TEXT    NOT NULL,
    v0    TEXT    NOT NULL DEFAULT '',
    v1    TEXT    NOT NULL DEFAULT '',
    v2    TEXT    NOT NULL DEFAULT '',
    v3    TEXT    NOT NULL DEFAULT '',
    v4    TEXT    NOT NULL DEFAULT '',
    v5    TEXT    NOT NULL DEFAULT '',
    v6    TEXT    NOT NULL DEFAULT '',
    v7    TEXT    NOT NULL DEFAULT '',
    v8    TEXT    NOT NULL DEFAULT '',
    v9    TEXT    NOT NULL DEFAULT '',
    v10   TEXT    NOT NULL DEFAULT '',
    v11   TEXT    NOT NULL DEFAULT '',
    CHECK (ptype IN ('p', 'g'))
);
-- A rule id is used once; a role assignment is stored once.
CREATE UNIQUE INDEX policy_rules_rule_id ON policy_rules (v0) WHERE ptype = 'p';
CREATE UNIQUE INDEX policy_rules_grouping ON policy_rules (v0, v1) WHERE ptype = 'g';

CREATE TABLE policy_revision (
    id       INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
    revision BIGINT  NOT NULL
);
INSERT INTO policy_revision (id, revision) VALUES (1, 0);
