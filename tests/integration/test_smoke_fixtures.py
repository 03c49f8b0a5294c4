def test_fixtures_give_a_database_and_a_vhost(iem_db, vhost):
    assert iem_db.query("SELECT COUNT(*) FROM {t.ledger}") == [(0,)]
    assert vhost.url.endswith(vhost.name)
