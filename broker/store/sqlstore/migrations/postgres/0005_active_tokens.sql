-- Revoking a grant's tokens looks for its active ones only. A refresh-token
-- family keeps its rotated (inactive) rows for reuse detection, so the
-- plain (kind, request_id) index made each rotation touch every earlier
-- token of the family; this partial index holds the active ones only.
CREATE INDEX oauth_tokens_active_request ON oauth_tokens (kind, request_id) WHERE active = TRUE;
