package collector

// Policy is what the collector needs of a routing policy to classify traffic to it: the
// inventory's policy (storage.Policy) without its action and timestamps, so that the
// collector does not depend on the inventory store.
type Policy struct {
	ID       int64
	Name     string
	Priority int
	Enabled  bool
	// Protocol is the IP protocol number; nil matches any protocol.
	Protocol *int
	// SrcCIDR and DstCIDR are prefixes; empty matches any address.
	SrcCIDR, DstCIDR string
	// SrcPorts and DstPorts are inclusive port ranges; empty matches any port.
	SrcPorts, DstPorts []PortRange
}

// PortRange is an inclusive range of ports.
type PortRange struct {
	From, To uint16
}
