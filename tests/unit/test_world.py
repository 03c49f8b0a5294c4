"""The world generator: the same world for the same seed, and every quirk the process tests rely on."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
from pmtabounce.common.accounting import AccountingFile, RejectedRow
from pmtabounce.common.complaint import ComplaintRecord

from pmtabounce.demo.world import World

ISO_TIME = re.compile(r"(^|,)\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d{4}(,|$)", re.M)


def parse(paths: list[Path]) -> tuple[list, list[RejectedRow], list[AccountingFile]]:
    """Bounce records, rejected rows and the parsed files (complaints: `complaints_of`)."""
    records, rejected, files = [], [], []
    for path in paths:
        source = AccountingFile(path)
        for item in source:
            if not isinstance(item, ComplaintRecord):
                (rejected if isinstance(item, RejectedRow) else records).append(item)
        files.append(source)
    return records, rejected, files


def complaints_of(paths: list[Path]) -> list[ComplaintRecord]:
    return [item for path in paths for item in AccountingFile(path) if isinstance(item, ComplaintRecord)]


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    world = World.generate(1, subscribers=300, records=1500, files=5)
    paths = world.write_files(tmp_path_factory.mktemp("world"))
    return world, paths, *parse(paths)


def test_the_same_seed_gives_the_same_files_and_another_seed_other_files(tmp_path):
    def contents(seed: int, name: str) -> list[bytes]:
        paths = World.generate(seed, subscribers=200, records=400, files=3).write_files(tmp_path / name)
        return [path.read_bytes() for path in paths]

    assert contents(9, "a") == contents(9, "b")
    assert contents(9, "a") != contents(10, "c")


def test_sizes_are_what_was_asked(small):
    world, paths, records, rejected, _ = small
    assert world.record_count == 1500 == len(records) + len(rejected)
    assert len({r.emailaddress.lower() for r in world.subscribers}) == 300
    assert [p.name for p in paths] == sorted(p.name for p in paths) and len(paths) == 5 + 3


def test_files_have_both_header_variants_iso_times_and_both_line_ends(small):
    _, paths, _, _, files = small
    headers = [" ".join(f.header or ()).lower() for f in files]
    assert any("header_x-list-id" in h for h in headers) and any("header_x-mailer-lid" in h for h in headers)
    texts = [p.read_bytes() for p in paths]
    assert any(ISO_TIME.search(t.decode("utf-8", "replace")) for t in texts)
    crlf_headers = [t[: t.find(b"\n")].endswith(b"\r") for t in texts if t]
    assert any(crlf_headers) and not all(crlf_headers)
    assert texts.count(b"") == 1 and any(f.header and f.counts.rows == 0 for f in files)
    assert any(f.counts.rows and f.counts.rows == f.counts.skipped for f in files)  # only d/t rows


def test_records_cover_every_category_and_trouble(small):
    world, _, records, rejected, files = small
    categories = Counter(r.category for r in records)
    for category in ("bad-mailbox", "quota-issues", "policy-related", "hardbnc", ""):
        assert categories[category] > 0, category
    diags = [r.dsn_diag for r in records]
    assert any("\n" in d for d in diags) and any('"' in d for d in diags) and any("," in d for d in diags)
    assert any("\ufffd" in d for d in diags)
    assert any(len(r.list_ids) > 1 for r in records) and any(not r.list_ids for r in records)
    statids = {c.statid for c in world.campaigns}
    assert any(r.statid == 0 for r in records) and any(r.statid and r.statid not in statids for r in records)
    stored = {s.emailaddress for s in world.subscribers}
    assert any(r.rcpt not in stored and r.rcpt.lower() in {a.lower() for a in stored} for r in records)
    assert sum(f.counts.skipped for f in files) > 0
    reasons = " ".join(r.reason for r in rejected)
    assert "rcpt is empty" in reasons and "timeLogged" in reasons


def test_duplicates_reappear_in_later_files(small):
    _, _, records, _, _ = small
    first_file = {}
    later = 0
    for r in records:
        first = first_file.setdefault(r.fingerprint, r.source_file)
        later += first < r.source_file
    assert later > 0


def test_the_database_side_has_every_kind_of_row(small):
    world = small[0]
    rows = world.subscribers
    assert any(r.confirmed == "0" for r in rows)
    assert any(r.unsubscribed for r in rows) and any(r.bounced for r in rows)
    assert Counter(r.emailaddress for r in rows).most_common(1)[0][1] > 1  # addresses on several lists
    per_subscriber = Counter(b.subscriberid for b in world.bounces)
    assert 4 in per_subscriber.values()  # one short of the soft threshold
    kinds = Counter(c.kind for c in world.campaigns)
    assert kinds["newsletter"] and kinds["autoresponder"] and kinds["deleted"]
    assert sorted(c.statid for c in world.campaigns) == list(range(1, len(world.campaigns) + 1))
    active = Counter(r.listid for r in rows if not r.bounced and not r.unsubscribed)
    assert {lst.listid: lst.subscribecount for lst in world.lists} == {lst.listid: active[lst.listid]
                                                                       for lst in world.lists}


def test_an_independent_world_bounces_each_address_at_most_once(tmp_path):
    world = World.generate(4, subscribers=500, records=800, files=3, independent=True)
    records, _, _ = parse(world.write_files(tmp_path))
    assert len({r.fingerprint for r in records}) == len(records)
    addresses = Counter(r.rcpt.lower() for r in records)
    assert addresses.most_common(1)[0][1] == 1


def test_complaints_come_in_every_shape_a_provider_sends(small):
    world, paths, _, _, _ = small
    found = complaints_of(paths)
    assert len(found) > 40
    rows = {r.subscriberid: r for r in world.subscribers}
    links = [c.link for c in found if c.link]
    assert any(c.rcpt and c.link for c in found) and any(not c.rcpt and c.link for c in found)
    assert any(not c.rcpt and not c.link for c in found)  # names nobody: unroutable
    assert any(link.confirmcode == rows[link.subscriberid].confirmcode for link in links)
    assert any(link.confirmcode and link.confirmcode != rows[link.subscriberid].confirmcode for link in links)
    assert any(not link.confirmcode for link in links) and {link.area for link in links} == {"a", "n"}
    assert {c.feedback_type for c in found} >= {"abuse", "", "not-spam"}
    assert any(c.format == "jmrp" for c in found)
    assert len({c.fingerprint for c in found}) < len(found)  # a report met again
    assert world.requests and all(not rows[q.subscriberid].unsubscribed for q in world.requests)


def test_an_independent_world_complains_only_about_addresses_nothing_else_touches(tmp_path):
    world = World.generate(4, subscribers=500, records=800, files=3, independent=True)
    paths = world.write_files(tmp_path)
    records, _, _ = parse(paths)
    found = complaints_of(paths)
    email_of = {r.subscriberid: r.emailaddress.lower() for r in world.subscribers}
    named = [c.rcpt.lower() or email_of.get(c.link.subscriberid if c.link else 0, "") for c in found]
    named = [n for n in named if n]
    assert len(named) == len(set(named)) > 10
    assert not set(named) & {r.rcpt.lower() for r in records}
