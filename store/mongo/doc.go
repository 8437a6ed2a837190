// Package mongo is the scale-out store.Store, on MongoDB: every node of a
// cluster opens the same database, and every write is safe to run on
// several nodes at once and to repeat.
//
// # Collections
//
// Open creates the indexes below (creating an existing index is a no-op).
// No index is partial, sparse or TTL, and no query needs $lookup, $group,
// a transaction or a change stream, so the same code runs on FerretDB v1
// (tools/devmongo) for development. Shard keys are what a sharded
// cluster would use; nothing requires sharding.
//
//	users        {_id: user ID, pw, created, deleted? (a tombstone: deleteuser.go)}
//	             shard: {_id: "hashed"}
//	tokens       {_id: SHA-256 hex of the token, user, device, expires, created}
//	             {user: 1}: DeleteUserTokens (added without a new Format:
//	             an index, which changes no document's meaning).
//	             shard: {_id: "hashed"}
//	messages     {_id: snowflake ID, from, to, group, seq, type, body, media,
//	              meta (JSON text), cmid, ts, mime, data (the inline media:
//	              the tag "inline" inlines it), mentions, reply_to?,
//	              recalled?, recalled_by?, edited?, reacted?,
//	              change?: {kind, target, emoji, add, ids, peer, count}}
//	             read only by _id; shard: {_id: "hashed"} (snowflakes grow
//	             with time, so a ranged key would send every insert to one shard)
//	entries      {_id: ObjectId, user, ver, peer, out, msg, pending?}; a
//	             change record's entry has change: true and cpeer instead of
//	             peer, so it is in
//	             the inbox but not in the {user, peer, msg} history index
//	             unique {user: 1, ver: 1}: Range, Head, and the idempotency
//	             of a commit; {user: 1, peer: 1, msg: -1}: History and SetRead's
//	             unread count. shard: {user: 1, ver: 1}: a user's inbox (what
//	             sync reads) is one contiguous chunk range on one shard, the
//	             unique index is enforceable because it starts with the shard
//	             key, and versions that grow within a user do not make one
//	             hot chunk the way a ranged key on a global counter would.
//	             Hashing user alone would spread users as well but cannot
//	             enforce the unique (user, ver).
//	convs        {_id: ObjectId, user, peer, last, last_ts, ver, unread, read_upto,
//	              peer_read?}
//	             unique {user: 1, peer: 1}; shard: {user: 1, peer: 1}
//	             (Conversations reads one user's rows: one shard)
//	acks         {_id: ObjectId, from, cmid, msg, ver, ts, group?, seq?}
//	             unique {from: 1, cmid: 1}; shard: {from: 1, cmid: 1}
//	claims       {_id: "{from} {cmid}", msg, batch?}: one per send, written
//	             first (claims.go); shard: {_id: "hashed"}
//	counters     {_id: key, n: last version reserved}
//	             shard: {_id: "hashed"}
//	grants       {_id: ObjectId, media, principal, msg (the newest granting
//	              message, by $max; absent in rows from before it)}
//	             unique {media: 1, principal: 1}; shard: {media: 1, principal: 1}
//	groups       {_id: group ID, name, owner, created, members (count)}
//	             shard: {_id: "hashed"}
//	members      {_id: ObjectId, group, user, role, join_seq, read_seq, joined,
//	              join_changes?, read_changes?, mention_seq?}
//	             unique {group: 1, user: 1}: Members, GetMember;
//	             {user: 1, group: 1}: UserGroups. shard: {group: 1, user: 1}
//	             (UserGroups then asks every shard; it is rare)
//	group_heads  {_id: group ID, seq, msg, ts, msg_seq (msg's seq; absent in
//	              heads written before the lifecycle, whose seq is msg's),
//	              changes?, mention_all?}; shard: {_id: "hashed"}
//	group_msgs   {_id: ObjectId, group, seq, msg}
//	             unique {group: 1, seq: 1}: GroupRange; shard: {group: 1, seq: 1}
//	group_changes {_id: ObjectId, group, seq, n (the change record's Count)}:
//	             a group's change records by seq. unique {group: 1, seq: 1}:
//	             a member's ReadChanges is one seek down from its read seq.
//	             shard: {group: 1, seq: 1}
//	reactions    {_id: "{msg} {len(user)}:{user} {emoji}", msg, user, emoji,
//	              ts, st? (a summary move under way: life.go)}: one per
//	             reaction. {msg: 1, user: 1}: UserReactions; {msg: 1, emoji: 1,
//	             ts: 1}: the next reactor to list, and the import's rebuild.
//	             shard: {msg: 1} would keep a message's together; {_id: "hashed"}
//	             is enough (every write is by _id)
//	reaction_sums {_id: "{msg} {emoji}", msg, emoji, count, users (at most
//	              store.ReactionUsers), nusers}: one per message and emoji;
//	             the emoji is a value, never a field name. {msg: 1, emoji: 1}:
//	             ReactionsOf. shard: {_id: "hashed"}
//	hidden       {_id: "{len(user)}:{user} {msg}", user, msg, group}: group
//	             messages a user hid. {user: 1, msg: 1}: Hidden, erasure.
//	             shard: {_id: "hashed"}
//	user_settings {_id: user, no_read_receipts?, accept_from?, presence?,
//	              updated}. shard: {_id: "hashed"}
//	             The lifecycle's collections and fields came without a new
//	             Format: a field absent from an older row reads as its zero,
//	             which is right for rows written before change records.
//	contacts     {_id: "{len(user)}:{user} {peer}", user, peer, state
//	              (pending_out, pending_in, accepted), since}: one side of a
//	             contact (social.go); the two sides are written one after
//	             the other, the asked one's first. {user: 1, peer: 1}:
//	             Contacts, counts, erasure; {user: 1, state: 1, peer: 1}:
//	             one state's page (presence pages accepted contacts).
//	             shard: {user: 1}
//	blocks       {_id: "{len(user)}:{user} {peer}", user, peer, since}: user's
//	             block of peer. {user: 1, peer: 1}: Blocks, counts; {peer: 1,
//	             user: 1}: who blocked peer (Blockers of many users, the group
//	             fan-out), else Blockers asks by _id. shard: {_id: "hashed"}
//	last_seen    {_id: user, ts}: when a user's last device went offline (0:
//	             online). shard: {_id: "hashed"}
//	             The three came without a new Format, as sessions did.
//	sessions     {_id: "{user}/{device}", user, device, epoch, inbox,
//	              groups: {group: seq}, subs: [{filter, qos}], expiry, holder,
//	              disconnected}: persistent MQTT sessions (sessions.go); a
//	              group's field name escapes '%', '.', '$' and NUL as %XX.
//	             {user: 1}: DeleteUserSessions. shard: {_id: "hashed"}.
//	             Added without a new Format: a new collection, which an
//	             older release never reads.
//	conv_settings {_id: "{len(user)}:{user} {conv}", user, conv ("u:{peer}" or
//	              "g:{group}"), mute, mute_until, pin, updated}: one user's
//	              settings of one conversation (settings.go); a row that
//	              sets nothing is deleted. {user: 1, conv: 1}: UserConvSettings;
//	              {conv: 1, user: 1}: ConvSettingsFor. shard: {_id: "hashed"}.
//	              Added without a new Format, as sessions were.
//	push_devices {_id: "{user}/{device}", user, device, provider, token, topic,
//	              sandbox, login, created, last_push}: push registrations
//	             (push.go). unique {provider: 1, token: 1}: a token is one
//	             device's; {user: 1, device: 1}: PushDevices, deletes.
//	             unsharded: one small row per device, and a unique index
//	             other than the shard key's cannot be kept on a sharded one
//	push_jobs    {_id: msgid, created, until}: one per committed message
//	             to push; until is a hint of the lease a claimer saw.
//	             shard: {_id: "hashed"}
//	push_items   {_id: "{user}/{device}/{msgid}", user, device, msg, created,
//	              due, attempts, mention, done, done_at}: one per message and
//	             device. {done: 1, due: 1}: DuePushDevices, PushDepth;
//	             {done: 1, done_at: 1}: SweepPush; {user: 1, device: 1,
//	             msg: 1}: PendingPushItems, deletes. shard: {user: 1, device: 1}
//	push_claims  {_id: "{key} {gen}", key, gen, holder, until}: claims of
//	             jobs and devices, each a unique insert (push.go).
//	             {key: 1, gen: 1}: the latest claim; {until: 1}: SweepPush.
//	             shard: {key: 1}
//	             The push_ collections came without a new Format, as
//	             sessions did.
//	webhook_events {_id: event ID, lane, type, ts, data (JSON text)}: the
//	             webhook outbox (webhook.go). {lane: 1, _id: 1}: a lane's
//	             events in order; {ts: 1}: SweepWebhooks. shard: {lane: 1, _id: 1}
//	webhook_lanes {_id: lane, due, attempts, holder, until, adds}: a lane
//	             with events, its head's retry state and its claim.
//	             {due: 1}: DueWebhookLanes. shard: {_id: "hashed"}
//	             The webhook_ collections came without a new Format.
//	meta         {_id: "epoch", value}: the epoch, made by the first Open
//	bans         the operators' bans, read whole (package internal/bans/mongorows)
//
// Every single-document update, upsert and findOneAndUpdate filters on its
// collection's whole shard key (or _id), as a sharded cluster requires.
// Durability is the URI's write concern: leave it at MongoDB's default,
// w=majority, so that a Commit that returned survives a failover.
//
// # Writes without transactions
//
// A Commit is a sequence of idempotent steps (see Commit): inserts keyed
// by IDs and versions, where a duplicate key means "already there", and
// updates guarded so that they only move forward ($max, or a filter on
// the old value). So a Commit that failed half-way is repeated safely,
// and batches committed by several nodes may land in any order. The one
// thing a unique key cannot make idempotent, counting unread, is tied to
// the insert of the entry: a message is counted by the Commit that
// inserted its entry, marked pending until its row has counted it.
//
// Version blocks (ReserveVersions) come from an atomic findOneAndUpdate
// $inc of a counter, the authority for versions across nodes and
// restarts.
//
// # FerretDB
//
// FerretDB v1 runs an update as a read and a write, not atomically, so
// two concurrent updates of one document can lose one (a counter could
// hand out a block twice). Open asks the server's buildInfo and, on
// FerretDB, serializes this process's read-modify-writes
// (Options.SerializeUpdates). That makes one node correct; FerretDB is not
// for several nodes. FerretDB also reports a duplicate key met by an
// update as an InternalError; upserts here are retried on it.
package mongo
