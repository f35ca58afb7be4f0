-- Tell every node process when a site key changes (added, revoked, removed), so in-memory
-- key caches are dropped at once, whichever process (or CLI) made the change.
CREATE FUNCTION exchange_keys_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('exchange_keys', coalesce(NEW.key_id, OLD.key_id));
    RETURN NULL;
END $$;

CREATE TRIGGER site_keys_changed AFTER INSERT OR UPDATE OR DELETE ON site_keys
    FOR EACH ROW EXECUTE FUNCTION exchange_keys_changed();
