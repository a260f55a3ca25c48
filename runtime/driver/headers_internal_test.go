package driver

import "testing"

// isKnownHeader's switch must name exactly headerOrder plus "compression".
func TestIsKnownHeaderMatchesHeaderOrder(t *testing.T) {
	for _, k := range headerOrder {
		if !IsKnownHeader(k) {
			t.Errorf("isKnownHeader(%q) = false; add it to the switch", k)
		}
	}
	for _, k := range []string{"compression"} {
		if !IsKnownHeader(k) {
			t.Errorf("isKnownHeader(%q) = false", k)
		}
	}
	for _, k := range []string{"", "redelivered", "stamped_headers", "Task", "ids"} {
		if IsKnownHeader(k) {
			t.Errorf("isKnownHeader(%q) = true", k)
		}
	}
}
