package policy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/tunnelmesh/tunnelmesh/shared/api"
)

// Allowed reports whether the policy lets src reach dst on proto ("tcp",
// "udp" or "icmp") and port (ignored for icmp), and names the first rule
// that does. Nodes are matched by name and tags; their addresses do not
// matter; dst's published docker services count under the docker section.
// A node is never "allowed" to itself: its own traffic does not
// cross the mesh, and Compile gives it no rule for it.
func (p *Policy) Allowed(src, dst api.Node, proto string, port uint16) (rule string, ok bool) {
	sname, dname := normNode(src.Name), normNode(dst.Name)
	if sname == dname {
		return "", false
	}
	for _, r := range p.Rules {
		if !r.from.contains(sname, src.Tags) || !r.to.contains(dname, dst.Tags) {
			continue
		}
		if !slices.Contains(r.Protocols, ProtoAny) && !slices.Contains(r.Protocols, proto) {
			continue
		}
		if proto != ProtoICMP && !portIn(r.Ports, port) {
			continue
		}
		return r.Name, true
	}
	return p.dockerAllowed(src, dst, proto, port)
}

func portIn(rs []api.PortRange, port uint16) bool {
	if len(rs) == 0 {
		return true
	}
	for _, r := range rs {
		if r.First <= port && port <= r.Last {
			return true
		}
	}
	return false
}

// TestResult is the outcome of one target of one test.
type TestResult struct {
	Test   string // test name
	From   string
	Target Target
	Expect string // "accept" or "deny"
	Pass   bool
	Rule   string // the rule that allows the flow, if one does
	Err    string // why the test could not be evaluated (unknown node)
	Line   int    // line of the target in the policy file
}

func (r TestResult) String() string {
	verdict := "PASS"
	if !r.Pass {
		verdict = "FAIL"
	}
	if r.Target.Export != "" {
		return r.nfsString(verdict)
	}
	var why string
	switch {
	case r.Err != "":
		why = r.Err
	case r.Rule != "" && r.Target.Action != "":
		why = "allowed by grant " + r.Rule
	case r.Rule != "":
		why = "allowed by rule " + r.Rule
	case r.Target.Action != "":
		why = "no grant allows it"
	default:
		why = "no rule allows it"
	}
	if r.Target.Action != "" {
		verb := "can"
		if r.Expect == "deny" {
			verb = "cannot"
		}
		return fmt.Sprintf("%s  %s: %s %s %s bucket %s (%s)", verdict, r.Test, r.From, verb, r.Target.Action, r.Target.Bucket, why)
	}
	return fmt.Sprintf("%s  %s: %s %s %s (%s)", verdict, r.Test, r.From, r.Expect, r.Target.Spec, why)
}

// RunTests evaluates every test of the policy. A node a test names is taken
// from nodes (the mesh, with its real tags) when it is there, and otherwise
// from the policy's test_nodes; a node in neither fails the test, so that a
// misspelt name cannot make a "deny" test pass by accident.
func (p *Policy) RunTests(nodes []api.Node) []TestResult {
	known := make(map[string]api.Node, len(nodes)+len(p.TestNodes))
	for _, tn := range p.TestNodes {
		known[tn.Name] = api.Node{Name: tn.Name, Tags: tn.Tags}
	}
	for _, n := range nodes {
		known[normNode(n.Name)] = n
	}
	var results []TestResult
	for _, t := range p.Tests {
		src, srcOK := known[t.From]
		for _, side := range []struct {
			expect  string
			targets []Target
		}{{"accept", t.Accept}, {"deny", t.Deny}} {
			for _, tg := range side.targets {
				res := TestResult{Test: t.Name, From: t.From, Target: tg, Expect: side.expect, Line: tg.Line}
				dst, dstOK := known[tg.Node]
				switch {
				case !srcOK:
					res.Err = fmt.Sprintf("node %q is neither in the mesh nor under test_nodes", t.From)
				case !dstOK:
					res.Err = fmt.Sprintf("node %q is neither in the mesh nor under test_nodes", tg.Node)
				case t.From == tg.Node:
					res.Err = "a test needs two different nodes"
				default:
					rule, ok := p.Allowed(src, dst, tg.Protocol, tg.Port)
					res.Rule = rule
					res.Pass = ok == (side.expect == "accept")
				}
				results = append(results, res)
			}
		}
		for _, side := range []struct {
			expect  string
			targets []Target
		}{{"accept", t.StorageAccept}, {"deny", t.StorageDeny}} {
			for _, tg := range side.targets {
				res := TestResult{Test: t.Name, From: t.From, Target: tg, Expect: side.expect, Line: tg.Line}
				if !srcOK {
					res.Err = fmt.Sprintf("node %q is neither in the mesh nor under test_nodes", t.From)
				} else {
					grant, ok := p.StorageAllowed(src, tg.Action, tg.Bucket)
					res.Rule = grant
					res.Pass = ok == (side.expect == "accept")
				}
				results = append(results, res)
			}
		}
		results = append(results, p.nfsResults(t, src, srcOK)...)
	}
	return results
}

// Check runs the tests and returns nil when every one passes, or an Errors
// naming each failure at its line.
func (p *Policy) Check(nodes []api.Node) error {
	var errs Errors
	for _, r := range p.RunTests(nodes) {
		if r.Pass {
			continue
		}
		if r.Target.Export != "" {
			errs = append(errs, &Error{File: p.file, Line: r.Line, Msg: r.nfsFailure()})
			continue
		}
		msg := fmt.Sprintf("test %q failed: %s should %s %s", r.Test, r.From, r.Expect, r.Target.Spec)
		if r.Target.Action != "" {
			msg = fmt.Sprintf("test %q failed: %s should %s %s bucket %s", r.Test, r.From, r.Expect, r.Target.Action, r.Target.Bucket)
		}
		switch {
		case r.Err != "":
			msg = fmt.Sprintf("test %q: %s", r.Test, r.Err)
		case r.Rule != "" && r.Target.Action != "":
			msg += " but grant " + r.Rule + " allows it"
		case r.Rule != "":
			msg += " but rule " + r.Rule + " allows it"
		case r.Target.Action != "":
			msg += " but no grant allows it"
		default:
			msg += " but no rule allows it"
		}
		if r.Target.Action != "" {
			msg = strings.Replace(msg, "should accept", "should be able to", 1)
			msg = strings.Replace(msg, "should deny", "should not be able to", 1)
		}
		msg = strings.Replace(msg, "should accept", "should reach", 1)
		msg = strings.Replace(msg, "should deny", "should not reach", 1)
		errs = append(errs, &Error{File: p.file, Line: r.Line, Msg: msg})
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}
