package memo

import (
	"testing"
	"unsafe"
)

// TestNodeSize checks that an entry of a Memo[string, uint64] fits the
// 48-byte size class: the state only a call in flight needs lives in its
// flight, not in every cached node.
func TestNodeSize(t *testing.T) {
	if got, want := unsafe.Sizeof(node[string, uint64]{}), uintptr(48); unsafe.Sizeof(uintptr(0)) == 8 && got > want {
		t.Errorf("node[string, uint64] is %d bytes, want at most %d", got, want)
	}
}
