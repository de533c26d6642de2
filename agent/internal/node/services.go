package node

import (
	"cmp"
	"fmt"
	"maps"
	"slices"
	"sync"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/localapi"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// extServices are the services that processes next to the node (such as
// tunnelmesh-dockerwatch) set through the local API, by owner. The node
// publishes them with its own (Config.Services) in its endpoint reports.
type extServices struct {
	mu      sync.Mutex // guards the fields below
	byOwner map[string][]api.Service
	changed chan struct{} // 1-buffered; a value means a report is due
}

// changedC returns the channel that receives a value when the set changes.
func (e *extServices) changedC() chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.changedCLocked()
}

func (e *extServices) changedCLocked() chan struct{} {
	if e.changed == nil {
		e.changed = make(chan struct{}, 1)
	}
	return e.changed
}

// SetServices implements localapi.ServicesSetter: it replaces owner's
// services (marked with Owner = owner), checked against the node's own and every other owner's as the
// registry checks a report, so a set the registry would refuse is refused
// here and changes nothing.
func (n *Node) SetServices(owner string, svcs []api.Service) error {
	if err := api.ValidateName(owner); err != nil {
		return fmt.Errorf("%w: owner: %v", localapi.ErrBadServices, err)
	}
	e := &n.ext
	e.mu.Lock()
	defer e.mu.Unlock()
	next := maps.Clone(e.byOwner)
	if next == nil {
		next = map[string][]api.Service{}
	}
	if len(svcs) == 0 {
		delete(next, owner)
	} else {
		own := slices.Clone(svcs)
		for i := range own {
			own[i].Owner = owner
		}
		next[owner] = own
	}
	if _, err := mergeServices(n.cfg.Services, next); err != nil {
		return fmt.Errorf("%w: %v", localapi.ErrBadServices, err)
	}
	if slices.Equal(e.byOwner[owner], next[owner]) {
		return nil
	}
	e.byOwner = next
	n.log.Info("services set", "owner", owner, "services", len(svcs))
	select {
	case e.changedCLocked() <- struct{}{}:
	default:
	}
	return nil
}

// services returns every service the node publishes, sorted as the
// registry stores them.
func (n *Node) services() []api.Service {
	e := &n.ext
	e.mu.Lock()
	defer e.mu.Unlock()
	all, err := mergeServices(n.cfg.Services, e.byOwner)
	if err != nil { // SetServices checked every set it kept
		return slices.Clone(n.cfg.Services)
	}
	return all
}

// mergeServices joins own and the owners' services, checked as the registry
// checks a report: valid names, tcp or udp, a port, a valid allow list, no
// (name, protocol, port) twice, at most api.MaxServices. The result is sorted by name, protocol
// and port.
func mergeServices(own []api.Service, byOwner map[string][]api.Service) ([]api.Service, error) {
	all := slices.Clone(own)
	for _, o := range slices.Sorted(maps.Keys(byOwner)) {
		for i, s := range byOwner[o] {
			if err := api.ValidateName(s.Name); err != nil {
				return nil, fmt.Errorf("%s[%d].name: %v", o, i, err)
			}
			if s.Protocol != "tcp" && s.Protocol != "udp" {
				return nil, fmt.Errorf("%s[%d].protocol %.20q: must be tcp or udp", o, i, s.Protocol)
			}
			if s.Port == 0 {
				return nil, fmt.Errorf("%s[%d].port: must be 1 to 65535", o, i)
			}
			if s.Allow != "" {
				if err := api.ValidateSelectors(s.Allow); err != nil {
					return nil, fmt.Errorf("%s[%d].allow: %v", o, i, err)
				}
			}
			if slices.ContainsFunc(all, func(x api.Service) bool {
				return x.Name == s.Name && x.Protocol == s.Protocol && x.Port == s.Port
			}) {
				return nil, fmt.Errorf("%s[%d]: %s %d/%s is already published", o, i, s.Name, s.Port, s.Protocol)
			}
			all = append(all, s)
		}
	}
	if len(all) > api.MaxServices {
		return nil, fmt.Errorf("%d services, at most %d allowed", len(all), api.MaxServices)
	}
	slices.SortFunc(all, func(a, b api.Service) int {
		return cmp.Or(cmp.Compare(a.Name, b.Name), cmp.Compare(a.Protocol, b.Protocol), cmp.Compare(a.Port, b.Port))
	})
	return all, nil
}
