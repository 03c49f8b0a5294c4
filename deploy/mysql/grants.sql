-- pmtabounce: least-privilege MySQL/MariaDB grants.
--
-- Exactly what the worker (and `pmtabounce process`, `status`, `setup`) needs,
-- column by column, and nothing else: it can never ALTER or DROP an IEM table,
-- never DELETE from one but email_list_subscribers_unsubscribe (a complaint
-- replaces a row's pending requests there, as IEM's unsubscribe does), never
-- read list passwords, never change an address.
--
-- Placeholders (envsubst / Python string.Template syntax):
--   ${IEM_DATABASE}  the IEM database, e.g. iem
--   ${TABLE_PREFIX}  IEM's table prefix, e.g. email_ (PMTABOUNCE_TABLE_PREFIX)
--   ${DB_USER}       the account pmtabounce connects as, e.g. pmtabounce
--   ${DB_HOST}       where it connects from, e.g. 10.0.0.% or %
--   ${DB_PASSWORD}   its password
--
-- Apply as an administrator:
--   IEM_DATABASE=iem TABLE_PREFIX=email_ DB_USER=pmtabounce DB_HOST='%' DB_PASSWORD='...' \
--     envsubst < grants.sql | mysql -u root -p
--
-- Table-level grants that include CREATE work before the table exists, so this
-- can run before `pmtabounce setup` creates pmtabounce's own tables. `undo`,
-- `explain` and `guard` need a little more: grants-operator.sql, for an
-- operator's account; `prune` an account of its own: grants-prune.sql.

CREATE USER IF NOT EXISTS '${DB_USER}'@'${DB_HOST}' IDENTIFIED BY '${DB_PASSWORD}';

-- Step 1 (find the active subscriber, locked) and step 5 (disable it); a complaint's
-- link is checked against confirmcode, and the complainer's rows unsubscribed.
GRANT SELECT (subscriberid, listid, emailaddress, confirmcode, confirmed, confirmdate, unsubscribed, bounced),
      UPDATE (bounced, unsubscribed, unsubscribeconfirmed)
   ON `${IEM_DATABASE}`.`${TABLE_PREFIX}list_subscribers` TO '${DB_USER}'@'${DB_HOST}';

-- Complaints: a row's pending unsubscribe requests give way to the one unsubscribe row.
GRANT SELECT (subscriberid, listid, unsubscriberequesttime, unsubscriberequestip),
      INSERT (subscriberid, unsubscribetime, unsubscribeip, unsubscriberequesttime, unsubscriberequestip, listid,
              statid, unsubscribearea),
      DELETE
   ON `${IEM_DATABASE}`.`${TABLE_PREFIX}list_subscribers_unsubscribe` TO '${DB_USER}'@'${DB_HOST}';

-- Steps 2 and 4: one bounce row per (subscriber, campaign, list).
GRANT SELECT (subscriberid, statid, listid),
      INSERT (subscriberid, statid, listid, bouncetime, bouncetype, bouncerule, bouncemessage)
   ON `${IEM_DATABASE}`.`${TABLE_PREFIX}list_subscriber_bounces` TO '${DB_USER}'@'${DB_HOST}';

-- Step 5 and complaints: the list's counters.
GRANT SELECT (listid, name, bouncecount, unsubscribecount, subscribecount),
      UPDATE (bouncecount, unsubscribecount, subscribecount)
   ON `${IEM_DATABASE}`.`${TABLE_PREFIX}lists` TO '${DB_USER}'@'${DB_HOST}';

-- Step 3 and complaints: the campaign's bounce and unsubscribe counters.
GRANT SELECT (statid, bouncecount_hard, bouncecount_soft, bouncecount_unknown, unsubscribecount),
      UPDATE (bouncecount_hard, bouncecount_soft, bouncecount_unknown, unsubscribecount)
   ON `${IEM_DATABASE}`.`${TABLE_PREFIX}stats_newsletters` TO '${DB_USER}'@'${DB_HOST}';
