-- Trustbroker schema, version 3 (SQLite): WebAuthn credentials.
--
-- One row per registered public-key credential (W3C WebAuthn L3 §4
-- "credential record"). sign_count is updated by compare-and-swap so that
-- of two racing assertions exactly one wins. Booleans are 0/1.
-- Keep this file in step with migrations/postgres/0003_webauthn.sql.

CREATE TABLE webauthn_credentials (
    id                 BLOB    NOT NULL PRIMARY KEY,
    account_id         TEXT    NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    provider_id        TEXT    NOT NULL,
    user_handle        BLOB    NOT NULL,
    user_name          TEXT    NOT NULL DEFAULT '',
    public_key         BLOB    NOT NULL,
    sign_count         INTEGER NOT NULL DEFAULT 0,
    aaguid             BLOB,
    backup_eligible    INTEGER NOT NULL DEFAULT 0,
    backup_state       INTEGER NOT NULL DEFAULT 0,
    user_verified      INTEGER NOT NULL DEFAULT 0,
    transports         TEXT    NOT NULL DEFAULT '[]',
    attestation_format TEXT    NOT NULL DEFAULT '',
    attestation_type   TEXT    NOT NULL DEFAULT '',
    attested           INTEGER NOT NULL DEFAULT 0,
    discoverable       INTEGER NOT NULL DEFAULT 0,
    name               TEXT    NOT NULL DEFAULT '',
    cloned             INTEGER NOT NULL DEFAULT 0,
    created_at         INTEGER NOT NULL,
    last_used_at       INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX webauthn_credentials_account ON webauthn_credentials (account_id);
CREATE INDEX webauthn_credentials_user_name ON webauthn_credentials (provider_id, user_name);
