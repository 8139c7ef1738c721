-- Trustbroker schema, version 7 (PostgreSQL): identity match keys.
--
-- match_key is the broker's keyed hash (HMAC-SHA256) of a provider's match
-- key (for the eID: the verified names and date of birth), never the data
-- itself. An unknown identity whose hash equals that of identities of the
-- same credential kind is offered linking to their account; NULL when the
-- provider gives no match key. Keep this file in step with
-- migrations/sqlite/0007_identity_match.sql.

ALTER TABLE linked_identities ADD COLUMN match_key TEXT;
CREATE INDEX linked_identities_match ON linked_identities (kind, match_key);
