-- Trustbroker schema, version 4 (PostgreSQL): consent records in full, and
-- the disclosure log.
--
-- A consent record keeps what the page offered (offered), the version of
-- the purposes shown (a hash over the relying party's consent-based claims,
-- their purposes and legal bases), and how the consent was given (page and
-- language). Records are never deleted by withdrawal.
--
-- disclosures is append-only: one row per release of attributes to a
-- relying party (when, which service, which attributes, which protocol).
-- Keep this file in step with migrations/sqlite/0004_consent.sql.

ALTER TABLE consents ADD COLUMN offered TEXT NOT NULL DEFAULT '[]';
ALTER TABLE consents ADD COLUMN purpose_version TEXT NOT NULL DEFAULT '';
ALTER TABLE consents ADD COLUMN method TEXT NOT NULL DEFAULT '';
ALTER TABLE consents ADD COLUMN lang TEXT NOT NULL DEFAULT '';

CREATE TABLE disclosures (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id  TEXT   NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    rp_id       TEXT   NOT NULL,
    attributes  TEXT   NOT NULL DEFAULT '[]',
    protocol    TEXT   NOT NULL DEFAULT '',
    consent_id  TEXT   NOT NULL DEFAULT '',
    occurred_at BIGINT NOT NULL
);
CREATE INDEX disclosures_account ON disclosures (account_id, seq);

CREATE INDEX oauth_tokens_client_subject ON oauth_tokens (client_id, subject);
