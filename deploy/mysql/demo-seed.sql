-- A small demo IEM world, matching the sample accounting files in tests/data/samples:
-- lists, the subscribers those bounces name, and the campaigns (statids) they came from.
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
  (117, 4, 'multi@example.com', '@example.com', 'h', '1', 1731000000, 0, 0);

-- Newsletters and autoresponders share one statid sequence.
INSERT INTO email_stats_sequence (id) VALUES (42), (43), (44), (45);
INSERT INTO email_stats_newsletters (statid, newsletterid, starttime, finishtime, sendtype)
VALUES (42, 1, 1732000000, 1732003600, 'newsletter'), (44, 2, 1732000000, 1732003600, 'newsletter');
INSERT INTO email_stats_autoresponders (statid, autoresponderid) VALUES (43, 1), (45, 2);
