-- A small demo IEM world, matching the sample accounting files in tests/data/samples:
-- lists, the subscribers those bounces and complaints name, and the campaigns (statids) they came from.
-- For compose and the tests; never for a real IEM install. Tables use the default `email_` prefix.

INSERT INTO email_lists (listid, name, ownername, owneremail, createdate, subscribecount, bouncecount, visiblefields)
VALUES
  (2, 'Demo: newsletter', 'Demo', 'owner@example.com', 1731000000, 2, 0, 'emailaddress'),
  (3, 'Demo: customers', 'Demo', 'owner@example.com', 1731000000, 5, 0, 'emailaddress'),
  (4, 'Demo: leads', 'Demo', 'owner@example.com', 1731000000, 4, 0, 'emailaddress'),
  (5, 'Demo: partners', 'Demo', 'owner@example.com', 1731000000, 2, 0, 'emailaddress'),
  (6, 'Demo: events', 'Demo', 'owner@example.com', 1731000000, 1, 0, 'emailaddress'),
  (7, 'Demo: offers', 'Demo', 'owner@example.com', 1731000000, 1, 0, 'emailaddress'),
  (8, 'Demo: press', 'Demo', 'owner@example.com', 1731000000, 1, 0, 'emailaddress'),
  (12, 'Demo: members', 'Demo', 'owner@example.com', 1731000000, 2, 0, 'emailaddress'),
  (13, 'Demo: archive', 'Demo', 'owner@example.com', 1731000000, 1, 0, 'emailaddress');

INSERT INTO email_list_subscribers
  (subscriberid, listid, emailaddress, domainname, format, confirmed, subscribedate, bounced, unsubscribed)
VALUES
  (101, 3, 'john@example.com', '@example.com', 'h', '1', 1731000000, 0, 0),
  (102, 3, 'jo@example.org', '@example.org', 'h', '1', 1731000000, 0, 0),
  (103, 3, 'pieter.jansen@example.nl', '@example.nl', 'h', '1', 1731000000, 0, 0),
  (104, 3, 'anne@example.com', '@example.com', 'h', '1', 1731000000, 0, 0),
  (105, 3, 'ok@example.org', '@example.org', 'h', '1', 1731000000, 0, 0),
  (106, 7, 'mary@example.net', '@example.net', 'h', '1', 1731000000, 0, 0),
  (107, 8, 'mary@example.net', '@example.net', 'h', '1', 1731000000, 0, 0),
  (108, 13, 'mary@example.net', '@example.net', 'h', '1', 1731000000, 0, 0),
  (109, 5, 'kees@example.com', '@example.com', 'h', '1', 1731000000, 0, 0),
  (110, 5, 'lisa@example.com', '@example.com', 'h', '1', 1731000000, 0, 0),
  (111, 2, 'tom@example.com', '@example.com', 'h', '1', 1731000000, 0, 0),
  (112, 2, 'eva@example.com', '@example.com', 'h', '1', 1731000000, 0, 0),
  (113, 4, 'bad.bytes@example.com', '@example.com', 'h', '1', 1731000000, 0, 0),
  (114, 4, 'spaces@example.com', '@example.com', 'h', '1', 1731000000, 0, 0),
  (115, 6, 'spaces@example.com', '@example.com', 'h', '1', 1731000000, 0, 0),
  (116, 4, 'newcat@example.com', '@example.com', 'h', '1', 1731000000, 0, 0),
  (117, 4, 'multi@example.com', '@example.com', 'h', '1', 1731000000, 0, 0),
  (118, 3, 'jane.doe@example.net', '@example.net', 'h', '1', 1731000000, 0, 0);

-- The complaints sample's IEM links name these rows by subscriberid (M) and confirmcode (C).
INSERT INTO email_list_subscribers
  (subscriberid, listid, emailaddress, domainname, format, confirmed, confirmcode, subscribedate, bounced, unsubscribed)
VALUES
  (802, 12, 'jane.doe@example.net', '@example.net', 'h', '1', '6f1c0e5a9b2d4e7f8a1b2c3d4e5f6a7b', 1731000000, 0, 0),
  (803, 3, 'mike@example.org', '@example.org', 'h', '1', '0a9b8c7d6e5f40312233445566778899', 1731000000, 0, 0),
  (804, 12, 'dave@example.net', '@example.net', 'h', '1', '99887766554433221100ffeeddccbbaa', 1731000000, 0, 0),
  (901, 7, 'carol@example.com', '@example.com', 'h', '1', '11aa22bb33cc44dd55ee66ff77889900', 1731000000, 0, 0);

-- Newsletters and autoresponders share one statid sequence.
INSERT INTO email_stats_sequence (id) VALUES (42), (43), (44), (45), (4107);
INSERT INTO email_stats_newsletters (statid, newsletterid, starttime, finishtime, sendtype)
VALUES (42, 1, 1732000000, 1732003600, 'newsletter'), (44, 2, 1732000000, 1732003600, 'newsletter');
INSERT INTO email_stats_autoresponders (statid, autoresponderid) VALUES (43, 1), (45, 2), (4107, 3);
