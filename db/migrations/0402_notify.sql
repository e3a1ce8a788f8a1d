-- Notifications (package notify): access_notifications becomes an outbox
-- for e-mail, and the chain watcher's rows queue notifications through
-- triggers, in the watcher's own transaction, for a new study minted to a
-- patient, an access request received, and a grant confirmed or revoked.
--
-- delivered_at is set once e-mail delivery is settled: sent, or not
-- needed (no address, e-mail disabled), or given up after max attempts
-- (email says which). In the portal a notification is shown from its row
-- at once; read_at is when its account marked it read.

ALTER TABLE access_notifications
    ADD COLUMN dedupe_key      text UNIQUE,
    ADD COLUMN attempts        integer NOT NULL DEFAULT 0,
    ADD COLUMN next_attempt_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN leased_until    timestamptz,
    ADD COLUMN last_error      text,
    ADD COLUMN email           text CHECK (email IN ('sent', 'no-address', 'disabled', 'failed')),
    ADD COLUMN read_at         timestamptz;

CREATE INDEX access_notifications_due ON access_notifications (next_attempt_at) WHERE delivered_at IS NULL;
CREATE INDEX access_notifications_account ON access_notifications (account, id);

-- Every new notification wakes the notifier and the portal's event
-- streams (delivered on commit; the payload is the account).
CREATE FUNCTION notify_announce() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('medimint_notifications', NEW.account);
    RETURN NULL;
END $$;
CREATE TRIGGER access_notifications_announce AFTER INSERT ON access_notifications
    FOR EACH ROW EXECUTE FUNCTION notify_announce();

-- notify_queue queues one notification, once per dedupe key (a watcher
-- rebuild replays the chain: it must not notify again), and not at all
-- for events more than a week old (a fresh database catching up on a
-- long chain must not e-mail everyone about the past).
CREATE FUNCTION notify_queue(acct text, k text, p jsonb, key text, at timestamptz) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF acct IS NULL OR acct = '' OR at < now() - interval '7 days' THEN
        RETURN;
    END IF;
    INSERT INTO access_notifications (account, kind, payload, dedupe_key) VALUES (acct, k, p, key)
    ON CONFLICT (dedupe_key) DO NOTHING;
END $$;

CREATE FUNCTION notify_record_minted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM notify_queue(NEW.holder, 'study.minted',
        jsonb_build_object('token', NEW.code || ':' || NEW.issuer, 'tx', NEW.minted_tx),
        'study.minted:' || NEW.code || ':' || NEW.issuer, NEW.minted_at);
    RETURN NULL;
END $$;
CREATE TRIGGER record_tokens_notify AFTER INSERT ON record_tokens
    FOR EACH ROW EXECUTE FUNCTION notify_record_minted();

CREATE FUNCTION notify_request() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM notify_queue(rt.holder, 'request.received',
        jsonb_build_object('token', NEW.code || ':' || NEW.issuer, 'requester', NEW.requester, 'tx', NEW.request_tx),
        'request.received:' || NEW.request_tx, NEW.requested_at)
    FROM record_tokens rt WHERE rt.code = NEW.code AND rt.issuer = NEW.issuer;
    RETURN NULL;
END $$;
CREATE TRIGGER access_requests_notify AFTER INSERT ON access_requests
    FOR EACH ROW EXECUTE FUNCTION notify_request();

-- Grants: the holder and the grantee hear that a grant is on chain and
-- that it was revoked.
CREATE FUNCTION notify_grant() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    p jsonb := jsonb_build_object('token', NEW.code || ':' || NEW.issuer, 'holder', NEW.holder,
        'grantee', NEW.grantee, 'tx', NEW.tx_hash);
    id text := NEW.tx_hash || ':' || NEW.op;
BEGIN
    IF TG_OP = 'INSERT' THEN
        PERFORM notify_queue(NEW.holder, 'grant.confirmed', p, 'grant.confirmed:' || id || ':' || NEW.holder, NEW.created_at);
        PERFORM notify_queue(NEW.grantee, 'grant.confirmed', p, 'grant.confirmed:' || id || ':' || NEW.grantee, NEW.created_at);
    END IF;
    IF NEW.state = 'revoked' AND (TG_OP = 'INSERT' OR OLD.state <> 'revoked') THEN
        p := p || jsonb_build_object('tx', NEW.ended_tx);
        PERFORM notify_queue(NEW.holder, 'grant.revoked', p, 'grant.revoked:' || id || ':' || NEW.holder, coalesce(NEW.ended_at, now()));
        PERFORM notify_queue(NEW.grantee, 'grant.revoked', p, 'grant.revoked:' || id || ':' || NEW.grantee, coalesce(NEW.ended_at, now()));
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER grants_notify AFTER INSERT OR UPDATE OF state ON grants
    FOR EACH ROW EXECUTE FUNCTION notify_grant();
