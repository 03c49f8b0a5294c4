-- pmtabounce: what an operator's account needs on top of grants.sql for `undo`, `explain` and
-- `guard release` (issue 12).
--
-- The worker's account never deletes; `undo` removes the bounce rows the
-- records it reverts inserted (and, for complaints, finds the unsubscribe rows
-- they wrote by every column they set), `explain` shows a subscriber's
-- rows in full, and `guard release` reads them to find a held record whose
-- row a later record changed. Like grants.sql, this may run before `setup`. Give these to a separate account (say pmtabounce_operator): apply
-- grants.sql with DB_USER set to it, then this file with the same placeholders.
--   IEM_DATABASE=iem TABLE_PREFIX=email_ DB_USER=pmtabounce_operator DB_HOST='%' DB_PASSWORD='...' \
--     sh -c 'envsubst < grants.sql; envsubst < grants-operator.sql' | mysql -u root -p

GRANT SELECT (confirmed)
   ON `${IEM_DATABASE}`.`${TABLE_PREFIX}list_subscribers` TO '${DB_USER}'@'${DB_HOST}';
GRANT SELECT (bounceid, bouncetime, bouncetype, bouncerule), DELETE
   ON `${IEM_DATABASE}`.`${TABLE_PREFIX}list_subscriber_bounces` TO '${DB_USER}'@'${DB_HOST}';
GRANT SELECT (unsubscribetime, statid, unsubscribearea)
   ON `${IEM_DATABASE}`.`${TABLE_PREFIX}list_subscribers_unsubscribe` TO '${DB_USER}'@'${DB_HOST}';
