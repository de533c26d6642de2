package api

// NFS grant levels of NFSGrants.
const (
	NFSReadOnly  = "ro" // may mount and read
	NFSReadWrite = "rw" // may mount, read and write
)

// NFSGrants are the policy's nfs grants of every member, set on the filter
// of a node that publishes ServiceNFS when the policy has an nfs section:
// by node name (normalized), export name to NFSReadOnly or NFSReadWrite; a
// member with no grant is absent. nil (no nfs section) leaves the grants to
// tunnelmesh-nfsd's own configuration.
type NFSGrants struct {
	Nodes map[string]map[string]string `json:"nodes"`
}

// Level returns node's grant on export: NFSReadWrite, NFSReadOnly or "".
func (g *NFSGrants) Level(node, export string) string {
	if g == nil {
		return ""
	}
	return g.Nodes[NormalizeName(node)][export]
}