GRANT SELECT (statid, bouncecount_hard, bouncecount_soft, bouncecount_unknown, unsubscribecount),
      UPDATE (bouncecount_hard, bouncecount_soft, bouncecount_unknown, unsubscribecount)
   ON `${IEM_DATABASE}`.`${TABLE_PREFIX}stats_autoresponders` TO '${DB_USER}'@'${DB_HOST}';

-- pmtabounce's own tables: the ledger (one row per applied record) and the
-- schema version. CREATE, ALTER and INDEX let `pmtabounce setup` create and
-- migrate them; they cover these two tables only. No DELETE and no DROP: the
-- ledger is the evidence of what was applied. (Table-wide UPDATE because a
-- column grant needs the table to exist already.)
GRANT SELECT, INSERT, UPDATE, CREATE, ALTER, INDEX
   ON `${IEM_DATABASE}`.`${TABLE_PREFIX}pmtabounce_ledger` TO '${DB_USER}'@'${DB_HOST}';
GRANT SELECT, INSERT, UPDATE, CREATE, ALTER, INDEX
   ON `${IEM_DATABASE}`.`${TABLE_PREFIX}pmtabounce_meta` TO '${DB_USER}'@'${DB_HOST}';

-- The domain guard's state (counted in every batch with hard bounces) and the
-- audit of operator actions (`guard trip/release/discard`, `undo`).
GRANT SELECT, INSERT, UPDATE, CREATE, ALTER, INDEX
   ON `${IEM_DATABASE}`.`${TABLE_PREFIX}pmtabounce_guard_domains` TO '${DB_USER}'@'${DB_HOST}';
GRANT SELECT, INSERT, UPDATE, CREATE, ALTER, INDEX
   ON `${IEM_DATABASE}`.`${TABLE_PREFIX}pmtabounce_guard_windows` TO '${DB_USER}'@'${DB_HOST}';
GRANT SELECT, INSERT, UPDATE, CREATE, ALTER, INDEX
   ON `${IEM_DATABASE}`.`${TABLE_PREFIX}pmtabounce_audit` TO '${DB_USER}'@'${DB_HOST}';
-- `pmtabounce prune` deletes old ledger rows, which the account above may not: it has an account of its
-- own, deploy/mysql/grants-prune.sql.

-- Events (docs/events.md): our outbox, and the body of IEM's Subscribe call (the list's custom fields,
-- tables of every IEM 6.x).
GRANT SELECT, INSERT, UPDATE, CREATE, ALTER, INDEX
   ON `${IEM_DATABASE}`.`${TABLE_PREFIX}pmtabounce_outbox` TO '${DB_USER}'@'${DB_HOST}';
GRANT SELECT, INSERT, UPDATE, CREATE, ALTER, INDEX
   ON `${IEM_DATABASE}`.`${TABLE_PREFIX}pmtabounce_outbox_attempts` TO '${DB_USER}'@'${DB_HOST}';
GRANT SELECT ON `${IEM_DATABASE}`.`${TABLE_PREFIX}customfields` TO '${DB_USER}'@'${DB_HOST}';
GRANT SELECT ON `${IEM_DATABASE}`.`${TABLE_PREFIX}customfield_lists` TO '${DB_USER}'@'${DB_HOST}';
GRANT SELECT ON `${IEM_DATABASE}`.`${TABLE_PREFIX}subscribers_data` TO '${DB_USER}'@'${DB_HOST}';

-- IEM 6.5.1's list webhooks: which URLs (webhooks), the log row of every call. LAST, on purpose: an IEM
-- before 6.5.1 has no such tables, and a GRANT on a missing table fails ("ERROR 1146 ... doesn't exist"),
-- which stops the mysql client here, after every grant above. There that error is expected and harmless
-- (pmtabounce then sends no webhook); on IEM 6.5.1 and later both apply.
GRANT SELECT ON `${IEM_DATABASE}`.`${TABLE_PREFIX}webhooks` TO '${DB_USER}'@'${DB_HOST}';
GRANT INSERT ON `${IEM_DATABASE}`.`${TABLE_PREFIX}webhook_logs` TO '${DB_USER}'@'${DB_HOST}';
