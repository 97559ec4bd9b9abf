package awstest

import (
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Parameter groups, engine versions and events: the part of RDS where the
// strictness matters most (default groups, static parameters, families,
// valid upgrade targets).

func (s *Server) group(f url.Values, cluster bool) (*pgroup, *Fault) {
	key := "DBParameterGroupName"
	if cluster {
		key = "DBClusterParameterGroupName"
	}
	if fault := missing(f, key); fault != nil {
		return nil, fault
	}
	name := f.Get(key)
	g := s.lookupGroup(name, cluster)
	if g == nil {
		if cluster {
			return nil, notFound("DBParameterGroupNotFound", "DBClusterParameterGroup not found: "+name)
		}
		return nil, notFound("DBParameterGroupNotFound", "DBParameterGroup not found: "+name)
	}
	return g, nil
}

// groupFits refuses a parameter group that does not exist, is of the other
// kind, or serves another family than engine at version: RDS's answers to
// a restore, a new instance or an upgrade naming such a group.
func (s *Server) groupFits(name string, cluster bool, engine, version string) *Fault {
	g := s.lookupGroup(name, cluster)
	if g == nil {
		kind := "DBParameterGroup"
		if cluster {
			kind = "DBClusterParameterGroup"
		}
		return notFound("DBParameterGroupNotFound", kind+" not found: "+name)
	}
	if want := family(engine, version); g.family != want {
		return badRequest("InvalidParameterCombination", "The parameter group "+name+" with DBParameterGroupFamily "+g.family+
			" can't be used for this instance. Use a parameter group with DBParameterGroupFamily "+want+".")
	}
	return nil
}

func (s *Server) describeParameters(f url.Values, cluster bool) (any, *Fault) {
	g, fault := s.group(f, cluster)
	if fault != nil {
		return nil, fault
	}
	names := sortedParams(g)
	start, end, marker := s.page(f, len(names))
	var out struct {
		Parameters []xParameter `xml:"Parameters>Parameter"`
		Marker     string       `xml:",omitempty"`
	}
	for _, n := range names[start:end] {
		p := g.params[n]
		out.Parameters = append(out.Parameters, xParameter{
			ParameterName: n, ParameterValue: p.value, ApplyType: p.applyType,
			Source: p.source, IsModifiable: true, DataType: "string",
		})
	}
	out.Marker = marker
	return out, nil
}

func (s *Server) modifyParameterGroup(f url.Values, cluster bool) (any, *Fault) {
	g, fault := s.group(f, cluster)
	if fault != nil {
		return nil, fault
	}
	if strings.HasPrefix(g.name, "default.") {
		return nil, badRequest("InvalidDBParameterGroupState", "Default parameter groups cannot be modified: "+g.name+". Create a custom parameter group and attach it instead.")
	}
	type change struct{ name, value, method string }
	var changes []change
	for i := 1; ; i++ {
		pre := "Parameters.Parameter." + strconv.Itoa(i) + "."
		name := f.Get(pre + "ParameterName")
		if name == "" {
			break
		}
		c := change{name, f.Get(pre + "ParameterValue"), f.Get(pre + "ApplyMethod")}
		p := g.params[name]
		if p == nil {
			return nil, badRequest("InvalidParameterValue", "Could not find parameter with name: "+name)
		}
		if c.method == "immediate" && p.applyType == "static" {
			return nil, badRequest("InvalidParameterCombination", "cannot use immediate apply method for static parameter")
		}
		if c.method != "immediate" && c.method != "pending-reboot" {
			return nil, badRequest("InvalidParameterValue", "ApplyMethod must be immediate or pending-reboot")
		}
		changes = append(changes, c)
	}
	if len(changes) == 0 || len(changes) > 20 {
		return nil, badRequest("InvalidParameterValue", "Parameters must hold 1 to 20 parameters")
	}
	pending := false
	for _, c := range changes {
		p := g.params[c.name]
		p.value, p.source = c.value, "user"
		pending = pending || c.method == "pending-reboot"
	}
	if pending {
		s.markApplying(g.name, cluster)
	}
	if cluster {
		return struct{ DBClusterParameterGroupName string }{g.name}, nil
	}
	return struct{ DBParameterGroupName string }{g.name}, nil
}

type xParameterGroup struct {
	Name, Family, Description, Arn string
	cluster                        bool
}

// fields names the XML elements as each kind of group does.
func (x xParameterGroup) fields() any {
	if x.cluster {
		return struct {
			DBClusterParameterGroupName string
			DBParameterGroupFamily      string
			Description                 string
			DBClusterParameterGroupArn  string
		}{x.Name, x.Family, x.Description, x.Arn}
	}
	return struct {
		DBParameterGroupName   string
		DBParameterGroupFamily string
		Description            string
		DBParameterGroupArn    string
	}{x.Name, x.Family, x.Description, x.Arn}
}

func groupXML(g *pgroup) any {
	kind := "pg"
	if g.cluster {
		kind = "cluster-pg"
	}
	return xParameterGroup{Name: g.name, Family: g.family, Description: "pgbluegreen stand-in group " + g.name,
		Arn: arn(kind, g.name), cluster: g.cluster}.fields()
}

func (s *Server) describeParameterGroups(f url.Values, cluster bool) (any, *Fault) {
	g, fault := s.group(f, cluster)
	if fault != nil {
		return nil, fault
	}
	if cluster {
		var out struct {
			Groups []any `xml:"DBClusterParameterGroups>DBClusterParameterGroup"`
		}
		out.Groups = append(out.Groups, groupXML(g))
		return out, nil
	}
	var out struct {
		Groups []any `xml:"DBParameterGroups>DBParameterGroup"`
	}
	out.Groups = append(out.Groups, groupXML(g))
	return out, nil
}

func (s *Server) createParameterGroup(f url.Values, cluster bool) (any, *Fault) {
	key := "DBParameterGroupName"
	if cluster {
		key = "DBClusterParameterGroupName"
	}
	if fault := missing(f, key, "DBParameterGroupFamily", "Description"); fault != nil {
		return nil, fault
	}
	name, fam := f.Get(key), f.Get("DBParameterGroupFamily")
	if strings.HasPrefix(name, "default.") {
		return nil, badRequest("InvalidParameterValue", "The parameter group name can't begin with default.")
	}
	if s.rds.groups[name] != nil {
		return nil, badRequest("DBParameterGroupAlreadyExists", "Parameter group "+name+" already exists")
	}
	if !knownFamily(fam) {
		return nil, badRequest("InvalidParameterValue", "unknown DBParameterGroupFamily "+fam)
	}
	g := newGroup(name, fam, cluster)
	s.rds.groups[name] = g
	if cluster {
		return struct{ DBClusterParameterGroup any }{groupXML(g)}, nil
	}
	return struct{ DBParameterGroup any }{groupXML(g)}, nil
}

type xUpgradeTarget struct {
	Engine                string
	EngineVersion         string
	IsMajorVersionUpgrade bool
	AutoUpgrade           bool
}

type xEngineVersion struct {
	Engine                 string
	EngineVersion          string
	DBParameterGroupFamily string
	ValidUpgradeTarget     []xUpgradeTarget `xml:"ValidUpgradeTarget>UpgradeTarget"`
}

func (s *Server) describeDBEngineVersions(f url.Values) (any, *Fault) {
	engine, version := f.Get("Engine"), f.Get("EngineVersion")
	var out struct {
		DBEngineVersions []xEngineVersion `xml:"DBEngineVersions>DBEngineVersion"`
	}
	engines := make([]string, 0, len(s.rds.versions))
	for e := range s.rds.versions {
		engines = append(engines, e)
	}
	sort.Strings(engines)
	for _, e := range engines {
		if engine != "" && e != engine {
			continue
		}
		for _, v := range s.rds.versions[e] {
			if version != "" && v != version {
				continue
			}
			x := xEngineVersion{Engine: e, EngineVersion: v, DBParameterGroupFamily: family(e, v)}
			for _, t := range s.upgradeTargets(e, v) {
				x.ValidUpgradeTarget = append(x.ValidUpgradeTarget, xUpgradeTarget{Engine: e, EngineVersion: t, IsMajorVersionUpgrade: majorOf(t) != majorOf(v)})
			}
			out.DBEngineVersions = append(out.DBEngineVersions, x)
		}
	}
	return out, nil
}

type xEvent struct {
	SourceIdentifier string
	SourceType       string
	Message          string
	Date             string
}

func (s *Server) describeEvents(f url.Values) (any, *Fault) {
	id := f.Get("SourceIdentifier")
	minutes, err := strconv.Atoi(or(f.Get("Duration"), "60"))
	if err != nil {
		return nil, badRequest("InvalidParameterValue", "Duration must be a number of minutes")
	}
	since := time.Now().Add(-time.Duration(minutes) * time.Minute)
	var out struct {
		Events []xEvent `xml:"Events>Event"`
	}
	for _, e := range s.rds.events[id] {
		if e.at.Before(since) || (f.Get("SourceType") != "" && f.Get("SourceType") != e.typ) {
			continue
		}
		out.Events = append(out.Events, xEvent{SourceIdentifier: id, SourceType: e.typ, Message: e.message, Date: e.at.Format(time.RFC3339Nano)})
	}
	return out, nil
}
