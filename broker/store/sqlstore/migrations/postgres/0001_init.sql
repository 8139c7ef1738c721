-- Trustbroker schema, version 1 (PostgreSQL).
--
-- Times are BIGINT microseconds since the Unix epoch, UTC, and 0 means
-- "not set". JSON values and string lists are TEXT holding JSON (kept
-- byte-for-byte, unlike jsonb). Keep this file in step with
-- migrations/sqlite/0001_init.sql.

CREATE TABLE accounts (
    id           TEXT    NOT NULL PRIMARY KEY,
    display_name TEXT    NOT NULL DEFAULT '',
    disabled     BOOLEAN NOT NULL DEFAULT FALSE,
    created_at   BIGINT  NOT NULL,
    updated_at   BIGINT  NOT NULL,
    version      BIGINT  NOT NULL DEFAULT 1
);

CREATE TABLE linked_identities (
    provider_id  TEXT   NOT NULL,
    subject      TEXT   NOT NULL,
    account_id   TEXT   NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    kind         TEXT   NOT NULL DEFAULT '',
    linked_at    BIGINT NOT NULL,
    last_used_at BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (provider_id, subject)
);
CREATE INDEX linked_identities_account ON linked_identities (account_id);

CREATE TABLE sessions (
    id              TEXT   NOT NULL PRIMARY KEY,
    account_id      TEXT   NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created_at      BIGINT NOT NULL,
    expires_at      BIGINT NOT NULL,
    last_seen_at    BIGINT NOT NULL DEFAULT 0,
    auth_time       BIGINT NOT NULL DEFAULT 0,
    loa             TEXT   NOT NULL DEFAULT '',
    amr             TEXT   NOT NULL DEFAULT '[]',
    provider_id     TEXT   NOT NULL DEFAULT '',
    credential_kind TEXT   NOT NULL DEFAULT '',
    relying_parties TEXT   NOT NULL DEFAULT '[]',
    identity        TEXT,
    version         BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX sessions_account ON sessions (account_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

CREATE TABLE login_transactions (
    id             TEXT   NOT NULL PRIMARY KEY,
    protocol       TEXT   NOT NULL DEFAULT '',
    rp_id          TEXT   NOT NULL DEFAULT '',
    state          TEXT   NOT NULL DEFAULT '',
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    request        TEXT,
    params         TEXT,
    provider_id    TEXT   NOT NULL DEFAULT '',
    provider_state TEXT,
    result         TEXT,
    account_id     TEXT   NOT NULL DEFAULT '',
    session_id     TEXT   NOT NULL DEFAULT '',
    version        BIGINT NOT NULL DEFAULT 1
);
CREATE INDEX login_transactions_expires_at ON login_transactions (expires_at);

CREATE TABLE relying_parties (
    id         TEXT   NOT NULL PRIMARY KEY,
    protocol   TEXT   NOT NULL DEFAULT '',
    name       TEXT   NOT NULL DEFAULT '',
    source     TEXT   NOT NULL DEFAULT '',
    config     TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE consents (
    id           TEXT   NOT NULL PRIMARY KEY,
    account_id   TEXT   NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    rp_id        TEXT   NOT NULL,
    attributes   TEXT   NOT NULL DEFAULT '[]',
    purpose      TEXT   NOT NULL DEFAULT '',
    granted_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL DEFAULT 0,
    withdrawn_at BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX consents_account_rp ON consents (account_id, rp_id, granted_at);

CREATE TABLE audit_events (
    seq         BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    occurred_at BIGINT NOT NULL,
    actor       TEXT   NOT NULL DEFAULT '',
    action      TEXT   NOT NULL DEFAULT '',
    target      TEXT   NOT NULL DEFAULT '',
    outcome     TEXT   NOT NULL DEFAULT '',
    reason      TEXT   NOT NULL DEFAULT '',
    request_id  TEXT   NOT NULL DEFAULT '',
    details     TEXT
);
CREATE INDEX audit_events_actor ON audit_events (actor, seq);
CREATE INDEX audit_events_action ON audit_events (action, seq);
CREATE INDEX audit_events_target ON audit_events (target, seq);
CREATE INDEX audit_events_occurred_at ON audit_events (occurred_at);

-- The audit trail is append-only: refuse every change to a stored event,
-- TRUNCATE included.
CREATE FUNCTION audit_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only'
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_events_no_change BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();
CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

CREATE TABLE signing_keys (
    id                TEXT   NOT NULL PRIMARY KEY,
    alg               TEXT   NOT NULL DEFAULT '',
    state             TEXT   NOT NULL DEFAULT '',
    public_jwk        TEXT,
    private_encrypted BYTEA,
    created_at        BIGINT NOT NULL,
    activated_at      BIGINT NOT NULL DEFAULT 0,
    retired_at        BIGINT NOT NULL DEFAULT 0,
    verify_until      BIGINT NOT NULL DEFAULT 0,
    version           BIGINT NOT NULL DEFAULT 1
);

CREATE TABLE oauth_tokens (
    kind         TEXT    NOT NULL,
    signature    TEXT    NOT NULL,
    request_id   TEXT    NOT NULL DEFAULT '',
    client_id    TEXT    NOT NULL DEFAULT '',
    subject      TEXT    NOT NULL DEFAULT '',
    active       BOOLEAN NOT NULL DEFAULT TRUE,
    requested_at BIGINT  NOT NULL,
    expires_at   BIGINT  NOT NULL,
    data         TEXT,
    PRIMARY KEY (kind, signature)
);
CREATE INDEX oauth_tokens_request ON oauth_tokens (kind, request_id);
CREATE INDEX oauth_tokens_expires_at ON oauth_tokens (expires_at);

CREATE TABLE replay_values (
    namespace  TEXT   NOT NULL,
    value      TEXT   NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (namespace, value)
);
CREATE INDEX replay_values_expires_at ON replay_values (expires_at);
