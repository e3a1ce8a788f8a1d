-- A study belongs to the organisation that first stored it (studies.org_id).
-- An instance stored by any other organisation into that study is refused
-- here, in the transaction that files it, whatever the path (STOW-RS,
-- C-STORE, an overwrite), so that the rule is enforced in one place. The
-- SQLSTATE MM403 is what package mint maps to "Refused: Not authorized".
CREATE OR REPLACE FUNCTION instances_same_org() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    owner text;
BEGIN
    SELECT org_id INTO owner FROM studies WHERE pk = NEW.study_pk;
    IF owner IS DISTINCT FROM NEW.org_id THEN
        RAISE EXCEPTION 'study belongs to another organisation'
            USING ERRCODE = 'MM403';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER instances_same_org BEFORE INSERT ON instances
    FOR EACH ROW EXECUTE FUNCTION instances_same_org();
