package collector

import (
	"net/netip"
	"testing"
)

func TestAddrWordsMatchAs16(t *testing.T) {
	if !addrLayoutKnown {
		t.Log("netip.Addr layout changed: the As16 path is in use")
	}
	for _, s := range []string{"10.1.2.3", "::ffff:10.1.2.3", "2001:db8::42", "fe80::1%lo"} {
		a := netip.MustParseAddr(s)
		hi, lo := addrWords(&a)
		k := flowKey{srcHi: hi, srcLo: lo}
		if got := k.flow().SrcIP; got != a.Unmap().WithZone("") {
			t.Errorf("%s: words give back %s", s, got)
		}
	}
}
