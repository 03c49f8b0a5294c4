-- pmtabounce: what an operator's account needs on top of grants.sql for `undo` and `explain` (issue 12).
--
-- The worker's account never deletes; `undo` removes the bounce rows the
-- records it reverts inserted (and, for complaints, finds the unsubscribe rows
-- they wrote by every column they set), and `explain` shows a subscriber's
-- rows in full. Give these to a separate account (say pmtabounce_operator): apply
-- grants.sql with DB_USER set to it, then this file with the same placeholders.
--   IEM_DATABASE=iem TABLE_PREFIX=email_ DB_USER=pmtabounce_operator DB_HOST='%' DB_PASSWORD='...' \
--     sh -c 'envsubst < grants.sql; envsubst < grants-operator.sql' | mysql -u root -p

GRANT SELECT (confirmed)
   ON `${IEM_DATABASE}`.`${TABLE_PREFIX}list_subscribers` TO '${DB_USER}'@'${DB_HOST}';
GRANT SELECT (bounceid, bouncetime, bouncetype, bouncerule), DELETE
   ON `${IEM_DATABASE}`.`${TABLE_PREFIX}list_subscriber_bounces` TO '${DB_USER}'@'${DB_HOST}';
GRANT SELECT (unsubscribetime, statid, unsubscribearea)
   ON `${IEM_DATABASE}`.`${TABLE_PREFIX}list_subscribers_unsubscribe` TO '${DB_USER}'@'${DB_HOST}';
