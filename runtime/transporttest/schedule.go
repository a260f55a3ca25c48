package transporttest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/taskgen/taskgen/runtime/driver"
)

// ScheduleStore runs the conformance suite of driver.ScheduleStore (the
// state of runtime/beat's schedulers) against the store that open
// returns, as subtests of t. Each subtest uses a schedule key of its own.
func ScheduleStore(t *testing.T, open func(t *testing.T) driver.ScheduleStore) {
	ctx := context.Background()
	key := func(t *testing.T) string { return "conformance-" + driver.NewID() }
	slot := time.UnixMilli(1_767_225_600_000) // 2026-01-01T00:00:00Z
	claim := func(t *testing.T, s driver.ScheduleStore, k, holder string, tok int64, entry string, at time.Time) bool {
		t.Helper()
		ok, err := s.ClaimSlots(ctx, k, holder, tok, []driver.Slot{{Entry: entry, At: at}})
		require.NoError(t, err)
		require.Len(t, ok, 1)
		return ok[0]
	}

	t.Run("LeaseIsExclusiveAndRenewable", func(t *testing.T) {
		t.Parallel()
		s, k := open(t), key(t)
		tok, held, err := s.AcquireLease(ctx, k, "a", time.Minute)
		require.NoError(t, err)
		require.True(t, held)
		_, held, err = s.AcquireLease(ctx, k, "b", time.Minute)
		require.NoError(t, err)
		assert.False(t, held, "b took a's lease")
		again, held, err := s.AcquireLease(ctx, k, "a", time.Minute)
		require.NoError(t, err)
		assert.True(t, held, "a's renewal failed")
		assert.Equal(t, tok, again, "a renewal changed the token")
		l, err := s.LeaseInfo(ctx, k)
		require.NoError(t, err)
		assert.Equal(t, "a", l.Holder)
		assert.Equal(t, tok, l.Token)
		assert.Greater(t, l.Left, 30*time.Second)
	})
	t.Run("LeaseExpiresAndTokenGrows", func(t *testing.T) {
		t.Parallel()
		s, k := open(t), key(t)
		tokA, held, err := s.AcquireLease(ctx, k, "a", 150*time.Millisecond)
		require.NoError(t, err)
		require.True(t, held)
		time.Sleep(300 * time.Millisecond)
		l, err := s.LeaseInfo(ctx, k)
		require.NoError(t, err)
		assert.Empty(t, l.Holder, "an expired lease still has a holder")
		tokB, held, err := s.AcquireLease(ctx, k, "b", time.Minute)
		require.NoError(t, err)
		require.True(t, held)
		assert.Greater(t, tokB, tokA)
		// a's old token claims nothing, even named as b.
		assert.False(t, claim(t, s, k, "a", tokA, "e", slot))
		assert.False(t, claim(t, s, k, "b", tokA, "e", slot), "a stale token claimed a slot")
		assert.True(t, claim(t, s, k, "b", tokB, "e", slot))
	})
	t.Run("Release", func(t *testing.T) {
		t.Parallel()
		s, k := open(t), key(t)
		_, _, err := s.AcquireLease(ctx, k, "a", time.Minute)
		require.NoError(t, err)
		require.NoError(t, s.ReleaseLease(ctx, k, "b")) // not b's: nothing happens
		l, err := s.LeaseInfo(ctx, k)
		require.NoError(t, err)
		assert.Equal(t, "a", l.Holder)
		require.NoError(t, s.ReleaseLease(ctx, k, "a"))
		_, held, err := s.AcquireLease(ctx, k, "b", time.Minute)
		require.NoError(t, err)
		assert.True(t, held, "a released lease could not be taken")
	})
	t.Run("ClaimsMoveForwardOnly", func(t *testing.T) {
		t.Parallel()
		s, k := open(t), key(t)
		tok, _, err := s.AcquireLease(ctx, k, "a", time.Minute)
		require.NoError(t, err)
		for _, c := range []struct {
			entry string
			at    time.Duration
			want  bool
		}{
			{"e", 0, true}, {"e", 0, false}, {"e", -time.Second, false}, {"e", time.Second, true},
			{"f", 0, true}, {"e", time.Second, false},
		} {
			assert.Equal(t, c.want, claim(t, s, k, "a", tok, c.entry, slot.Add(c.at)), "claim %s at %v", c.entry, c.at)
		}
		assert.False(t, claim(t, s, k, "b", tok, "g", slot), "a scheduler without the lease claimed a slot")
		// One call claims several, in order.
		ok, err := s.ClaimSlots(ctx, k, "a", tok, []driver.Slot{
			{Entry: "h", At: slot}, {Entry: "h", At: slot}, {Entry: "i", At: slot}, {Entry: "h", At: slot.Add(time.Minute)}})
		require.NoError(t, err)
		assert.Equal(t, []bool{true, false, true, true}, ok)
		ok, err = s.ClaimSlots(ctx, k, "b", tok, []driver.Slot{{Entry: "j", At: slot}, {Entry: "k", At: slot}})
		require.NoError(t, err)
		assert.Equal(t, []bool{false, false}, ok)
		require.NoError(t, s.MarkSent(ctx, k, []driver.Slot{{Entry: "e", At: slot.Add(time.Second)}, {Entry: "h", At: slot}}))
		require.NoError(t, s.MarkSent(ctx, k, []driver.Slot{{Entry: "e", At: slot}})) // older: ignored
		st, err := s.SlotStates(ctx, k)
		require.NoError(t, err)
		assert.True(t, st["e"].Claimed.Equal(slot.Add(time.Second)), "%v", st["e"])
		assert.True(t, st["e"].Sent.Equal(slot.Add(time.Second)), "%v", st["e"])
		assert.True(t, st["f"].Claimed.Equal(slot), "%v", st["f"])
		assert.True(t, st["f"].Sent.IsZero(), "%v", st["f"])
		assert.NotContains(t, st, "g")
	})
	t.Run("ScheduleDocument", func(t *testing.T) {
		t.Parallel()
		s, k := open(t), key(t)
		doc, err := s.Schedule(ctx, k)
		require.NoError(t, err)
		assert.Nil(t, doc)
		require.NoError(t, s.PutSchedule(ctx, k, []byte(`{"key":"x"}`), 200*time.Millisecond))
		doc, err = s.Schedule(ctx, k)
		require.NoError(t, err)
		assert.JSONEq(t, `{"key":"x"}`, string(doc))
		time.Sleep(400 * time.Millisecond)
		doc, err = s.Schedule(ctx, k)
		require.NoError(t, err)
		assert.Nil(t, doc, "the document outlived its ttl")
	})
}
