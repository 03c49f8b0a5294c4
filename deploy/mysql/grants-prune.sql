-- pmtabounce: the account of `pmtabounce prune` (deploy/systemd/pmtabounce-prune.timer,
-- deploy/k8s/prune-cronjob.yaml), which deletes old ledger rows and can do nothing else.
--
-- The worker's account (grants.sql) may never delete: the ledger is the evidence of what
-- was applied. Give prune an account of its own, not grants.sql, and put its URL in
-- /etc/pmtabounce/prune.env (PMTABOUNCE_MYSQL_URL=...) or the Secret's prune-mysql-url.
-- Same placeholders as grants.sql:
--   IEM_DATABASE=iem TABLE_PREFIX=email_ DB_USER=pmtabounce_prune DB_HOST='%' DB_PASSWORD='...' \
--     envsubst < grants-prune.sql | mysql -u root -p
--
-- May run before `pmtabounce setup` creates the ledger, like grants.sql: MySQL and MariaDB
-- refuse a table grant on a table that does not exist yet unless it includes CREATE. CREATE
-- on this one table lets the account create it if it were missing, and nothing else (not
-- ALTER, not DROP, not INDEX).

CREATE USER IF NOT EXISTS '${DB_USER}'@'${DB_HOST}' IDENTIFIED BY '${DB_PASSWORD}';

GRANT SELECT, DELETE, CREATE
   ON `${IEM_DATABASE}`.`${TABLE_PREFIX}pmtabounce_ledger` TO '${DB_USER}'@'${DB_HOST}';
-- The outbox's events sent or dropped before the same cutoff (docs/events.md), with their tries.
GRANT SELECT, DELETE, CREATE
   ON `${IEM_DATABASE}`.`${TABLE_PREFIX}pmtabounce_outbox` TO '${DB_USER}'@'${DB_HOST}';
GRANT SELECT, DELETE, CREATE
   ON `${IEM_DATABASE}`.`${TABLE_PREFIX}pmtabounce_outbox_attempts` TO '${DB_USER}'@'${DB_HOST}';
