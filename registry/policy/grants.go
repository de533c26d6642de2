package policy

import "gopkg.in/yaml.v3"

// namedGrant is one entry of a section that grants access to named things
// (storage buckets, NFS exports): its name, line, and the selectors of each
// level it names, in the order of levels.
type namedGrant struct {
	name   string
	line   int
	levels []levelGrant
}

type levelGrant struct {
	level string
	sels  []Selector
}

// namedGrants parses the section n at path: one key, key, mapping names
// (each checked by validName) to levels (of levels, at least one; nothing is
// the error when there is none) each listing at least one selector. It
// reports every error it finds and returns false if there was any.
func (ps *parser) namedGrants(n *yaml.Node, path, key string, levels []string, nothing string, validName func(string) error) ([]namedGrant, bool) {
	f, _, ok := ps.mapping(n, path, key)
	if f == nil {
		return nil, false
	}
	fl, has := f[key]
	if !has {
		ps.errorf(n, path, "missing %q", key)
		return nil, false
	}
	kp := join(path, key)
	kf, order, good := ps.mapping(fl.val, kp)
	if kf == nil {
		return nil, false
	}
	ok = ok && good
	var out []namedGrant
	for _, name := range order {
		nfl := kf[name]
		p := join(kp, name)
		if err := validName(name); err != nil {
			ps.errorf(nfl.key, p, "%v", err)
			ok = false
			continue
		}
		g := namedGrant{name: name, line: nfl.key.Line}
		lf, _, good := ps.mapping(nfl.val, p, levels...)
		if lf == nil || !good {
			ok = false
			continue
		}
		if len(lf) == 0 {
			ps.errorf(nfl.val, p, "%s", nothing)
			ok = false
			continue
		}
		for _, level := range levels {
			lfl, has := lf[level]
			if !has {
				continue
			}
			lp := join(p, level)
			items, good := ps.list(lfl.val, lp, true)
			if !good {
				ok = false
				continue
			}
			if len(items) == 0 {
				ps.errorf(lfl.val, lp, "must name at least one node, tag or group")
				ok = false
			}
			var sels []Selector
			for j, it := range items {
				sel, good := ps.selector(it, itemPath(lfl.val, lp, j))
				if !good {
					ok = false
					continue
				}
				sels = append(sels, sel)
			}
			g.levels = append(g.levels, levelGrant{level, sels})
		}
		out = append(out, g)
	}
	return out, ok
}
