package redis

import (
	_ "embed" // the Lua scripts under lua/

	goredis "github.com/redis/go-redis/v9"
)

// The transport's Lua scripts, one file each under lua/; each file's header
// says its KEYS, ARGV, return value and what it makes atomic. go-redis runs
// a script with EVALSHA and loads it on a NOSCRIPT reply.
var (
	//go:embed lua/fetch.lua
	fetchLua string
	//go:embed lua/settle.lua
	settleLua string
	//go:embed lua/restore.lua
	restoreLua string
	//go:embed lua/inbox_restore.lua
	inboxRestoreLua string
	//go:embed lua/unlock.lua
	unlockLua string
	//go:embed lua/reply.lua
	replyLua string
	//go:embed lua/move_due.lua
	moveDueLua string
	//go:embed lua/store.lua
	storeLua string
	//go:embed lua/chord_part.lua
	chordPartLua string
	//go:embed lua/lease.lua
	leaseLua string
	//go:embed lua/claim_slot.lua
	claimSlotLua string
	//go:embed lua/release_lease.lua
	releaseLeaseLua string
	//go:embed lua/mark_sent.lua
	markSentLua string

	fetchScript        = goredis.NewScript(fetchLua)        // pop a batch and record it unacked
	settleScript       = goredis.NewScript(settleLua)       // unacked → dead letter or requeue
	restoreScript      = goredis.NewScript(restoreLua)      // expired unacked → front of its list
	inboxRestoreScript = goredis.NewScript(inboxRestoreLua) // stale inbox → front of its list
	unlockScript       = goredis.NewScript(unlockLua)       // release unacked_mutex if still held
	replyScript        = goredis.NewScript(replyLua)        // control reply → every bound list
	moveDueScript      = goredis.NewScript(moveDueLua)      // due deferred messages → their lists
	storeScript        = goredis.NewScript(storeLua)        // result SET+PUBLISH unless SUCCESS
	chordPartScript    = goredis.NewScript(chordPartLua)    // count a chord member, complete once
	leaseScript        = goredis.NewScript(leaseLua)        // take or renew the scheduler lease
	claimSlotScript    = goredis.NewScript(claimSlotLua)    // claim a slot if still the leader
	releaseLeaseScript = goredis.NewScript(releaseLeaseLua) // give the lease up if held
	markSentScript     = goredis.NewScript(markSentLua)     // move an entry's sent mark forward
)
