-- Interspire Email Marketer (IEM 6.x) tables that bounce processing reads or writes:
-- pmtabounce's own fixture, for tests and the demo (never for a real IEM install).
-- `email_` below is replaced by the configured table prefix when it is loaded.
-- Column names, types, defaults and indexes follow IEM's install schema; table
-- prefix is the default `email_`. Use it as a test fixture: a real IEM database
-- has more tables and columns, never fewer of these. Times are Unix epoch ints.

CREATE TABLE IF NOT EXISTS email_lists (
  listid int(11) NOT NULL AUTO_INCREMENT,
  name varchar(255) DEFAULT NULL,
  ownername varchar(255) DEFAULT NULL,
  owneremail varchar(100) DEFAULT NULL,
  bounceemail varchar(100) DEFAULT NULL,
  replytoemail varchar(100) DEFAULT NULL,
  bounceserver varchar(100) DEFAULT NULL,
  bounceusername varchar(100) DEFAULT NULL,
  bouncepassword varchar(100) DEFAULT NULL,
  extramailsettings varchar(100) DEFAULT NULL,
  companyname varchar(255) DEFAULT NULL,
  companyaddress varchar(255) DEFAULT NULL,
  companyphone varchar(20) DEFAULT NULL,
  format char(1) DEFAULT NULL,
  notifyowner char(1) DEFAULT '0',
  imapaccount char(1) DEFAULT '0',
  createdate int(11) DEFAULT '0',
  subscribecount int(11) DEFAULT '0',
  unsubscribecount int(11) DEFAULT '0',
  bouncecount int(11) DEFAULT '0',
  processbounce char(1) DEFAULT '0',
  agreedelete char(1) DEFAULT '0',
  agreedeleteall char(1) DEFAULT '0',
  visiblefields text NOT NULL,
  ownerid int(11) DEFAULT '0',
  PRIMARY KEY (listid),
  KEY email_lists_owner_idx (ownerid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS email_list_subscribers (
  subscriberid int(11) NOT NULL AUTO_INCREMENT,
  listid int(11) NOT NULL DEFAULT '0',
  emailaddress varchar(200) DEFAULT NULL,
  domainname varchar(100) DEFAULT NULL,
  format char(1) DEFAULT NULL,
  confirmed char(1) DEFAULT '0',
  confirmcode varchar(32) DEFAULT NULL,
  requestdate int(11) DEFAULT '0',
  requestip varchar(20) DEFAULT NULL,
  confirmdate int(11) DEFAULT '0',
  confirmip varchar(20) DEFAULT NULL,
  subscribedate int(11) DEFAULT '0',
  bounced int(11) DEFAULT '0',
  unsubscribed int(11) DEFAULT '0',
  unsubscribeconfirmed char(1) DEFAULT '0',
  formid int(11) DEFAULT '0',
  PRIMARY KEY (subscriberid),
  UNIQUE KEY email_subscribers_email_list_idx (emailaddress, listid),
  KEY email_list_subscribers_sub_list_idx (subscriberid, listid),
  KEY email_subscribe_date_idx (subscribedate),
  KEY email_list_subscribers_listid_idx (listid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- No unique key here in IEM: one bounce per (subscriberid, statid, listid) is
-- enforced only by application code.
CREATE TABLE IF NOT EXISTS email_list_subscriber_bounces (
  bounceid int(11) NOT NULL AUTO_INCREMENT,
  subscriberid int(11) DEFAULT '0',
  statid int(11) DEFAULT '0',
  listid int(11) DEFAULT '0',
  bouncetime int(11) DEFAULT '0',
  bouncetype varchar(255) DEFAULT NULL,
  bouncerule varchar(255) DEFAULT NULL,
  bouncemessage longtext,
  PRIMARY KEY (bounceid),
  KEY email_list_subscriber_bounces_statid_idx (statid),
  KEY email_list_subscriber_bounces_listid_idx (listid),
  KEY email_list_subscriber_bounces_subscriberid_idx (subscriberid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS email_list_subscribers_unsubscribe (
  subscriberid int(11) NOT NULL DEFAULT '0',
  unsubscribetime int(11) NOT NULL DEFAULT '0',
  unsubscribeip varchar(20) DEFAULT NULL,
  unsubscriberequesttime int(11) DEFAULT '0',
  unsubscriberequestip varchar(20) DEFAULT NULL,
  listid int(11) NOT NULL DEFAULT '0',
  statid int(11) DEFAULT '0',
  unsubscribearea varchar(20) DEFAULT NULL,
  KEY email_list_unsubscribe_sub_list_idx (subscriberid, listid),
  KEY email_list_subscribers_unsubscribe_statid_idx (statid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Newsletters and autoresponders draw statids from one shared sequence, so a
-- statid lives in at most one of the two stats tables.
CREATE TABLE IF NOT EXISTS email_stats_sequence (
  id int(11) NOT NULL AUTO_INCREMENT,
  PRIMARY KEY (id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS email_stats_newsletters (
  statid int(11) NOT NULL DEFAULT '0',
  queueid int(11) DEFAULT '0',
  jobid int(11) DEFAULT '0',
  starttime int(11) DEFAULT '0',
  finishtime int(11) DEFAULT '0',
  htmlrecipients int(11) DEFAULT '0',
  textrecipients int(11) DEFAULT '0',
  multipartrecipients int(11) DEFAULT '0',
  trackopens char(1) DEFAULT '0',
  tracklinks char(1) DEFAULT '0',
  bouncecount_soft int(11) DEFAULT '0',
  bouncecount_hard int(11) DEFAULT '0',
  bouncecount_unknown int(11) DEFAULT '0',
  unsubscribecount int(11) DEFAULT '0',
  newsletterid int(11) DEFAULT '0',
  sendfromname varchar(200) DEFAULT NULL,
  sendfromemail varchar(200) DEFAULT NULL,
  bounceemail varchar(200) DEFAULT NULL,
  replytoemail varchar(200) DEFAULT NULL,
  charset varchar(200) DEFAULT NULL,
  sendinformation mediumtext,
  sendsize int(11) DEFAULT '0',
  sentby int(11) DEFAULT '0',
  notifyowner char(1) DEFAULT '0',
  linkclicks int(11) DEFAULT '0',
  emailopens int(11) DEFAULT '0',
  emailforwards int(11) DEFAULT '0',
  emailopens_unique int(11) DEFAULT '0',
  htmlopens int(11) DEFAULT '0',
  htmlopens_unique int(11) DEFAULT '0',
  textopens int(11) DEFAULT '0',
  textopens_unique int(11) DEFAULT '0',
  hiddenby int(11) DEFAULT '0',
  sendtestmode int(11) DEFAULT '0',
  sendtype varchar(100) DEFAULT 'newsletter',
  PRIMARY KEY (statid),
  KEY email_stats_newsletters_queue_idx (queueid),
  KEY email_stats_newsletters_sentby_idx (sentby)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS email_stats_autoresponders (
  statid int(11) NOT NULL DEFAULT '0',
  htmlrecipients int(11) DEFAULT '0',
  textrecipients int(11) DEFAULT '0',
  multipartrecipients int(11) DEFAULT '0',
  bouncecount_soft int(11) DEFAULT '0',
  bouncecount_hard int(11) DEFAULT '0',
  bouncecount_unknown int(11) DEFAULT '0',
  unsubscribecount int(11) DEFAULT '0',
  autoresponderid int(11) DEFAULT '0',
  linkclicks int(11) DEFAULT '0',
  emailopens int(11) DEFAULT '0',
  emailforwards int(11) DEFAULT '0',
  emailopens_unique int(11) DEFAULT '0',
  htmlopens int(11) DEFAULT '0',
  htmlopens_unique int(11) DEFAULT '0',
  textopens int(11) DEFAULT '0',
  textopens_unique int(11) DEFAULT '0',
  hiddenby int(11) DEFAULT '0',
  PRIMARY KEY (statid),
  KEY email_stats_autoresponders_autoresponderid_idx (autoresponderid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Custom fields (every IEM 6.x): read only for the Subscribe webhook's payload (spec/iem-webhooks.md).
CREATE TABLE IF NOT EXISTS email_customfields (
  fieldid int(11) NOT NULL AUTO_INCREMENT PRIMARY KEY,
  name varchar(255) DEFAULT NULL,
  fieldtype varchar(100) DEFAULT NULL,
  defaultvalue varchar(255) DEFAULT NULL,
  required char(1) DEFAULT '0',
  fieldsettings mediumtext,
  createdate int(11) DEFAULT 0,
  ownerid int(11) DEFAULT 0,
  isglobal char(1) DEFAULT '0'
) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS email_customfield_lists (
  cflid int(11) NOT NULL AUTO_INCREMENT PRIMARY KEY,
  fieldid int(11) NOT NULL DEFAULT '0',
  listid int(11) NOT NULL DEFAULT '0'
) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS email_subscribers_data (
  subscriberid int(11) NOT NULL DEFAULT '0',
  fieldid int(11) NOT NULL DEFAULT '0',
  data text
) ENGINE=InnoDB;

-- IEM 6.5.1 only (database version 20220908): list and campaign webhooks (spec/iem-webhooks.md).
-- Older installations have none of these four tables; a fixture of an older IEM leaves them out.
CREATE TABLE IF NOT EXISTS email_webhooks (
  webhookid int(11) NOT NULL AUTO_INCREMENT,
  webhook_type_id int(11) NOT NULL,
  webhook_event_type_id int(11) NOT NULL,
  id int(11) DEFAULT 0 COMMENT '(listid or newsletterid)',
  webhook_url varchar(2048) NOT NULL,
  createdate int(11) NOT NULL,
  active int(1) NOT NULL DEFAULT 1,
  ownerid int(11) NOT NULL DEFAULT 0,
  PRIMARY KEY (webhookid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

CREATE TABLE IF NOT EXISTS email_webhook_types (
  webhook_type_id int(11) NOT NULL,
  webhook_type_name varchar(100) NOT NULL,
  PRIMARY KEY (webhook_type_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT IGNORE INTO email_webhook_types (webhook_type_id, webhook_type_name) VALUES (1, 'List'), (2, 'Campaign');

CREATE TABLE IF NOT EXISTS email_webhook_event_types (
  event_type_id int(11) NOT NULL,
  event_type_name varchar(100) NOT NULL,
  PRIMARY KEY (event_type_id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT IGNORE INTO email_webhook_event_types (event_type_id, event_type_name) VALUES
  (1, 'Subscribe'), (2, 'Unsubscribe'), (3, 'Bounce'), (4, 'ScheduleCampaign'), (5, 'CampaignSent');

CREATE TABLE IF NOT EXISTS email_webhook_logs (
  logid int(11) NOT NULL AUTO_INCREMENT,
  webhook_type_id int(11) NOT NULL,
  webhook_event_type_id int(11) NOT NULL,
  logmsg text NOT NULL,
  webhook_response varchar(255) NULL,
  logdate int(11) DEFAULT 0,
  PRIMARY KEY (logid)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
