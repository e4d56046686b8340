-- Cluster mode (issue 24, docs/cluster.md "Timers and the outbox"): every node's delivery
-- worker may run, and each due notification is claimed by one node at a time. A claim names
-- the node and lasts until `claim_until` (epoch ms, PostgreSQL's clock); the claimer renews
-- it right before each delivery and clears it when it records the outcome. A node that dies
-- holding a claim releases it by expiry, so another node delivers the notification.
ALTER TABLE notifications ADD COLUMN claimed_by TEXT;
ALTER TABLE notifications ADD COLUMN claim_until BIGINT;
