-- Trustbroker schema, version 6 (SQLite): revocation answers.
--
-- Verified OCSP responses and CRLs of card certificates, kept until their
-- nextUpdate so that replicas share them. Readers verify data again.
-- Keep this file in step with migrations/postgres/0006_revocation_cache.sql.

CREATE TABLE revocation_cache (
    cache_key  TEXT    NOT NULL PRIMARY KEY,
    data       BLOB    NOT NULL,
    fetched_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX revocation_cache_expires ON revocation_cache (expires_at);
