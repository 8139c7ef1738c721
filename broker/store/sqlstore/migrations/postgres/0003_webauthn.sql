-- Trustbroker schema, version 3 (PostgreSQL): WebAuthn credentials.
--
-- One row per registered public-key credential (W3C WebAuthn L3 §4
-- "credential record"). sign_count is updated by compare-and-swap so that
-- of two racing assertions exactly one wins.
-- Keep this file in step with migrations/sqlite/0003_webauthn.sql.

CREATE TABLE webauthn_credentials (
    id                 BYTEA   NOT NULL PRIMARY KEY,
    account_id         TEXT    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    provider_id        TEXT    NOT NULL,
    user_handle        BYTEA   NOT NULL,
    user_name          TEXT    NOT NULL DEFAULT '',
    public_key         BYTEA   NOT NULL,
    sign_count         BIGINT  NOT NULL DEFAULT 0,
    aaguid             BYTEA,
    backup_eligible    BOOLEAN NOT NULL DEFAULT FALSE,
    backup_state       BOOLEAN NOT NULL DEFAULT FALSE,
    user_verified      BOOLEAN NOT NULL DEFAULT FALSE,
    transports         TEXT    NOT NULL DEFAULT '[]',
    attestation_format TEXT    NOT NULL DEFAULT '',
    attestation_type   TEXT    NOT NULL DEFAULT '',
    attested           BOOLEAN NOT NULL DEFAULT FALSE,
    discoverable       BOOLEAN NOT NULL DEFAULT FALSE,
    name               TEXT    NOT NULL DEFAULT '',
    cloned             BOOLEAN NOT NULL DEFAULT FALSE,
    created_at         BIGINT  NOT NULL,
    last_used_at       BIGINT  NOT NULL DEFAULT 0
);
CREATE INDEX webauthn_credentials_account ON webauthn_credentials (account_id);
CREATE INDEX webauthn_credentials_user_name ON webauthn_credentials (provider_id, user_name);
