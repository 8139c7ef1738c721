-- The active tokens of one grant side by side: keyed by (kind, request_id)
-- the index kept a grant's access tokens, refresh tokens and codes in three
-- distant parts of the B-tree, so a refresh rotation (one access and one
-- refresh entry replaced) changed two leaf pages of it and a code exchange
-- (code entry removed, access and refresh entries added) three. Keyed by
-- request_id first they share one leaf page; a lookup by grant and kind is
-- an equality on both columns.
CREATE INDEX oauth_tokens_active_grant ON oauth_tokens (request_id, kind) WHERE active = TRUE;
DROP INDEX oauth_tokens_active_request;
