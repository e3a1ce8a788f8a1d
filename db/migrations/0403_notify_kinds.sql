-- Announce a notification's kind with its account ("<account> <kind>"),
-- so that the portal's event streams say what happened. Break-glass rows
-- are announced by package access itself (the account alone), once.
CREATE OR REPLACE FUNCTION notify_announce() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.kind <> 'break-glass' THEN
        PERFORM pg_notify('medimint_notifications', NEW.account || ' ' || NEW.kind);
    END IF;
    RETURN NULL;
END $$;
