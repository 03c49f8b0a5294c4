#!/bin/sh
# compose only: MariaDB's entrypoint runs this once, on the first start, after the IEM schema and the
# demo rows. It fills in grants.sql's placeholders and creates the least-privilege `pmtabounce` account.
set -eu
sed -e "s/\${IEM_DATABASE}/${MARIADB_DATABASE}/g" \
    -e "s/\${TABLE_PREFIX}/email_/g" \
    -e "s/\${DB_USER}/pmtabounce/g" \
    -e "s/\${DB_HOST}/%/g" \
    -e "s/\${DB_PASSWORD}/${DB_PASSWORD}/g" \
    /pmtabounce/grants.sql \
  | mariadb --protocol=socket -uroot -p"${MARIADB_ROOT_PASSWORD}"
