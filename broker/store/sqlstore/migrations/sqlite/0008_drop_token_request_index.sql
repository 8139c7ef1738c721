-- Every query on a grant's tokens now filters on active = TRUE and uses the
-- partial index of 0005; the full (kind, request_id) index only cost one
-- more B-tree insert for every token issued (two per refresh rotation).
DROP INDEX oauth_tokens_request;
