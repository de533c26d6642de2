package node

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/tunnelmesh/tunnelmesh/agent/internal/localapi"
	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// ServicesTTL is how long an owner's set lives after it was last set
// through the local API. Owners re-send their set to keep it
// (tunnelmesh-dockerwatch every 5 s), so a killed owner's services are
// withdrawn within ServicesTTL plus a tick of expireLoop.
const ServicesTTL = 20 * time.Second

// extServices are the services that processes next to the node (such as
// tunnelmesh-dockerwatch) set through the local API, by owner. The node
// publishes them with its own (Config.Services) in its endpoint reports.
type extServices struct {
	now func() time.Time // nil: time.Now

	mu      sync.Mutex // guards the fields below
	byOwner map[string][]api.Service
	expires map[string]time.Time // owner's set lives until then
	changed chan struct{}        // 1-buffered; a value means a report is due
}

func (e *extServices) clock() time.Time {
	if e.now != nil {
		return e.now()
	}
	return time.Now()
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
	if e.expires == nil {
		e.expires = map[string]time.Time{}
	}
	if len(svcs) == 0 {
		delete(e.expires, owner)
	} else {
		e.expires[owner] = e.clock().Add(ServicesTTL)
	}
	if slices.Equal(e.byOwner[owner], next[owner]) {
		return nil
	}
	e.byOwner = next
	n.log.Info("services set", "owner", owner, "services", len(svcs))
	e.reportDueLocked()
	return nil
}

func (e *extServices) reportDueLocked() {
	select {
	case e.changedCLocked() <- struct{}{}:
	default:
	}
}

// expireServices withdraws the sets of owners that have not set them for
// ServicesTTL.
func (n *Node) expireServices() {
	e := &n.ext
	e.mu.Lock()
	defer e.mu.Unlock()
	now := e.clock()
	for owner, until := range e.expires {
		if now.Before(until) {
			continue
		}
		delete(e.expires, owner)
		if _, ok := e.byOwner[owner]; !ok {
			continue
		}
		next := maps.Clone(e.byOwner)
		delete(next, owner)
		e.byOwner = next
		n.log.Warn("services expired", "owner", owner, "after", ServicesTTL)
		e.reportDueLocked()
	}
}

// expireLoop runs expireServices every second until ctx ends.
func (n *Node) expireLoop(ctx context.Context) error {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			n.expireServices()
		}
	}
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
