package replica

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestResolveIsStableAcrossRestarts(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	first, release, err := Resolve("", dir)
	require.NoError(t, err)
	require.True(t, first.Stable)

	// A second live process on the same directory gets a random id.
	other, releaseOther, err := Resolve("", dir)
	require.NoError(t, err)
	defer releaseOther()
	require.False(t, other.Stable)
	require.NotEqual(t, first.Replica, other.Replica)
	require.False(t, other.Predecessor(first.Owner()+"/abc"), "an unstable id takes nothing over")

	release() // the first process ends
	next, releaseNext, err := Resolve("", dir)
	require.NoError(t, err)
	defer releaseNext()
	require.True(t, next.Stable)
	require.Equal(t, first.Replica, next.Replica, "same replica after a restart")
	require.NotEqual(t, first.Incarnation, next.Incarnation)

	require.True(t, next.Predecessor(first.Owner()+"/0a1b"), "its predecessor's flush lease")
	require.True(t, next.Predecessor(first.Owner()+"/pull/0a1b"), "its predecessor's pull lease")
	require.False(t, next.Predecessor(next.Owner()+"/0a1b"), "its own lease")
	require.False(t, next.Predecessor("other-replica/1-ab/0a1b"), "another replica's lease")
	require.False(t, next.Predecessor(first.Replica+"x/1-ab/0a1b"), "a replica whose id it prefixes")
}

func TestResolveConfigured(t *testing.T) {
	t.Parallel()
	id, release, err := Resolve("crmsync-0", "")
	require.NoError(t, err)
	defer release()
	require.True(t, id.Stable)
	require.Equal(t, "crmsync-0", id.Replica)
	for _, bad := range []string{"a/b", "", "-x", "a%", "white space"} {
		require.False(t, ValidID(bad), bad)
	}
	_, _, err = Resolve("a/b", "")
	require.Error(t, err)
}
