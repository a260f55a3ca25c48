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
		ok, err := s.ClaimSlot(ctx, k, "a", tokA, "e", slot)
		require.NoError(t, err)
		assert.False(t, ok)
		ok, err = s.ClaimSlot(ctx, k, "b", tokA, "e", slot)
		require.NoError(t, err)
		assert.False(t, ok, "a stale token claimed a slot")
		ok, err = s.ClaimSlot(ctx, k, "b", tokB, "e", slot)
		require.NoError(t, err)
		assert.True(t, ok)
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
			ok, err := s.ClaimSlot(ctx, k, "a", tok, c.entry, slot.Add(c.at))
			require.NoError(t, err)
			assert.Equal(t, c.want, ok, "claim %s at %v", c.entry, c.at)
		}
		ok, err := s.ClaimSlot(ctx, k, "b", tok, "g", slot)
		require.NoError(t, err)
		assert.False(t, ok, "a scheduler without the lease claimed a slot")
		require.NoError(t, s.MarkSent(ctx, k, "e", slot.Add(time.Second)))
		require.NoError(t, s.MarkSent(ctx, k, "e", slot)) // older: ignored
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
